//! The contract registry: every contract the harness can judge, loaded from the
//! `contracts/*.toml` files (embedded at build time so the binary runs anywhere).
//! Checkers name contracts by id; the registry supplies level and spec reference.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::model::{ContractId, Evidence, Finding, Level};

/// One contract: what must hold, how binding it is, and where it comes from.
#[derive(Clone, Debug, Deserialize)]
pub struct Contract {
    /// e.g. `resume.no-gap`.
    pub id: ContractId,
    /// MUST or SHOULD.
    pub level: Level,
    /// Protocol section or seed table row.
    pub spec: String,
    /// What must hold, in one sentence.
    pub title: String,
}

/// A family file: `contracts/<family>.toml`.
#[derive(Clone, Debug, Deserialize)]
pub struct Family {
    /// The family name, the prefix of its contracts' ids.
    pub family: String,
    /// A heading for reports.
    pub title: String,
    /// Its contracts.
    #[serde(rename = "contract")]
    pub contracts: Vec<Contract>,
}

/// The embedded family files (`contracts/*.toml` but the mutation table), by file name;
/// listed at build time, so a new family file is picked up without a code change.
pub const FAMILY_FILES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/family_files.rs"));

/// A contract id that exists: only the constants of [`ids`] are of this type, generated
/// from `contracts/*.toml` at build time, so naming a contract that does not exist is a
/// compile error.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KnownContract(&'static str);

impl KnownContract {
    /// The id as written in the contract file, e.g. `resume.no-gap`.
    pub const fn as_str(self) -> &'static str {
        self.0
    }

    /// The id as the serialisable [`ContractId`].
    pub fn id(self) -> ContractId {
        ContractId(self.0.to_owned())
    }
}

impl std::fmt::Display for KnownContract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl PartialEq<KnownContract> for ContractId {
    fn eq(&self, other: &KnownContract) -> bool {
        self.0 == other.0
    }
}

/// One constant per contract, named after its id (`resume.no-gap` → `RESUME_NO_GAP`),
/// with its level, source and title as its doc.
pub mod ids {
    use super::KnownContract;
    include!(concat!(env!("OUT_DIR"), "/contract_ids.rs"));
}

/// All contracts by id.
#[derive(Clone, Debug)]
pub struct Contracts {
    families: Vec<Family>,
    by_id: BTreeMap<ContractId, Contract>,
}

impl Contracts {
    /// The built-in registry. Panics only if an embedded file is malformed, which the
    /// crate's own tests rule out.
    pub fn builtin() -> Contracts {
        let mut families = Vec::new();
        let mut by_id = BTreeMap::new();
        for (name, text) in FAMILY_FILES {
            let fam: Family = toml::from_str(text)
                .unwrap_or_else(|e| panic!("embedded contracts/{name} is malformed: {e}"));
            for c in &fam.contracts {
                assert!(
                    c.id.family() == fam.family,
                    "contract {} is filed under family {}",
                    c.id,
                    fam.family
                );
                by_id.insert(c.id.clone(), c.clone());
            }
            families.push(fam);
        }
        Contracts { families, by_id }
    }

    /// Looks a contract up; checkers only use ids that exist (a test enforces it).
    pub fn get(&self, id: &str) -> Option<&Contract> {
        self.by_id.get(&ContractId::from(id))
    }

    /// Every contract, sorted by id.
    pub fn all(&self) -> impl Iterator<Item = &Contract> {
        self.by_id.values()
    }

    /// The families in file order.
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// Builds a finding for contract `id`, taking level and spec from the registry.
    /// Only generated ids ([`ids`]) can be named, so the id exists (the build made it
    /// from the same files the registry embeds).
    pub fn finding(&self, id: KnownContract, evidence: Evidence) -> Finding {
        let c = self
            .get(id.as_str())
            .unwrap_or_else(|| unreachable!("{id} is generated from the embedded files"));
        Finding {
            contract: c.id.clone(),
            level: c.level,
            spec: c.spec.clone(),
            evidence,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_ids_are_exactly_the_registry() {
        let c = Contracts::builtin();
        let generated: Vec<&str> = ids::ALL.iter().map(|k| k.as_str()).collect();
        let mut registry: Vec<&str> = c.all().map(|c| c.id.0.as_str()).collect();
        registry.sort();
        let mut sorted = generated.clone();
        sorted.sort();
        assert_eq!(sorted, registry);
        assert_eq!(ids::RESUME_NO_GAP.as_str(), "resume.no-gap");
        assert!(ids::RESUME_NO_GAP.id() == ids::RESUME_NO_GAP);
    }

    #[test]
    fn every_embedded_family_parses_and_ids_are_unique() {
        let c = Contracts::builtin();
        let n: usize = c.families().iter().map(|f| f.contracts.len()).sum();
        assert_eq!(n, c.all().count(), "duplicate contract ids");
        assert!(c.get("resume.no-gap").is_some());
    }

    #[test]
    fn finding_message_names_contract_client_seq_and_expectation() {
        let c = Contracts::builtin();
        let f = c.finding(
            ids::RESUME_NO_GAP,
            Evidence {
                client: Some(crate::model::ClientId("cutter#0".into())),
                connection: Some(3),
                seq: Some(crate::model::Seq(57)),
                expected: "seq 57 after 56".into(),
                seen: "seq 58".into(),
                ..Evidence::default()
            },
        );
        assert_eq!(
            f.message(),
            "[resume.no-gap] client cutter#0 conn 3 seq 57: expected seq 57 after 56, saw seq 58"
        );
        assert_eq!(f.level, Level::Must);
    }
}
