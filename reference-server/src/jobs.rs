//! Jobs: creation, the background task that emits a job's events, publishing, status,
//! receipts and artifacts.
//!
//! Each job has a `RwLock<bool>` "terminal" flag. A publish holds the read side until
//! its events are committed; the job task takes the write side before it starts its
//! terminal sequence. So once the terminal is under way every publish gets
//! `409 job_terminal`, and the receipt covers exactly the events before
//! `task_completed`, by construction.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::RwLock;
use tokio::task::AbortHandle;

use crate::AppState;
use crate::durable;
use crate::error::{ApiError, ErrorCode, parse_json};
use crate::faults::{Fault, REJECT_EVERY, UNWRITTEN_EVERY};
use crate::store::{ArtifactRow, JobState, NewEvent, WriteOp, now_ts};

/// Most steps a job may have.
pub const MAX_STEPS: u64 = 10_000;
/// Longest interval between steps.
pub const MAX_INTERVAL_MS: u64 = 3_600_000;
/// Largest artifact.
pub const MAX_ARTIFACT_BYTES: u64 = 256 * 1024 * 1024;
/// Largest requested progress payload, and largest published payload (compact JSON).
pub const MAX_PAYLOAD_BYTES: u64 = 65_536;
/// Most events in one publish.
pub const MAX_BATCH: usize = 1000;
/// Longest event type, in bytes.
pub const MAX_EVENT_TYPE: usize = 128;
/// The name of a job's artifact.
pub const ARTIFACT_NAME: &str = "output.bin";
/// Event types only the server emits.
pub const RESERVED_TYPES: [&str; 5] = [
    "job_started",
    "progress_update",
    "artifact_written",
    "task_completed",
    "task_failed",
];

/// A job's parameters, as stored in `jobs.spec`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobSpec {
    /// Progress steps.
    pub steps: u64,
    /// Milliseconds between steps.
    pub interval_ms: u64,
    /// The step replaced by `task_failed`.
    pub fail_at_step: Option<u64>,
    /// Size of the artifact to write, if any.
    pub artifact_bytes: Option<u64>,
    /// Approximate size of each progress payload.
    pub payload_bytes: u64,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct JobRequest {
    steps: Option<u64>,
    interval_ms: Option<u64>,
    fail_at_step: Option<u64>,
    artifact_bytes: Option<u64>,
    payload_bytes: Option<u64>,
}

impl JobRequest {
    fn into_spec(self) -> Result<JobSpec, ApiError> {
        let steps = self.steps.unwrap_or(3);
        let interval_ms = self.interval_ms.unwrap_or(100);
        let payload_bytes = self.payload_bytes.unwrap_or(0);
        let range = |name: &str, v: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(ApiError::invalid(format!("{name} must be in {lo}..={hi}")))
            }
        };
        range("steps", steps, 0, MAX_STEPS)?;
        range("interval_ms", interval_ms, 0, MAX_INTERVAL_MS)?;
        range("payload_bytes", payload_bytes, 0, MAX_PAYLOAD_BYTES)?;
        if let Some(k) = self.fail_at_step {
            range("fail_at_step", k, 1, steps)?;
        }
        if let Some(b) = self.artifact_bytes {
            range("artifact_bytes", b, 0, MAX_ARTIFACT_BYTES)?;
        }
        Ok(JobSpec {
            steps,
            interval_ms,
            fail_at_step: self.fail_at_step,
            artifact_bytes: self.artifact_bytes,
            payload_bytes,
        })
    }
}

/// One job's in-memory entry.
#[derive(Debug, Default)]
pub struct JobEntry {
    /// Set once the terminal sequence starts.
    terminal: RwLock<bool>,
}

/// Every job this server knows, and the tasks running them.
#[derive(Debug, Default)]
pub struct Jobs {
    map: Mutex<HashMap<String, Arc<JobEntry>>>,
    tasks: Mutex<Vec<AbortHandle>>,
    load: Arc<Mutex<JobLoad>>,
}

/// What the running jobs hold against the quotas.
#[derive(Debug, Default)]
struct JobLoad {
    running: usize,
    artifact_bytes: u64,
}

/// One running job's share of [`JobLoad`], given back when its task ends however it
/// ends (completed, failed, aborted by the shutdown).
#[derive(Debug)]
struct JobSlot {
    load: Arc<Mutex<JobLoad>>,
    artifact_bytes: u64,
}

impl Drop for JobSlot {
    fn drop(&mut self) {
        if let Ok(mut l) = self.load.lock() {
            l.running = l.running.saturating_sub(1);
            l.artifact_bytes = l.artifact_bytes.saturating_sub(self.artifact_bytes);
        }
    }
}

impl Jobs {
    /// Whether the job exists.
    pub fn exists(&self, job_id: &str) -> bool {
        self.get(job_id).is_some()
    }

    fn get(&self, job_id: &str) -> Option<Arc<JobEntry>> {
        self.map.lock().ok()?.get(job_id).cloned()
    }

    fn insert(&self, job_id: &str, terminal: bool) {
        if let Ok(mut m) = self.map.lock() {
            m.insert(
                job_id.to_owned(),
                Arc::new(JobEntry {
                    terminal: RwLock::new(terminal),
                }),
            );
        }
    }

    /// Takes a running job's share; `None` when the quotas would be exceeded (unless
    /// `force`, for jobs resumed at start-up).
    fn reserve(&self, spec: &JobSpec, limits: &crate::net::Limits, force: bool) -> Option<JobSlot> {
        let bytes = spec.artifact_bytes.unwrap_or(0);
        let mut l = self.load.lock().ok()?;
        let over = l.running >= limits.max_running_jobs
            || l.artifact_bytes.saturating_add(bytes) > limits.max_pending_artifact_bytes;
        if over && !force {
            return None;
        }
        l.running += 1;
        l.artifact_bytes = l.artifact_bytes.saturating_add(bytes);
        Some(JobSlot {
            load: self.load.clone(),
            artifact_bytes: bytes,
        })
    }

    fn remove(&self, job_id: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(job_id);
        }
    }

    fn track(&self, handle: AbortHandle) {
        if let Ok(mut t) = self.tasks.lock() {
            t.retain(|h| !h.is_finished());
            t.push(handle);
        }
    }

    /// Stops every job task; they carry on from their last persisted step on restart.
    pub fn abort_all(&self) {
        if let Ok(mut t) = self.tasks.lock() {
            for h in t.drain(..) {
                h.abort();
            }
        }
    }
}

fn progress_payload(step: u64, total: u64, payload_bytes: u64) -> String {
    let base = format!("{{\"step\":{step},\"total\":{total}}}");
    // `,"pad":""` adds 9 bytes around the padding.
    let want = payload_bytes as usize;
    if want > base.len() + 9 {
        let pad = "x".repeat(want - base.len() - 9);
        format!("{{\"step\":{step},\"total\":{total},\"pad\":\"{pad}\"}}")
    } else {
        base
    }
}

fn event(job_id: &str, event_type: &str, payload: String) -> NewEvent {
    NewEvent {
        job_id: job_id.to_owned(),
        event_type: event_type.to_owned(),
        payload,
    }
}

/// Loads every job at start-up and resumes the running ones.
pub fn resume_all(state: &AppState) -> Result<usize, crate::store::StoreError> {
    let rows = state.store.load_jobs_blocking()?;
    let mut resumed = 0;
    for row in rows {
        let running = row.state == JobState::Running;
        state.jobs.insert(&row.job_id, !running);
        if running {
            match serde_json::from_str::<JobSpec>(&row.spec) {
                Ok(spec) => {
                    spawn_job(state, row.job_id, spec, None);
                    resumed += 1;
                }
                Err(e) => tracing::error!(job_id = %row.job_id, error = %e, "bad stored spec"),
            }
        }
    }
    Ok(resumed)
}

/// Back-off between the attempts of a job's store or file write that failed; after
/// the last one the job ends with `task_failed`.
const RETRY_DELAYS: [Duration; 5] = [
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
    Duration::from_millis(800),
    Duration::from_millis(1600),
];

/// Runs `attempt` until it succeeds, the error is final (the server is stopping), or
/// [`RETRY_DELAYS`] are used up.
async fn retrying<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    let mut delays = RETRY_DELAYS.iter();
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if e.code == ErrorCode::Unavailable => return Err(e),
            Err(e) => match delays.next() {
                Some(d) => {
                    tracing::warn!(error = %e, retry_in = ?d, "{what} failed; retrying");
                    tokio::time::sleep(*d).await;
                }
                None => return Err(e),
            },
        }
    }
}

/// A store write of a job task, retried.
async fn write_retrying(state: &AppState, op: WriteOp) -> Result<Vec<u64>, ApiError> {
    retrying("store write", || {
        let op = op.clone();
        async move { state.store.write(op).await.map_err(ApiError::from) }
    })
    .await
}

/// A blocking file write of a job task, retried; each attempt's result is told to the
/// server's [`Health`](crate::store::Health), so `/healthz` says while they fail.
async fn file_retrying<T: Send + 'static>(
    state: &AppState,
    what: &str,
    work: impl Fn() -> std::io::Result<T> + Send + Sync + Clone + 'static,
) -> Result<T, ApiError> {
    let health = state.store.health().clone();
    retrying(what, || {
        let work = work.clone();
        let health = health.clone();
        async move {
            let r = tokio::task::spawn_blocking(work)
                .await
                .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
            health.file_write(what, r.as_ref().map(|_| ()).map_err(|e| e.kind()));
            r.map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
        }
    })
    .await
}

fn spawn_job(state: &AppState, job_id: String, spec: JobSpec, slot: Option<JobSlot>) {
    let resumed = slot.is_none();
    let slot = slot.or_else(|| state.jobs.reserve(&spec, &state.limits, true));
    let st = state.clone();
    let handle = tokio::spawn(async move {
        let _slot = slot;
        match run_job(&st, &job_id, &spec, resumed).await {
            Ok(()) => {}
            Err(e) if e.code == ErrorCode::Unavailable => {
                tracing::info!(job_id = %job_id, "job stopped by the shutdown");
            }
            Err(e) => give_up(&st, &job_id, &e).await,
        }
    });
    state.jobs.track(handle.abort_handle());
}

/// A job whose writes keep failing ends with `task_failed`, so its streams close;
/// if even that cannot be written it stays running and resumes after a restart.
async fn give_up(state: &AppState, job_id: &str, e: &ApiError) {
    tracing::error!(job_id, error = %e, "job failed: its writes kept failing");
    if let Err(e) = write_failed(state, job_id, "the server could not persist the job").await {
        tracing::error!(job_id, error = %e, "task_failed could not be written either");
    }
}

/// Where a resumed job carries on: the step after its last persisted one, and
/// whether its artifact is already written.
async fn resume_point(state: &AppState, job_id: &str) -> Result<(u64, bool), ApiError> {
    let (last, artifact_done) = state.store.job_progress(job_id).await?;
    let step = last
        .and_then(|p| serde_json::from_str::<Value>(&p).ok())
        .and_then(|v| v.get("step").and_then(Value::as_u64))
        .unwrap_or(0);
    Ok((step + 1, artifact_done))
}

async fn run_job(
    state: &AppState,
    job_id: &str,
    spec: &JobSpec,
    resumed: bool,
) -> Result<(), ApiError> {
    let (start, artifact_done) = if resumed {
        let point = resume_point(state, job_id).await?;
        tracing::info!(job_id, from_step = point.0, "resuming job");
        point
    } else {
        (1, false)
    };
    // Once the artifact is written the steps are all done.
    if !artifact_done {
        // Without an interval, steps are appended in batches (one commit each) rather
        // than one commit per step.
        let batch = if spec.interval_ms == 0 { 500 } else { 1 };
        let mut step = start;
        while step <= spec.steps {
            if spec.interval_ms > 0 {
                tokio::time::sleep(Duration::from_millis(spec.interval_ms)).await;
            }
            if spec.fail_at_step == Some(step) {
                return finish_failed(state, job_id, step).await;
            }
            let mut events = Vec::new();
            while step <= spec.steps && events.len() < batch && spec.fail_at_step != Some(step) {
                if step == 2 && spec.steps > 2 && state.faults.has(Fault::ProgressSkipsStep) {
                    step += 1;
                    continue;
                }
                events.push(event(
                    job_id,
                    "progress_update",
                    progress_payload(step, spec.steps, spec.payload_bytes),
                ));
                step += 1;
            }
            write_retrying(state, WriteOp::Append(events)).await?;
        }
    }
    finish_completed(state, job_id, spec, artifact_done).await
}

async fn enter_terminal(state: &AppState, job_id: &str) {
    if let Some(entry) = state.jobs.get(job_id) {
        *entry.terminal.write().await = true;
    }
}

async fn finish_failed(state: &AppState, job_id: &str, step: u64) -> Result<(), ApiError> {
    write_failed(state, job_id, &format!("failed at step {step}")).await
}

/// Ends the job as failed: its `task_failed` event with `error`, written with retries.
async fn write_failed(state: &AppState, job_id: &str, error: &str) -> Result<(), ApiError> {
    enter_terminal(state, job_id).await;
    let payload = json!({ "error": error }).to_string();
    let op = WriteOp::Finish {
        job_id: job_id.to_owned(),
        state: JobState::Failed,
        receipt_hash: None,
        completed_at: now_ts(),
        event: event(job_id, "task_failed", payload),
    };
    write_retrying(state, op).await?;
    Ok(())
}

/// Writes `bytes` deterministic pseudo-random bytes (seeded by the job id) to `path`
/// atomically, hashing them as they stream.
fn write_artifact(path: &FsPath, job_id: &str, bytes: u64) -> std::io::Result<ArtifactRow> {
    let seed: [u8; 32] = Sha256::digest(job_id.as_bytes()).into();
    let mut rng = ChaCha8Rng::from_seed(seed);
    let sha256 = durable::atomic_write(path, |file| {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut left = bytes;
        let mut out = std::io::BufWriter::with_capacity(256 * 1024, file);
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            rng.fill_bytes(&mut buf[..n]);
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
            left -= n as u64;
        }
        out.flush()?;
        Ok(hex::encode(hasher.finalize()))
    })?;
    Ok(ArtifactRow {
        name: ARTIFACT_NAME.to_owned(),
        sha256,
        bytes,
    })
}

/// The path of a job's receipt; `InvalidInput` for an id unsafe as a file name.
pub fn receipt_path(data_dir: &FsPath, job_id: &str) -> std::io::Result<PathBuf> {
    let id = durable::safe_id(job_id)?;
    Ok(data_dir.join("receipts").join(format!("{id}.json")))
}

/// The path of a job's artifact; `InvalidInput` for an id unsafe as a folder name.
pub fn artifact_path(data_dir: &FsPath, job_id: &str) -> std::io::Result<PathBuf> {
    let id = durable::safe_id(job_id)?;
    Ok(data_dir.join("artifacts").join(id).join(ARTIFACT_NAME))
}

/// A completed job's receipt (protocol §5).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Receipt {
    /// The job.
    pub job_id: String,
    /// Always `completed`.
    pub state: String,
    /// First covered seq.
    pub first_seq: Option<u64>,
    /// Last covered seq.
    pub last_seq: Option<u64>,
    /// Covered events.
    pub event_count: u64,
    /// SHA-256 over the canonical event lines.
    pub events_sha256: String,
    /// The job's artifacts.
    pub artifacts: Vec<ArtifactRow>,
    /// When the receipt was made.
    pub completed_at: String,
}

async fn finish_completed(
    state: &AppState,
    job_id: &str,
    spec: &JobSpec,
    artifact_done: bool,
) -> Result<(), ApiError> {
    enter_terminal(state, job_id).await;
    let data_dir = state.store.data_dir().to_path_buf();
    if let (Some(bytes), false) = (spec.artifact_bytes, artifact_done) {
        let (dir, id) = (data_dir.clone(), job_id.to_owned());
        let row = file_retrying(state, "artifact write", move || {
            write_artifact(&artifact_path(&dir, &id)?, &id, bytes)
        })
        .await?;
        let payload = json!({ "name": row.name, "sha256": row.sha256, "bytes": row.bytes });
        let op = WriteOp::AddArtifact {
            job_id: job_id.to_owned(),
            row,
            event: event(job_id, "artifact_written", payload.to_string()),
        };
        write_retrying(state, op).await?;
    }
    let digest = retrying("receipt digest", || async {
        state.store.job_digest(job_id).await.map_err(ApiError::from)
    })
    .await?;
    let completed_at = now_ts();
    let receipt = Receipt {
        job_id: job_id.to_owned(),
        state: JobState::Completed.as_str().to_owned(),
        first_seq: digest.first_seq,
        last_seq: digest.last_seq,
        event_count: digest.event_count,
        events_sha256: if state.faults.has(Fault::EventsHashWrong) {
            hex::encode(Sha256::digest(digest.events_sha256.as_bytes()))
        } else {
            digest.events_sha256
        },
        artifacts: state.store.artifacts(job_id).await?,
        completed_at: completed_at.clone(),
    };
    let bytes = serde_json::to_vec(&receipt)
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let hash = if state.faults.has(Fault::ReceiptHashWrong) {
        hex::encode(Sha256::digest([&bytes[..], b"\n"].concat()))
    } else {
        hex::encode(Sha256::digest(&bytes))
    };
    let (dir, id) = (data_dir.clone(), job_id.to_owned());
    let bytes = Arc::new(bytes);
    file_retrying(state, "receipt write", move || {
        durable::atomic_write_bytes(&receipt_path(&dir, &id)?, &bytes)
    })
    .await?;
    let op = WriteOp::Finish {
        job_id: job_id.to_owned(),
        state: JobState::Completed,
        receipt_hash: Some(hash.clone()),
        completed_at,
        event: event(
            job_id,
            "task_completed",
            json!({ "receipt_hash": hash }).to_string(),
        ),
    };
    write_retrying(state, op).await?;
    Ok(())
}

/// `POST /v1/jobs`.
pub async fn create_job(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body?;
    let req: JobRequest = if body.iter().all(u8::is_ascii_whitespace) {
        JobRequest::default()
    } else {
        parse_json(&body)?
    };
    let spec = req.into_spec()?;
    let slot = state
        .jobs
        .reserve(&spec, &state.limits, false)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::TooManyJobs,
                "too many jobs running, or too many artifact bytes pending",
            )
        })?;
    let job_id = uuid::Uuid::new_v4().simple().to_string();
    let spec_json = serde_json::to_string(&spec)
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    // The creation runs as its own task: a client that disconnects mid-request drops
    // this handler, never a job half made (its row written, its task not started).
    let id = job_id.clone();
    tokio::spawn(async move {
        state.jobs.insert(&id, false);
        let op = WriteOp::CreateJob {
            job_id: id.clone(),
            spec: spec_json.clone(),
            first: event(&id, "job_started", spec_json),
        };
        match state.store.write(op).await {
            Ok(_) => {
                spawn_job(&state, id, spec, Some(slot));
                Ok(())
            }
            Err(e) => {
                state.jobs.remove(&id);
                Err(ApiError::from(e))
            }
        }
    })
    .await
    .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))??;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "job_id": job_id, "events_url": format!("/v1/jobs/{job_id}/events") })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishOne {
    event_type: String,
    #[serde(default)]
    payload: Option<Map<String, Value>>,
}

/// A publish body, one event or a batch, read straight into its fields (no
/// `serde_json::Value` of the whole body is built).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    #[serde(default)]
    events: Option<Vec<PublishOne>>,
    #[serde(default)]
    event_type: Option<String>,
    #[serde(default)]
    payload: Option<Map<String, Value>>,
}

/// Parses and validates a publish body (`{"event_type","payload"}` or
/// `{"events":[…]}`) into the events to append for `job_id`.
pub fn parse_publish_body(body: &[u8], job_id: &str) -> Result<Vec<NewEvent>, ApiError> {
    parse_publish_body_with(body, job_id, false)
}

/// [`parse_publish_body`], accepting control characters in `event_type` when
/// `control_chars` ([`Fault::UnescapedEventType`]).
fn parse_publish_body_with(
    body: &[u8],
    job_id: &str,
    control_chars: bool,
) -> Result<Vec<NewEvent>, ApiError> {
    let body: PublishBody = parse_json(body)?;
    let ones = match body {
        PublishBody {
            events: Some(events),
            event_type: None,
            payload: None,
        } => {
            if events.is_empty() {
                return Err(ApiError::invalid("events is empty"));
            }
            if events.len() > MAX_BATCH {
                return Err(ApiError::invalid(format!(
                    "at most {MAX_BATCH} events per publish"
                )));
            }
            events
        }
        PublishBody {
            events: None,
            event_type: Some(event_type),
            payload,
        } => vec![PublishOne {
            event_type,
            payload,
        }],
        PublishBody {
            events: Some(_), ..
        } => {
            return Err(ApiError::invalid(
                "body: a batch has only the field `events`",
            ));
        }
        PublishBody { .. } => return Err(ApiError::invalid("body: missing field `event_type`")),
    };
    ones.into_iter()
        .map(|o| validate(o, job_id, control_chars))
        .collect()
}

fn validate(one: PublishOne, job_id: &str, control_chars: bool) -> Result<NewEvent, ApiError> {
    if one.event_type.is_empty() || one.event_type.len() > MAX_EVENT_TYPE {
        return Err(ApiError::invalid(format!(
            "event_type must be 1..={MAX_EVENT_TYPE} bytes"
        )));
    }
    if !control_chars && one.event_type.chars().any(char::is_control) {
        return Err(ApiError::invalid("event_type has control characters"));
    }
    if RESERVED_TYPES.contains(&one.event_type.as_str()) {
        return Err(ApiError::invalid(format!(
            "event_type {} is reserved for the server",
            one.event_type
        )));
    }
    let payload = Value::Object(one.payload.unwrap_or_default()).to_string();
    if payload.len() as u64 > MAX_PAYLOAD_BYTES {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("payload is above {MAX_PAYLOAD_BYTES} bytes"),
        ));
    }
    Ok(event(job_id, &one.event_type, payload))
}

/// `POST /v1/jobs/<id>/events`: one event or a batch; answers once committed.
pub async fn publish(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let entry = state
        .jobs
        .get(&job_id)
        .ok_or_else(|| ApiError::new(ErrorCode::JobNotFound, "no job with that id"))?;
    let body = body?;
    let unescaped = state.faults.has(Fault::UnescapedEventType);
    let events = parse_publish_body_with(&body, &job_id, unescaped)?;
    // Idempotency-Key (v1.1): a key already committed answers before anything else.
    let keyed = crate::idempotency::Keyed::from_request(&state, &headers, &body)?;
    if let Some(k) = &keyed
        && let Some(seqs) = k.committed(&state, &job_id).await?
    {
        return Ok((StatusCode::OK, Json(json!({ "seqs": seqs }))));
    }
    let terminal = entry.terminal.read().await;
    if *terminal {
        return Err(ApiError::new(
            ErrorCode::JobTerminal,
            "the job's terminal event is written or under way",
        ));
    }
    let counted =
        state.faults.has(Fault::PublishRejectsSome) || state.faults.has(Fault::AckWithoutWrite);
    let nth = if counted {
        state.fault_counters.next_publish()
    } else {
        0
    };
    if state.faults.has(Fault::PublishRejectsSome) && nth.is_multiple_of(REJECT_EVERY) {
        return Err(ApiError::new(ErrorCode::Unavailable, "try again later"));
    }
    let op = if state.faults.has(Fault::AckWithoutWrite) && nth.is_multiple_of(UNWRITTEN_EVERY) {
        WriteOp::AppendUnwritten(events)
    } else if let Some(k) = keyed {
        k.op(&job_id, events)
    } else {
        WriteOp::Append(events)
    };
    let (status, mut seqs) = crate::idempotency::answer(state.store.write_applied(op).await?)?;
    drop(terminal);
    if state.faults.has(Fault::AckSeqOffByOne) {
        for s in &mut seqs {
            *s += 1;
        }
    }
    Ok((status, Json(json!({ "seqs": seqs }))))
}

/// `GET /v1/jobs/<id>`.
pub async fn job_status(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let not_found = || ApiError::new(ErrorCode::JobNotFound, "no job with that id");
    if !state.jobs.exists(&job_id) {
        return Err(not_found());
    }
    let row = state.store.job(&job_id).await?.ok_or_else(not_found)?;
    let (first, last, count) = state.store.job_stats(&job_id, state.store.head()).await?;
    Ok(Json(json!({
        "job_id": row.job_id,
        "state": row.state.as_str(),
        "first_seq": first,
        "last_seq": last,
        "event_count": count,
        "receipt_hash": row.receipt_hash,
    })))
}

/// `GET /v1/jobs/<id>/receipt`: the file's exact bytes and the store's hash.
pub async fn receipt(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
) -> Result<Response, ApiError> {
    let none = || ApiError::new(ErrorCode::ReceiptNotFound, "this job has no receipt");
    if !state.jobs.exists(&job_id) {
        return Err(none());
    }
    let row = state.store.job(&job_id).await?.ok_or_else(none)?;
    let hash = match (row.state, row.receipt_hash) {
        (JobState::Completed, Some(h)) => h,
        _ => return Err(none()),
    };
    let path = receipt_path(state.store.data_dir(), &job_id).map_err(|_| none())?;
    let bytes = tokio::fs::read(path).await.map_err(|_| none())?;
    let hash = if state.faults.has(Fault::ReceiptHeaderWrong) {
        hex::encode(Sha256::digest(&bytes[..bytes.len().min(1)]))
    } else {
        hash
    };
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&hash) {
        h.insert("x-receipt-sha256", v);
    }
    Ok(resp)
}
