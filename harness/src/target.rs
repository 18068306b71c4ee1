//! The target under test as the harness reaches it: its base URL, the profile that
//! says how to talk to it, the token, and the plain HTTP requests (setup, publish,
//! notify, metrics) that are not streams. Streams go through `sse-wire`.

use std::time::Duration;

use serde_json::Value;

use crate::error::{HarnessError, HarnessErrorKind};
use crate::limits::Limits;
use crate::profile::{Method, Profile, RequestTemplate, fill};

/// How long deleting one scenario's channels may take in all.
pub const CLEAN_UP_BOUND: Duration = Duration::from_secs(10);

/// A reachable target.
#[derive(Clone, Debug)]
pub struct Target {
    /// `http(s)://host:port/base-path`, without a trailing slash (for messages).
    pub base: String,
    /// The one URL both stacks resolve request paths under (the base path kept).
    pub url: sse_wire::BaseUrl,
    /// Host and port for the SSE connections.
    pub wire: sse_wire::Target,
    /// The TLS configuration both stacks share (an `https` target only).
    pub tls: Option<sse_wire::TlsConfig>,
    /// Whether server certificates go unverified (`--insecure`).
    pub insecure: bool,
    /// Whether the run trusts or presents what a browser would not: `--cacert`,
    /// `--insecure` or a client certificate on an `https` target (browser clients
    /// trust the system's roots only and present no certificate).
    pub private_tls: bool,
    /// The HTTP protocol streams ask for: the profile's `[subscribe] http`, or h2 with
    /// `--http2` (plain requests stay HTTP/1.1).
    pub protocol: harness_model::HttpProtocol,
    /// Streams send the headers a browser's `EventSource` sends: the profile's
    /// `[subscribe] browser_headers`, off with `--no-browser-headers`.
    pub browser_headers: bool,
    /// How to talk to it.
    pub profile: Profile,
    /// The bearer token, when the profile uses auth.
    pub token: Option<String>,
    /// What the harness spends on this target at most (caps, budgets, bounds).
    pub limits: Limits,
    http: reqwest::Client,
    /// Channels made since the last [`Target::clean_up`], when the profile says how to
    /// delete them (shared by the clones of this target).
    made: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Headers sent on every request besides the profile's (`--header`).
    headers: Vec<(String, String)>,
    /// The toxic proxies this scenario's connections go through, if any
    /// ([`Target::routed`], [`crate::network`]).
    pub route: Option<std::sync::Arc<crate::network::Route>>,
    /// Where plain requests go when the publisher path has a proxy: the target's URL
    /// with the proxy's port (and, for an IP literal, its address).
    http_url: Option<sse_wire::BaseUrl>,
    /// The local addresses streams connect from, in turn (`--source-addr`; shared by
    /// the clones of this target). Plain requests keep the kernel's choice.
    pub sources: std::sync::Arc<crate::source::SourceAddrs>,
}

/// A plain HTTP answer.
#[derive(Clone, Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Body text (lossy UTF-8), at most [`Limits::http_body_bytes`] of it.
    pub body: String,
    /// The body was longer than the cap and was cut there.
    pub truncated: bool,
    /// Why the body broke off before its end (a reset, a timeout), if it did.
    pub broken: Option<String>,
    /// The response headers, lower-cased names (the last of repeated ones).
    pub headers: std::collections::BTreeMap<String, String>,
}

impl Answer {
    /// The body as JSON (Null when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The answer, when its body arrived whole; an error naming `what` when it broke off.
    pub fn whole(self, what: &str) -> Result<Answer, HarnessError> {
        match &self.broken {
            None => Ok(self),
            Some(e) => Err(HarnessError::new(
                HarnessErrorKind::Target,
                format!(
                    "{what}: the body broke off after {} bytes: {e}",
                    self.body.len()
                ),
            )),
        }
    }
}

impl Target {
    /// A target at `base` (e.g. `http://127.0.0.1:8080`, `https://host/prefix`), with
    /// the system's roots for `https`.
    pub fn new(
        base: &str,
        profile: Profile,
        token: Option<String>,
    ) -> Result<Target, HarnessError> {
        Target::with_tls(base, profile, token, &sse_wire::TlsOptions::default())
    }

    /// A target at `base` whose `https` connections (streams and plain requests alike)
    /// use `tls`: its roots, `insecure` and client certificate.
    pub fn with_tls(
        base: &str,
        profile: Profile,
        token: Option<String>,
        tls: &sse_wire::TlsOptions,
    ) -> Result<Target, HarnessError> {
        let usage = |e: sse_wire::WireError| {
            HarnessError::new(HarnessErrorKind::Usage, format!("target {base}: {e}"))
        };
        let url = sse_wire::BaseUrl::parse(base).map_err(usage)?;
        crate::proxy_env::refuse(&url.target)?;
        sse_wire::install_default_provider();
        // Direct, like the streams: never through a proxy of the environment.
        let config = if url.target.tls {
            Some(tls.client_config().map_err(usage)?)
        } else {
            None
        };
        let http = http_client(config.as_ref(), None)?;
        Ok(Target {
            base: base.trim_end_matches('/').to_owned(),
            wire: url.target.clone(),
            url,
            insecure: tls.insecure && config.is_some(),
            private_tls: config.is_some()
                && (tls.insecure || tls.cacert.is_some() || tls.cert.is_some()),
            protocol: profile.subscribe.http,
            browser_headers: profile.subscribe.browser_headers,
            tls: config,
            profile,
            token,
            limits: Limits::default(),
            http,
            made: Default::default(),
            headers: Vec::new(),
            route: None,
            http_url: None,
            sources: Default::default(),
        })
    }

    /// This target with `limits` on what its clients record.
    pub fn with_limits(mut self, limits: Limits) -> Target {
        self.limits = limits;
        self
    }

    /// This target with its connections sent through `route`'s proxies: streams to the
    /// subscriber proxy, plain requests (publishes among them) to the publisher proxy,
    /// each still naming the target (TLS server name, `Host`). Channels it makes are
    /// the target's to clean up.
    pub fn routed(&self, route: crate::network::Route) -> Result<Target, HarnessError> {
        let mut t = self.clone();
        if let Some(addr) = route.publisher {
            let mut url = self.url.clone();
            url.target.port = addr.port();
            let resolve = match url.target.host.parse::<std::net::IpAddr>() {
                Ok(_) => {
                    url.target.host = addr.ip().to_string();
                    None
                }
                Err(_) => Some((url.target.host.as_str(), addr)),
            };
            t.http = http_client(self.tls.as_ref(), resolve)?;
            t.http_url = Some(url);
        }
        t.route = Some(std::sync::Arc::new(route));
        Ok(t)
    }

    /// Where streams connect instead of resolving the target's host (the subscriber
    /// path's proxy), if anywhere.
    pub fn stream_connect_to(&self) -> Option<std::net::SocketAddr> {
        self.route.as_ref().and_then(|r| r.subscriber)
    }

    /// The scenario's clock origin: the proxies' when the scenario is routed through
    /// them (their logs count from it), else now.
    pub fn epoch(&self) -> tokio::time::Instant {
        match &self.route {
            Some(r) => tokio::time::Instant::from_std(r.epoch),
            None => tokio::time::Instant::now(),
        }
    }

    /// The request target of a profile path (`/sub/{channel}` once filled) under the
    /// target's base path.
    pub fn path(&self, path: &str) -> String {
        self.url.path(path)
    }

    /// The auth headers to send on every request: the profile's header, or its
    /// cookie when it names one.
    pub fn auth_headers(&self) -> Vec<(String, String)> {
        match (&self.profile.auth, &self.token) {
            (Some(a), Some(t)) => match &a.cookie {
                Some(name) => vec![("Cookie".to_owned(), format!("{name}={t}"))],
                None => vec![(a.header.clone(), fill(&a.value, &[("token", t)]))],
            },
            _ => Vec::new(),
        }
    }

    /// Sends one request; a transport failure is an error, any status is an answer (its
    /// body capped at `limits.http_body_bytes`, and marked when it broke off).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        headers: &[(String, String)],
    ) -> Result<Answer, HarnessError> {
        let resp = self.send(method, path, body, headers).await?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let (body, truncated, broken) = read_capped(resp, self.limits.http_body_bytes).await;
        if truncated {
            tracing::warn!(
                "{method} {}{path}: body longer than {} bytes, truncated",
                self.base,
                self.limits.http_body_bytes
            );
        }
        Ok(Answer {
            status,
            body,
            truncated,
            broken,
            headers,
        })
    }

    /// Sends one request and returns its response once its head is in.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        headers: &[(String, String)],
    ) -> Result<reqwest::Response, HarnessError> {
        let url = self.http_url.as_ref().unwrap_or(&self.url).url(path);
        let mut rb = self.http.request(method.into(), url);
        if self.http_url.is_some() {
            // Through the publisher proxy: the target's authority, not the proxy's.
            rb = rb.header("Host", self.url.target.authority());
        }
        for (k, v) in self.request_headers().iter().chain(headers) {
            rb = rb.header(k, v);
        }
        if let Some(b) = body {
            rb = rb.body(b);
        }
        rb.send().await.map_err(|e| {
            HarnessError::new(
                HarnessErrorKind::Target,
                format!("{method} {}{path}: {}", self.base, error_chain(&e)),
            )
            .with_source(e) // the publisher reads the write's fate from it (fate.rs)
        })
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
        let a = self
            .request(t.method, &t.path, body, &headers)
            .await?
            .whole(&format!("creating a {what}"))?;
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
        let ch = match &self.profile.channels.create {
            Some(t) => self.create(t, None, "channel").await?,
            None => format!("{}{tag}-{n}", self.profile.channels.prefix),
        };
        if self.profile.channels.delete.is_some() {
            let mut made = self.made.lock().unwrap_or_else(|p| p.into_inner());
            if !made.contains(&ch) {
                made.push(ch.clone());
            }
        }
        Ok(ch)
    }

    /// Deletes the channels made since the last call, as the profile's
    /// `[channels] delete` says (nothing when it does not): how many were deleted (a
    /// 2xx or 404 answer), and one line per channel that was not. Each request is
    /// bounded by the client's timeout; the whole clean-up by [`CLEAN_UP_BOUND`].
    pub async fn clean_up(&self) -> (usize, Vec<String>) {
        let Some(t) = &self.profile.channels.delete else {
            return (0, Vec::new());
        };
        let made = std::mem::take(&mut *self.made.lock().unwrap_or_else(|p| p.into_inner()));
        let (mut deleted, mut failed) = (0, Vec::new());
        let until = tokio::time::Instant::now() + CLEAN_UP_BOUND;
        for ch in made {
            let path = fill(&t.path, &[("channel", &ch)]);
            let body = t.body.as_ref().map(|b| fill(b, &[("channel", &ch)]));
            let sent = tokio::time::timeout_at(until, self.request(t.method, &path, body, &[]));
            match sent.await {
                Ok(Ok(a)) if (200..300).contains(&a.status) || a.status == 404 => deleted += 1,
                Ok(Ok(a)) => failed.push(format!("{} {path}: status {}", t.method, a.status)),
                Ok(Err(e)) => failed.push(format!("{} {path}: {e}", t.method)),
                Err(_) => failed.push(format!(
                    "{} {path}: not sent within the clean-up bound ({CLEAN_UP_BOUND:?})",
                    t.method
                )),
            }
        }
        (deleted, failed)
    }

    /// The target's current head seq, when the profile says where to read it.
    pub async fn head_seq(&self) -> Result<Option<u64>, HarnessError> {
        let (Some(path), Some(ptr)) = (
            &self.profile.subscribe.head_path,
            &self.profile.subscribe.head_pointer,
        ) else {
            return Ok(None);
        };
        let a = self
            .request(Method::Get, path, None, &[])
            .await?
            .whole(&format!("GET {path}"))?;
        Ok(a.json().pointer(ptr).and_then(Value::as_u64))
    }

    /// The path the harness asks to see the target is up: the profile's head path, or `/`.
    pub fn head_path(&self) -> String {
        self.profile
            .subscribe
            .head_path
            .clone()
            .unwrap_or_else(|| "/".into())
    }

    /// Waits (bounded) until the target answers its head path (or `/`) with anything
    /// but a 5xx: after the harness started or restarted it.
    pub async fn wait_until_up(&self, bound: Duration) -> Result<(), HarnessError> {
        let until = tokio::time::Instant::now() + bound;
        let path = self.head_path();
        loop {
            // The status is enough (and a body that never ends must not stop a run here).
            if let Ok(r) = self.send(Method::Get, &path, None, &[]).await
                && r.status().as_u16() < 500
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
        // The status is enough (a body that never ends must not hold the run here).
        self.send(Method::Get, &self.head_path(), None, &[])
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
        let a = self
            .request(Method::Get, &m.path, None, &[])
            .await?
            .whole(&format!("GET {}", m.path))?;
        Ok(parse_gauge(&a.body, name))
    }
}

/// How long an idle pooled connection is kept for reuse: below the shortest keep-alive
/// idle bound servers commonly use (Node's 5 s; the reference server's 20 s), so the
/// harness never sends a request on a connection the server is closing as idle (a race
/// hyper reports as "connection closed before message completed": it failed a probe's
/// receipt read in a mutation run, on a connection idle since the job was created).
const POOL_IDLE: Duration = Duration::from_secs(4);

/// The client for plain requests: direct (never through a proxy of the environment),
/// with `tls` for an `https` target and `resolve` overriding one host name's address
/// (the publisher path's toxic proxy; reqwest keeps the URL's port).
fn http_client(
    tls: Option<&sse_wire::TlsConfig>,
    resolve: Option<(&str, std::net::SocketAddr)>,
) -> Result<reqwest::Client, HarnessError> {
    let mut http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        .pool_idle_timeout(POOL_IDLE);
    if let Some(config) = tls {
        http = http.use_preconfigured_tls((*config.0).clone());
    }
    if let Some((host, addr)) = resolve {
        http = http.resolve(host, addr);
    }
    http.build()
        .map_err(|e| HarnessError::new(HarnessErrorKind::Io, format!("http client: {e}")))
}

/// The value of sample `name` (without labels) in a Prometheus text exposition: the
/// first line whose metric name is exactly `name`; comment lines and other metrics,
/// including ones that merely start with `name`, are skipped. None when absent or when
/// the value is not a number.
pub fn parse_gauge(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        let n = it.next()?;
        (n == name).then(|| it.next()?.parse().ok())?
    })
}

/// An error and its sources, one after the other (reqwest's own message hides the cause:
/// a TLS failure shows as `invalid peer certificate: UnknownIssuer` only in a source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = s.source();
    }
    out
}

/// Reads at most `cap` bytes of a body (lossy UTF-8): the text, whether there was more,
/// and why it broke off before its end (a reset, the client's timeout), if it did.
async fn read_capped(mut resp: reqwest::Response, cap: usize) -> (String, bool, Option<String>) {
    let mut out: Vec<u8> = Vec::new();
    let mut truncated = false;
    let mut broken = None;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = cap - out.len();
                if chunk.len() > room {
                    out.extend_from_slice(&chunk[..room]);
                    truncated = true;
                    break;
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                broken = Some(e.to_string());
                break;
            }
        }
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        truncated,
        broken,
    )
}

/// The token and the run's extra headers (`--header`) as the two stacks send them:
/// publishes and plain requests through reqwest, streams through `sse-wire` (whose
/// token may go in the URL's query, as the profile's `[auth] streams` says).
impl Target {
    /// The same target with `headers` sent on every request, streams and publishes.
    pub fn with_headers(mut self, headers: Vec<(String, String)>) -> Target {
        self.headers = headers;
        self
    }

    /// Streams connect from `sources`, in turn (`--source-addr`).
    pub fn with_sources(mut self, sources: std::sync::Arc<crate::source::SourceAddrs>) -> Target {
        self.sources = sources;
        self
    }

    /// Streams over HTTP/2 when `on` (`--http2`); otherwise as the profile says.
    pub fn with_http2(mut self, on: bool) -> Target {
        if on {
            self.protocol = harness_model::HttpProtocol::H2;
        }
        self
    }

    /// Streams send browser-like headers only when `on` too (`--no-browser-headers`
    /// turns them off whatever the profile says).
    pub fn with_browser_headers(mut self, on: bool) -> Target {
        self.browser_headers &= on;
        self
    }

    /// The headers a stream request carries besides auth, the cursor and the
    /// correlation id: the profile's `[subscribe] headers`, then what a browser's
    /// `EventSource` sends (`Accept: text/event-stream`, and with
    /// [`Target::browser_headers`] `Accept-Encoding: gzip, deflate, br` and
    /// `Cache-Control: no-cache`) and the profile's `User-Agent`, each unless the
    /// profile set it.
    pub fn stream_request_headers(&self) -> Vec<(String, String)> {
        let sub = &self.profile.subscribe;
        let mut h: Vec<(String, String)> = sub
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut add = |name: &str, value: &str| {
            if !h.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
                h.push((name.to_owned(), value.to_owned()));
            }
        };
        add("Accept", "text/event-stream");
        if self.browser_headers {
            add("Accept-Encoding", "gzip, deflate, br");
            add("Cache-Control", "no-cache");
        }
        if let Some(ua) = &sub.user_agent {
            add("User-Agent", ua);
        }
        h
    }

    /// The HTTP version the wire client asks for on streams.
    pub fn stream_http(&self) -> sse_wire::HttpVersion {
        match self.protocol {
            harness_model::HttpProtocol::Http11 => sse_wire::HttpVersion::Http1,
            harness_model::HttpProtocol::H2 => sse_wire::HttpVersion::Http2,
        }
    }

    /// The headers of every plain request: the auth header and the extra headers.
    fn request_headers(&self) -> Vec<(String, String)> {
        let mut h = self.auth_headers();
        h.extend(self.headers.iter().cloned());
        h
    }

    /// The headers of a stream request: the extra headers, and the auth header unless
    /// the token goes in the query.
    pub fn stream_headers(&self) -> Vec<(String, String)> {
        let mut h = match self.profile.auth.as_ref().and_then(|a| a.stream_query()) {
            Some(_) => Vec::new(),
            None => self.auth_headers(),
        };
        h.extend(self.headers.iter().cloned());
        h
    }

    /// `path` under the target's base path, with the token in its query when streams
    /// carry it there.
    pub fn stream_path(&self, path: &str) -> String {
        let path = self.path(path);
        let (Some(name), Some(token)) = (
            self.profile.auth.as_ref().and_then(|a| a.stream_query()),
            &self.token,
        ) else {
            return path;
        };
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}{name}={}", encode_segment(token))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gauge_is_read_by_its_exact_name() {
        let text = "# HELP spine_active_streams Open streams\n\
                    # TYPE spine_active_streams gauge\n\
                    spine_active_streams_total 99\n\
                    spine_active_streams 3\n\
                    spine_other 1e3\n";
        assert_eq!(parse_gauge(text, "spine_active_streams"), Some(3.0));
        assert_eq!(parse_gauge(text, "spine_other"), Some(1000.0));
        assert_eq!(parse_gauge(text, "missing"), None);
        assert_eq!(parse_gauge("g not-a-number\n", "g"), None);
        assert_eq!(parse_gauge("g\n", "g"), None, "a name without a value");
        assert_eq!(parse_gauge("", "g"), None);
    }

    #[test]
    fn streams_and_plain_requests_resolve_under_the_base_path() {
        let profile = Profile::load("spine").unwrap();
        let t = Target::new("http://127.0.0.1:9/prefix/", profile, None).unwrap();
        assert_eq!(t.base, "http://127.0.0.1:9/prefix");
        assert_eq!(t.path("/v1/events?job_id=j"), "/prefix/v1/events?job_id=j");
        assert_eq!(t.url.url("/v1/jobs"), "http://127.0.0.1:9/prefix/v1/jobs");
        assert!(t.tls.is_none() && !t.insecure);
    }

    #[test]
    fn an_https_target_shares_one_tls_config_and_says_when_insecure() {
        let profile = Profile::load("spine").unwrap();
        let tls = sse_wire::TlsOptions {
            insecure: true,
            ..Default::default()
        };
        let t = Target::with_tls("https://localhost:8443", profile, None, &tls).unwrap();
        assert!(t.wire.tls && t.insecure && t.tls.is_some());
        assert_eq!(t.path("/sub/x"), "/sub/x");
    }

    #[test]
    fn streams_send_browser_headers_unless_turned_off_and_the_profile_wins() {
        let names = |t: &Target| -> Vec<String> {
            t.stream_request_headers()
                .into_iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect()
        };
        let mut profile = Profile::load("spine").unwrap();
        let t = Target::new("http://127.0.0.1:9", profile.clone(), None).unwrap();
        assert_eq!(
            names(&t),
            [
                "Accept: text/event-stream",
                "Accept-Encoding: gzip, deflate, br",
                "Cache-Control: no-cache"
            ]
        );
        let off = t.clone().with_browser_headers(false);
        assert_eq!(names(&off), ["Accept: text/event-stream"]);
        profile
            .subscribe
            .headers
            .insert("accept-encoding".into(), "identity".into());
        profile.subscribe.user_agent = Some("Mozilla/5.0".into());
        let t = Target::new("http://127.0.0.1:9", profile, None).unwrap();
        assert_eq!(
            names(&t),
            [
                "accept-encoding: identity",
                "Accept: text/event-stream",
                "Cache-Control: no-cache",
                "User-Agent: Mozilla/5.0"
            ]
        );
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(encode_segment("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(encode_segment("plain-1.2_~"), "plain-1.2_~");
    }

    #[test]
    fn a_query_token_goes_in_the_stream_url_and_not_in_its_headers() {
        let mut profile = Profile::load("spine").unwrap();
        let target = |p: Profile| {
            Target::new("http://127.0.0.1:9", p, Some("t k".into()))
                .unwrap()
                .with_headers(vec![("X-Api-Key".into(), "k".into())])
        };
        let header = target(profile.clone());
        assert_eq!(header.stream_path("/v1/events"), "/v1/events");
        assert_eq!(
            header.stream_headers(),
            [
                ("Authorization".to_owned(), "Bearer t k".to_owned()),
                ("X-Api-Key".to_owned(), "k".to_owned())
            ]
        );
        profile.auth.as_mut().unwrap().streams = crate::profile::TokenPlace::Query;
        let query = target(profile);
        assert_eq!(
            query.stream_path("/v1/events?job_id=j"),
            "/v1/events?job_id=j&access_token=t%20k"
        );
        assert_eq!(
            query.stream_path("/v1/events"),
            "/v1/events?access_token=t%20k"
        );
        assert_eq!(
            query.stream_headers(),
            [("X-Api-Key".to_owned(), "k".to_owned())]
        );
        assert_eq!(
            query.request_headers().len(),
            2,
            "publishes keep the header"
        );
    }

    #[test]
    fn a_cookie_auth_sends_the_token_as_a_cookie_on_streams_and_requests() {
        let mut profile = Profile::load("spine").unwrap();
        profile.auth.as_mut().unwrap().cookie = Some("session".into());
        let t = Target::new("http://127.0.0.1:9", profile, Some("tok".into())).unwrap();
        let cookie = [("Cookie".to_owned(), "session=tok".to_owned())];
        assert_eq!(t.stream_headers(), cookie);
        assert_eq!(t.request_headers(), cookie);
        let parsed: crate::profile::Auth = toml::from_str("cookie = \"sid\"").unwrap();
        assert_eq!(parsed.header, "Authorization");
        assert_eq!(parsed.cookie.as_deref(), Some("sid"));
    }
}
