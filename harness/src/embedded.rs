//! What the harness carries inside its binary: the scenario files (so `sse-harness run`
//! works from any folder) and the in-process reference server that `run` uses when no
//! `--target` is given.

use std::path::PathBuf;

use reference_server::{Config, RunningServer};

use crate::error::{HarnessError, HarnessErrorKind};

/// The scenario files under `scenarios/`, as (path relative to the repository, text).
pub const SCENARIOS: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/scenarios.rs"));

/// The heartbeat interval the embedded server uses: short, so heartbeat and liveness
/// contracts are judged in seconds.
pub const EMBEDDED_HEARTBEAT_MS: u64 = 500;

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
        let data = tempfile::Builder::new()
            .prefix("sse-harness-ref-")
            .tempdir()
            .map_err(|e| HarnessError::new(HarnessErrorKind::Io, format!("temp dir: {e}")))?;
        let server = EmbeddedServer::start_in(data.path().to_path_buf(), faults).await?;
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
        cfg.heartbeat_ms = EMBEDDED_HEARTBEAT_MS;
        cfg.faults = faults;
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
