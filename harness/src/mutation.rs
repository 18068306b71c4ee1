//! The mutation table: proof that every contract can fail. Each row of
//! `contracts/mutations.toml` names a deliberate fault of the reference server, the
//! contract that must catch it and the scenarios that exercise it. Playing a row
//! starts a reference server with that fault, runs the scenarios, and reports whether
//! the expected contract failed in every run, with the one-line finding it gave.
//!
//! A failure counts only against a control: the same scenario with the same seed and
//! no fault ([`Controls`], played once per scenario and seed and shared by every row)
//! must not fail that contract, so a check that misfires on its own never "catches" a
//! fault. A row is played against its listed scenarios ([`Scope::Listed`], what `cargo
//! test` asserts) or against every scenario that declares its contract's family
//! ([`Scope::Family`], the whole matrix behind `docs/MUTATIONS.md`).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use harness_model::{ContractId, Contracts, Family, Finding};
use reference_server::faults::FaultSet;
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
    /// The fault shows only across client addresses: caught by merging the shards of
    /// a split run (harness/tests/shards.rs), never by one process, so the
    /// single-process players skip it.
    #[serde(default)]
    pub across_shards: bool,
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

/// Which scenarios a row is played against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The scenarios the row lists (what `cargo test` asserts).
    Listed,
    /// Every scenario that declares the family of the contract the row catches (the
    /// whole matrix, `sse-harness mutations --all-scenarios`).
    Family,
}

/// What one scenario showed for one row, over all its runs.
#[derive(Clone, Debug)]
pub struct ScenarioCatch {
    /// The scenario id.
    pub scenario: String,
    /// Runs in which the contract failed with the fault on and not in the control.
    pub caught: u32,
    /// Runs in which the control (same scenario, same seed, no fault) failed the
    /// contract on its own: those runs cannot count as catching the fault.
    pub control_misfires: u32,
    /// Runs in which the faulty server could not be played at all (no client could
    /// connect, say): they name no contract, so they catch nothing.
    pub errors: u32,
}

/// What playing one row showed.
#[derive(Clone, Debug)]
pub struct MutationOutcome {
    /// The row.
    pub mutation: Mutation,
    /// The scope it was played in.
    pub scope: Scope,
    /// Runs in which at least one scenario caught the fault (see [`ScenarioCatch`]).
    pub caught: u32,
    /// Per scenario played, how often it caught the fault.
    pub scenarios: Vec<ScenarioCatch>,
    /// The first finding of the expected contract, as a person reads it.
    pub finding: Option<Finding>,
    /// Other contracts that also failed (not wrong: one fault often breaks several).
    pub also: Vec<String>,
    /// Why the row could not be played (an unknown fault, a control that could not
    /// run), if it could not.
    pub error: Option<String>,
    /// The first faulty run that could not be played (scenario: reason), if any.
    pub fault_error: Option<String>,
}

impl MutationOutcome {
    /// Whether every run caught the fault.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.caught == self.mutation.runs
    }

    /// How many of the scenarios played caught the fault in every run.
    pub fn scenarios_caught(&self) -> usize {
        let runs = self.mutation.runs;
        self.scenarios.iter().filter(|s| s.caught == runs).count()
    }

    /// Runs, over all scenarios, in which the control failed the contract on its own.
    pub fn control_misfires(&self) -> u32 {
        self.scenarios.iter().map(|s| s.control_misfires).sum()
    }
}

fn matching<'a>(m: &Mutation, all: &'a [Scenario]) -> Result<Vec<&'a Scenario>, HarnessError> {
    let set = crate::engine::glob_set(&m.scenarios).map_err(|e| {
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

/// The scenarios a row is played against in `scope`: its listed ones, or every
/// scenario that declares the family of the contract it catches (the listed ones
/// first, so `cargo test` and the matrix agree on their order).
pub fn scenarios_of<'a>(
    m: &Mutation,
    all: &'a [Scenario],
    scope: Scope,
) -> Result<Vec<&'a Scenario>, HarnessError> {
    let mut picked = matching(m, all)?;
    if scope == Scope::Family {
        let family = family_of(m)?;
        for sc in all {
            let declares = sc.families.contains(&family);
            if declares && !picked.iter().any(|p| p.id() == sc.id()) {
                picked.push(sc);
            }
        }
    }
    Ok(picked)
}

/// The family of the contract a row catches (`resume.no-gap` → `resume`).
fn family_of(m: &Mutation) -> Result<Family, HarnessError> {
    ContractId(m.catches.clone())
        .family()
        .parse::<Family>()
        .map_err(|e| {
            HarnessError::new(
                HarnessErrorKind::Scenario,
                format!("mutation {}: catches {}: {e}", m.fault, m.catches),
            )
        })
}

/// The contracts each scenario fails with no fault on, per seed: the control every
/// fault's run of the same scenario and seed is compared with. Each is played once and
/// shared (across threads and runtimes: the suite's trials each have their own).
#[derive(Default)]
pub struct Controls {
    played: Mutex<HashMap<(String, u64), ControlCell>>,
}

/// One control, played by the first that asks for it.
type ControlCell = Arc<tokio::sync::OnceCell<Result<Arc<BTreeSet<String>>, String>>>;

impl Controls {
    /// The contracts `sc` fails with `seed` and no fault (played on first use).
    pub async fn failed(
        &self,
        sc: &Scenario,
        seed: u64,
        bin: &Path,
    ) -> Result<Arc<BTreeSet<String>>, HarnessError> {
        let cell = {
            let mut played = self.played.lock().unwrap_or_else(|p| p.into_inner());
            played.entry((sc.id(), seed)).or_default().clone()
        };
        let got = cell
            .get_or_init(|| async {
                play_one(sc, FaultSet::default(), seed, bin)
                    .await
                    .map(|fs| Arc::new(fs.into_iter().map(|f| f.contract.0).collect()))
                    .map_err(|e| e.to_string())
            })
            .await;
        got.clone().map_err(|e| {
            HarnessError::new(
                HarnessErrorKind::Target,
                format!("control of {} (seed {seed}): {e}", sc.id()),
            )
        })
    }
}

/// Plays mutation rows: the scenarios, the seed, the binary that runs the reference
/// server as a child process (for scenarios that kill and restart it), and the shared
/// controls.
pub struct Player {
    /// Every scenario.
    pub all: Vec<Scenario>,
    /// Run `r` of a row uses seed `seed + r` (for the faulty run and its control).
    pub seed: u64,
    /// This package's binary.
    pub bin: PathBuf,
    /// Which scenarios each row is played against.
    pub scope: Scope,
    /// The controls, shared by every row.
    pub controls: Controls,
    /// How many scenarios of one run are played at once (at least 1). Each plays
    /// against a server of its own, so they only share the machine; the table's
    /// rows and findings come out in the same order whatever this is.
    pub jobs: usize,
}

impl Player {
    /// Plays one row: `runs` times, each scenario in scope against a fresh faulty
    /// server, each compared with its control. A run caught the fault when at least
    /// one scenario failed the contract and its control did not.
    pub async fn play(&self, m: &Mutation) -> MutationOutcome {
        let mut out = MutationOutcome {
            mutation: m.clone(),
            scope: self.scope,
            caught: 0,
            scenarios: Vec::new(),
            finding: None,
            also: Vec::new(),
            error: None,
            fault_error: None,
        };
        let scenarios = match scenarios_of(m, &self.all, self.scope) {
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
        out.scenarios = scenarios
            .iter()
            .map(|sc| ScenarioCatch {
                scenario: sc.id(),
                caught: 0,
                control_misfires: 0,
                errors: 0,
            })
            .collect();
        for run in 0..m.runs {
            let seed = self.seed.wrapping_add(u64::from(run));
            // Unordered, so a long scenario does not hold up the start of the next;
            // put back in scenario order before anything is kept.
            let mut plays = futures_util::stream::iter(scenarios.iter().enumerate())
                .map(|(i, sc)| async move { (i, self.play_scenario(m, sc, fault, seed).await) })
                .buffer_unordered(self.jobs.max(1))
                .collect::<Vec<_>>()
                .await;
            plays.sort_by_key(|(i, _)| *i);
            let plays = plays.into_iter().map(|(_, p)| p);
            let mut caught = false;
            for (i, (sc, played)) in scenarios.iter().zip(plays).enumerate() {
                let (catch, findings) = match played {
                    Ok(p) => p,
                    Err(e) => {
                        out.error = Some(format!("{}: {e}", sc.id()));
                        return out;
                    }
                };
                out.note(m, findings);
                match catch {
                    Catch::Caught => {
                        caught = true;
                        out.scenarios[i].caught += 1;
                    }
                    Catch::Misfire => out.scenarios[i].control_misfires += 1,
                    Catch::Missed => {}
                    Catch::Errored(e) => {
                        out.scenarios[i].errors += 1;
                        out.fault_error
                            .get_or_insert_with(|| format!("{}: {e}", sc.id()));
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

    /// One scenario, one seed: the faulty run against the control, with the faulty
    /// run's findings.
    async fn play_scenario(
        &self,
        m: &Mutation,
        sc: &Scenario,
        fault: reference_server::faults::Fault,
        seed: u64,
    ) -> Result<(Catch, Vec<Finding>), HarnessError> {
        // A faulty server that cannot be played at all names no contract: a miss with
        // its reason, not the end of the row (only a control that cannot run is).
        let findings = match play_one(sc, FaultSet::new([fault]), seed, &self.bin).await {
            Ok(f) => f,
            Err(e) => return Ok((Catch::Errored(e.to_string()), Vec::new())),
        };
        if !findings.iter().any(|f| f.contract.0 == m.catches) {
            return Ok((Catch::Missed, findings));
        }
        let control = self.controls.failed(sc, seed, &self.bin).await?;
        let catch = if control.contains(&m.catches) {
            Catch::Misfire
        } else {
            Catch::Caught
        };
        Ok((catch, findings))
    }
}

impl MutationOutcome {
    /// Keeps the first finding of the row's contract, and the other contracts that
    /// failed.
    fn note(&mut self, m: &Mutation, findings: Vec<Finding>) {
        for f in findings {
            if f.contract.0 == m.catches {
                if self.finding.is_none() {
                    self.finding = Some(f);
                }
            } else if !self.also.contains(&f.contract.0) {
                self.also.push(f.contract.0.clone());
            }
        }
    }
}

/// What one faulty run of one scenario showed against its control.
enum Catch {
    /// The contract failed, and not in the control.
    Caught,
    /// The contract failed, but the control failed it too.
    Misfire,
    /// The contract held.
    Missed,
    /// The faulty run could not be played (why).
    Errored(String),
}

/// Plays one scenario against a fresh reference server with `faults` on, through the
/// engine's entry point (in-process, or as a child process when the scenario kills and
/// restarts its target).
async fn play_one(
    sc: &Scenario,
    faults: FaultSet,
    seed: u64,
    bin: &Path,
) -> Result<Vec<Finding>, HarnessError> {
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

/// The table as Markdown: fault → contract → how many runs and scenarios caught it →
/// the one-line finding it gave.
pub fn markdown(outcomes: &[MutationOutcome], seed: u64, scope: Scope) -> String {
    let mut s = String::from(
        "# Mutation table\n\nEvery deliberate fault of the reference server (`reference-server serve --fault NAME`), \
the contract that catches it, and the one-line finding it produced. Made by `sse-harness mutations",
    );
    if scope == Scope::Family {
        s.push_str(" --all-scenarios");
    }
    s.push_str(&format!(
        "` (seed {seed}); asserted by `cargo test -p sse-harness --test mutations` on each row's listed scenarios.\n\n{INCONCLUSIVE}\n\n\
A fault counts as caught in a scenario only if the same scenario with the same seed and no fault \
(its control, played once and shared by every fault) does not fail that contract. \
*runs caught*: runs in which at least one scenario caught it (`runs` in `contracts/mutations.toml`; \
each run uses seed + run). *scenarios caught*: of the scenarios played (with `--all-scenarios`: \
every scenario that declares the contract's family), how many caught it in every run. \
*control misfires*: runs in which a control failed the contract on its own (such a run never counts).\n\n\
| fault | what it does | caught by | runs caught | scenarios caught | control misfires | finding |\n|---|---|---|---|---|---|---|\n"
    ));
    for o in outcomes {
        let finding = match (&o.finding, &o.error, &o.fault_error) {
            (_, Some(e), _) => format!("could not run: {e}"),
            (Some(f), None, _) if o.caught > 0 => f.message(),
            (Some(f), None, _) => format!(
                "NOT CAUGHT (only where the control fails too: {})",
                f.message()
            ),
            (None, None, Some(e)) => {
                format!("NOT CAUGHT (the faulty server could not be played: {e})")
            }
            (None, None, None) => "NOT CAUGHT".into(),
        };
        s.push_str(&format!(
            "| `{}` | {} | `{}` | {}/{} | {}/{} | {} | {} |\n",
            o.mutation.fault,
            o.mutation.why,
            o.mutation.catches,
            o.caught,
            o.mutation.runs,
            o.scenarios_caught(),
            o.scenarios.len(),
            o.control_misfires(),
            finding.replace('|', "\\|")
        ));
    }
    if scope == Scope::Family {
        s.push_str(&misses(outcomes));
    }
    s
}

/// The matrix's second table: per fault, the scenarios of its family that did not
/// catch it in every run (a family scenario need not exercise every fault: an idle
/// stream never resumes; this shows where each fault is and is not seen).
fn misses(outcomes: &[MutationOutcome]) -> String {
    let mut s = String::from(
        "\n## Where each fault was not caught\n\nThe scenarios of the contract's family that did not catch the fault in every run \
(*misfire*: the control failed the contract too in that many runs; *could not run*: the faulty \
server could not be played at all in that many runs, e.g. no client could connect, which names no contract). A scenario of the family need not \
exercise every fault of it: an idle stream never resumes, a task stream never lags.\n\n\
| fault | not caught by |\n|---|---|\n",
    );
    for o in outcomes {
        let missed: Vec<String> = o
            .scenarios
            .iter()
            .filter(|c| c.caught < o.mutation.runs)
            .map(|c| {
                let mut note = format!("{}/{}", c.caught, o.mutation.runs);
                if c.control_misfires > 0 {
                    note.push_str(&format!(", misfire {}", c.control_misfires));
                }
                if c.errors > 0 {
                    note.push_str(&format!(", could not run {}", c.errors));
                }
                format!("`{}` ({note})", c.scenario)
            })
            .collect();
        let cell = if missed.is_empty() {
            "every scenario caught it".to_string()
        } else {
            missed.join(", ")
        };
        s.push_str(&format!("| `{}` | {cell} |\n", o.mutation.fault));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_family_scope_adds_every_scenario_of_the_contracts_family_after_the_listed_ones() {
        let all = crate::scenario::builtin().unwrap();
        let rows = table().unwrap();
        let m = rows
            .iter()
            .find(|m| m.fault == "correlation-id-per-frame")
            .unwrap();
        let listed = scenarios_of(m, &all, Scope::Listed).unwrap();
        let family = scenarios_of(m, &all, Scope::Family).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id(), family[0].id());
        let declaring = all
            .iter()
            .filter(|s| s.families.contains(&Family::Lifecycle))
            .count();
        assert_eq!(family.len(), declaring);
        assert!(
            family
                .iter()
                .all(|s| s.families.contains(&Family::Lifecycle))
        );
    }

    #[test]
    fn every_row_catches_a_contract_of_a_known_family() {
        for m in table().unwrap() {
            family_of(&m).unwrap();
        }
    }
}
