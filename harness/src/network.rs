//! The network between the parts (issue 18): a scenario's `[[toxics]]` put a toxic
//! proxy (`sse-toxics`) on the publisher path and/or the subscriber path, in front of
//! the target's host and port, for that scenario only.
//!
//! [`Proxies::start`] starts one proxy per path that has toxics, on loopback, with the
//! scenario's seed and its clock origin (so a log entry's `at_ms` lines up with the
//! transcripts' µs), and gives a [`Route`] that a per-scenario copy of the target
//! ([`Target::routed`]) sends that path's connections through:
//!
//! - the subscriber path: every event stream (`sse-wire`'s `connect_to`); the stream's
//!   TLS (SNI, certificate check), `Host` and `:authority` still name the target, and
//!   HTTP/2 is relayed as bytes;
//! - the publisher path: every plain HTTP request (publishes, and the channel creation,
//!   head and gauge reads that share the client): the URL's port becomes the proxy's,
//!   its host stays (a name is resolved to the proxy's address, an IP literal is the
//!   proxy's own, as the proxy listens on the target's loopback address) and `Host`
//!   keeps the target's authority.
//!
//! [`Proxies::stop`] ends every relayed connection and returns the logs for the
//! recording ([`harness_model::Network`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use harness_model::{Network, ProxyLog};
use sse_toxics::{EventLog, LiveSwitch, Proxy, ProxyConfig, ProxyHandle, ProxyPath, ToxicSpec};

use crate::error::{HarnessError, HarnessErrorKind};
use crate::target::Target;

/// Where a scenario's connections go instead of the target, by path, and the proxies'
/// live logs (a publisher can ask, while it runs, whether the proxy cut a request).
#[derive(Clone, Debug)]
pub struct Route {
    /// The subscriber path's proxy address, when that path has one.
    pub subscriber: Option<SocketAddr>,
    /// The publisher path's proxy address, when that path has one.
    pub publisher: Option<SocketAddr>,
    /// The publisher proxy's log, live.
    pub publisher_log: Option<EventLog>,
    /// The subscriber proxy's log, live.
    pub subscriber_log: Option<EventLog>,
    /// The scenario's clock origin, which the proxies' logs count from.
    pub epoch: Instant,
    /// The most the subscriber proxy's latency toxics may hold a downstream chunk
    /// (Σ latency + jitter), in ms: a client waiting out a silence waits this much
    /// longer, twice over (the last byte may be held, the one after it too).
    pub subscriber_delay_ms: u64,
    /// The proxies' live clocks, which the workload starts when live publishing does
    /// ([`Route::go_live`]).
    pub live: Vec<LiveSwitch>,
}

impl Route {
    /// Live publishing starts now (every client is open, or the wait for them is
    /// over): toxics with `clock = "live"` count their windows from here.
    pub fn go_live(&self) {
        for s in &self.live {
            s.go_live();
        }
    }

    /// The live log of `path`'s proxy, if it has one.
    pub fn log(&self, path: ProxyPath) -> Option<&EventLog> {
        match path {
            ProxyPath::Publisher => self.publisher_log.as_ref(),
            ProxyPath::Subscriber => self.subscriber_log.as_ref(),
        }
    }
}

/// One path's running proxy and what it was given.
struct Running {
    handle: ProxyHandle,
    toxics: Vec<sse_toxics::ToxicConfig>,
}

/// The proxies of one scenario.
pub struct Proxies {
    publisher: Option<Running>,
    subscriber: Option<Running>,
}

impl Proxies {
    /// Starts a proxy for each path `specs` names, relaying to `target`'s host and
    /// port, with `seed` and clock origin `epoch`; the route for [`Target::routed`].
    pub async fn start(
        target: &Target,
        specs: &[ToxicSpec],
        seed: u64,
        epoch: Instant,
    ) -> Result<(Proxies, Route), HarnessError> {
        let upstream = upstream_addr(target).await?;
        // On the target's own loopback address when it has one, so an IP-literal URL
        // keeps its host (and its certificate's IP) and only the port changes.
        let listen_ip = if upstream.ip().is_loopback() {
            upstream.ip()
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        };
        let at = Listen {
            ip: listen_ip,
            upstream,
            seed,
            epoch,
        };
        let publisher = at.start(specs, ProxyPath::Publisher).await?;
        let subscriber = at.start(specs, ProxyPath::Subscriber).await?;
        let route = Route {
            subscriber: subscriber.as_ref().map(|r| r.handle.addr()),
            publisher: publisher.as_ref().map(|r| r.handle.addr()),
            publisher_log: publisher.as_ref().map(|r| r.handle.log()),
            subscriber_log: subscriber.as_ref().map(|r| r.handle.log()),
            epoch,
            subscriber_delay_ms: max_delay_ms(&sse_toxics::for_path(specs, ProxyPath::Subscriber)),
            live: [&publisher, &subscriber]
                .into_iter()
                .flatten()
                .map(|r| r.handle.live_switch())
                .collect(),
        };
        Ok((
            Proxies {
                publisher,
                subscriber,
            },
            route,
        ))
    }

    /// Stops both proxies (every relayed connection ends, a stalled one included) and
    /// returns their logs.
    pub async fn stop(self) -> Network {
        async fn stop(r: Option<Running>, path: ProxyPath) -> Option<ProxyLog> {
            let r = r?;
            let live_ms = r.handle.live_ms();
            Some(ProxyLog {
                path,
                toxics: r.toxics,
                live_ms,
                log: r.handle.stop().await,
            })
        }
        Network {
            publisher: stop(self.publisher, ProxyPath::Publisher).await,
            subscriber: stop(self.subscriber, ProxyPath::Subscriber).await,
        }
    }
}

/// Σ latency + jitter of the downstream latency toxics among `toxics`, in ms.
fn max_delay_ms(toxics: &[sse_toxics::ToxicConfig]) -> u64 {
    toxics
        .iter()
        .filter(|t| t.stream == sse_toxics::Stream::Downstream)
        .map(|t| match &t.toxic {
            sse_toxics::Toxic::Latency(l) => l.latency + l.jitter,
            _ => 0,
        })
        .sum()
}

/// Where and how a scenario's proxies listen.
struct Listen {
    ip: IpAddr,
    upstream: SocketAddr,
    seed: u64,
    epoch: Instant,
}

impl Listen {
    /// Starts `path`'s proxy, if `specs` give it toxics.
    async fn start(
        &self,
        specs: &[ToxicSpec],
        path: ProxyPath,
    ) -> Result<Option<Running>, HarnessError> {
        let toxics = sse_toxics::for_path(specs, path);
        if toxics.is_empty() {
            return Ok(None);
        }
        let listen = SocketAddr::new(self.ip, 0);
        let mut cfg = ProxyConfig::new(listen, self.upstream, toxics.clone(), self.seed);
        cfg.origin = Some(self.epoch);
        let handle = Proxy::start_with(cfg).await.map_err(|e| {
            HarnessError::new(
                HarnessErrorKind::Io,
                format!("starting the {path:?} toxic proxy: {e}"),
            )
        })?;
        Ok(Some(Running { handle, toxics }))
    }
}

/// The target's address (its host resolved; the first address that answers DNS).
async fn upstream_addr(target: &Target) -> Result<SocketAddr, HarnessError> {
    let w = &target.wire;
    let mut addrs = tokio::net::lookup_host((w.host.as_str(), w.port))
        .await
        .map_err(|e| {
            HarnessError::new(
                HarnessErrorKind::Target,
                format!("resolving {} for the toxic proxy: {e}", w.authority()),
            )
        })?;
    addrs.next().ok_or_else(|| {
        HarnessError::new(
            HarnessErrorKind::Target,
            format!("{} resolves to no address", w.host),
        )
    })
}

/// One toxic in a line, as `sse-harness list` shows it: path, kind, attributes,
/// direction, toxicity and window, e.g. `subscriber latency(latency=400 jitter=50)
/// downstream toxicity=1 from 2000 ms until 6000 ms`.
pub fn describe(spec: &ToxicSpec) -> String {
    let t = &spec.toxic;
    let mut attrs = Vec::new();
    if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(t.toxic) {
        for (k, v) in m.into_iter().filter(|(k, _)| k != "kind") {
            attrs.push(format!("{k}={v}"));
        }
    }
    let path = match spec.path {
        ProxyPath::Publisher => "publisher",
        ProxyPath::Subscriber => "subscriber",
    };
    let until = t
        .until_ms
        .map(|u| format!(" until {u} ms"))
        .unwrap_or_else(|| " to the end".into());
    let clock = match t.clock {
        sse_toxics::WindowClock::Origin => "",
        sse_toxics::WindowClock::Live => " (after live publishing starts)",
    };
    format!(
        "{path} {} `{}`({}) {} toxicity={} from {} ms{until}{clock}",
        t.toxic.kind(),
        t.name(),
        attrs.join(" "),
        t.stream.as_str(),
        t.toxicity,
        t.from_ms
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_toxic_is_described_in_one_line() {
        let specs = sse_toxics::parse_toml(
            "[[toxics]]\npath = \"subscriber\"\nkind = \"latency\"\nlatency = 400\njitter = 50\nfrom_ms = 2000\nuntil_ms = 6000\n\
             [[toxics]]\npath = \"publisher\"\nkind = \"reset_peer\"\ntoxicity = 0.5\nstream = \"upstream\"\n",
        )
        .unwrap();
        assert_eq!(
            describe(&specs[0]),
            "subscriber latency `latency_downstream`(jitter=50 latency=400) downstream toxicity=1 from 2000 ms until 6000 ms"
        );
        assert_eq!(
            describe(&specs[1]),
            "publisher reset_peer `reset_peer_upstream`(timeout=0) upstream toxicity=0.5 from 0 ms to the end"
        );
        let live = sse_toxics::parse_toml(
            "[[toxics]]\npath = \"subscriber\"\nkind = \"reset_peer\"\nclock = \"live\"\nfrom_ms = 3000\nuntil_ms = 3700\n",
        )
        .unwrap();
        assert_eq!(
            describe(&live[0]),
            "subscriber reset_peer `reset_peer_downstream`(timeout=0) downstream toxicity=1 from 3000 ms until 3700 ms (after live publishing starts)"
        );
    }
}
