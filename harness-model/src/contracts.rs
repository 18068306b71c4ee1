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

/// The embedded family files, by file name.
pub const FAMILY_FILES: &[(&str, &str)] = &[
    ("resume.toml", include_str!("../../contracts/resume.toml")),
    (
        "delivery.toml",
        include_str!("../../contracts/delivery.toml"),
    ),
    (
        "lifecycle.toml",
        include_str!("../../contracts/lifecycle.toml"),
    ),
    (
        "heartbeat.toml",
        include_str!("../../contracts/heartbeat.toml"),
    ),
    ("version.toml", include_str!("../../contracts/version.toml")),
    ("framing.toml", include_str!("../../contracts/framing.toml")),
    (
        "durability.toml",
        include_str!("../../contracts/durability.toml"),
    ),
    (
        "liveness.toml",
        include_str!("../../contracts/liveness.toml"),
    ),
    ("gate.toml", include_str!("../../contracts/gate.toml")),
];

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
    ///
    /// # Panics
    /// If `id` is not a known contract: a programming error caught by the tests.
    pub fn finding(&self, id: &str, evidence: Evidence) -> Finding {
        let c = self
            .get(id)
            .unwrap_or_else(|| panic!("unknown contract id {id}"));
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
            "resume.no-gap",
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
