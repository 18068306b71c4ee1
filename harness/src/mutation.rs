//! The mutation table: proof that every contract can fail. Each row of
//! `contracts/mutations.toml` names a deliberate fault of the reference server, the
//! contract that must catch it and the scenarios that exercise it. Playing a row
//! starts a reference server with that fault, runs the scenarios, and reports whether
//! the expected contract failed in every run, with the one-line finding it gave.

use harness_model::{Contracts, Finding};
use serde::Deserialize;

use crate::embedded::ReferenceProcess;
use crate::engine::{RunConfig, Selection, TargetSpec};
use crate::error::{HarnessError, HarnessErrorKind};
use crate::scenario::Scenario;

/// The embedded mutation table.
pub const TABLE: &str = include_str!("../../contracts/mutations.toml");

/// One row: a fault and what must catch it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mutation {
    /// The fault's name (`reference-server serve --fault NAME`).
    pub fault: String,
    /// The contract id that must fail.
    pub catches: String,
    /// Scenario ids (globs) to run with the fault on.
    pub scenarios: Vec<String>,
    /// Runs that must each catch it (timing faults: 3).
    #[serde(default = "one")]
    pub runs: u32,
    /// What the fault does, in one line.
    pub why: String,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
struct File {
    mutation: Vec<Mutation>,
}

/// The rows of the table.
pub fn table() -> Result<Vec<Mutation>, HarnessError> {
    let f: File = toml::from_str(TABLE).map_err(|e| {
        HarnessError::new(
            HarnessErrorKind::Scenario,
            format!("contracts/mutations.toml: {e}"),
        )
    })?;
    Ok(f.mutation)
}

/// What playing one row showed.
#[derive(Clone, Debug)]
pub struct MutationOutcome {
    /// The row.
    pub mutation: Mutation,
    /// Runs in which the expected contract failed.
    pub caught: u32,
    /// The first finding of the expected contract, as a person reads it.
    pub finding: Option<Finding>,
    /// Other contracts that also failed (not wrong: one fault often breaks several).
    pub also: Vec<String>,
    /// A run that could not be played, if any.
    pub error: Option<String>,
}

impl MutationOutcome {
    /// Whether every run caught the fault.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.caught == self.mutation.runs
    }
}

fn matching<'a>(m: &Mutation, all: &'a [Scenario]) -> Result<Vec<&'a Scenario>, HarnessError> {
    let mut b = globset::GlobSetBuilder::new();
    for g in &m.scenarios {
        b.add(globset::Glob::new(g).map_err(|e| {
            HarnessError::new(
                HarnessErrorKind::Scenario,
                format!("mutation {}: {e}", m.fault),
            )
        })?);
    }
    let set = b.build().map_err(|e| {
        HarnessError::new(
            HarnessErrorKind::Scenario,
            format!("mutation {}: {e}", m.fault),
        )
    })?;
    let picked: Vec<&Scenario> = all.iter().filter(|s| set.is_match(s.id())).collect();
    if picked.is_empty() {
        return Err(HarnessError::new(
            HarnessErrorKind::Scenario,
            format!(
                "mutation {}: no scenario matches {:?}",
                m.fault, m.scenarios
            ),
        ));
    }
    Ok(picked)
}

/// Plays one row: `runs` times, a fresh faulty server and the row's scenarios.
/// `sse_harness_bin` is this package's binary, used to run the server as a child
/// process for scenarios that kill and restart it.
pub async fn play(
    m: &Mutation,
    all: &[Scenario],
    seed: u64,
    sse_harness_bin: &std::path::Path,
) -> MutationOutcome {
    let mut out = MutationOutcome {
        mutation: m.clone(),
        caught: 0,
        finding: None,
        also: Vec::new(),
        error: None,
    };
    let scenarios = match matching(m, all) {
        Ok(s) => s,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    let fault = match m.fault.parse::<reference_server::faults::Fault>() {
        Ok(f) => f,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    for run in 0..m.runs {
        let mut caught = false;
        for sc in &scenarios {
            let findings = match play_one(
                sc,
                fault,
                seed.wrapping_add(u64::from(run)),
                sse_harness_bin,
            )
            .await
            {
                Ok(f) => f,
                Err(e) => {
                    out.error = Some(format!("{}: {e}", sc.id()));
                    return out;
                }
            };
            for f in findings {
                if f.contract.0 == m.catches {
                    caught = true;
                    if out.finding.is_none() {
                        out.finding = Some(f);
                    }
                } else if !out.also.contains(&f.contract.0) {
                    out.also.push(f.contract.0.clone());
                }
            }
        }
        if caught {
            out.caught += 1;
        }
    }
    out.also.sort();
    out
}

/// Plays one scenario against a fresh reference server with `fault` on, through the
/// engine's entry point (in-process, or as a child process when the scenario kills and
/// restarts its target).
async fn play_one(
    sc: &Scenario,
    fault: reference_server::faults::Fault,
    seed: u64,
    bin: &std::path::Path,
) -> Result<Vec<Finding>, HarnessError> {
    let faults = reference_server::faults::FaultSet::new([fault]);
    let needs_control = sc.probe.as_ref().is_some_and(|p| p.needs_control());
    let child = needs_control
        .then(|| ReferenceProcess::plan(bin, &faults))
        .transpose()?;
    let mut cfg = match &child {
        Some(c) => RunConfig::against_process(c),
        None => RunConfig::new(TargetSpec::Embedded { faults }),
    };
    cfg.selection = Selection::one(&sc.id());
    cfg.seed = Some(seed);
    let outcome = crate::engine::run(cfg, &mut |_| {}).await?;
    let r = outcome
        .results
        .into_iter()
        .next()
        .ok_or_else(|| HarnessError::new(HarnessErrorKind::Scenario, "no scenario ran"))?;
    if let harness_model::Verdict::Error { reason } = &r.verdict {
        return Err(HarnessError::new(HarnessErrorKind::Target, reason.clone()));
    }
    Ok(r.findings)
}

/// What the table's intro says of the Inconclusive verdict.
const INCONCLUSIVE: &str = "A fault counts as caught only by a MUST finding naming its contract: a scenario that comes back *Inconclusive* (every MUST held, but the run did not do what it set out to do: planned clients that left no transcript, planned cuts that never executed, a backpressure group that never ran far enough behind, a client owed writes that received none, publishing incomplete or ended within the stall window of the deadline) fails the run (exit 1) but catches nothing, since it names no contract.";

/// The table as Markdown: fault → contract → the one-line finding it gave.
pub fn markdown(outcomes: &[MutationOutcome], seed: u64) -> String {
    let mut s = String::from(
        "# Mutation table\n\nEvery deliberate fault of the reference server (`reference-server serve --fault NAME`), \
the contract that catches it, and the one-line finding it produced. Made by `sse-harness mutations` \
(seed ",
    );
    s.push_str(&format!(
        "{seed}); asserted by `cargo test -p sse-harness --test mutations`.\n\n{INCONCLUSIVE}\n\n| fault | what it does | caught by | runs caught | finding |\n|---|---|---|---|---|\n"
    ));
    for o in outcomes {
        let finding = match (&o.finding, &o.error) {
            (_, Some(e)) => format!("could not run: {e}"),
            (Some(f), None) => f.message(),
            (None, None) => "NOT CAUGHT".into(),
        };
        s.push_str(&format!(
            "| `{}` | {} | `{}` | {}/{} | {} |\n",
            o.mutation.fault,
            o.mutation.why,
            o.mutation.catches,
            o.caught,
            o.mutation.runs,
            finding.replace('|', "\\|")
        ));
    }
    s
}

/// Contracts that no row of the table proves (every contract should be provable).
pub fn unproven(contracts: &Contracts) -> Result<Vec<String>, HarnessError> {
    let rows = table()?;
    Ok(contracts
        .all()
        .map(|c| c.id.0.clone())
        .filter(|id| !id.starts_with("gate.") && !rows.iter().any(|r| &r.catches == id))
        .collect())
}
