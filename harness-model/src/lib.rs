//! The harness's vocabulary, shared by the runner, the checkers and the reporters:
//! [`model`] (seqs, contract ids, findings, verdicts), [`contracts`] (the registry of
//! what must hold), [`transcript`] (what clients recorded), [`events`] (the run
//! event stream reporters consume), [`owed`] (what a subscriber is owed) and
//! [`heartbeat`] (the announced heartbeat interval).
#![deny(missing_docs)]

pub mod contracts;
pub mod escape;
pub mod events;
pub mod heartbeat;
pub mod indeterminate;
pub mod model;
pub mod network;
pub mod owed;
pub mod resume_ids;
pub mod shortfall;
pub mod transcript;
pub mod vocab;

pub use contracts::{Contract, Contracts, KnownContract, ids};
pub use escape::untrusted;
pub use events::{
    Interruption, Metric, Outcome, RunEvent, RunLimits, RunMeta, RunSummary, ScenarioInfo,
    ScenarioResult, ScenarioStats, ThresholdCheck, Totals,
};
pub use indeterminate::{Indeterminate, IndeterminateCause};
pub use model::{ClientId, ContractId, Evidence, Finding, Level, Seq, Verdict};
pub use network::{Network, ProxyLog};
pub use owed::{Cursor, IdMode, Subscription};
pub use resume_ids::{IdAnswer, IdCase, ResumeIdProbe};
pub use shortfall::Shortfall;
pub use transcript::{
    Ack, Agent, Comment, ConnEnd, Connection, DataEvent, Expectations, Frame, FrameKind, GroupPlan,
    HttpProtocol, JobReadBack, LivenessProbe, PublishFailure, Published, ReceiptRead, RecordLimit,
    Recording, ScenarioPlan, StalledReaderProbe, StreamKind, Transcript, WireIssue, WorkloadPlan,
};
pub use vocab::{Capability, CloseReason, CutAim, Family, WireViolation};
