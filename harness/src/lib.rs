//! The contract-test and chaos harness for Server-Sent Events servers: the engine
//! behind the `sse-harness` binary and the `cargo test` conformance suite.
//!
//! Data flows one way: scenario file ([`scenario`]) → [`runner`] → scripted clients
//! over real sockets ([`client`], [`publisher`], [`probes`]) → recordings → the
//! contract checkers (`harness-checks`) → findings → one run event stream → the
//! reporters (`harness-report`). [`profile`] says how to talk to a kind of target.
//!
//! The entry point is [`run`] ([`engine`]): the binary, the conformance suite and the
//! mutation suite all call it. With the cargo feature `embedded` (on by default) the
//! reference server can be the target, in-process or as a child process
//! (`embedded`), and the `mutation` table plays its deliberate faults.
#![deny(missing_docs)]

pub mod barrier;
pub mod browser;
pub mod classify;
pub mod client;
pub mod control;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod engine;
pub mod error;
pub mod fate;
pub mod interrupt;
pub mod ledger;
pub mod limits;
pub mod merge;
#[cfg(feature = "embedded")]
pub mod mutation;
pub mod network;
pub mod outcome;
pub mod polite;
pub mod probes;
pub mod profile;
pub mod proxy_env;
pub mod publisher;
pub mod runner;
pub mod scenario;
pub mod shard;
pub mod shard_record;
pub mod source;
pub mod target;
pub mod tasks;
pub mod workload;

pub use engine::{RunConfig, RunOutcome, Selection, TargetSpec, run};
pub use error::{HarnessError, HarnessErrorKind};
