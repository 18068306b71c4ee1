//! The recipes for running across machines (`deploy/`), proved offline:
//!
//! - the Kubernetes manifests validate against the Kubernetes schemas
//!   (`kubernetes-validate --strict`), and the GitHub Actions workflow against GitHub's
//!   (`check-jsonschema --builtin-schema vendor.github-workflows`); both are PyPI
//!   packages carrying their schemas, installed by `.ci/run`;
//! - every `SSE_HARNESS_*` variable the recipes set is one the binary reads (its
//!   `run --help` names them), so a typo cannot pass for a setting;
//! - the Kubernetes recipe's own commands run on this machine: the shard Job's
//!   container (its args and environment, `$(VAR)`s expanded as Kubernetes expands
//!   them, one process per completion index, `/reports` in a temporary directory) and
//!   then the merge Job's, against a reference server, and the merged run must pass.
//!
//! No cluster or registry is reachable from here; these prove what can be proved
//! without one. The YAML is read through Python's `yaml` (which `kubernetes-validate`
//! brings), so the tests need no YAML crate. Without the Python tools the trials that
//! need them are ignored with a notice, except under `CI=true`, where they must run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_sse-harness");

/// The scenario the recipe's commands play here (a split workload, fast).
const SCENARIO: &str = "CT-12/ten-clients-at-once";

/// The longest one harness process of the recipe may take here.
const PROCESS_BOUND: Duration = Duration::from_secs(180);

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// The Kubernetes manifests (the kustomization itself is not a resource).
fn manifests() -> Vec<PathBuf> {
    ["reports-pvc.yaml", "shards-job.yaml", "merge-job.yaml"]
        .iter()
        .map(|f| deploy().join("kubernetes").join(f))
        .collect()
}

fn workflow() -> PathBuf {
    deploy().join("github-actions/sharded-run.yml")
}

/// Whether `tool` runs (`--version`).
fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `cmd`; Ok when it exits 0, else its output.
fn run_ok(cmd: &mut Command) -> Result<(), Failed> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{cmd:?} exited {}:\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .into())
}

/// The documents of a YAML file, as JSON (through Python's `yaml`).
fn yaml(path: &Path) -> Result<Vec<Value>, String> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(path)
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "reading {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// The one document of a YAML file.
fn doc(path: &Path) -> Result<Value, String> {
    yaml(path)?
        .into_iter()
        .next()
        .ok_or_else(|| format!("{} is empty", path.display()))
}

/// The variables `sse-harness <sub> --help` says it reads (`[env: NAME=]`).
fn env_read_by(sub: &str) -> Result<Vec<String>, String> {
    let out = Command::new(BIN)
        .args([sub, "--help"])
        .output()
        .map_err(|e| e.to_string())?;
    let help = String::from_utf8_lossy(&out.stdout);
    Ok(help
        .split("[env: ")
        .skip(1)
        .filter_map(|s| s.split(['=', ']']).next())
        .map(str::to_owned)
        .collect())
}

/// Every `SSE_HARNESS_*` name the recipes set: the kustomization's ConfigMap literals,
/// the Jobs' `env`, the workflow's job `env`.
fn names_set() -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let kustomization = doc(&deploy().join("kubernetes/kustomization.yaml"))?;
    for lit in kustomization["configMapGenerator"][0]["literals"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = lit.as_str().unwrap_or("").split('=').next().unwrap_or("");
        out.push(("kustomization.yaml".to_owned(), name.to_owned()));
    }
    for m in manifests() {
        let d = doc(&m)?;
        for c in d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for e in c["env"].as_array().into_iter().flatten() {
                out.push((
                    m.display().to_string(),
                    e["name"].as_str().unwrap_or("").to_owned(),
                ));
            }
        }
    }
    let wf = doc(&workflow())?;
    for (job, j) in wf["jobs"].as_object().into_iter().flatten() {
        for name in j["env"].as_object().into_iter().flatten().map(|(k, _)| k) {
            out.push((format!("workflow job {job}"), name.clone()));
        }
    }
    Ok(out
        .into_iter()
        .filter(|(_, n)| n.starts_with("SSE_HARNESS_"))
        .collect())
}

fn env_names_are_read() -> Result<(), Failed> {
    let read = env_read_by("run")?;
    let unknown: Vec<_> = names_set()?
        .into_iter()
        .filter(|(_, n)| !read.contains(n))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!("set by the recipes but read by no flag of `run`: {unknown:?}").into())
    }
}

/// The shard Job's container: its args, its environment (name → value or the
/// `fieldRef`/`secretKeyRef` it comes from) and the completion count.
struct ShardJob {
    args: Vec<String>,
    env: Vec<(String, Value)>,
    completions: u32,
}

fn shard_job() -> Result<ShardJob, String> {
    let d = doc(&deploy().join("kubernetes/shards-job.yaml"))?;
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    Ok(ShardJob {
        args: strings(&c["args"]),
        env: c["env"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| (e["name"].as_str().unwrap_or("").to_owned(), e.clone()))
            .collect(),
        completions: d["spec"]["completions"].as_u64().unwrap_or(0) as u32,
    })
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// Kubernetes' `$(VAR)` expansion of `s` from the variables defined so far.
fn expand(s: &str, vars: &BTreeMap<String, String>) -> String {
    vars.iter()
        .fold(s.to_owned(), |s, (k, v)| s.replace(&format!("$({k})"), v))
}

/// The environment of shard `index` as Kubernetes would give it, with the ConfigMap's
/// target, token and scenario replaced by this machine's, and `/reports` under `root`.
fn shard_env(
    job: &ShardJob,
    index: u32,
    url: &str,
    token: &str,
    root: &Path,
) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    vars.insert("SSE_HARNESS_TARGET".to_owned(), url.to_owned());
    vars.insert("SSE_HARNESS_PROFILE".to_owned(), "spine".to_owned());
    vars.insert("SSE_HARNESS_SEED".to_owned(), "7".to_owned());
    vars.insert("SSE_HARNESS_SCENARIO".to_owned(), SCENARIO.to_owned());
    for (name, e) in &job.env {
        let value = if let Some(v) = e["value"].as_str() {
            expand(v, &vars).replace("/reports", &root.display().to_string())
        } else if e["valueFrom"]["fieldRef"].is_object() {
            index.to_string()
        } else {
            token.to_owned()
        };
        vars.insert(name.clone(), value);
    }
    vars
}

/// Waits until `url` answers, within the deadline.
fn wait_up(url: &str) -> Result<(), String> {
    let addr = url.trim_start_matches("http://").to_owned();
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        if std::net::TcpStream::connect(&addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{url} did not answer within 30 s"))
}

/// A child process killed when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `child` within [`PROCESS_BOUND`]; its exit code.
fn wait_bounded(mut child: Killed, what: &str) -> Result<i32, String> {
    let until = Instant::now() + PROCESS_BOUND;
    loop {
        if let Some(s) = child.0.try_wait().map_err(|e| e.to_string())? {
            return Ok(s.code().unwrap_or(-1));
        }
        if Instant::now() >= until {
            return Err(format!("{what} still running after {PROCESS_BOUND:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kubernetes_recipe_runs() -> Result<(), Failed> {
    let job = shard_job()?;
    if job.completions < 2 {
        return Err(format!("the shard Job has {} completions", job.completions).into());
    }
    let root = tempfile::tempdir().map_err(|e| e.to_string())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let token = "deploy-test-token";
    let server = Killed(
        Command::new(BIN)
            .args([
                "serve-reference",
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--token",
                token,
            ])
            .arg("--data")
            .arg(root.path().join("server-data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?,
    );
    let url = format!("http://127.0.0.1:{port}");
    wait_up(&url)?;
    let shards: Vec<(u32, Killed)> = (0..job.completions)
        .map(|i| {
            let env = shard_env(&job, i, &url, token, root.path());
            let log = std::fs::File::create(root.path().join(format!("shard-{i}.log")))
                .map_err(|e| e.to_string())?;
            let child = Command::new(BIN)
                .args(&job.args)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .envs(&env)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map(Killed)
                .map_err(|e| e.to_string())?;
            Ok((i, child))
        })
        .collect::<Result<_, String>>()?;
    for (i, child) in shards {
        let code = wait_bounded(child, &format!("shard {i}"))?;
        if code != 0 {
            let log = std::fs::read_to_string(root.path().join(format!("shard-{i}.log")))
                .unwrap_or_default();
            return Err(format!("shard {i} of the recipe exited {code}:\n{log}").into());
        }
    }
    let merge = doc(&deploy().join("kubernetes/merge-job.yaml"))?;
    let args: Vec<String> = strings(&merge["spec"]["template"]["spec"]["containers"][0]["args"])
        .into_iter()
        .map(|a| a.replace("/reports", &root.path().display().to_string()))
        .collect();
    let out = Command::new(BIN)
        .args(&args)
        .output()
        .map_err(|e| e.to_string())?;
    drop(server);
    if !out.status.success() {
        return Err(format!(
            "the recipe's merge exited {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let summary = root.path().join("merged/summary.json");
    let s: Value = serde_json::from_slice(&std::fs::read(&summary).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let verdicts: Vec<&Value> = s["scenarios"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| &r["verdict"])
        .collect();
    if verdicts != [&Value::from("pass")] {
        return Err(format!("the merged report of {SCENARIO}: verdicts {verdicts:?}").into());
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let tools = [
        ("kubernetes-validate", have("kubernetes-validate")),
        ("check-jsonschema", have("check-jsonschema")),
        (
            "python3 with yaml",
            run_ok(Command::new("python3").args(["-c", "import yaml"])).is_ok(),
        ),
    ];
    for (tool, here) in tools {
        assert!(
            here || !ci,
            "{tool} is missing: under CI=true the deploy tests must run (.ci/run installs it)"
        );
        if !here {
            eprintln!(
                "NOTICE: {tool} is missing (pip install kubernetes-validate check-jsonschema); the trials needing it are ignored"
            );
        }
    }
    let trials = vec![
        Trial::test("deploy/kubernetes-schemas", || {
            run_ok(
                Command::new("kubernetes-validate")
                    .arg("--strict")
                    .args(manifests()),
            )
        })
        .with_ignored_flag(!tools[0].1),
        Trial::test("deploy/actions-schema", || {
            run_ok(
                Command::new("check-jsonschema")
                    .args(["--builtin-schema", "vendor.github-workflows"])
                    .arg(workflow()),
            )
        })
        .with_ignored_flag(!tools[1].1),
        Trial::test("deploy/env-names-are-read", env_names_are_read).with_ignored_flag(!tools[2].1),
        Trial::test("deploy/kubernetes-recipe-runs", kubernetes_recipe_runs)
            .with_ignored_flag(!tools[2].1),
    ];
    libtest_mimic::run(&args, trials).exit();
}
