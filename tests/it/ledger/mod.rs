//! The ledger: jobs and their state machine, fencing, dependencies, concurrency, events,
//! agents, operator controls, standing orders, and hostile input.

mod agents;
mod bad_config;
mod bad_input;
mod concurrency;
mod controls;
mod dependencies;
mod events;
mod fencing;
mod firing;
mod guardrails;
mod identifiers;
mod identity;
mod jobs;
mod json_numbers;
mod logins;
mod prune;
mod standing_orders;
mod state_machine;
