//! Starting, changing and stopping a proxy: the accept loop, the shared toxic set
//! (a `watch` channel, so changes reach live connections at once) and the handle.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::log::{DEFAULT_LOG_CAPACITY, EventLog, LogSnapshot};
use crate::rng::name_hash;
use crate::spec::{SpecError, SpecErrorKind, ToxicConfig, validate_set};

/// Milliseconds since a fixed origin (the proxy's start or the run's clock), and the
/// moment the traffic went live, which windows on
/// [`WindowClock::Live`](crate::WindowClock::Live) count from.
#[derive(Debug)]
pub(crate) struct Clock {
    pub origin: Instant,
    /// Set once, by [`LiveSwitch::go_live`]; a change wakes what waits on a window.
    pub live: watch::Sender<Option<Instant>>,
}

impl Clock {
    /// When the traffic went live, in milliseconds since the origin.
    pub fn live_ms_f64(&self) -> Option<f64> {
        let live = *self.live.borrow();
        live.map(|l| l.saturating_duration_since(self.origin).as_secs_f64() * 1000.0)
    }
    /// When the traffic went live, in whole milliseconds since the origin.
    pub fn live_ms(&self) -> Option<u64> {
        self.live_ms_f64().map(|ms| ms as u64)
    }
    /// Whether `cfg`'s window holds now.
    pub fn holds(&self, cfg: &ToxicConfig) -> bool {
        cfg.live_at_origin_ms(self.ms(), self.live_ms())
    }
    /// The next edge of `cfg`'s window after `now` (ms since the origin), if it has
    /// one yet (a window on [`WindowClock::Live`](crate::WindowClock::Live) has none
    /// before the traffic goes live).
    pub fn next_edge(&self, cfg: &ToxicConfig, now: u64) -> Option<u64> {
        let (from, until) = cfg.window_on_origin(self.live_ms())?;
        if now < from {
            Some(from)
        } else {
            until.filter(|u| now < *u)
        }
    }
    /// Whole milliseconds since the origin.
    pub fn ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }
    /// Milliseconds since the origin, with fractions.
    pub fn ms_f64(&self) -> f64 {
        self.origin.elapsed().as_secs_f64() * 1000.0
    }
    /// The instant `ms` milliseconds after the origin.
    pub fn at(&self, ms: u64) -> Instant {
        self.origin + Duration::from_millis(ms)
    }
}

/// One toxic as the connections see it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub cfg: ToxicConfig,
    pub name: String,
    pub name_hash: u64,
    pub enabled: bool,
}

pub(crate) type ToxicSet = Arc<Vec<Entry>>;

/// What every connection of one proxy shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub upstream: SocketAddr,
    pub seed: u64,
    pub clock: Clock,
    pub log: EventLog,
    pub toxics: watch::Receiver<ToxicSet>,
    pub connect_timeout: Duration,
    pub open: AtomicUsize,
}

/// How to start a proxy.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Where to listen: a loopback address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Where to connect for each client.
    pub upstream: SocketAddr,
    /// The toxics, in order.
    pub toxics: Vec<ToxicConfig>,
    /// The run's seed: every toxicity decision, jitter and slice comes from it.
    pub seed: u64,
    /// Origin of the log's times and of the windows (`from_ms`, `until_ms`) on
    /// [`WindowClock::Origin`](crate::WindowClock::Origin); default the proxy's start.
    pub origin: Option<Instant>,
    /// Most events the log keeps; default [`DEFAULT_LOG_CAPACITY`].
    pub log_capacity: usize,
    /// Deadline for connecting upstream; default 5 s.
    pub connect_timeout: Duration,
}

impl ProxyConfig {
    /// A config with the defaults.
    pub fn new(
        listen: SocketAddr,
        upstream: SocketAddr,
        toxics: Vec<ToxicConfig>,
        seed: u64,
    ) -> ProxyConfig {
        ProxyConfig {
            listen,
            upstream,
            toxics,
            seed,
            origin: None,
            log_capacity: DEFAULT_LOG_CAPACITY,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Why a proxy did not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyErrorKind {
    /// The listen address is not loopback (127.0.0.0/8, ::1).
    NotLoopback,
    /// Binding the listener failed.
    Bind,
    /// The toxics are invalid.
    Spec,
}

/// A proxy that could not start.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ProxyError {
    /// What went wrong.
    pub kind: ProxyErrorKind,
    /// Details.
    pub message: String,
}

impl From<SpecError> for ProxyError {
    fn from(e: SpecError) -> ProxyError {
        ProxyError {
            kind: ProxyErrorKind::Spec,
            message: e.message,
        }
    }
}

/// Entry point: [`Proxy::start`] / [`Proxy::start_with`].
#[derive(Debug)]
pub struct Proxy;

impl Proxy {
    /// Starts a proxy on `listen` relaying to `upstream` with `toxics` and `seed`.
    pub async fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        toxics: Vec<ToxicConfig>,
        seed: u64,
    ) -> Result<ProxyHandle, ProxyError> {
        Proxy::start_with(ProxyConfig::new(listen, upstream, toxics, seed)).await
    }

    /// Starts a proxy from a full config.
    pub async fn start_with(config: ProxyConfig) -> Result<ProxyHandle, ProxyError> {
        if !config.listen.ip().is_loopback() {
            return Err(ProxyError {
                kind: ProxyErrorKind::NotLoopback,
                message: format!(
                    "listen address {} is not loopback (127.0.0.0/8 or ::1)",
                    config.listen
                ),
            });
        }
        let set = entries(config.toxics)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| ProxyError {
                kind: ProxyErrorKind::Bind,
                message: format!("binding {}: {e}", config.listen),
            })?;
        let addr = listener.local_addr().map_err(|e| ProxyError {
            kind: ProxyErrorKind::Bind,
            message: format!("local address: {e}"),
        })?;
        let clock = Clock {
            origin: config.origin.unwrap_or_else(Instant::now),
            live: watch::channel(None).0,
        };
        let (tx, rx) = watch::channel(Arc::new(set));
        let log = EventLog::new(config.log_capacity);
        let shared = Arc::new(Shared {
            upstream: config.upstream,
            seed: config.seed,
            clock,
            log: log.clone(),
            toxics: rx,
            connect_timeout: config.connect_timeout,
            open: AtomicUsize::new(0),
        });
        let cancel = CancellationToken::new();
        let task = tokio::spawn(accept_loop(listener, shared.clone(), cancel.clone()));
        Ok(ProxyHandle {
            addr,
            tx,
            cancel,
            task: Some(task),
            log,
            shared,
        })
    }
}

fn entries(toxics: Vec<ToxicConfig>) -> Result<Vec<Entry>, SpecError> {
    validate_set(&toxics)?;
    Ok(toxics
        .into_iter()
        .map(|cfg| {
            let name = cfg.name();
            Entry {
                name_hash: name_hash(&name),
                name,
                cfg,
                enabled: true,
            }
        })
        .collect())
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    let mut conns = JoinSet::new();
    let mut next_id = 1u64;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok((client, _)) => {
                    let id = next_id;
                    next_id += 1;
                    conns.spawn(crate::conn::serve(client, id, shared.clone(), cancel.clone()));
                }
                // EMFILE and friends: back off briefly rather than spin.
                Err(_) => tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                },
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    // Every connection watches `cancel` and returns at once; the deadline is a backstop.
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .is_err()
    {
        conns.shutdown().await;
    }
}

/// Starts a proxy's [`WindowClock::Live`](crate::WindowClock::Live) clock; cheap to
/// clone, harmless after the proxy has stopped.
#[derive(Debug, Clone)]
pub struct LiveSwitch {
    shared: Arc<Shared>,
}

impl LiveSwitch {
    /// The traffic is live now: windows on
    /// [`WindowClock::Live`](crate::WindowClock::Live) count from this moment. Only the
    /// first call counts.
    pub fn go_live(&self) {
        self.shared.clock.live.send_if_modified(|l| {
            let first = l.is_none();
            if first {
                *l = Some(Instant::now());
            }
            first
        });
    }
}

/// A running proxy. Dropping it stops the proxy without waiting; [`ProxyHandle::stop`]
/// waits until every task has ended.
#[derive(Debug)]
pub struct ProxyHandle {
    addr: SocketAddr,
    tx: watch::Sender<ToxicSet>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
    log: EventLog,
    shared: Arc<Shared>,
}

impl ProxyHandle {
    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The event log (shared; read it with [`EventLog::snapshot`] at any time).
    pub fn log(&self) -> EventLog {
        self.log.clone()
    }

    /// Milliseconds since the clock origin, as the schedule and the log count them.
    pub fn elapsed_ms(&self) -> f64 {
        self.shared.clock.ms_f64()
    }

    /// The switch that starts the [`WindowClock::Live`](crate::WindowClock::Live)
    /// clock: for the part of the owner that knows when the traffic goes live.
    pub fn live_switch(&self) -> LiveSwitch {
        LiveSwitch {
            shared: self.shared.clone(),
        }
    }

    /// When the traffic went live ([`LiveSwitch::go_live`]), in milliseconds since the
    /// clock origin; `None` if it never did.
    pub fn live_ms(&self) -> Option<f64> {
        self.shared.clock.live_ms_f64()
    }

    /// Connections currently relayed.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::Relaxed)
    }

    /// The toxics and whether each is enabled, in order.
    pub fn toxics(&self) -> Vec<(ToxicConfig, bool)> {
        self.tx
            .borrow()
            .iter()
            .map(|e| (e.cfg.clone(), e.enabled))
            .collect()
    }

    /// Replaces every toxic (all enabled). Live connections see the change at once;
    /// toxicity decisions depend only on (seed, connection, name), so a toxic kept under
    /// the same name keeps its decisions.
    pub fn set_toxics(&self, toxics: Vec<ToxicConfig>) -> Result<(), SpecError> {
        let set = entries(toxics)?;
        self.tx.send_replace(Arc::new(set));
        Ok(())
    }

    /// Adds a toxic (enabled).
    pub fn add_toxic(&self, toxic: ToxicConfig) -> Result<(), SpecError> {
        let (mut all, enabled): (Vec<ToxicConfig>, Vec<bool>) = self.toxics().into_iter().unzip();
        all.push(toxic);
        let mut set = entries(all)?;
        for (e, on) in set.iter_mut().zip(enabled) {
            e.enabled = on;
        }
        self.tx.send_replace(Arc::new(set));
        Ok(())
    }

    /// Removes the toxic named `name`.
    pub fn remove_toxic(&self, name: &str) -> Result<(), SpecError> {
        self.edit(name, |set, i| {
            set.remove(i);
        })
    }

    /// Enables or disables the toxic named `name` (a disabled toxic acts on nothing; a
    /// `timeout` stall it holds ends).
    pub fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), SpecError> {
        self.edit(name, |set, i| set[i].enabled = enabled)
    }

    fn edit(&self, name: &str, f: impl FnOnce(&mut Vec<Entry>, usize)) -> Result<(), SpecError> {
        let mut set: Vec<Entry> = self.tx.borrow().as_ref().clone();
        let Some(i) = set.iter().position(|e| e.name == name) else {
            let known: Vec<&str> = set.iter().map(|e| e.name.as_str()).collect();
            return Err(SpecError::new(
                SpecErrorKind::UnknownName,
                format!("no toxic named `{name}` (known: {})", known.join(", ")),
            ));
        };
        f(&mut set, i);
        self.tx.send_replace(Arc::new(set));
        Ok(())
    }

    /// Stops accepting, ends every connection (a stalled one included) and returns the
    /// log once every task has ended.
    pub async fn stop(mut self) -> LogSnapshot {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.log.snapshot()
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
