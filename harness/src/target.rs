//! The target under test as the harness reaches it: its base URL, the profile that
//! says how to talk to it, the token, and the plain HTTP requests (setup, publish,
//! notify, metrics) that are not streams. Streams go through `sse-wire`.

use std::time::Duration;

use serde_json::Value;

use crate::error::{HarnessError, HarnessErrorKind};
use crate::profile::{Profile, RequestTemplate, fill};

/// A reachable target.
#[derive(Clone, Debug)]
pub struct Target {
    /// `http://host:port`, without a trailing slash.
    pub base: String,
    /// Host and port for the SSE connections.
    pub wire: sse_wire::Target,
    /// How to talk to it.
    pub profile: Profile,
    /// The bearer token, when the profile uses auth.
    pub token: Option<String>,
    http: reqwest::Client,
}

/// A plain HTTP answer.
#[derive(Clone, Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Body text.
    pub body: String,
}

impl Answer {
    /// The body as JSON (Null when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

impl Target {
    /// A target at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(
        base: &str,
        profile: Profile,
        token: Option<String>,
    ) -> Result<Target, HarnessError> {
        let base = base.trim_end_matches('/').to_owned();
        let (wire, _) = sse_wire::parse_url(&base).map_err(|e| {
            HarnessError::new(HarnessErrorKind::Usage, format!("target {base}: {e}"))
        })?;
        if wire.tls {
            return Err(HarnessError::new(
                HarnessErrorKind::Usage,
                format!("target {base}: https is not supported yet; use http"),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| HarnessError::new(HarnessErrorKind::Io, format!("http client: {e}")))?;
        Ok(Target {
            base,
            wire,
            profile,
            token,
            http,
        })
    }

    /// The auth headers to send on every request.
    pub fn auth_headers(&self) -> Vec<(String, String)> {
        match (&self.profile.auth, &self.token) {
            (Some(a), Some(t)) => vec![(a.header.clone(), fill(&a.value, &[("token", t)]))],
            _ => Vec::new(),
        }
    }

    /// Sends one request; a transport failure is an error, any status is an answer.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        headers: &[(String, String)],
    ) -> Result<Answer, HarnessError> {
        let m = reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| {
            HarnessError::new(HarnessErrorKind::Profile, format!("bad method {method}"))
        })?;
        let mut rb = self.http.request(m, format!("{}{}", self.base, path));
        for (k, v) in self.auth_headers().iter().chain(headers) {
            rb = rb.header(k, v);
        }
        if let Some(b) = body {
            rb = rb.body(b);
        }
        let resp = rb.send().await.map_err(|e| {
            HarnessError::new(
                HarnessErrorKind::Target,
                format!("{method} {}{path}: {e}", self.base),
            )
        })?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        Ok(Answer { status, body })
    }

    /// Runs a creation template and returns the id at its pointer.
    pub async fn create(
        &self,
        t: &RequestTemplate,
        body: Option<String>,
        what: &str,
    ) -> Result<String, HarnessError> {
        let body = body.or_else(|| t.body.clone());
        let headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
        let a = self.request(&t.method, &t.path, body, &headers).await?;
        if !(200..300).contains(&a.status) {
            return Err(HarnessError::new(
                HarnessErrorKind::Target,
                format!(
                    "creating a {what}: {} {} answered {}: {}",
                    t.method,
                    t.path,
                    a.status,
                    a.body.chars().take(200).collect::<String>()
                ),
            ));
        }
        let ptr = t.id_pointer.as_deref().unwrap_or("/id");
        a.json()
            .pointer(ptr)
            .and_then(|v| v.as_str().map(str::to_owned))
            .ok_or_else(|| {
                HarnessError::new(
                    HarnessErrorKind::Target,
                    format!(
                        "creating a {what}: the answer has no string at {ptr}: {}",
                        a.body
                    ),
                )
            })
    }

    /// Makes a channel to publish to: created through the profile, or named by the harness.
    pub async fn channel(&self, tag: &str, n: u32) -> Result<String, HarnessError> {
        match &self.profile.channels.create {
            Some(t) => self.create(t, None, "channel").await,
            None => Ok(format!("{}{tag}-{n}", self.profile.channels.prefix)),
        }
    }

    /// The target's current head seq, when the profile says where to read it.
    pub async fn head_seq(&self) -> Result<Option<u64>, HarnessError> {
        let (Some(path), Some(ptr)) = (
            &self.profile.subscribe.head_path,
            &self.profile.subscribe.head_pointer,
        ) else {
            return Ok(None);
        };
        let a = self.request("GET", path, None, &[]).await?;
        Ok(a.json().pointer(ptr).and_then(Value::as_u64))
    }

    /// Waits (bounded) until the target answers its head path (or `/`) with anything
    /// but a 5xx: after the harness started or restarted it.
    pub async fn wait_until_up(&self, bound: Duration) -> Result<(), HarnessError> {
        let until = tokio::time::Instant::now() + bound;
        let path = self
            .profile
            .subscribe
            .head_path
            .clone()
            .unwrap_or_else(|| "/".into());
        loop {
            if let Ok(a) = self.request("GET", &path, None, &[]).await
                && a.status < 500
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= until {
                return Err(HarnessError::new(
                    HarnessErrorKind::Server,
                    format!("{} did not answer GET {path} within {bound:?}", self.base),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Any HTTP answer to the profile's head path (or `/`) will do: no answer at all
    /// means the run cannot be judged.
    pub async fn check_reachable(&self) -> Result<(), HarnessError> {
        let path = self
            .profile
            .subscribe
            .head_path
            .clone()
            .unwrap_or_else(|| "/".into());
        self.request("GET", &path, None, &[])
            .await
            .map(|_| ())
            .map_err(|e| {
                HarnessError::new(
                    HarnessErrorKind::Target,
                    format!("target unreachable: {}", e.message),
                )
                .with_source(e)
            })
    }

    /// Reads one gauge from the Prometheus text endpoint.
    pub async fn gauge(&self, name: &str) -> Result<Option<f64>, HarnessError> {
        let Some(m) = &self.profile.metrics else {
            return Ok(None);
        };
        let a = self.request("GET", &m.path, None, &[]).await?;
        Ok(a.body.lines().find_map(|l| {
            let mut it = l.split_whitespace();
            let n = it.next()?;
            (n == name).then(|| it.next()?.parse().ok())?
        }))
    }
}

/// Percent-encodes a path segment (channels and request ids are harness- or target-made).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
