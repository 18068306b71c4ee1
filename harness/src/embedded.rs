//! The reference server as the harness runs it (cargo feature `embedded`, on by
//! default): inside this process when no `--target` is given, or as a child process
//! (`sse-harness serve-reference`) for scenarios that kill and restart the target.

use std::path::PathBuf;

use reference_server::variants::{Variant, VariantSet};
use reference_server::{Config, RunningServer};

use crate::error::{HarnessError, HarnessErrorKind};

/// The heartbeat interval the embedded server uses: short, so heartbeat and liveness
/// contracts are judged in seconds.
pub const EMBEDDED_HEARTBEAT_MS: u64 = 500;

/// The write-stall bound the embedded server uses (announced in `connection_open`):
/// short, so the stalled-reader probe is judged in seconds, and still above the
/// harness's slowest deliberate reader (`CT-11/fast-beside-stalled-readers` stops
/// reading for 8 s, with its buffers filling during the first seconds of it).
pub const EMBEDDED_WRITE_STALL_MS: u64 = 10_000;

/// The fault set named on a command line (`--fault NAME`, repeatable); an unknown name
/// is a usage error that lists the valid ones.
pub fn faults(names: &[String]) -> Result<reference_server::faults::FaultSet, HarnessError> {
    let mut out = Vec::new();
    for n in names {
        out.push(n.parse::<reference_server::faults::Fault>().map_err(|e| {
            HarnessError::new(HarnessErrorKind::Usage, format!("--fault {n}: {e}"))
        })?);
    }
    Ok(reference_server::faults::FaultSet::new(out))
}

/// The legal variations named on a command line (`--variant NAME`, repeatable); an
/// unknown name is a usage error that lists the valid ones.
pub fn variants(names: &[String]) -> Result<VariantSet, HarnessError> {
    let mut out = Vec::new();
    for n in names {
        out.push(n.parse::<Variant>().map_err(|e| {
            HarnessError::new(HarnessErrorKind::Usage, format!("--variant {n}: {e}"))
        })?);
    }
    Ok(VariantSet::new(out))
}

/// The origin of this process's browser pages ([`crate::browser::page_origin`]), which
/// every reference server the harness starts allows (CORS, protocol v1.1).
fn browser_origin() -> Result<String, HarnessError> {
    crate::browser::page_origin(None)
        .map_err(|e| HarnessError::new(HarnessErrorKind::Io, format!("browser page origin: {e}")))
}

/// A reference server running inside this process, with its temporary data folder.
pub struct EmbeddedServer {
    /// The running server.
    pub server: RunningServer,
    /// Keeps the data folder alive until the server is dropped.
    _data: Option<tempfile::TempDir>,
}

impl EmbeddedServer {
    /// Starts a reference server on 127.0.0.1 (port 0) with a temporary data folder.
    pub async fn start(
        faults: reference_server::faults::FaultSet,
    ) -> Result<EmbeddedServer, HarnessError> {
        EmbeddedServer::start_with(faults, VariantSet::default()).await
    }

    /// [`EmbeddedServer::start`] with legal variations on.
    pub async fn start_with(
        faults: reference_server::faults::FaultSet,
        variants: VariantSet,
    ) -> Result<EmbeddedServer, HarnessError> {
        let data = tempfile::Builder::new()
            .prefix("sse-harness-ref-")
            .tempdir()
            .map_err(|e| HarnessError::new(HarnessErrorKind::Io, format!("temp dir: {e}")))?;
        let mut cfg = Config::new(data.path(), format!("harness-{}", std::process::id()));
        cfg.faults = faults;
        cfg.variants = variants;
        let server = EmbeddedServer::start_cfg(cfg).await?;
        Ok(EmbeddedServer {
            server: server.server,
            _data: Some(data),
        })
    }

    /// Starts one on a given data folder (kept).
    pub async fn start_in(
        data: PathBuf,
        faults: reference_server::faults::FaultSet,
    ) -> Result<EmbeddedServer, HarnessError> {
        let mut cfg = Config::new(data, format!("harness-{}", std::process::id()));
        cfg.faults = faults;
        EmbeddedServer::start_cfg(cfg).await
    }

    /// Starts one with `cfg` (its heartbeat set to [`EMBEDDED_HEARTBEAT_MS`], its write
    /// stall to [`EMBEDDED_WRITE_STALL_MS`]); the data folder is kept.
    async fn start_cfg(mut cfg: Config) -> Result<EmbeddedServer, HarnessError> {
        cfg.heartbeat_ms = EMBEDDED_HEARTBEAT_MS;
        cfg.allow_origins.push(browser_origin()?);
        cfg.limits.write_stall_timeout = std::time::Duration::from_millis(EMBEDDED_WRITE_STALL_MS);
        let server = RunningServer::start(cfg).await.map_err(|e| {
            HarnessError::new(
                HarnessErrorKind::Server,
                format!("embedded reference server: {e}"),
            )
        })?;
        Ok(EmbeddedServer {
            server,
            _data: None,
        })
    }
}

/// A reference server to run as a child process through `sse-harness serve-reference`,
/// on a free loopback port with a temporary data folder: what the durability scenarios
/// need (they SIGKILL and restart it). Give [`ReferenceProcess::command`] to
/// `--server-cmd` and [`ReferenceProcess::url`] to `--target`
/// (`RunConfig::against_process` does both).
pub struct ReferenceProcess {
    /// The base URL it will listen on.
    pub url: String,
    /// Its bearer token.
    pub token: String,
    /// The shell command that starts it (with `exec`, so signals reach the server).
    pub command: String,
    _data: tempfile::TempDir,
}

impl ReferenceProcess {
    /// Plans one: `sse_harness_bin` is this package's binary; `faults` are switched on.
    pub fn plan(
        sse_harness_bin: &std::path::Path,
        faults: &reference_server::faults::FaultSet,
    ) -> Result<ReferenceProcess, HarnessError> {
        let io = |what: &str, e: std::io::Error| {
            HarnessError::new(HarnessErrorKind::Io, format!("{what}: {e}")).with_source(e)
        };
        let data = tempfile::Builder::new()
            .prefix("sse-harness-ref-")
            .tempdir()
            .map_err(|e| io("temp dir", e))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| io("free port", e))?;
        let token = format!("harness-{}", std::process::id());
        let mut command = format!(
            "exec '{}' serve-reference --addr 127.0.0.1:{port} --data '{}' --token {token} --heartbeat-ms {EMBEDDED_HEARTBEAT_MS}",
            sse_harness_bin.display(),
            data.path().display(),
        );
        for f in faults.iter() {
            command.push_str(&format!(" --fault {}", f.name()));
        }
        command.push_str(&format!(" --allow-origin {}", browser_origin()?));
        Ok(ReferenceProcess {
            url: format!("http://127.0.0.1:{port}"),
            token,
            command,
            _data: data,
        })
    }

    /// The same process with legal variations on (`--variant NAME` for each).
    pub fn with_variants(mut self, variants: &VariantSet) -> ReferenceProcess {
        for v in variants.iter() {
            self.command.push_str(&format!(" --variant {}", v.name()));
        }
        self
    }
}
