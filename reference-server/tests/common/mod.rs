//! Shared test support: a real server on 127.0.0.1:0 over a temp data folder, an HTTP
//! client, and a raw SSE reader with deadlines.
#![allow(dead_code)]

use std::time::Duration;

use futures_util::StreamExt;
use reference_server::{Config, RunningServer};
use serde_json::Value;
use tokio::time::Instant;

/// The token every test server uses.
pub const TOKEN: &str = "test-token-123";
/// The longest any single wait in a test may take.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A running server with its data folder.
pub struct TestServer {
    pub server: RunningServer,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    pub url: String,
}

impl TestServer {
    /// Starts a server with a 300 ms heartbeat.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server, letting the test adjust the config.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, adjust).await
    }

    /// Starts a server on an existing data folder.
    pub async fn start_in(dir: tempfile::TempDir, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let mut cfg = Config::new(dir.path(), TOKEN);
        cfg.heartbeat_ms = 300;
        adjust(&mut cfg);
        let server = RunningServer::start(cfg).await.expect("server starts");
        let url = server.url();
        let http = http_client();
        let ts = TestServer {
            server,
            dir,
            http,
            url,
        };
        ts.wait_healthy().await;
        ts
    }

    async fn wait_healthy(&self) {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Ok(r) = self.http.get(format!("{}/healthz", self.url)).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(Instant::now() < end, "server never became healthy");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the server and hands back its data folder.
    pub async fn stop(self) -> tempfile::TempDir {
        self.server.shutdown().await.expect("clean shutdown");
        self.dir
    }

    pub fn u(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.u(path)).bearer_auth(TOKEN)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.u(path)).bearer_auth(TOKEN)
    }

    /// Creates a job, returns its id.
    pub async fn create_job(&self, body: Value) -> String {
        let r = self
            .post("/v1/jobs")
            .json(&body)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 201, "create job");
        let v: Value = r.json().await.expect("json");
        v["job_id"].as_str().expect("job_id").to_owned()
    }

    /// A job that stays running (one step an hour away) so that it accepts publishes.
    pub async fn open_job(&self) -> String {
        self.create_job(serde_json::json!({"steps": 1, "interval_ms": 3_600_000}))
            .await
    }

    /// Publishes events of type `kind`, returns their seqs.
    pub async fn publish(&self, job_id: &str, n: usize, kind: &str) -> Vec<u64> {
        let events: Vec<Value> = (0..n)
            .map(|i| serde_json::json!({"event_type": kind, "payload": {"i": i}}))
            .collect();
        let r = self
            .post(&format!("/v1/jobs/{job_id}/events"))
            .json(&serde_json::json!({ "events": events }))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 201, "publish");
        let v: Value = r.json().await.expect("json");
        v["seqs"]
            .as_array()
            .expect("seqs")
            .iter()
            .map(|s| s.as_u64().expect("u64"))
            .collect()
    }

    /// Waits until the job's state is not `running`.
    pub async fn wait_job_done(&self, job_id: &str) -> Value {
        let end = Instant::now() + DEADLINE;
        loop {
            let v: Value = self
                .get(&format!("/v1/jobs/{job_id}"))
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("json");
            if v["state"] != "running" {
                return v;
            }
            assert!(Instant::now() < end, "job {job_id} never ended");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Reads a metric's value.
    pub async fn metric(&self, name: &str) -> i64 {
        let text = self
            .http
            .get(self.u("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("metric {name} missing in {text}"))
    }

    /// Opens a stream (`path` with query) with optional extra headers.
    pub async fn open(&self, path: &str, headers: &[(&str, &str)]) -> SseReader {
        let mut req = self.get(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("stream request");
        SseReader::new(resp)
    }
}

/// One parsed SSE block.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub retry: Option<String>,
}

impl Frame {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("bad data {:?}: {e}", self.data))
    }
    pub fn is(&self, event: &str) -> bool {
        self.event.as_deref() == Some(event)
    }
}

/// Reads raw bytes off a response and splits them into frames.
pub struct SseReader {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: Vec<u8>,
    pub raw: Vec<u8>,
    pub ended: bool,
}

impl SseReader {
    pub fn new(resp: reqwest::Response) -> SseReader {
        SseReader {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: Box::pin(resp.bytes_stream()),
            buf: Vec::new(),
            raw: Vec::new(),
            ended: false,
        }
    }

    /// The next frame, or `None` at the end of the body. Panics after the deadline.
    pub async fn next(&mut self) -> Option<Frame> {
        self.next_within(DEADLINE).await
    }

    pub async fn next_within(&mut self, limit: Duration) -> Option<Frame> {
        let end = Instant::now() + limit;
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..pos + 2).collect();
                return Some(parse_block(&block));
            }
            if self.ended {
                assert!(
                    self.buf.is_empty(),
                    "trailing bytes {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
                return None;
            }
            match tokio::time::timeout_at(end, self.body.next()).await {
                Err(_) => panic!(
                    "no frame within {limit:?}; have {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
                Ok(None) => self.ended = true,
                Ok(Some(Err(_))) => self.ended = true,
                Ok(Some(Ok(chunk))) => {
                    self.raw.extend_from_slice(&chunk);
                    self.buf.extend_from_slice(&chunk);
                }
            }
        }
    }

    /// Reads frames until one satisfies `pred`, returning all read.
    pub async fn until(&mut self, pred: impl Fn(&Frame) -> bool) -> Vec<Frame> {
        let mut out = Vec::new();
        loop {
            let f = self.next().await.expect("stream ended early");
            let stop = pred(&f);
            out.push(f);
            if stop {
                return out;
            }
        }
    }

    /// Reads every frame until the body ends.
    pub async fn read_to_end(&mut self) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(f) = self.next().await {
            out.push(f);
        }
        out
    }
}

fn parse_block(block: &[u8]) -> Frame {
    let text = std::str::from_utf8(block).expect("utf-8 frame");
    let mut f = Frame {
        id: None,
        event: None,
        data: String::new(),
        retry: None,
    };
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("id: ") {
            f.id = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("event: ") {
            f.event = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("data: ") {
            f.data.push_str(v);
        } else if let Some(v) = line.strip_prefix("retry: ") {
            f.retry = Some(v.to_owned());
        } else if !line.is_empty() {
            panic!("unexpected line {line:?}");
        }
    }
    f
}

/// The seqs of the data frames among `frames`.
pub fn seqs(frames: &[Frame]) -> Vec<u64> {
    frames
        .iter()
        .filter(|f| f.is("task_event"))
        .map(|f| f.json()["seq"].as_u64().expect("seq"))
        .collect()
}

/// A file or folder made unwritable for as long as the guard lives. Root ignores
/// permission bits, so as root the immutable attribute (`chattr +i`) is used; for
/// other users the write bits are removed. Either way the guard checks that a write
/// really fails before handing the path over, and undoes it on drop (also on panic,
/// so the temp folder can be removed).
pub struct ReadOnly {
    path: std::path::PathBuf,
    mode: u32,
    as_root: bool,
}

impl ReadOnly {
    pub fn new(path: &std::path::Path) -> ReadOnly {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path).expect("stat").permissions().mode();
        // `/proc/self` belongs to the process's effective user.
        let as_root =
            std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").expect("/proc"))
                == 0;
        if as_root {
            chattr(path, "+i");
        } else {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !0o222))
                .expect("chmod");
        }
        let guard = ReadOnly {
            path: path.to_owned(),
            mode,
            as_root,
        };
        let probe = if path.is_dir() {
            std::fs::File::create(path.join(".probe")).map(|_| ())
        } else {
            std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .map(|_| ())
        };
        assert!(probe.is_err(), "{} is still writable", path.display());
        guard
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt as _;
        if self.as_root {
            chattr(&self.path, "-i");
        } else {
            let _ =
                std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(self.mode));
        }
    }
}

fn chattr(path: &std::path::Path, flag: &str) {
    let status = std::process::Command::new("chattr")
        .arg(flag)
        .arg(path)
        .status()
        .expect("chattr (e2fsprogs) runs");
    assert!(status.success(), "chattr {flag} {} failed", path.display());
}

/// Installs rustls's `ring` provider as the process default, once. reqwest is built
/// with `rustls-no-provider` in this workspace (the harness shares one rustls config),
/// and any reqwest client panics at build time without a provider.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A plain reqwest client (after [`install_tls_provider`]).
pub fn http_client() -> reqwest::Client {
    install_tls_provider();
    reqwest::Client::new()
}
