//! The contract-test and chaos harness for Server-Sent Events servers: the engine
//! behind the `sse-harness` binary and the `cargo test` conformance suite.
//!
//! Data flows one way: scenario file ([`scenario`]) → [`runner`] → scripted clients
//! over real sockets ([`client`], [`publisher`], [`probes`]) → recordings → the
//! contract checkers (`harness-checks`) → findings → one run event stream → the
//! reporters (`harness-report`). [`profile`] says how to talk to a kind of target,
//! [`embedded`] starts the reference server in-process.
#![deny(missing_docs)]

pub mod classify;
pub mod client;
pub mod control;
pub mod embedded;
pub mod error;
pub mod ledger;
pub mod limits;
pub mod mutation;
pub mod probes;
pub mod profile;
pub mod publisher;
pub mod runner;
pub mod scenario;
pub mod target;
pub mod tasks;
pub mod workload;

pub use error::{HarnessError, HarnessErrorKind};

/// The contract families a scenario may name (one `contracts/<family>.toml` each).
pub const FAMILIES: &[&str] = &[
    "resume",
    "delivery",
    "lifecycle",
    "heartbeat",
    "version",
    "framing",
    "durability",
    "liveness",
];
