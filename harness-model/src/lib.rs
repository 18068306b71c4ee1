//! The harness's vocabulary, shared by the runner, the checkers and the reporters:
//! [`model`] (seqs, contract ids, findings, verdicts), [`contracts`] (the registry of
//! what must hold), [`transcript`] (what clients recorded) and [`events`] (the run
//! event stream reporters consume).
#![deny(missing_docs)]

pub mod contracts;
pub mod escape;
pub mod events;
pub mod model;
pub mod transcript;

pub use contracts::{Contract, Contracts};
pub use escape::untrusted;
pub use events::{Metric, RunEvent, RunMeta, ScenarioInfo, ScenarioResult, ScenarioStats};
pub use model::{ClientId, ContractId, Evidence, Finding, Level, Seq, Verdict};
pub use transcript::{
    Ack, Comment, ConnEnd, Connection, DataEvent, Expectations, Frame, FrameKind, LivenessProbe,
    PublishFailure, RecordLimit, Recording, StreamKind, Transcript, WireIssue,
};
