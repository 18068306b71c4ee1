//! Version streams: per request id, a queue of notifications waiting for a stream, and
//! at most one open stream (a new one replaces the old). A queue never grows past
//! [`MAX_PENDING`]: a notification beyond it is refused with `429 queue_full`. Across
//! request ids the queues are capped too ([`VersionCaps`]): so many ids with queued
//! notifications, so many queued in all, each queue dropped once its request id has
//! had no stream and no new notification for the TTL.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::AppState;
use crate::error::{ApiError, ErrorCode, parse_json};
use crate::faults::{Fault, FaultSet};

/// Most notifications pending for one request id (queued or in an open stream's buffer).
pub const MAX_PENDING: usize = 1000;
/// Longest request id, in bytes.
pub const MAX_REQUEST_ID: usize = 256;
/// Longest `version`, `environment` or `git_commit`, in bytes.
const MAX_FIELD: usize = 1024;

/// One version notification.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VersionMsg {
    /// Whose.
    pub request_id: String,
    /// The version.
    pub version: String,
    /// The environment, if given.
    #[serde(default)]
    pub environment: Option<String>,
    /// The commit, if given.
    #[serde(default)]
    pub git_commit: Option<String>,
}

struct Active {
    id: u64,
    tx: mpsc::Sender<VersionMsg>,
    replaced: Option<oneshot::Sender<()>>,
}

/// The global caps on queued notifications.
#[derive(Debug, Clone)]
pub struct VersionCaps {
    /// Most request ids with queued notifications or a stream (default 10,000).
    pub max_ids: usize,
    /// Most notifications queued across all request ids (default 100,000).
    pub max_queued: usize,
    /// How long a queue with no stream is kept after its last notification
    /// (default 10 minutes).
    pub ttl: Duration,
}

impl Default for VersionCaps {
    fn default() -> VersionCaps {
        VersionCaps {
            max_ids: 10_000,
            max_queued: 100_000,
            ttl: Duration::from_secs(600),
        }
    }
}

struct Slot {
    queue: VecDeque<VersionMsg>,
    /// When a notification was last queued or a stream last left.
    touched: Instant,
    active: Option<Active>,
    /// Fault [`Fault::VersionNoReplace`]: streams that should have been replaced, kept
    /// open (never signalled, never fed).
    unreplaced: Vec<Active>,
}

impl Default for Slot {
    fn default() -> Slot {
        Slot {
            queue: VecDeque::new(),
            touched: Instant::now(),
            active: None,
            unreplaced: Vec::new(),
        }
    }
}

impl Slot {
    fn idle(&self) -> bool {
        self.active.is_none() && self.unreplaced.is_empty()
    }
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    slots: HashMap<String, Slot>,
    /// Notifications queued in all slots.
    queued: usize,
}

impl Inner {
    /// Drops the queues of idle request ids untouched for `ttl`, and recounts.
    fn expire(&mut self, ttl: Duration) {
        let now = Instant::now();
        self.slots
            .retain(|_, s| !(s.idle() && now.duration_since(s.touched) >= ttl));
        self.queued = self.slots.values().map(|s| s.queue.len()).sum();
    }
}

/// All request ids' queues and open streams.
#[derive(Clone, Default)]
pub struct VersionHub {
    inner: Arc<Mutex<Inner>>,
    /// The running server's version, sent when nothing was queued.
    pub server_version: String,
    faults: FaultSet,
    caps: VersionCaps,
}

impl std::fmt::Debug for VersionHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionHub").finish_non_exhaustive()
    }
}

/// An open version stream's registration and message channel; unregisters when
/// dropped, putting notifications it had not yet written back in the queue when no
/// other stream took its place.
pub struct VersionSubscription {
    hub: VersionHub,
    request_id: String,
    id: u64,
    rx: mpsc::Receiver<VersionMsg>,
}

impl VersionSubscription {
    /// The next notification for this stream.
    pub async fn recv(&mut self) -> Option<VersionMsg> {
        self.rx.recv().await
    }
}

impl Drop for VersionSubscription {
    fn drop(&mut self) {
        let Ok(mut inner) = self.hub.inner.lock() else {
            return;
        };
        if let Some(slot) = inner.slots.get_mut(&self.request_id) {
            slot.unreplaced.retain(|a| a.id != self.id);
            if slot.active.as_ref().is_some_and(|a| a.id == self.id) {
                slot.active = None;
                self.rx.close();
                let mut unsent = Vec::new();
                while let Ok(m) = self.rx.try_recv() {
                    unsent.push(m);
                }
                let before = slot.queue.len();
                for m in unsent.into_iter().rev() {
                    slot.queue.push_front(m);
                }
                slot.queue.truncate(MAX_PENDING);
                slot.touched = Instant::now();
                let added = slot.queue.len() - before;
                let empty = slot.idle() && slot.queue.is_empty();
                inner.queued += added;
                if empty {
                    inner.slots.remove(&self.request_id);
                }
                return;
            }
            if slot.idle() && slot.queue.is_empty() {
                inner.slots.remove(&self.request_id);
            }
        }
    }
}

/// What a new stream receives: its replacement signal and its registration.
pub struct NewSubscription {
    replaced: oneshot::Receiver<()>,
    sub: VersionSubscription,
}

impl NewSubscription {
    /// Splits into the parts a stream holds.
    pub fn into_parts(self) -> (oneshot::Receiver<()>, VersionSubscription) {
        (self.replaced, self.sub)
    }
}

impl VersionHub {
    /// A hub announcing `server_version` for the running server, with the version
    /// streams' deliberate deviations among `faults` (none in a correct server).
    pub fn new(
        server_version: impl Into<String>,
        faults: &FaultSet,
        caps: VersionCaps,
    ) -> VersionHub {
        VersionHub {
            inner: Arc::default(),
            server_version: server_version.into(),
            faults: faults.clone(),
            caps,
        }
    }

    /// The running server's version, addressed to `request_id`.
    pub fn own_version(&self, request_id: &str) -> VersionMsg {
        VersionMsg {
            request_id: request_id.to_owned(),
            version: self.server_version.clone(),
            environment: Some("reference".to_owned()),
            git_commit: option_env!("SPINE_GIT_COMMIT").map(str::to_owned),
        }
    }

    /// Opens the stream of `request_id`, replacing any open one; returns the
    /// notifications queued while none was open.
    pub fn subscribe(&self, request_id: &str) -> (NewSubscription, Vec<VersionMsg>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.next_id += 1;
        let id = inner.next_id;
        let inner = &mut *inner;
        let slot = inner.slots.entry(request_id.to_owned()).or_default();
        if let Some(mut old) = slot.active.take() {
            if self.faults.has(Fault::VersionNoReplace) {
                slot.unreplaced.push(old);
            } else if let Some(r) = old.replaced.take() {
                let _ = r.send(());
            }
        }
        let (tx, rx) = mpsc::channel(MAX_PENDING);
        let (rtx, rrx) = oneshot::channel();
        slot.active = Some(Active {
            id,
            tx,
            replaced: Some(rtx),
        });
        let mut pending: Vec<VersionMsg> = slot.queue.drain(..).collect();
        inner.queued = inner.queued.saturating_sub(pending.len());
        if self.faults.has(Fault::VersionPendingReversed) {
            pending.reverse();
        }
        (
            NewSubscription {
                replaced: rrx,
                sub: VersionSubscription {
                    hub: self.clone(),
                    request_id: request_id.to_owned(),
                    id,
                    rx,
                },
            },
            pending,
        )
    }

    /// Delivers to the open stream or queues; `Ok(true)` when delivered.
    pub fn notify(&self, msg: VersionMsg) -> Result<bool, ApiError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let inner = &mut *inner;
        let msg = match inner
            .slots
            .get(&msg.request_id)
            .and_then(|s| s.active.as_ref())
        {
            Some(a) => match a.tx.try_send(msg) {
                Ok(()) => return Ok(true),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    return Err(queue_full());
                }
                Err(mpsc::error::TrySendError::Closed(m)) => m,
            },
            None => msg,
        };
        let new_id = !inner.slots.contains_key(&msg.request_id);
        if (new_id && inner.slots.len() >= self.caps.max_ids)
            || inner.queued >= self.caps.max_queued
        {
            inner.expire(self.caps.ttl);
            let new_id = !inner.slots.contains_key(&msg.request_id);
            if (new_id && inner.slots.len() >= self.caps.max_ids)
                || inner.queued >= self.caps.max_queued
            {
                return Err(ApiError::new(
                    ErrorCode::QueueFull,
                    "too many version notifications pending on this server",
                ));
            }
        }
        let slot = inner.slots.entry(msg.request_id.clone()).or_default();
        if slot.queue.len() >= MAX_PENDING {
            return Err(queue_full());
        }
        slot.queue.push_back(msg);
        slot.touched = Instant::now();
        inner.queued += 1;
        Ok(false)
    }
}

fn queue_full() -> ApiError {
    ApiError::new(
        ErrorCode::QueueFull,
        format!("{MAX_PENDING} notifications already pending for this request id"),
    )
}

/// `POST /v1/version/notify`.
pub async fn notify(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let body = body?;
    let msg: VersionMsg = parse_json(&body)?;
    if msg.request_id.is_empty() || msg.request_id.len() > MAX_REQUEST_ID {
        return Err(ApiError::invalid(format!(
            "request_id must be 1..={MAX_REQUEST_ID} bytes"
        )));
    }
    let too_long = [
        Some(&msg.version),
        msg.environment.as_ref(),
        msg.git_commit.as_ref(),
    ]
    .into_iter()
    .flatten()
    .any(|s| s.len() > MAX_FIELD);
    if too_long {
        return Err(ApiError::invalid(format!(
            "version fields are at most {MAX_FIELD} bytes"
        )));
    }
    let delivered = state.versions.notify(msg)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "delivered": delivered })),
    ))
}
