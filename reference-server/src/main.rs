//! `reference-server`: `serve` runs the spine server, `diagnostics` writes the
//! integrity report of a data folder.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use reference_server::faults::{Fault, FaultSet};
use reference_server::{Config, RunningServer, integrity};

#[derive(Parser)]
#[command(version, about = "The spine reference SSE server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the spine protocol until SIGTERM or Ctrl-C.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: SocketAddr,
        /// Data folder (created if missing).
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        /// Bearer token; generated and printed when absent.
        #[arg(long, env = "SPINE_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Heartbeat interval of idle streams, in milliseconds.
        #[arg(long, default_value_t = 15_000)]
        heartbeat_ms: u64,
        /// The `retry:` advice sent to clients, in milliseconds.
        #[arg(long, default_value_t = 1_000)]
        retry_ms: u64,
        /// A deliberate protocol deviation to switch on (repeatable); see
        /// contracts/mutations.toml for what each does.
        #[arg(long = "fault", value_name = "NAME", value_parser = fault_parser())]
        faults: Vec<Fault>,
    },
    /// Write integrity_report.json and integrity_report.txt for a data folder.
    Diagnostics {
        /// The data folder.
        #[arg(long)]
        data: PathBuf,
        /// Where to write the reports.
        #[arg(long)]
        out: PathBuf,
        /// Hash artifacts of any size.
        #[arg(long)]
        full_integrity: bool,
    },
}

/// Parses `--fault NAME`, listing every name in `--help` and in the error.
fn fault_parser() -> impl clap::builder::TypedValueParser<Value = Fault> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(Fault::ALL.iter().map(|f| f.name()))
        .try_map(|s| s.parse::<Fault>())
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Serve {
            addr,
            data,
            token,
            heartbeat_ms,
            retry_ms,
            faults,
        } => {
            let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
            rt.block_on(serve(addr, data, token, heartbeat_ms, retry_ms, faults))
        }
        Command::Diagnostics {
            data,
            out,
            full_integrity,
        } => {
            let mut opts = integrity::IntegrityOptions::from_env(full_integrity)?;
            opts.progress = true;
            let report = integrity::build_report(&data, &opts)?;
            let files = integrity::write_report_files(&report, &out)?;
            for f in files {
                eprintln!("wrote {}", f.display());
            }
            let s = &report.summary;
            eprintln!(
                "integrity: ok {} warn {} fail {} skipped {}",
                s.ok, s.warn, s.fail, s.skipped
            );
            if s.fail > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

async fn serve(
    addr: SocketAddr,
    data: PathBuf,
    token: Option<String>,
    heartbeat_ms: u64,
    retry_ms: u64,
    faults: Vec<Fault>,
) -> anyhow::Result<()> {
    let (token, generated) = match token {
        Some(t) => (t, false),
        None => (uuid::Uuid::new_v4().simple().to_string(), true),
    };
    let mut cfg = Config::new(data, token);
    cfg.addr = addr;
    cfg.heartbeat_ms = heartbeat_ms;
    cfg.retry_ms = retry_ms;
    cfg.faults = FaultSet::new(faults);
    let server = RunningServer::start(cfg).await?;
    println!("listening on {}", server.url());
    if generated {
        println!("token: {}", server.token());
    }
    use std::io::Write as _;
    std::io::stdout().flush()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
    }
    server.shutdown().await?;
    Ok(())
}
