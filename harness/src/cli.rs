//! The command line: flags, their `SSE_HARNESS_*` environment variables and the
//! optional config file, merged in that order of precedence (flag, then environment,
//! then `sse-harness.toml`, then the built-in default), the way nextest reads
//! `.config/nextest.toml`.
//!
//! The config file is `--config FILE` (`SSE_HARNESS_CONFIG`), else the first of
//! `.config/sse-harness.toml` and `sse-harness.toml` found in the current folder or
//! its parents, up to the repository root. Its `[run]` table takes the `run` flags'
//! long names (`target`, `profile`, `scenario = [..]`, `threshold = [..]`, …); an
//! unknown key is an error that lists the valid ones. Tokens and `--header` values
//! (which carry secrets) are not read from it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use harness_report::Threshold;
use serde::Deserialize;

/// `sse-harness`: contract tests and chaos for Server-Sent Events servers.
#[derive(Parser)]
#[command(
    name = "sse-harness",
    version,
    about = "Contract-test and chaos harness for Server-Sent Events servers"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Run scenarios against a target and write a report directory.
    Run(Box<RunArgs>),
    /// Merge the shard records of one split run (`run --shard I/N`) into one report,
    /// judged across every shard; exits as `run` would.
    Merge(MergeArgs),
    /// List the scenarios (and whether the profile can run them).
    List(ListArgs),
    /// Play the mutation table: each deliberate server fault against the scenarios that
    /// must catch it; prints the table (fault → contract → finding) as Markdown.
    Mutations(MutationArgs),
    /// Run the reference server as a standalone process (what --server-cmd uses in tests).
    #[command(hide = true)]
    ServeReference(ServeArgs),
}

/// When to colour the terminal output.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    /// When stderr is a terminal and `NO_COLOR` is not set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// How the run is reported on the standard streams.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageFormat {
    /// Progress and a summary table on stderr.
    Human,
    /// Also every run event as one line of JSON on stdout.
    Json,
}

/// `sse-harness run`.
#[derive(Args, Default)]
pub struct RunArgs {
    /// Base URL of the target, e.g. http://127.0.0.1:8080. Without it the embedded
    /// reference server is started in-process (temporary data, port 0).
    #[arg(long, env = "SSE_HARNESS_TARGET")]
    pub target: Option<String>,
    /// Target profile: spine, generic, nchan, pushpin, or a path to a profile TOML file [default: spine].
    #[arg(long, env = "SSE_HARNESS_PROFILE")]
    pub profile: Option<String>,
    /// Bearer token for the target (the profile's [auth] says where it goes).
    #[arg(long, env = "SSE_HARNESS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Run only scenarios whose id (`GROUP/name`) matches this glob; repeatable.
    #[arg(long = "scenario", value_name = "GLOB", env = "SSE_HARNESS_SCENARIO")]
    pub scenarios: Vec<String>,
    /// Load scenario files from this folder instead of the built-in ones.
    #[arg(long, value_name = "DIR", env = "SSE_HARNESS_SCENARIOS_DIR")]
    pub scenarios_dir: Option<PathBuf>,
    /// Seed for every random choice; printed in every report. Default: random.
    #[arg(long, env = "SSE_HARNESS_SEED")]
    pub seed: Option<u64>,
    /// Where to write the report (default: reports/<UTC time>-<seed>/).
    #[arg(long, value_name = "DIR", env = "SSE_HARNESS_REPORT_DIR")]
    pub report_dir: Option<PathBuf>,
    /// A gate such as `publish_to_deliver.p99 < 50ms`; repeatable (adds to the profile's).
    /// A run whose contracts all held but whose threshold failed exits 3.
    #[arg(long = "threshold", value_name = "EXPR", env = "SSE_HARNESS_THRESHOLD")]
    pub thresholds: Vec<Threshold>,
    /// Known failures: the run fails on any other failure and on entries that now pass.
    #[arg(long, value_name = "FILE", env = "SSE_HARNESS_BASELINE")]
    pub baseline: Option<PathBuf>,
    /// Write this run's failures as a baseline file.
    #[arg(long, value_name = "FILE", env = "SSE_HARNESS_WRITE_BASELINE")]
    pub write_baseline: Option<PathBuf>,
    /// Shell command that starts the target (run with `exec`); lets the durability
    /// scenarios kill and restart it. The harness starts it first.
    #[arg(long, value_name = "CMD", env = "SSE_HARNESS_SERVER_CMD")]
    pub server_cmd: Option<String>,
    /// Embedded server only: turn on a deliberate fault (repeatable), to see a contract fail.
    #[arg(long = "fault", value_name = "NAME", env = "SSE_HARNESS_FAULT")]
    pub faults: Vec<String>,
    /// Embedded server only: turn on a legal variation of its wire behaviour
    /// (repeatable): crlf, comments, split-writes, slow-consumer-close,
    /// small-replay-pages, gzip-flushed, charset-utf8, finished-task-204. A correct
    /// harness passes every one.
    #[arg(long = "variant", value_name = "NAME", env = "SSE_HARNESS_VARIANT")]
    pub variants: Vec<String>,
    /// Also write every scenario's full recording (each frame of each client, with
    /// times and byte offsets) as JSON under <report-dir>/recordings/.
    #[arg(long, env = "SSE_HARNESS_KEEP_RECORDINGS")]
    pub keep_recordings: bool,
    /// Open streams over HTTP/2 (as the profile's `[subscribe] http = "h2"` does):
    /// negotiated by ALPN over https (falling back to HTTP/1.1 when the target does
    /// not pick h2; every transcript records what was spoken), prior knowledge over
    /// http. Plain requests (publish, setup) stay HTTP/1.1.
    #[arg(long, env = "SSE_HARNESS_HTTP2")]
    pub http2: bool,
    /// Do not send the headers a browser's EventSource sends on streams
    /// (`Accept-Encoding: gzip, deflate, br`, `Cache-Control: no-cache`): `Accept:
    /// text/event-stream` alone, as the profile's `[subscribe] browser_headers = false`.
    #[arg(long, env = "SSE_HARNESS_NO_BROWSER_HEADERS")]
    pub no_browser_headers: bool,
    /// A local address streams connect from (repeatable: taken in turn, one per
    /// connection). Linux gives each source address about 28,000 ephemeral ports
    /// towards one target address and port, so 50,000 streams to one target need two or
    /// more. On loopback any 127.0.0.x is local; elsewhere add the address to an
    /// interface. An address that is not this machine's is an error.
    #[arg(
        long = "source-addr",
        value_name = "ADDR",
        env = "SSE_HARNESS_SOURCE_ADDR",
        value_delimiter = ','
    )]
    pub source_addrs: Vec<std::net::IpAddr>,
    /// What all the clients of one scenario may record together, in MiB (estimated)
    /// [default: 256]. A stream that would pass it stops with `gate.record-limit`, so a
    /// target that floods the harness fails the run instead of exhausting memory. Every
    /// event is kept until the scenario is judged (about 1.5 KiB of memory per event on
    /// a spine stream: BENCHMARKS.md, "Harness memory per event"), so a long soak run of
    /// millions of events needs more; the per-connection caps of frames and comments
    /// (1,000,000) grow in proportion.
    #[arg(
        long,
        value_name = "MIB",
        env = "SSE_HARNESS_MAX_RECORDED_MIB",
        value_parser = clap::value_parser!(u64).range(1..=sse_harness::limits::MAX_RECORDED_MIB)
    )]
    pub max_recorded_mib: Option<u64>,
    /// Colour: auto, always or never [default: auto].
    #[arg(long, value_enum, env = "SSE_HARNESS_COLOR")]
    pub color: Option<Color>,
    /// Same as `--color never`.
    #[arg(long, hide = true)]
    pub no_color: bool,
    /// `human` (default) or `json`: also stream every run event as a JSON line on stdout.
    #[arg(long, value_enum, env = "SSE_HARNESS_MESSAGE_FORMAT")]
    pub message_format: Option<MessageFormat>,
    /// Read defaults for these flags from this TOML file (see `sse-harness.toml`).
    #[arg(long, value_name = "FILE", env = "SSE_HARNESS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Polite mode: `--scale`, `--max-rate`, `--max-clients`.
    #[command(flatten)]
    pub polite: crate::polite_args::PoliteArgs,
    /// Extra request headers: `--header 'K: V'`.
    #[command(flatten)]
    pub auth: crate::auth_args::AuthArgs,
    /// TLS (an `https` target): trust, and who the harness is.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Running across machines: `--shard`, `--barrier-dir`, `--start-at`.
    #[command(flatten)]
    pub shard: ShardArgs,
}

/// `run` as one shard of a split run (README "Running across machines").
#[derive(Args, Clone, Debug, Default)]
pub struct ShardArgs {
    /// Play shard I of N (from 0): the I-th part of every split scenario's clients and
    /// publish requests, planned from the seed as the whole run plans them; probes,
    /// browser and toxics scenarios run whole on shard 0. Writes `shard.json.gz` into the
    /// report directory for `sse-harness merge`. Needs --barrier-dir when N > 1.
    #[arg(long, value_name = "I/N", env = "SSE_HARNESS_SHARD")]
    pub shard: Option<sse_harness::shard::ShardSpec>,
    /// A directory every shard can read and write (a fresh one per run): the shards
    /// wait for each other there at every phase of a split scenario.
    #[arg(long, value_name = "DIR", env = "SSE_HARNESS_BARRIER_DIR")]
    pub barrier_dir: Option<PathBuf>,
    /// The longest a shard waits for the others at one phase, in seconds; then the
    /// scenario is an error naming the shards missing.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 120,
        env = "SSE_HARNESS_BARRIER_TIMEOUT"
    )]
    pub barrier_timeout: u64,
    /// Start the scenarios at this time (RFC 3339, e.g. 2025-05-01T12:00:00Z), once
    /// the target answers: shards on several machines begin together.
    #[arg(long, value_name = "TIME", env = "SSE_HARNESS_START_AT")]
    pub start_at: Option<String>,
}

/// `sse-harness merge`.
#[derive(Args)]
pub struct MergeArgs {
    /// The report directories of every shard of one run (each holds `shard.json.gz`).
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Where to write the merged report.
    #[arg(long, value_name = "DIR")]
    pub report_dir: PathBuf,
    /// A gate such as `publish_to_deliver.p99 < 50ms`; repeatable (adds to the profile's).
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<Threshold>,
    /// `human` (default) or `json`: also stream every run event as a JSON line on stdout.
    #[arg(long, value_enum)]
    pub message_format: Option<MessageFormat>,
}

/// TLS flags of `run`, for an `https` target: streams and plain requests alike.
#[derive(Args, Clone, Debug, Default)]
pub struct TlsArgs {
    /// Trust the CAs in this PEM file instead of the system's roots.
    #[arg(long, value_name = "FILE", env = "SSE_HARNESS_CACERT")]
    pub cacert: Option<PathBuf>,
    /// Do not verify the target's certificate (said loudly on stderr and in every report).
    #[arg(long, env = "SSE_HARNESS_INSECURE")]
    pub insecure: bool,
    /// Client certificate chain (PEM) for mTLS; needs --key.
    #[arg(long, value_name = "FILE", env = "SSE_HARNESS_CERT", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, value_name = "FILE", env = "SSE_HARNESS_KEY", requires = "cert")]
    pub key: Option<PathBuf>,
}

impl TlsArgs {
    /// The wire client's TLS options.
    pub fn options(&self) -> sse_wire::TlsOptions {
        sse_wire::TlsOptions {
            cacert: self.cacert.clone(),
            insecure: self.insecure,
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }
}

/// `sse-harness list`.
#[derive(Args)]
pub struct ListArgs {
    /// Profile used to tell which scenarios would be skipped.
    #[arg(long, default_value = "spine", env = "SSE_HARNESS_PROFILE")]
    pub profile: String,
    /// Load scenario files from this folder instead of the built-in ones.
    #[arg(long, value_name = "DIR", env = "SSE_HARNESS_SCENARIOS_DIR")]
    pub scenarios_dir: Option<PathBuf>,
    /// Only scenarios whose id matches this glob; repeatable.
    #[arg(long = "scenario", value_name = "GLOB")]
    pub scenarios: Vec<String>,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `sse-harness mutations`.
#[derive(Args)]
pub struct MutationArgs {
    /// Only this fault (repeatable).
    #[arg(long = "fault", value_name = "NAME")]
    pub faults: Vec<String>,
    /// Seed for the scenarios' random choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Play each fault against every scenario that declares its contract's family
    /// (the whole matrix behind docs/MUTATIONS.md), not only the scenarios its row lists.
    #[arg(long)]
    pub all_scenarios: bool,
    /// Scenarios of one run played at once, each against a server of its own (more
    /// is faster, but loads the machine the timing contracts are judged on; controls
    /// are played under the same load).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub jobs: u16,
    /// Write the Markdown table to this file (default: stdout).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `sse-harness serve-reference`.
#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub addr: std::net::SocketAddr,
    /// Data folder.
    #[arg(long)]
    pub data: PathBuf,
    /// Bearer token.
    #[arg(long)]
    pub token: String,
    /// Heartbeat interval.
    #[arg(long, default_value_t = sse_harness::embedded::EMBEDDED_HEARTBEAT_MS)]
    pub heartbeat_ms: u64,
    /// Longest a stream's writes may make no progress before it is cut as a slow consumer.
    #[arg(long, default_value_t = sse_harness::embedded::EMBEDDED_WRITE_STALL_MS)]
    pub write_stall_ms: u64,
    /// A deliberate fault to switch on (repeatable).
    #[arg(long = "fault", value_name = "NAME")]
    pub faults: Vec<String>,
    /// A legal variation to switch on (repeatable).
    #[arg(long = "variant", value_name = "NAME")]
    pub variants: Vec<String>,
    /// An origin whose browsers get CORS headers (repeatable; the harness passes its
    /// browser page origin).
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allow_origins: Vec<String>,
    /// Most connections served at once (streams and requests); past it a connection
    /// waits to be accepted.
    #[arg(long, default_value_t = reference_server::net::Limits::default().max_connections)]
    pub max_connections: usize,
}

/// The config file's `[run]` table: defaults for the `run` flags of the same names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RunDefaults {
    target: Option<String>,
    profile: Option<String>,
    #[serde(default)]
    scenario: Vec<String>,
    scenarios_dir: Option<PathBuf>,
    seed: Option<u64>,
    report_dir: Option<PathBuf>,
    #[serde(default)]
    threshold: Vec<Threshold>,
    baseline: Option<PathBuf>,
    server_cmd: Option<String>,
    #[serde(default)]
    fault: Vec<String>,
    #[serde(default)]
    variant: Vec<String>,
    keep_recordings: Option<bool>,
    http2: Option<bool>,
    color: Option<Color>,
    message_format: Option<MessageFormat>,
    cacert: Option<PathBuf>,
    insecure: Option<bool>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    scale: Option<f64>,
    max_rate: Option<u64>,
    max_clients: Option<u32>,
    #[serde(default)]
    source_addr: Vec<std::net::IpAddr>,
    max_recorded_mib: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    run: RunDefaults,
}

impl RunArgs {
    /// Fills every flag not given on the command line or in the environment from the
    /// config file (when there is one), then applies the built-in defaults. Returns the
    /// config file used.
    pub fn with_config(&mut self, cwd: &Path) -> Result<Option<PathBuf>> {
        let path = match &self.config {
            Some(p) => Some(p.clone()),
            None => find_config(cwd),
        };
        if let Some(p) = &path {
            let text = std::fs::read_to_string(p).with_context(|| format!("{}", p.display()))?;
            let file: ConfigFile =
                toml::from_str(&text).with_context(|| format!("config file {}", p.display()))?;
            self.merge(file.run);
            self.polite
                .check()
                .map_err(|e| anyhow::anyhow!("config file {}: {e}", p.display()))?;
            let most = sse_harness::limits::MAX_RECORDED_MIB;
            if self
                .max_recorded_mib
                .is_some_and(|m| !(1..=most).contains(&m))
            {
                anyhow::bail!(
                    "config file {}: max-recorded-mib must be from 1 to {most}",
                    p.display()
                );
            }
            if self.tls.cert.is_some() != self.tls.key.is_some() {
                anyhow::bail!(
                    "config file {}: cert and key go together (a client certificate needs its key)",
                    p.display()
                );
            }
        }
        self.profile.get_or_insert_with(|| "spine".into());
        if self.no_color {
            self.color = Some(Color::Never);
        }
        Ok(path)
    }

    fn merge(&mut self, d: RunDefaults) {
        fill(&mut self.target, d.target);
        fill(&mut self.profile, d.profile);
        fill(&mut self.scenarios_dir, d.scenarios_dir);
        fill(&mut self.seed, d.seed);
        fill(&mut self.report_dir, d.report_dir);
        fill(&mut self.baseline, d.baseline);
        fill(&mut self.server_cmd, d.server_cmd);
        fill(&mut self.color, d.color);
        fill(&mut self.message_format, d.message_format);
        fill(&mut self.max_recorded_mib, d.max_recorded_mib);
        if self.scenarios.is_empty() {
            self.scenarios = d.scenario;
        }
        if self.thresholds.is_empty() {
            self.thresholds = d.threshold;
        }
        if self.faults.is_empty() {
            self.faults = d.fault;
        }
        if self.variants.is_empty() {
            self.variants = d.variant;
        }
        if self.source_addrs.is_empty() {
            self.source_addrs = d.source_addr;
        }
        self.keep_recordings |= d.keep_recordings.unwrap_or(false);
        fill(&mut self.tls.cacert, d.cacert);
        self.tls.insecure |= d.insecure.unwrap_or(false);
        if self.tls.cert.is_none() && self.tls.key.is_none() {
            self.tls.cert = d.cert;
            self.tls.key = d.key;
        }
        fill(&mut self.polite.scale, d.scale);
        fill(&mut self.polite.max_rate, d.max_rate);
        fill(&mut self.polite.max_clients, d.max_clients);
        self.http2 |= d.http2.unwrap_or(false);
    }
}

fn fill<T>(slot: &mut Option<T>, default: Option<T>) {
    if slot.is_none() {
        *slot = default;
    }
}

/// The first `.config/sse-harness.toml` or `sse-harness.toml` in `start` or a parent,
/// stopping at the repository root (the first folder with a `.git`).
fn find_config(start: &Path) -> Option<PathBuf> {
    for dir in start.ancestors() {
        for name in [".config/sse-harness.toml", "sse-harness.toml"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
        if dir.join(".git").exists() {
            break;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recording_budget_flag_takes_1_mib_to_1_tib() {
        let parse = |v: &str| Cli::try_parse_from(["sse-harness", "run", "--max-recorded-mib", v]);
        match parse("2048").map(|c| c.command) {
            Ok(Command::Run(a)) => assert_eq!(a.max_recorded_mib, Some(2048)),
            _ => panic!("2048 MiB is a budget"),
        }
        for bad in ["0", "1048577", "lots"] {
            let err = parse(bad).err().expect("refused").to_string();
            assert!(err.contains("--max-recorded-mib"), "{bad}: {err}");
        }
    }

    #[test]
    fn flags_win_over_the_config_file_which_wins_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        std::fs::write(
            dir.path().join("sse-harness.toml"),
            "[run]\nprofile = \"nchan\"\nseed = 9\nscenario = [\"CT-10/*\"]\n\
             threshold = [\"publish_to_deliver.p99 < 5ms\"]\ncolor = \"never\"\n",
        )
        .unwrap();
        let sub = dir.path().join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        let mut a = RunArgs {
            seed: Some(1),
            ..RunArgs::default()
        };
        let used = a.with_config(&sub).unwrap();
        assert_eq!(used, Some(dir.path().join("sse-harness.toml")));
        assert_eq!(a.seed, Some(1), "the flag wins");
        assert_eq!(a.profile.as_deref(), Some("nchan"));
        assert_eq!(a.scenarios, ["CT-10/*"]);
        assert_eq!(a.thresholds[0].to_string(), "publish_to_deliver.p99 < 5ms");
        assert_eq!(a.color, Some(Color::Never));
    }

    #[test]
    fn a_typo_in_the_config_file_names_the_valid_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[run]\nprofil = \"spine\"\n").unwrap();
        let mut a = RunArgs {
            config: Some(p),
            ..RunArgs::default()
        };
        let err = format!("{:#}", a.with_config(dir.path()).unwrap_err());
        assert!(err.contains("unknown field `profil`"), "{err}");
        assert!(err.contains("`profile`"), "{err}");
    }

    #[test]
    fn tls_and_polite_keys_come_from_the_config_file_too() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "[run]\ncacert = \"ca.pem\"\ninsecure = true\ncert = \"c.pem\"\nkey = \"k.pem\"\n\
             scale = 0.5\nmax-rate = 100\nmax-clients = 4\nmax-recorded-mib = 1024\n",
        )
        .unwrap();
        let mut a = RunArgs {
            config: Some(p.clone()),
            ..RunArgs::default()
        };
        a.polite.max_rate = Some(7);
        a.with_config(dir.path()).unwrap();
        assert_eq!(a.tls.cacert.as_deref(), Some(Path::new("ca.pem")));
        assert!(a.tls.insecure);
        assert_eq!(a.tls.key.as_deref(), Some(Path::new("k.pem")));
        assert_eq!(a.polite.scale, Some(0.5));
        assert_eq!(a.polite.max_rate, Some(7), "the flag wins");
        assert_eq!(a.polite.max_clients, Some(4));
        assert_eq!(a.max_recorded_mib, Some(1024));
        for (bad, says) in [
            (
                "max-recorded-mib = 0",
                "max-recorded-mib must be from 1 to 1048576",
            ),
            ("scale = 2.0", "scale: 2 is not in (0, 1]"),
            ("cert = \"c.pem\"", "cert and key go together"),
            ("header = [\"K: V\"]", "unknown field `header`"),
        ] {
            std::fs::write(&p, format!("[run]\n{bad}\n")).unwrap();
            let mut a = RunArgs {
                config: Some(p.clone()),
                ..RunArgs::default()
            };
            let err = format!("{:#}", a.with_config(dir.path()).unwrap_err());
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn no_config_file_means_built_in_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        let mut a = RunArgs::default();
        assert_eq!(a.with_config(dir.path()).unwrap(), None);
        assert_eq!(a.profile.as_deref(), Some("spine"));
    }
}
