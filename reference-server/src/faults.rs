//! Deliberate protocol deviations, off by default, switched on only from the command
//! line (`serve --fault NAME`) or by an embedding harness through [`crate::Config`].
//! No client request can turn one on. Every place a fault may hook reads
//! `state.faults`.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// One deliberate deviation from the spine protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// Idle streams never get a heartbeat.
    HeartbeatAbsent,
}

impl Fault {
    /// Every fault, in a stable order.
    pub const ALL: &'static [Fault] = &[Fault::HeartbeatAbsent];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Fault::HeartbeatAbsent => "heartbeat-absent",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fault name that is not one of [`Fault::ALL`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown fault {name:?}; known: {known}")]
pub struct UnknownFault {
    /// The name given.
    pub name: String,
    /// The known names, comma separated.
    pub known: String,
}

impl FromStr for Fault {
    type Err = UnknownFault;

    fn from_str(s: &str) -> Result<Fault, UnknownFault> {
        Fault::ALL
            .iter()
            .copied()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFault {
                name: s.to_owned(),
                known: Fault::ALL
                    .iter()
                    .map(|f| f.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// The faults switched on for one server (empty by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultSet {
    on: BTreeSet<Fault>,
}

impl FaultSet {
    /// A set with the given faults on.
    pub fn new(faults: impl IntoIterator<Item = Fault>) -> FaultSet {
        FaultSet {
            on: faults.into_iter().collect(),
        }
    }

    /// Whether `fault` is on.
    pub fn has(&self, fault: Fault) -> bool {
        self.on.contains(&fault)
    }

    /// Whether no fault is on.
    pub fn is_empty(&self) -> bool {
        self.on.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_parses_from_its_name_and_unknown_names_are_refused() {
        for f in Fault::ALL {
            assert_eq!(f.name().parse::<Fault>().unwrap(), *f);
        }
        let err = "nope".parse::<Fault>().unwrap_err();
        assert!(err.to_string().contains("heartbeat-absent"));
        assert!(FaultSet::default().is_empty());
    }
}
