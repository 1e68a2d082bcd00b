//! Fleets: a folder with `fleet.toml` and one folder per agent holding `agent.toml`
//! (every key is documented in agentbus-fleet(5), rendered from [`FORMAT_DOC`]); the
//! OpenClaw configuration and cron script for a fleet; scaffolding a new agent; and the
//! standing-order audit (which declared occurrences ran, and which were missed).
//!
//! Loading checks everything and reports every problem with its file and line, so an
//! operator fixes a fleet in one pass. Syncing makes the database match the files.

pub mod audit;
pub mod idle;
pub mod import;
mod keys;
mod load;
pub mod openclaw;
pub mod reactions;
mod request_keys;
pub mod requests;
pub mod retention;
pub mod rollout;
pub mod scaffold;
mod spec;
mod sync;
mod walk;

pub use load::load;
pub use spec::*;
pub use sync::*;
