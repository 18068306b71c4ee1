//! The spine reference server: a durable SQLite job event log served as resumable SSE
//! streams, with receipts, artifacts and an integrity report. It is the known-good
//! target the harness is tested against (`/work/shared/spine-protocol.md`).
#![deny(missing_docs)]

pub mod auth;
pub mod compress;
pub mod cors;
pub mod durable;
pub mod error;
pub mod faults;
pub mod grip;
pub mod idempotency;
pub mod integrity;
pub mod jobs;
pub mod metrics;
pub mod net;
pub mod store;
pub mod stream;
pub mod variants;
pub mod version;

use std::net::SocketAddr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{ApiError, ErrorCode};

/// The write-stall bound under [`faults::Fault::StalledReaderKept`]: a day, never in a
/// scenario's time.
const STALLED_READER_KEPT: Duration = Duration::from_secs(86_400);

/// Largest request body (a batch of 1000 events of up to 64 KiB would not fit; a batch
/// is limited by this size first).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// How much longer than the grace period a stop waits for the accept loop, which
/// cuts what is left at the end of the grace period itself.
const SHUTDOWN_SLACK: Duration = Duration::from_secs(5);

/// How to run a server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen (`127.0.0.1:0` picks a port).
    pub addr: SocketAddr,
    /// The data folder (`spine.db`, `receipts/`, `artifacts/`); created if missing.
    pub data_dir: PathBuf,
    /// The bearer token.
    pub token: String,
    /// Idle time after which a stream gets a heartbeat.
    pub heartbeat_ms: u64,
    /// The `retry:` sent first on every stream.
    pub retry_ms: u64,
    /// Deliberate deviations (none by default).
    pub faults: faults::FaultSet,
    /// Legal variations of the wire behaviour (none by default).
    pub variants: variants::VariantSet,
    /// Timeouts and caps against hostile or stuck clients.
    pub limits: net::Limits,
    /// Whether `GET /metrics` requires the token too (default: open).
    pub metrics_auth: bool,
    /// A cap on the store's size in SQLite pages (4 KiB each); `None`: no cap. Writes
    /// beyond it fail as on a full disk.
    pub max_db_pages: Option<u64>,
    /// Origins whose browsers get CORS headers on `/v1/*` (`--allow-origin`; none by
    /// default: no CORS header is ever sent).
    pub allow_origins: Vec<String>,
    /// GRIP mode: publish to this proxy and answer its stream requests with hold
    /// instructions ([`grip`]); `None` (default): the plain server.
    pub grip: Option<grip::GripConfig>,
}

impl Config {
    /// Defaults: `127.0.0.1:0`, heartbeat 15000 ms, retry 1000 ms, no faults, no variants.
    pub fn new(data_dir: impl Into<PathBuf>, token: impl Into<String>) -> Config {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            token: token.into(),
            heartbeat_ms: 15_000,
            retry_ms: 1_000,
            faults: faults::FaultSet::default(),
            variants: variants::VariantSet::default(),
            limits: net::Limits::default(),
            metrics_auth: false,
            max_db_pages: None,
            allow_origins: Vec::new(),
            grip: None,
        }
    }
}

/// What can stop a server from starting or stopping cleanly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerErrorKind {
    /// Bad configuration (empty token, zero heartbeat, ...).
    Config,
    /// The data folder could not be prepared.
    DataDir,
    /// The store failed.
    Store,
    /// Binding the address failed.
    Bind,
    /// The HTTP server failed.
    Serve,
}

/// A server start or stop failure.
#[derive(Debug, thiserror::Error)]
#[error("{kind:?}: {detail}")]
pub struct ServerError {
    /// What failed.
    pub kind: ServerErrorKind,
    /// Details.
    pub detail: String,
}

impl ServerError {
    fn new(kind: ServerErrorKind, detail: impl Into<String>) -> ServerError {
        ServerError {
            kind,
            detail: detail.into(),
        }
    }
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct Shared {
    pub(crate) store: store::Store,
    pub(crate) token: auth::Token,
    pub(crate) metrics: Arc<metrics::Metrics>,
    pub(crate) faults: faults::FaultSet,
    pub(crate) fault_counters: faults::FaultCounters,
    pub(crate) variants: variants::VariantSet,
    pub(crate) heartbeat: Duration,
    pub(crate) retry_ms: u64,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) jobs: jobs::Jobs,
    pub(crate) versions: version::VersionHub,
    /// Held while an integrity report is being made.
    pub(crate) integrity_busy: Arc<tokio::sync::Semaphore>,
    pub(crate) metrics_auth: bool,
    pub(crate) limits: net::Limits,
    pub(crate) body_budget: net::BodyBudget,
    pub(crate) cors: cors::AllowedOrigins,
    /// GRIP mode's publisher and state ([`grip`]).
    pub(crate) grip: Option<grip::Grip>,
}

/// The handlers' state: cheap to clone, one per server.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The router with every route of the protocol.
pub fn app(state: AppState) -> Router {
    // Fault CompressedStream: the stream routes (GET only) are compressed, never
    // flushed. Variant GzipFlushed: compressed, flushed after every chunk.
    let compress = |r: MethodRouter<AppState>| {
        if state.faults.has(faults::Fault::CompressedStream) {
            r.layer(axum::middleware::from_fn(compress::compress_stream))
        } else if state.variants.has(variants::Variant::GzipFlushed) {
            r.layer(axum::middleware::from_fn(compress::compress_stream_flushed))
        } else {
            r
        }
    };
    // GRIP mode: the stream routes answer the proxy's requests with hold instructions
    // (and everyone else's as before).
    let (events, task, version) = if state.grip.is_some() {
        (
            get(grip::events_stream),
            get(grip::task_stream),
            get(grip::version_stream),
        )
    } else {
        (
            get(stream::events_stream),
            get(stream::task_stream),
            get(stream::version_stream),
        )
    };
    let v1 = Router::new()
        .route("/v1/events", compress(events))
        .route("/v1/jobs", post(jobs::create_job))
        .route("/v1/jobs/{id}", get(jobs::job_status))
        .route("/v1/jobs/{id}/events", compress(task).post(jobs::publish))
        .route("/v1/jobs/{id}/receipt", get(jobs::receipt))
        .route("/v1/version/stream", compress(version))
        .route("/v1/version/notify", post(version::notify))
        .route("/v1/diagnostics/integrity", get(integrity_route))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    // GRIP mode: the links the proxy follows.
    let v1 = match &state.grip {
        Some(_) => v1.merge(grip::router(state.clone())),
        None => v1,
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/metrics",
            get(metrics_route).route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::metrics_token,
            )),
        )
        .merge(v1)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            net::body_budget,
        ))
        // Outermost: a preflight answers before auth, every /v1/* answer gets the headers.
        .layer(axum::middleware::from_fn_with_state(
            state.cors.clone(),
            cors::cors,
        ))
        .with_state(state)
}

/// `200 {"status":"ok"}`, or `503 {"status":"unhealthy","reason"}` while the store's
/// writes or the jobs' file writes (artifacts, receipts) fail.
async fn healthz(State(state): State<AppState>) -> Response {
    let head = state.store.head();
    match state.store.health().unhealthy() {
        None => Json(serde_json::json!({ "status": "ok", "head_seq": head })).into_response(),
        Some(reason) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "unhealthy", "reason": reason, "head_seq": head })),
        )
            .into_response(),
    }
}

async fn metrics_route(State(state): State<AppState>) -> Response {
    let mut resp = state.metrics.render(state.store.head()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

#[derive(Debug, Deserialize)]
struct IntegrityQuery {
    #[serde(default)]
    full_integrity: Option<String>,
}

async fn integrity_route(
    State(state): State<AppState>,
    query: Result<Query<IntegrityQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let full = match q.full_integrity.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(_) => return Err(ApiError::invalid("full_integrity must be true or false")),
    };
    // One report at a time: each reads every receipt and artifact.
    let Ok(permit) = state.integrity_busy.clone().try_acquire_owned() else {
        return Err(ApiError::new(
            ErrorCode::Busy,
            "an integrity report is already being made",
        ));
    };
    let data_dir = state.store.data_dir().to_path_buf();
    let report = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let opts = integrity::IntegrityOptions::from_env(full)?;
        integrity::build_report(&data_dir, &opts)
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "integrity report task failed");
        ApiError::new(ErrorCode::Internal, "the integrity report failed")
    })?
    .map_err(|e| {
        // The detail names files of the data folder: logged, never answered.
        tracing::error!(error = %e, "integrity report failed");
        ApiError::new(ErrorCode::Internal, "the integrity report failed")
    })?;
    Ok(Json(report).into_response())
}

/// A server listening and serving; stop it with [`RunningServer::shutdown`].
#[derive(Debug)]
pub struct RunningServer {
    url: String,
    token: String,
    data_dir: PathBuf,
    state: AppState,
    shutdown_grace: Duration,
    shutdown_tx: watch::Sender<bool>,
    serve: JoinHandle<std::io::Result<()>>,
}

/// The settings [`RunningServer::start`] refuses before touching anything.
fn check_config(cfg: &Config) -> Result<(), ServerError> {
    if cfg.token.len() < auth::MIN_TOKEN_LEN || !cfg.token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ServerError::new(
            ServerErrorKind::Config,
            format!(
                "the token must be at least {} printable ASCII bytes, without spaces",
                auth::MIN_TOKEN_LEN
            ),
        ));
    }
    if cfg.limits.max_connections == 0 {
        return Err(ServerError::new(
            ServerErrorKind::Config,
            "max_connections must be above 0",
        ));
    }
    if cfg.heartbeat_ms == 0 {
        return Err(ServerError::new(
            ServerErrorKind::Config,
            "heartbeat_ms must be above 0",
        ));
    }
    Ok(())
}

impl RunningServer {
    /// Prepares the data folder, opens the store, resumes running jobs, binds and
    /// serves.
    pub async fn start(cfg: Config) -> Result<RunningServer, ServerError> {
        check_config(&cfg)?;
        match net::raise_fd_limit() {
            Ok(n) => tracing::debug!(nofile = n, "file descriptor limit"),
            Err(e) => tracing::warn!(error = %e, "file descriptor limit unknown"),
        }
        let cors = cors::AllowedOrigins::new(&cfg.allow_origins)
            .map_err(|e| ServerError::new(ServerErrorKind::Config, e.to_string()))?
            .off_on_streams(cfg.faults.has(faults::Fault::CorsOffOnStreams));
        let data_dir = cfg.data_dir.clone();
        let prep_dir = data_dir.clone();
        let removed = tokio::task::spawn_blocking(move || -> std::io::Result<usize> {
            durable::create_dir_durable(&prep_dir.join("receipts"))?;
            durable::create_dir_durable(&prep_dir.join("artifacts"))?;
            durable::remove_stale_temps(&prep_dir)
        })
        .await
        .map_err(|e| ServerError::new(ServerErrorKind::DataDir, e.to_string()))?
        .map_err(|e| {
            ServerError::new(
                ServerErrorKind::DataDir,
                format!("{}: {e}", data_dir.display()),
            )
        })?;
        if removed > 0 {
            tracing::info!(removed, "removed stale temp files");
        }
        let metrics = Arc::new(metrics::Metrics::default());
        let open_dir = data_dir.clone();
        let persisted = metrics.events_persisted.clone();
        let store_faults = cfg.faults.clone();
        let max_pages = cfg.max_db_pages;
        let store = tokio::task::spawn_blocking(move || {
            store::Store::open(&open_dir, persisted, &store_faults, max_pages)
        })
        .await
        .map_err(|e| ServerError::new(ServerErrorKind::Store, e.to_string()))?
        .map_err(|e| ServerError::new(ServerErrorKind::Store, e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(cfg.addr)
            .await
            .map_err(|e| ServerError::new(ServerErrorKind::Bind, format!("{}: {e}", cfg.addr)))?;
        let local = listener
            .local_addr()
            .map_err(|e| ServerError::new(ServerErrorKind::Bind, e.to_string()))?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let grip = cfg
            .grip
            .as_ref()
            .map(|g| grip::Grip::start(g, &cfg.token, shutdown_rx.clone()))
            .transpose()
            .map_err(|e| ServerError::new(ServerErrorKind::Config, e))?;
        let state = AppState(Arc::new(Shared {
            store,
            token: auth::Token::new(&cfg.token),
            metrics,
            faults: cfg.faults.clone(),
            fault_counters: faults::FaultCounters::default(),
            variants: cfg.variants.clone(),
            heartbeat: Duration::from_millis(cfg.heartbeat_ms),
            retry_ms: cfg.retry_ms,
            shutdown: shutdown_rx.clone(),
            jobs: jobs::Jobs::default(),
            versions: version::VersionHub::new(
                env!("CARGO_PKG_VERSION"),
                &cfg.faults,
                cfg.limits.versions.clone(),
            ),
            integrity_busy: Arc::new(tokio::sync::Semaphore::new(1)),
            metrics_auth: cfg.metrics_auth,
            limits: cfg.limits.clone(),
            body_budget: net::BodyBudget::new(cfg.limits.max_inflight_body_bytes),
            cors,
            grip,
        }));
        grip::start_tailer(&state);
        let resumed = jobs::resume_all(&state)
            .map_err(|e| ServerError::new(ServerErrorKind::Store, e.to_string()))?;
        if resumed > 0 {
            tracing::info!(resumed, "resumed running jobs");
        }
        let router = app(state.clone());
        let mut stop = shutdown_rx;
        let mut limits = cfg.limits.clone();
        if state.faults.has(faults::Fault::StalledReaderKept) {
            limits.write_stall_timeout = STALLED_READER_KEPT;
        }
        let conn_metrics = state.metrics.clone();
        let serve = tokio::spawn(async move {
            net::serve_http(listener, router, limits, conn_metrics, async move {
                let _ = stop.wait_for(|v| *v).await;
            })
            .await
        });
        let url = format!("http://{local}");
        tracing::info!(%url, "listening");
        Ok(RunningServer {
            url,
            token: cfg.token,
            data_dir,
            state,
            shutdown_grace: cfg.limits.shutdown_grace,
            shutdown_tx,
            serve,
        })
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The bearer token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The data folder.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// GRIP mode's publish counters (`None` unless in GRIP mode).
    pub fn grip_stats(&self) -> Option<Arc<grip::PublishStats>> {
        self.state.grip.as_ref().map(|g| g.stats().clone())
    }

    /// Why `/healthz` would say unhealthy now (the store's or the file writes' reason),
    /// or `None`: for tests that cannot open a connection (out of descriptors).
    pub fn health(&self) -> Option<String> {
        self.state.store.health().unhealthy()
    }

    /// Graceful stop, as on SIGTERM: job tasks stop (they resume on restart), every
    /// stream gets `connection_close {server_shutdown}`, in-flight requests finish, and
    /// the writer commits everything queued before it stops.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        self.state.jobs.abort_all();
        self.shutdown_tx.send_replace(true);
        let mut serve = self.serve;
        let wait = self.shutdown_grace + SHUTDOWN_SLACK;
        let served = match tokio::time::timeout(wait, &mut serve).await {
            Ok(joined) => joined,
            Err(_) => {
                tracing::warn!("streams did not end within the grace period; cutting them");
                serve.abort();
                serve.await
            }
        };
        self.state.store.close().await;
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ServerError::new(ServerErrorKind::Serve, e.to_string())),
            Err(e) if e.is_cancelled() => Ok(()),
            Err(e) => Err(ServerError::new(ServerErrorKind::Serve, e.to_string())),
        }
    }
}
