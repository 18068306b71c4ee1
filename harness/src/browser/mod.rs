//! Real browsers as clients (`[[clients]] kind = "browser"`): a scenario's browser
//! clients are `EventSource`s in one headless Chromium (Debian's
//! `chromium-headless-shell`), judged like the harness's own clients.
//!
//! How the browser is driven: the harness serves a tiny page on a loopback origin of
//! its own ([`page`]); the page opens one `EventSource` per client and posts every
//! `open`, dispatched event and `error` back to that origin, in order, one request at
//! a time. Chromium is started on the page's URL
//! (`chromium-headless-shell --headless --no-sandbox --user-data-dir=<tmp> <url>`) in a
//! process group of its own, and killed by its process group id when the run ends.
//! The DevTools protocol could observe the same page, but it needs a websocket client
//! (a CDP crate and its runtime) and a browser session with its own handshake and
//! shutdown; the page-posts-back design needs nothing but the loopback HTTP the harness
//! already speaks, and what the page reports is exactly what a web page can observe,
//! which is the point: the browser's own reconnection, with its own `retry:` timer and
//! its own `Last-Event-ID`, is what is under test.
//!
//! Every stream is cross-origin (the page's origin is not the target's), so it needs
//! the target's CORS headers for the page's origin: the profile's `[browser]` says
//! whether the target serves them and, when the target allows only a fixed origin,
//! which ([`page_origin`]). A stream's token goes in its query (an `EventSource` sets
//! no `Authorization` header): the profile's `[auth] query`.
//!
//! What the browser saw becomes a transcript ([`record`]) with
//! [`harness_model::Agent::Browser`]; the checkers judge browser transcripts only on
//! contracts a page can observe and list the rest as not judged on them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use harness_model::{ConnEnd, Transcript};
use tokio::time::Instant;

mod page;
mod record;

use crate::client::{ClientPlan, STALL, Signals};
use crate::ledger::Ledger;
use crate::target::Target;
use record::Recorder;

/// The most browser clients a scenario has: Chromium opens at most 6 HTTP/1.1
/// connections per host and port, and each `EventSource` holds one.
pub const MAX_BROWSER_CLIENTS: u32 = 6;

/// The browser binaries looked for on `PATH`, in order.
const BROWSERS: [&str; 2] = ["chromium-headless-shell", "chromium"];

/// The cursor a `cursor_ahead` browser sends: well-formed, far above any head.
const AHEAD_CURSOR: u64 = 1_000_000_000_000_000;

/// Connections after which a browser the server closes again and again has shown it.
const LOOPS_SHOWN: usize = 3;

/// How long Chromium may take to load the page and create its `EventSource`s.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// One browser client to run.
#[derive(Clone)]
pub struct BrowserPlan {
    /// Its stream, channels and deadline (cuts and pacing do not apply).
    pub client: ClientPlan,
    /// What its page does.
    pub case: crate::scenario::BrowserCase,
    /// Whether the server is expected to end its stream again and again (with an
    /// answer an `EventSource` cannot act on): the client is done once it has shown
    /// that loop for a few connections, or gave up, instead of when it has every write.
    pub loops: bool,
    /// Whether its page reads the stream from its own origin, through the harness's
    /// relay (no CORS involved), instead of from the target's.
    pub same_origin: bool,
}

impl BrowserPlan {
    /// A browser client reading `client`'s stream as `case` says. Its page reads through
    /// the same-origin relay when the scenario asks (`same_origin`) or when the target
    /// serves no CORS (`[browser] cors = "none"`), except a foreign-origin page: its
    /// point is the cross-origin request.
    pub fn new(
        client: ClientPlan,
        case: crate::scenario::BrowserCase,
        same_origin: bool,
        profile: &crate::profile::Profile,
    ) -> BrowserPlan {
        use crate::scenario::BrowserCase;
        let no_cors = profile.browser.cors == crate::profile::Cors::None;
        BrowserPlan {
            client,
            case,
            loops: case == BrowserCase::CursorAhead,
            same_origin: (same_origin || no_cors) && case != BrowserCase::ForeignOrigin,
        }
    }

    /// Whether the scenario expects this browser to stop for good on `profile`'s target.
    pub fn must_stop(&self, profile: &crate::profile::Profile) -> bool {
        use crate::scenario::BrowserCase;
        match self.case {
            BrowserCase::Reads | BrowserCase::CursorAhead => false,
            BrowserCase::WrongToken => true,
            BrowserCase::ForeignOrigin => profile.browser.cors != crate::profile::Cors::Any,
        }
    }
}

/// The browser binary: `SSE_HARNESS_CHROMIUM` when set (a Chromium or Chrome
/// elsewhere; `None` if it is not a file), else the first of [`BROWSERS`] on `PATH`,
/// else Debian's `/usr/bin/chromium-headless-shell`.
pub fn chromium() -> Option<PathBuf> {
    if let Some(given) = std::env::var_os("SSE_HARNESS_CHROMIUM") {
        let given = PathBuf::from(given);
        return given.is_file().then_some(given);
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        BROWSERS.iter().find_map(|name| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    });
    on_path.or_else(|| {
        let debian = PathBuf::from("/usr/bin/chromium-headless-shell");
        debian.is_file().then_some(debian)
    })
}

/// Why a scenario with browser clients is skipped here, if it is: no Chromium (except
/// under `CI=true`, where the run then fails), or a profile that cannot serve what the
/// scenario's pages ask (a wrong token in the query, a cursor above the head). A
/// target that serves no CORS is read through the same-origin relay instead.
pub fn skip_reason(
    profile: &crate::profile::Profile,
    sc: &crate::scenario::Scenario,
) -> Option<String> {
    let wrong_token = sc
        .clients
        .iter()
        .any(|g| g.browser_case == crate::scenario::BrowserCase::WrongToken);
    let ahead = sc
        .clients
        .iter()
        .any(|g| g.browser_case == crate::scenario::BrowserCase::CursorAhead);
    let answers_ahead = profile.has(harness_model::Capability::CursorErrors)
        && profile.subscribe.cursor_query.is_some();
    if ahead && !answers_ahead {
        return Some(format!(
            "profile {} does not claim capability cursor-errors with a cursor query parameter: a browser's cursor above the head cannot be sent or judged",
            profile.name
        ));
    }
    if wrong_token && profile.auth.as_ref().is_none_or(|a| a.query.is_none()) {
        return Some(format!(
            "profile {} has no stream token in the query ([auth] query): a wrong one cannot be sent",
            profile.name
        ));
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    (chromium().is_none() && !ci).then(|| {
        "no Chromium found (Debian package chromium-headless-shell); browser clients need one"
            .to_owned()
    })
}

/// The origin browser pages come from: the profile's fixed one (its port bound by the
/// harness), else the process's loopback page server's. The reference servers the
/// harness starts allow it.
pub fn page_origin(profile_origin: Option<&str>) -> Result<String, String> {
    let port = match profile_origin {
        None => 0,
        Some(o) => o
            .strip_prefix("http://127.0.0.1:")
            .or_else(|| o.strip_prefix("http://localhost:"))
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                format!("[browser] origin {o:?}: must be http://127.0.0.1:<port> (a loopback origin the harness serves)")
            })?,
    };
    page::server(port).map(|s| match profile_origin {
        Some(o) => o.to_owned(),
        None => s.origin.clone(),
    })
}

/// The stream URL a browser client opens: the target's (or its subscriber proxy's)
/// address, the plan's path, the token in the query.
fn stream_url(target: &Target, plan: &BrowserPlan) -> Result<String, String> {
    let to = relay_of(target, plan)?;
    Ok(format!("http://{}{}", to.connect, to.path))
}

/// Where a browser client's stream is: the address to connect to (the target's, or
/// its subscriber proxy's), the target's authority, and the path with the token in
/// the query. The browser opens it itself, or through the page's relay.
fn relay_of(target: &Target, plan: &BrowserPlan) -> Result<page::Relay, String> {
    if target.wire.tls {
        return Err(
            "browser clients need a plain-http target (the harness's CAs are not the browser's)"
                .into(),
        );
    }
    let authority = format!("{}:{}", target.wire.host, target.wire.port);
    let connect = match target.stream_connect_to() {
        Some(addr) => addr.to_string(),
        None => authority.clone(),
    };
    let mut path = target.path(&plan.client.path);
    let wrong = format!("wrong-{}", target.token.as_deref().unwrap_or("token"));
    let token = match plan.case {
        crate::scenario::BrowserCase::WrongToken => Some(&wrong),
        _ => target.token.as_ref(),
    };
    if let (Some(auth), Some(token)) = (&target.profile.auth, token) {
        let Some(name) = auth.query.as_deref() else {
            return Err(format!(
                "profile {} authenticates streams by header only ([auth] has no query): an EventSource cannot send one",
                target.profile.name
            ));
        };
        let sep = if path.contains('?') { '&' } else { '?' };
        path = format!("{path}{sep}{name}={}", crate::target::encode_segment(token));
    }
    if let (crate::scenario::BrowserCase::CursorAhead, Some(q)) =
        (plan.case, &target.profile.subscribe.cursor_query)
    {
        let sep = if path.contains('?') { '&' } else { '?' };
        path = format!("{path}{sep}{q}={AHEAD_CURSOR}");
    }
    Ok(page::Relay {
        connect,
        host: authority,
        path,
    })
}

/// A page for the clients `clients` (index, URL), listening for the profile's named
/// events, as page `page` (0: main, 1: the frame), with a frame of this session on
/// the origin `frame` if any.
fn page_html(
    target: &Target,
    clients: &[(usize, String)],
    page: u8,
    frame: Option<&str>,
) -> String {
    let p = &target.profile;
    let mut events = vec![p.events.data_event.clone()];
    if p.lifecycle.frames {
        events.extend(["connection_open", "connection_close"].map(String::from));
    }
    events.extend(p.heartbeat.event.clone());
    if p.version.is_some() {
        events.push("version".into());
    }
    let clients: Vec<_> = clients
        .iter()
        .map(|(c, url)| serde_json::json!({ "c": c, "url": url }))
        .collect();
    let cfg =
        serde_json::json!({ "clients": clients, "events": events, "page": page, "frame": frame });
    let json = cfg.to_string().replace("</", "<\\/");
    include_str!("page.html").replace("__CONFIG__", &json)
}

/// The same port on the other loopback name: an origin no target is told to allow.
fn foreign(origin: &str) -> String {
    match origin.strip_prefix("http://127.0.0.1:") {
        Some(port) => format!("http://localhost:{port}"),
        None => origin.replacen("http://localhost:", "http://127.0.0.1:", 1),
    }
}

/// Runs the browser clients `plans` in one Chromium until each has every write it is
/// owed, gave up for good, or the scenario stops; returns their transcripts.
pub async fn run(
    target: Arc<Target>,
    ledger: Arc<Ledger>,
    plans: Vec<BrowserPlan>,
    sig: Signals,
    epoch: Instant,
) -> Vec<Transcript> {
    let deadline = plans
        .first()
        .map(|p| p.client.deadline)
        .unwrap_or_else(Instant::now);
    let mut recs: Vec<Recorder> = plans
        .iter()
        .map(|p| Recorder::new(&p.client, target.limits.frames_per_conn, p.loops))
        .collect();
    let started = match launch(&target, &plans).await {
        Ok(s) => s,
        Err(e) => return failed(recs, &e, epoch),
    };
    let (browser, _session, mut rx) = started;
    let drive = Drive {
        ledger: &ledger,
        ids: target.profile.check_config(Vec::new()).ids,
        deadline,
        profile: &target.profile,
        wall_at_epoch_us: wall_us() - epoch.elapsed().as_micros() as i128,
    };
    let outcome = drive.reports(&mut recs, &mut rx, sig).await;
    browser.stop().await;
    for (rec, plan) in recs.iter_mut().zip(&plans) {
        if rec.gave_up_us.is_some() && !rec.ever_opened() {
            let seen = diagnose(&target, plan).await;
            rec.note_on_last(&seen);
        }
    }
    let now = epoch.elapsed().as_micros() as u64;
    let end = match outcome {
        Outcome::Done => ConnEnd::Finished,
        Outcome::Deadline => ConnEnd::Deadline,
        Outcome::NeverLoaded => {
            let why = format!("the page did not load in Chromium within {READY_WITHIN:?}");
            return failed(recs, &why, epoch);
        }
    };
    recs.into_iter()
        .map(|r| r.finish(end.clone(), now))
        .collect()
}

/// What the target answers the request of a browser that gave up before it opened,
/// asked again by the harness with the page's `Origin` (the head only): status,
/// Content-Type and `Access-Control-Allow-Origin`, so a finding can say which rule
/// stopped the browser.
async fn diagnose(target: &Target, plan: &BrowserPlan) -> String {
    let origin = page_origin(target.profile.browser.origin.as_deref()).unwrap_or_default();
    let origin = match plan.case {
        crate::scenario::BrowserCase::ForeignOrigin => foreign(&origin),
        _ => origin,
    };
    let Ok(url) = stream_url(target, plan) else {
        return String::new();
    };
    let path = url
        .splitn(4, '/')
        .nth(3)
        .map(|p| format!("/{p}"))
        .unwrap_or_default();
    let req = sse_wire::RequestSpec {
        method: "GET".into(),
        path_and_query: path,
        headers: vec![
            ("Accept".into(), "text/event-stream".into()),
            ("Origin".into(), origin.clone()),
        ],
        body: None,
    };
    let opts = sse_wire::ConnectOptions {
        connect_timeout: Duration::from_secs(5),
        head_timeout: Duration::from_secs(5),
        connect_to: target.stream_connect_to(),
        ..Default::default()
    };
    match sse_wire::open(&target.wire, &req, &opts).await {
        Ok(resp) => {
            let header = |name: &str| {
                resp.headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            format!(
                "the same request with Origin {origin} answers status {}, content-type {}, access-control-allow-origin {}",
                resp.status,
                header("content-type").unwrap_or_else(|| "(none)".into()),
                header("access-control-allow-origin").unwrap_or_else(|| "(none)".into()),
            )
        }
        Err(e) => format!("the same request with Origin {origin} failed: {e}"),
    }
}

/// Every client's transcript when the browser could not be run: one connection that
/// never opened, with the reason.
fn failed(recs: Vec<Recorder>, error: &str, epoch: Instant) -> Vec<Transcript> {
    let now = epoch.elapsed().as_micros() as u64;
    recs.into_iter()
        .map(|r| {
            let mut t = r.finish(ConnEnd::Finished, now);
            let mut c = harness_model::Connection::opened(0, None, None, now);
            c.end = ConnEnd::ConnectFailed {
                error: format!("browser: {error}"),
            };
            c.ended_us = now;
            t.connections.push(c);
            t
        })
        .collect()
}

/// The wall clock, in µs since the Unix epoch.
fn wall_us() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i128)
        .unwrap_or(0)
}

/// A started browser run: the browser, its page's session, and its reports.
type Started = (
    Chromium,
    page::SessionGuard,
    tokio::sync::mpsc::UnboundedReceiver<Vec<page::Report>>,
);

/// Registers the page (and its frame on a foreign origin, when a client needs one)
/// and starts Chromium on it.
async fn launch(target: &Target, plans: &[BrowserPlan]) -> Result<Started, String> {
    let bin = chromium().ok_or("no Chromium found (Debian package chromium-headless-shell)")?;
    let mut main = Vec::new();
    let mut framed = Vec::new();
    let mut relays = std::collections::HashMap::new();
    for (c, p) in plans.iter().enumerate() {
        let url = if p.same_origin {
            relays.insert(c, relay_of(target, p)?);
            format!("e/{c}")
        } else {
            stream_url(target, p)?
        };
        match p.case {
            crate::scenario::BrowserCase::ForeignOrigin => framed.push((c, url)),
            _ => main.push((c, url)),
        }
    }
    let origin = page_origin(target.profile.browser.origin.as_deref())?;
    let server = page::server(0)?;
    let frame_origin = (!framed.is_empty()).then(|| foreign(&origin));
    let (session, rx) = server.register(
        page_html(target, &main, 0, frame_origin.as_deref()),
        (!framed.is_empty()).then(|| page_html(target, &framed, 1, None)),
        relays,
    );
    let url = session.url.replacen(&server.origin, &origin, 1);
    let browser = Chromium::start(&bin, &url)?;
    Ok((browser, session, rx))
}

/// A running Chromium, in a process group of its own.
struct Chromium {
    child: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Chromium {
    /// Starts headless Chromium on `url` with a fresh profile, in its own process group.
    fn start(bin: &std::path::Path, url: &str) -> Result<Chromium, String> {
        let profile = tempfile::Builder::new()
            .prefix("sse-harness-chromium-")
            .tempdir()
            .map_err(|e| format!("browser profile folder: {e}"))?;
        let child = tokio::process::Command::new(bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-background-timer-throttling",
                "--disable-renderer-backgrounding",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        Ok(Chromium {
            child,
            _profile: profile,
        })
    }

    /// Kills the browser's process group (its helpers with it) and reaps it.
    async fn stop(mut self) {
        self.kill_group();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }

    /// SIGKILL to the process group Chromium leads (its pid), while it is not reaped.
    fn kill_group(&self) {
        if let Some(pid) = self.child.id() {
            let group = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

impl Drop for Chromium {
    /// A run aborted before [`Chromium::stop`] (its scenario's bound passed) still
    /// takes the browser's helpers down with it.
    fn drop(&mut self) {
        self.kill_group();
    }
}

/// How a browser run ended.
enum Outcome {
    /// Every client caught up, gave up for good, stalled, or was told to stop.
    Done,
    /// The scenario's deadline passed.
    Deadline,
    /// The page never reported that it had created its `EventSource`s.
    NeverLoaded,
}

/// The loop that feeds reports to the recorders and decides when the clients are done.
struct Drive<'a> {
    ledger: &'a Ledger,
    ids: harness_model::IdMode,
    deadline: Instant,
    profile: &'a crate::profile::Profile,
    /// The wall clock at the scenario's epoch, in µs since the Unix epoch: the page
    /// stamps its reports with the wall clock.
    wall_at_epoch_us: i128,
}

impl Drive<'_> {
    /// Feeds reports to the recorders until the clients are done (caught up, given
    /// up, stalled or told to stop), the deadline passes, or the page never loads.
    async fn reports(
        &self,
        recs: &mut [Recorder],
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<page::Report>>,
        mut sig: Signals,
    ) -> Outcome {
        let mut ready = false;
        let mut next_n = [0u64; 2];
        let ready_by = (Instant::now() + READY_WITHIN).min(self.deadline);
        let mut opened_told = vec![false; recs.len()];
        let mut progress = Instant::now();
        let mut published = *sig.published.borrow();
        loop {
            if published && self.done(recs) {
                return Outcome::Done;
            }
            let stall_at = if published {
                progress + STALL
            } else {
                self.deadline
            };
            let wake = if ready {
                stall_at.min(self.deadline)
            } else {
                ready_by
            };
            tokio::select! {
                got = rx.recv() => {
                    let Some(batch) = got else { return Outcome::Deadline };
                    for r in &batch {
                        if !ready {
                            // The stall window counts from the page's first report:
                            // Chromium's start (bounded by READY_WITHIN) is not a
                            // stall of the browsers' streams.
                            progress = Instant::now();
                        }
                        ready = true;
                        let page = usize::from(r.p.min(1));
                        if r.n != next_n[page] {
                            tracing::warn!(expected = next_n[page], got = r.n, "browser page reports out of order");
                        }
                        next_n[page] = r.n + 1;
                        if let Some(rec) = recs.get_mut(r.c) {
                            let before = rec.received();
                            let at = ((r.t * 1000.0) as i128 - self.wall_at_epoch_us).max(0) as u64;
                            rec.apply(r, at, self.profile);
                            if rec.received() > before {
                                progress = Instant::now();
                            }
                            if rec.settled && !opened_told[r.c] {
                                opened_told[r.c] = true;
                                if let Some(tx) = &sig.opened {
                                    let _ = tx.send(rec.id().clone());
                                }
                            }
                        }
                    }
                }
                changed = sig.published.changed(), if !published => {
                    published = changed.is_err() || *sig.published.borrow();
                    progress = Instant::now();
                }
                _ = sig.stop.changed() => return Outcome::Done,
                _ = tokio::time::sleep_until(wake) => {
                    return match (ready, published && Instant::now() < self.deadline) {
                        (false, _) => Outcome::NeverLoaded,
                        (true, true) => Outcome::Done,
                        (true, false) => Outcome::Deadline,
                    };
                }
            }
        }
    }

    /// Whether every client has all it is owed or gave up for good.
    fn done(&self, recs: &[Recorder]) -> bool {
        recs.iter().all(|r| {
            r.gave_up_us.is_some()
                || r.capped
                || (r.loops && r.connections() >= LOOPS_SHOWN)
                || (!r.loops && r.caught_up(self.ledger, self.ids))
        })
    }
}
