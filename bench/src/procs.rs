//! The servers under measurement, each a separate process so that its memory is its
//! own: the reference server (spawned from its release binary, URL parsed from its
//! stdout) and nginx + nchan (started and stopped with `targets/nchan/nchan.sh`).
//! Also the `/proc` readers (resident memory, child pids) the idle-stream measurement
//! needs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// The bearer token every reference-server process of the bench is started with.
pub const TOKEN: &str = "bench-token";

/// Longest wait for a server to start or stop.
const START_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `reference-server serve` process with its own data folder.
pub struct RefServer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its process id, for `/proc/<pid>/status`.
    pub pid: u32,
    _data: tempfile::TempDir,
}

impl RefServer {
    /// Spawns `bin serve` on a free loopback port with a fresh data folder and waits
    /// for its `listening on` line.
    pub async fn start(bin: &Path) -> anyhow::Result<RefServer> {
        let data = tempfile::Builder::new()
            .prefix("sse-bench-ref-")
            .tempdir()
            .context("creating the data folder")?;
        let log = std::fs::File::create(data.path().join("server.log"))?;
        let mut child = Command::new(bin)
            .args(["serve", "--addr", "127.0.0.1:0", "--token", TOKEN])
            // Room for the 10,000 idle streams of the idle part and the bench's own
            // requests beside them (the server's default cap is 10,000 connections).
            .args([
                "--heartbeat-ms",
                "15000",
                "--max-connections",
                "20000",
                "--data",
            ])
            .arg(data.path().join("data"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("reference-server exited at once"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout pipe"))?;
        let mut lines = BufReader::new(stdout).lines();
        let url = tokio::time::timeout(START_STOP_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(u) = line.strip_prefix("listening on ") {
                    return Ok(u.trim().to_owned());
                }
            }
            bail!("reference-server closed stdout without a `listening on` line")
        })
        .await
        .context("reference-server did not start within 30 s")??;
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(RefServer {
            child,
            url,
            pid,
            _data: data,
        })
    }

    /// SIGTERM, then waits (bounded) for the process to exit; SIGKILL after the deadline.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid)?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
            .context("sending SIGTERM to reference-server")?;
        match tokio::time::timeout(START_STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                status?;
                Ok(())
            }
            Err(_) => {
                self.child.kill().await?;
                bail!("reference-server did not exit within 30 s of SIGTERM (killed)")
            }
        }
    }
}

/// Finds the reference-server binary: `explicit` if given, else next to this
/// executable (target/release). Under `cargo run` it is (re)built first, so the
/// numbers are always for the current source.
pub fn reference_server_bin(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_owned());
    }
    workspace_bin("reference-server", "reference-server")
}

/// Finds the workspace binary `bin` of `package` next to this executable
/// (target/<profile>, also under `cargo bench`, whose executable is in `deps`), built
/// first under cargo.
pub fn workspace_bin(package: &str, bin: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow!("the bench executable has no parent folder"))?;
    // Under `cargo bench` the executable lives in target/<profile>/deps.
    let dir = if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    if let Ok(cargo) = std::env::var("CARGO") {
        let profile = if dir.ends_with("release") {
            vec!["--release"]
        } else {
            vec![]
        };
        eprintln!("building {package} ({cargo} build -p {package} {profile:?})");
        let status = std::process::Command::new(cargo)
            .args(["build", "--quiet", "-p", package])
            .args(profile)
            .current_dir(workspace_root())
            .status()
            .with_context(|| format!("running cargo build -p {package}"))?;
        if !status.success() {
            bail!("cargo build -p {package} failed");
        }
    }
    let path = dir.join(bin);
    if !path.exists() {
        bail!(
            "{} not found: run `cargo build --release -p {package}` first",
            path.display()
        );
    }
    Ok(path)
}

/// The workspace root (the parent of this crate's folder).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Why nchan could not be measured.
#[derive(Debug)]
pub enum NchanUnavailable {
    /// nginx or the nchan module is not installed.
    NotInstalled,
    /// It is installed but did not start.
    Failed(String),
}

/// A running nginx + nchan instance in its own folder.
pub struct Nchan {
    dir: tempfile::TempDir,
    stopped: bool,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Nchan {
    /// `nchan.sh start DIR` in a fresh folder, one worker process.
    pub async fn start() -> Result<Nchan, NchanUnavailable> {
        Nchan::start_with(1).await
    }

    /// `nchan.sh start DIR` in a fresh folder with `workers` nginx worker processes.
    pub async fn start_with(workers: u32) -> Result<Nchan, NchanUnavailable> {
        let dir = tempfile::Builder::new()
            .prefix("sse-bench-nchan-")
            .tempdir()
            .map_err(|e| NchanUnavailable::Failed(e.to_string()))?;
        let out = run_script("start", dir.path(), Some(workers))
            .await
            .map_err(|e| NchanUnavailable::Failed(format!("{e:#}")))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            if err.contains("not found") {
                return Err(NchanUnavailable::NotInstalled);
            }
            return Err(NchanUnavailable::Failed(err.trim().to_owned()));
        }
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !url.starts_with("http://") {
            return Err(NchanUnavailable::Failed(format!(
                "nchan.sh start printed {url:?}, not a URL"
            )));
        }
        Ok(Nchan {
            dir,
            url,
            stopped: false,
        })
    }

    /// The pid of the (single) nginx worker, whose memory holds the subscribers.
    pub fn worker_pid(&self) -> anyhow::Result<u32> {
        let master: u32 = std::fs::read_to_string(self.dir.path().join("nginx.pid"))?
            .trim()
            .parse()
            .context("nginx.pid")?;
        let kids = children(master)?;
        kids.into_iter()
            .find(|&p| {
                std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .map(|c| c.contains("worker process"))
                    .unwrap_or(false)
            })
            .ok_or_else(|| anyhow!("no nginx worker process under pid {master}"))
    }

    /// `nchan.sh stop DIR`.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stopped = true;
        let out = run_script("stop", self.dir.path(), None).await?;
        if !out.status.success() {
            bail!(
                "nchan.sh stop: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

impl Drop for Nchan {
    /// A bench that fails half-way still stops its (daemonised) nginx.
    fn drop(&mut self) {
        if !self.stopped {
            let _ = std::process::Command::new("bash")
                .arg(workspace_root().join("targets/nchan/nchan.sh"))
                .arg("stop")
                .arg(self.dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// `nchan.sh VERB DIR`, with `NCHAN_WORKERS` when starting.
async fn run_script(
    verb: &str,
    dir: &Path,
    workers: Option<u32>,
) -> anyhow::Result<std::process::Output> {
    let script = workspace_root().join("targets/nchan/nchan.sh");
    let mut cmd = Command::new("bash");
    if let Some(w) = workers {
        cmd.env("NCHAN_WORKERS", w.to_string());
    }
    let fut = cmd
        .arg(&script)
        .arg(verb)
        .arg(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(START_STOP_TIMEOUT, fut)
        .await
        .with_context(|| format!("nchan.sh {verb} did not finish within 30 s"))?
        .with_context(|| format!("running {}", script.display()))
}

/// The pids whose parent is `pid` (scanning `/proc`).
fn children(pid: u32) -> anyhow::Result<Vec<u32>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command: state, ppid, ...
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Resident memory of process `pid` in bytes (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))?;
    Ok(kb * 1024)
}

/// Raises this process's open-file limit (inherited by servers spawned afterwards)
/// to [`WANT_NOFILE`] where it may raise the hard limit, else to the hard limit;
/// returns the new soft limit.
pub fn raise_nofile() -> anyhow::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    // A privileged process (root in CI) may raise the hard limit itself; the servers
    // the bench starts inherit it. Otherwise the hard limit is the ceiling.
    if setrlimit(Resource::RLIMIT_NOFILE, WANT_NOFILE, WANT_NOFILE).is_ok() {
        return Ok(WANT_NOFILE);
    }
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok(hard)
}

/// The open-file limit the bench asks for: room for 50,000 idle streams on each side
/// of a loopback connection in one process tree.
const WANT_NOFILE: u64 = 131_072;
