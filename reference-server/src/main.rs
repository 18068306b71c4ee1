//! `reference-server`: `serve` runs the spine server, `diagnostics` writes the
//! integrity report of a data folder.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use reference_server::faults::{Fault, FaultSet};
use reference_server::net::Limits;
use reference_server::variants::{Variant, VariantSet};
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
        /// A legal variation of the wire behaviour to switch on (repeatable): crlf,
        /// comments, split-writes, slow-consumer-close, small-replay-pages, gzip-flushed,
        /// charset-utf8, finished-task-204.
        #[arg(long = "variant", value_name = "NAME", value_parser = variant_parser())]
        variants: Vec<Variant>,
        #[command(flatten)]
        limits: LimitArgs,
        /// An origin whose browsers may call /v1/* (CORS), as scheme://host[:port]
        /// (repeatable); none by default.
        #[arg(long = "allow-origin", value_name = "ORIGIN")]
        allow_origins: Vec<String>,
        #[command(flatten)]
        grip: GripArgs,
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

/// The bounds against hostile or stuck clients (defaults: [`Limits::default`]).
#[derive(clap::Args)]
struct LimitArgs {
    /// Most open connections; above it a connection gets 503 at once.
    #[arg(long, default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Longest wait for a request head (and longest idle keep-alive), in ms.
    #[arg(long, default_value_t = ms(Limits::default().header_read_timeout))]
    header_timeout_ms: u64,
    /// Longest wait for the next piece of a request body, in ms.
    #[arg(long, default_value_t = ms(Limits::default().body_read_timeout))]
    body_timeout_ms: u64,
    /// Longest a response write may make no progress (slow consumer), in ms.
    #[arg(long, default_value_t = ms(Limits::default().write_stall_timeout))]
    write_stall_ms: u64,
    /// How long SIGTERM waits for connections to finish before cutting them, in ms.
    #[arg(long, default_value_t = ms(Limits::default().shutdown_grace))]
    shutdown_grace_ms: u64,
    /// Require the bearer token on GET /metrics too.
    #[arg(long)]
    metrics_auth: bool,
}

const fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl LimitArgs {
    fn apply(&self, cfg: &mut Config) {
        cfg.limits = Limits {
            header_read_timeout: Duration::from_millis(self.header_timeout_ms),
            body_read_timeout: Duration::from_millis(self.body_timeout_ms),
            max_connections: self.max_connections,
            write_stall_timeout: Duration::from_millis(self.write_stall_ms),
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
            ..Limits::default()
        };
        cfg.metrics_auth = self.metrics_auth;
    }
}

/// GRIP mode (behind Pushpin or another GRIP proxy; docs/spine-protocol.md).
#[derive(clap::Args)]
struct GripArgs {
    /// Publish every committed event to this GRIP publish endpoint (Pushpin:
    /// http://127.0.0.1:5561/publish/) and answer stream requests that come through the
    /// proxy with GRIP hold instructions.
    #[arg(long, value_name = "URL")]
    grip_publish: Option<String>,
    /// The longest one publish request may take, in ms.
    #[arg(long, default_value_t = 5_000, requires = "grip_publish")]
    grip_publish_timeout_ms: u64,
}

impl GripArgs {
    fn apply(&self, cfg: &mut Config) {
        cfg.grip = self.grip_publish.as_ref().map(|url| {
            let mut g = reference_server::grip::GripConfig::new(url.clone());
            g.publish_timeout = Duration::from_millis(self.grip_publish_timeout_ms);
            g
        });
    }
}

/// How long blocking work (an integrity report, an artifact write) may hold the exit
/// after the server has stopped.
const BLOCKING_EXIT_WAIT: Duration = Duration::from_secs(5);

/// Parses `--fault NAME`, listing every name in `--help` and in the error.
fn fault_parser() -> impl clap::builder::TypedValueParser<Value = Fault> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(Fault::ALL.iter().map(|f| f.name()))
        .try_map(|s| s.parse::<Fault>())
}

/// Parses `--variant NAME`, listing every name in `--help` and in the error.
fn variant_parser() -> impl clap::builder::TypedValueParser<Value = Variant> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(Variant::ALL.iter().map(|v| v.name()))
        .try_map(|s| s.parse::<Variant>())
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
            variants,
            limits,
            allow_origins,
            grip,
        } => {
            let (token, generated) = match token {
                Some(t) => (t, false),
                None => (uuid::Uuid::new_v4().simple().to_string(), true),
            };
            let mut cfg = Config::new(data, token);
            cfg.addr = addr;
            cfg.heartbeat_ms = heartbeat_ms;
            cfg.retry_ms = retry_ms;
            cfg.faults = FaultSet::new(faults);
            cfg.variants = VariantSet::new(variants);
            limits.apply(&mut cfg);
            cfg.allow_origins = allow_origins;
            grip.apply(&mut cfg);
            let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
            let served = rt.block_on(serve(cfg, generated));
            // Blocking work still running (hashing, an artifact write) is not waited for
            // past a bounded time.
            rt.shutdown_timeout(BLOCKING_EXIT_WAIT);
            served
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

async fn serve(cfg: Config, generated: bool) -> anyhow::Result<()> {
    // The handlers first: a SIGTERM sent as soon as the URL is printed must find them.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("installing the SIGINT handler")?;
    let server = RunningServer::start(cfg).await?;
    println!("listening on {}", server.url());
    if generated {
        println!("token: {}", server.token());
    }
    use std::io::Write as _;
    std::io::stdout().flush()?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("interrupt: shutting down"),
    }
    tokio::select! {
        stopped = server.shutdown() => stopped?,
        _ = term.recv() => exit_now("SIGTERM"),
        _ = int.recv() => exit_now("interrupt"),
    }
    Ok(())
}

/// A second signal during a graceful stop: exit at once.
fn exit_now(signal: &str) {
    tracing::warn!("{signal} again: exiting at once");
    std::process::exit(130);
}
