//! agentbus: a durable, auditable work ledger in PostgreSQL for fleets of AI agents.
//!
//! The areas, with dependencies pointing one way (see ARCHITECTURE.md):
//!
//! ```text
//! cli, supervisor  ->  console, fleet, lanes  ->  ledger  ->  db  ->  error, redact
//! ```
//!
//! The library does the work and returns typed values; `src/cli` parses arguments and
//! renders results; `src/bin/` only wires each process to its entry point.
#![warn(missing_docs)]

pub mod cli;
pub mod console;
pub mod db;
pub mod error;
pub mod fleet;
pub mod lanes;
pub mod ledger;
pub mod redact;
pub mod sha;
pub mod supervisor;

pub use error::{Error, ErrorKind, Result};
