//! `sse-toxics`: a TCP relay on loopback that injects network faults between two parts
//! of a run, in the manner of toxiproxy (github.com/Shopify/toxiproxy), driven from a
//! scenario's `[[toxics]]` table.
//!
//! Hand-written rather than running toxiproxy itself so that every random choice comes
//! from the run's printed seed (toxiproxy draws from an unseeded global RNG), the
//! schedule follows the run's clock, and every toxic action lands in an event log the
//! report can quote. The toxics keep toxiproxy's names, attributes and units.
//!
//! The relay copies bytes without interpreting them, so it sits in front of TLS (never
//! terminating it) and HTTP/2 alike. Buffers are bounded (a slow side back-pressures
//! the other), every connection ends when its sides close, when a toxic cuts it, or when
//! the proxy stops; [`ProxyHandle::stop`] returns once every task has ended.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sse_toxics::{Latency, Proxy, Stream, Toxic, ToxicConfig};
//! let upstream = "127.0.0.1:8080".parse()?;
//! let lat = ToxicConfig::new(Toxic::Latency(Latency { latency: 400, jitter: 50 }), Stream::Downstream);
//! let proxy = Proxy::start("127.0.0.1:0".parse()?, upstream, vec![lat], 42).await?;
//! // clients connect to proxy.addr() instead of the upstream ...
//! proxy.set_enabled("latency_downstream", false)?;
//! let log = proxy.stop().await;
//! for ev in &log.events { println!("{} ms conn {}: {:?}", ev.at_ms, ev.conn, ev.action); }
//! # Ok(()) }
//! ```

mod conn;
mod log;
mod proxy;
mod rng;
mod spec;
mod toxics;

pub use self::log::{Action, CloseHow, DEFAULT_LOG_CAPACITY, EventLog, LogSnapshot, ToxicEvent};
pub use self::proxy::{LiveSwitch, Proxy, ProxyConfig, ProxyError, ProxyErrorKind, ProxyHandle};
pub use self::spec::{
    ProxyPath, SpecError, SpecErrorKind, Stream, ToxicConfig, ToxicSpec, WindowClock, for_path,
    parse_toml, validate_set,
};
pub use self::toxics::{
    Bandwidth, KNOWN, Latency, LimitData, MAX_MS, ResetPeer, Slicer, SlowClose, StallMode, Timeout,
    Toxic,
};
