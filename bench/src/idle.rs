//! Idle streams: resident memory per idle stream, on the server and on the client.
//!
//! The clients run in a child process (this binary's hidden `idle-clients`
//! subcommand) so that their memory is measured in a process that did nothing else:
//! the child notes its `VmRSS`, opens N streams, waits until every stream has its
//! first bytes, notes `VmRSS` again and prints both. On the reference server each
//! stream is the harness's own client (`sse_harness::client::run` with the spine
//! profile, one task each: its connection, parser, read buffer, recorder and
//! transcript, exactly what a scenario's subscriber holds); on nchan, which has no
//! harness profile wired into the bench, an sse-wire connection + parser + a 16 KiB
//! read buffer. The parent then waits until the server counts N streams, reads the
//! server's `VmRSS` (before: after start-up and one request), and closes the child's
//! stdin, which makes it close every connection and exit.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use sse_harness::client::{self, Signals, Until};
use sse_harness::ledger::Ledger;
use sse_wire::{Parser, ParserConfig};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::sync::{Semaphore, mpsc, watch};

use super::procs::{Nchan, RefServer, rss_bytes};
use super::wire::{
    Flavor, NchanHttp, Spine, harness_plan, harness_target, open_stream, wait_until,
};

/// Longest wait for N streams to open (and for the server to count them).
const OPEN_LIMIT: Duration = Duration::from_secs(120);
/// Connections being opened at once.
const OPEN_CONCURRENCY: usize = 64;

/// Per-stream memory of one idle measurement, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct IdleOutcome {
    /// Server RSS growth / N.
    pub server: f64,
    /// Client (bench child) RSS growth / N.
    pub client: f64,
}

/// Measures `n` idle `/v1/events` streams on a fresh reference-server process.
pub async fn spine(bin: &std::path::Path, n: u64) -> anyhow::Result<IdleOutcome> {
    let server = RefServer::start(bin).await?;
    let spine = Spine::new(&server.url)?;
    spine.metric("spine_active_streams").await?;
    let before = rss_bytes(server.pid)?;
    let res = async {
        let child = Clients::spawn(Flavor::Spine, &server.url, "/v1/events?job_id=idle", n).await?;
        wait_until(OPEN_LIMIT, "spine_active_streams = N", || async {
            Ok(spine.metric("spine_active_streams").await? as u64 == n)
        })
        .await?;
        let after = rss_bytes(server.pid)?;
        let client = child.finish().await?;
        anyhow::Ok(IdleOutcome {
            server: (after as f64 - before as f64) / n as f64,
            client,
        })
    }
    .await;
    server.stop().await?;
    res
}

/// Measures `n` idle subscribers on a fresh nchan (its worker's RSS).
pub async fn nchan(nchan: Nchan, n: u64) -> anyhow::Result<IdleOutcome> {
    let http = NchanHttp::new(&nchan.url)?;
    let base = http.subscribers().await?;
    let worker = nchan.worker_pid()?;
    let before = rss_bytes(worker)?;
    let res = async {
        let child = Clients::spawn(Flavor::Nchan, &nchan.url, "/sub/idle", n).await?;
        wait_until(OPEN_LIMIT, "nchan subscribers = N", || async {
            Ok(http.subscribers().await? == base + n)
        })
        .await?;
        let after = rss_bytes(worker)?;
        let client = child.finish().await?;
        anyhow::Ok(IdleOutcome {
            server: (after as f64 - before as f64) / n as f64,
            client,
        })
    }
    .await;
    nchan.stop().await?;
    res
}

/// The child process holding the idle clients.
struct Clients {
    child: tokio::process::Child,
    n: u64,
    before: u64,
    after: u64,
}

impl Clients {
    async fn spawn(flavor: Flavor, url: &str, path: &str, n: u64) -> anyhow::Result<Clients> {
        let exe = std::env::current_exe()?;
        let mut child = tokio::process::Command::new(exe)
            .args(["idle-clients", "--flavor", flavor.name(), "--url", url])
            .args(["--path", path, "--n", &n.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("spawning the idle-clients child")?;
        let out = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout pipe"))?;
        let mut lines = BufReader::new(out).lines();
        let line = tokio::time::timeout(OPEN_LIMIT, lines.next_line())
            .await
            .context("idle-clients: streams not open in time")??
            .ok_or_else(|| anyhow!("idle-clients exited without a report"))?;
        let mut it = line.split_whitespace().map(str::parse::<u64>);
        let (Some(Ok(before)), Some(Ok(after))) = (it.next(), it.next()) else {
            bail!("idle-clients printed {line:?}");
        };
        Ok(Clients {
            child,
            n,
            before,
            after,
        })
    }

    /// Tells the child to close its streams and exit; the client bytes per stream.
    async fn finish(mut self) -> anyhow::Result<f64> {
        drop(self.child.stdin.take());
        let status = tokio::time::timeout(OPEN_LIMIT, self.child.wait())
            .await
            .context("idle-clients did not exit")??;
        if !status.success() {
            bail!("idle-clients failed: {status}");
        }
        Ok((self.after as f64 - self.before as f64) / self.n as f64)
    }
}

/// The child's side: opens `n` streams, prints `rss_before rss_after`, holds them
/// until stdin closes (at most 10 minutes), then resets them.
pub async fn clients_main(flavor: Flavor, url: &str, path: &str, n: u64) -> anyhow::Result<()> {
    if flavor == Flavor::Spine {
        return harness_clients_main(url, path, n).await;
    }
    let before = rss_bytes(std::process::id())?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let opened = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(Semaphore::new(OPEN_CONCURRENCY));
    let mut tasks = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let (url, path, opened, gate) = (
            url.to_owned(),
            path.to_owned(),
            opened.clone(),
            gate.clone(),
        );
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await?;
            let mut resp = open_stream(flavor, &url, &path, None).await?;
            let mut parser = Parser::new(ParserConfig::default());
            let mut items = Vec::new();
            let mut buf = vec![0u8; 16 * 1024];
            let mut first = Some(permit);
            loop {
                tokio::select! {
                    r = resp.read_body(&mut buf) => {
                        let k = r?;
                        if k == 0 {
                            bail!("the server ended an idle stream");
                        }
                        parser.feed(&buf[..k], &mut items);
                        items.clear();
                        if first.take().is_some() {
                            opened.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ = stop.changed() => break,
                }
            }
            resp.reset();
            anyhow::Ok(())
        }));
    }
    wait_until(OPEN_LIMIT, "all idle streams open", || async {
        Ok(opened.load(Ordering::Relaxed) >= n)
    })
    .await?;
    report_then_hold(before, &stop_tx).await?;
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// [`clients_main`] on the reference server: `n` harness clients
/// (`sse_harness::client::run`), each reading `path` until told to stop; at most
/// [`OPEN_CONCURRENCY`] of them waiting for their first bytes at a time.
async fn harness_clients_main(url: &str, path: &str, n: u64) -> anyhow::Result<()> {
    let target = Arc::new(harness_target(url)?);
    let ledger = Arc::new(Ledger::default());
    let epoch = tokio::time::Instant::now();
    let deadline = epoch + Duration::from_secs(660);
    let (opened_tx, mut opened_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop) = watch::channel(false);
    let (_published_tx, published) = watch::channel(true);
    let (_burst_tx, burst) = watch::channel(false);
    let before = rss_bytes(std::process::id())?;
    let mut tasks = Vec::with_capacity(n as usize);
    let mut opened = 0u64;
    let open_wait = async {
        for i in 0..n {
            while i - opened >= OPEN_CONCURRENCY as u64 {
                opened_rx
                    .recv()
                    .await
                    .ok_or_else(|| anyhow!("clients gone"))?;
                opened += 1;
            }
            let plan = harness_plan(
                &format!("idle-{i}"),
                path.to_owned(),
                None,
                Until::For(Duration::from_secs(600)),
                deadline,
            );
            let sig = Signals {
                published: published.clone(),
                burst: burst.clone(),
                opened: Some(opened_tx.clone()),
                stop: stop.clone(),
            };
            tasks.push(tokio::spawn(client::run(
                target.clone(),
                ledger.clone(),
                plan,
                sig,
                epoch,
            )));
        }
        while opened < n {
            opened_rx
                .recv()
                .await
                .ok_or_else(|| anyhow!("clients gone"))?;
            opened += 1;
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(OPEN_LIMIT, open_wait)
        .await
        .context("idle streams not open in time")??;
    report_then_hold(before, &stop_tx).await?;
    for t in tasks {
        let transcript = t.await?;
        if let Some(c) = transcript
            .connections
            .iter()
            .find(|c| c.status != Some(200))
        {
            bail!("an idle stream was not served: {:?}", c.end);
        }
    }
    Ok(())
}

/// Prints the child's RSS before and after opening its streams, then holds them until
/// the parent closes stdin (at most 10 minutes) and tells every stream to stop.
async fn report_then_hold(before: u64, stop_tx: &watch::Sender<bool>) -> anyhow::Result<()> {
    let after = rss_bytes(std::process::id())?;
    println!("{before} {after}");
    use std::io::Write as _;
    std::io::stdout().flush()?;
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(600),
        tokio::io::stdin().read_to_end(&mut sink),
    )
    .await;
    let _ = stop_tx.send(true);
    Ok(())
}
