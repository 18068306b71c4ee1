//! What the measurements share: which server is measured and how to subscribe and
//! publish to it, the clock the latencies are taken on, and the bench payload.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use serde_json::Value;
use sse_wire::{ConnectOptions, RequestSpec, Response};

use super::procs::TOKEN;

/// The `X-Correlation-ID` the bench sends, so that repeated streams are byte-identical.
pub const CORRELATION: &str = "sse-bench";

/// The server a measurement talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// The spine reference server (durable log, batch publish).
    Spine,
    /// nginx + nchan (in-memory channel buffer, one message per POST).
    Nchan,
}

impl Flavor {
    /// The name used in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Spine => "reference",
            Flavor::Nchan => "nchan",
        }
    }

    /// The SSE event type of a published message on this server.
    pub fn data_event(self) -> &'static str {
        match self {
            Flavor::Spine => "task_event",
            Flavor::Nchan => "message",
        }
    }
}

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Nanoseconds since the bench's shared epoch (publisher and subscribers are in
/// this one process, so one monotonic clock serves both ends).
pub fn now_ns() -> u64 {
    EPOCH.elapsed().as_nanos() as u64
}

/// The bench payload object: `{"t":<ns>,"pad":"xx…"}`, about `size` bytes compact.
pub fn payload(t: u64, size: usize) -> String {
    let digits = t.checked_ilog10().unwrap_or(0) as usize + 1;
    let pad = size.saturating_sub(digits + r#"{"t":,"pad":""}"#.len());
    format!(r#"{{"t":{t},"pad":"{}"}}"#, "x".repeat(pad))
}

/// The send time embedded in `data` by [`payload`] (the first `"t":` number).
pub fn extract_t(data: &str) -> Option<u64> {
    let at = memchr::memmem::find(data.as_bytes(), br#""t":"#)? + 4;
    let digits = data[at..].bytes().take_while(u8::is_ascii_digit).count();
    data[at..at + digits].parse().ok()
}

/// Opens an SSE stream at `base` + `path` (with the bench's auth for the spine),
/// requiring a 200.
pub async fn open_stream(
    flavor: Flavor,
    base: &str,
    path: &str,
    cursor: Option<&str>,
) -> anyhow::Result<Response> {
    let (target, _) = sse_wire::parse_url(base)?;
    let mut headers = vec![
        ("Accept".to_owned(), "text/event-stream".to_owned()),
        ("X-Correlation-ID".to_owned(), CORRELATION.to_owned()),
    ];
    if flavor == Flavor::Spine {
        headers.push(("Authorization".to_owned(), format!("Bearer {TOKEN}")));
    }
    if let Some(c) = cursor {
        headers.push(("Last-Event-ID".to_owned(), c.to_owned()));
    }
    let req = RequestSpec {
        method: "GET".to_owned(),
        path_and_query: path.to_owned(),
        headers,
        body: None,
    };
    let resp = sse_wire::open(&target, &req, &ConnectOptions::default())
        .await
        .with_context(|| format!("opening {base}{path}"))?;
    if resp.status != 200 {
        bail!("{base}{path}: HTTP {}", resp.status);
    }
    Ok(resp)
}

/// The harness's view of the reference server at `base`: the spine profile and the
/// bench's token, for running the harness's own client (`sse_harness::client::run`).
pub fn harness_target(base: &str) -> anyhow::Result<sse_harness::target::Target> {
    let profile = sse_harness::profile::Profile::load("spine")?;
    Ok(sse_harness::target::Target::new(
        base,
        profile,
        Some(TOKEN.to_owned()),
    )?)
}

/// A harness client plan that reads `path` once, from `cursor`, until `until` (or
/// `deadline`), sending the bench's correlation id: no cuts, no pacing, no reconnect.
pub fn harness_plan(
    id: &str,
    path: String,
    cursor: Option<&str>,
    until: sse_harness::client::Until,
    deadline: tokio::time::Instant,
) -> sse_harness::client::ClientPlan {
    sse_harness::client::ClientPlan {
        id: harness_model::ClientId(id.to_owned()),
        stream: harness_model::StreamKind::Events,
        path,
        channels: Vec::new(),
        initial_cursor: cursor.map(str::to_owned),
        from_start: true,
        cursor_query: None,
        correlation: Some(CORRELATION.to_owned()),
        bytes_per_sec: 0,
        slow_for: Duration::ZERO,
        rcvbuf: None,
        pause_after_events: 0,
        pause: Duration::ZERO,
        cuts: std::collections::VecDeque::new(),
        cut_gap: Duration::ZERO,
        reset: false,
        h2_cut: sse_wire::H2Cut::default(),
        h2_shared: None,
        until,
        reconnect: false,
        through_restarts: false,
        deadline,
        strict: false,
        reconnect_on_silence: false,
    }
}

/// A small HTTP client for the spine's publish and job endpoints.
#[derive(Clone)]
pub struct Spine {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Spine {
    /// A client of the reference server at `base`.
    pub fn new(base: &str) -> anyhow::Result<Spine> {
        sse_wire::install_default_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Spine {
            http,
            base: base.to_owned(),
        })
    }

    /// Creates a job that stays running (one step an hour away), for publishing into.
    pub async fn create_job(&self) -> anyhow::Result<String> {
        let r = self
            .http
            .post(format!("{}/v1/jobs", self.base))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"steps": 1, "interval_ms": 3_600_000}))
            .send()
            .await?;
        if r.status() != 201 {
            bail!("POST /v1/jobs: HTTP {}", r.status());
        }
        let v: Value = r.json().await?;
        v["job_id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("POST /v1/jobs: no job_id in {v}"))
    }

    /// Posts `payloads` as one batch of `bench` events (a single event without the
    /// `events` wrapper when there is one); returns how many were acknowledged.
    pub async fn publish(&self, job: &str, payloads: &[String]) -> anyhow::Result<u64> {
        let body = if let [one] = payloads {
            format!(r#"{{"event_type":"bench","payload":{one}}}"#)
        } else {
            let mut b = String::with_capacity(payloads.iter().map(|p| p.len() + 40).sum());
            b.push_str(r#"{"events":["#);
            for (i, p) in payloads.iter().enumerate() {
                if i > 0 {
                    b.push(',');
                }
                b.push_str(r#"{"event_type":"bench","payload":"#);
                b.push_str(p);
                b.push('}');
            }
            b.push_str("]}");
            b
        };
        let r = self
            .http
            .post(format!("{}/v1/jobs/{job}/events", self.base))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        if r.status() != 201 {
            bail!(
                "POST /v1/jobs/{job}/events: HTTP {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        Ok(payloads.len() as u64)
    }

    /// `GET /v1/jobs/<id>`: (event_count, last_seq).
    pub async fn job_counts(&self, job: &str) -> anyhow::Result<(u64, u64)> {
        let v: Value = self
            .http
            .get(format!("{}/v1/jobs/{job}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await?
            .json()
            .await?;
        let count = v["event_count"].as_u64();
        let last = v["last_seq"].as_u64();
        count
            .zip(last)
            .ok_or_else(|| anyhow!("GET /v1/jobs/{job}: no event_count/last_seq in {v}"))
    }

    /// The value of a gauge or counter in `/metrics`.
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .text()
            .await?;
        text.lines()
            .find_map(|l| {
                let (n, v) = l.split_once(' ')?;
                (n == name).then(|| v.trim().parse::<f64>().ok()).flatten()
            })
            .ok_or_else(|| anyhow!("/metrics has no {name}"))
    }
}

/// A client of nchan's publisher and status endpoints.
#[derive(Clone)]
pub struct NchanHttp {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl NchanHttp {
    /// A client of the nchan instance at `base`.
    pub fn new(base: &str) -> anyhow::Result<NchanHttp> {
        sse_wire::install_default_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(NchanHttp {
            http,
            base: base.to_owned(),
        })
    }

    /// The `subscribers:` count of `/nchan_status`.
    pub async fn subscribers(&self) -> anyhow::Result<u64> {
        let text = self
            .http
            .get(format!("{}/nchan_status", self.base))
            .send()
            .await?
            .text()
            .await?;
        text.lines()
            .find_map(|l| l.strip_prefix("subscribers:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| anyhow!("/nchan_status has no subscribers line: {text}"))
    }
}

/// Polls `probe` until it returns true, every 20 ms, for at most `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut probe: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if probe().await? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{what}: not reached within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
