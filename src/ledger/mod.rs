//! The ledger: jobs and their state machine, events, agents, standing orders and their
//! schedules, operator controls, and the values every command validates.
//!
//! Everything here writes inside the caller's transaction and returns typed values.

pub mod agents;
pub mod archive;
pub mod controls;
pub mod events;
pub mod jobs;
pub mod roles;
pub mod schedule;
pub mod standing_orders;
pub mod time;
pub mod validate;
