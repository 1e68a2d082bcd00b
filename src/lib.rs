//! agentbus: a durable, auditable work ledger in PostgreSQL for fleets of AI agents.
//!
//! The library does the work and returns typed values; `src/cli` parses arguments and
//! renders results; `src/bin/agentbus.rs` only wires the process to [`cli::run`].
#![warn(missing_docs)]

pub mod activity;
pub mod agents;
pub mod cli;
pub mod controls;
pub mod db;
pub mod digest;
pub mod error;
pub mod events;
pub mod findings;
pub mod fleet;
pub mod fleet_scaffold;
pub mod health;
pub mod hook;
pub mod input;
pub mod jobs;
pub mod memory;
pub mod migrate;
pub mod namespaces;
pub mod openclaw;
pub mod proactive;
pub mod prompt;
pub mod schedule;
pub mod standing_order_audit;
pub mod standing_orders;
pub mod supervisor;
pub mod trace;

pub use error::{Error, ErrorKind, Result};
