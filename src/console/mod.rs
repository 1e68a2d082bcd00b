//! What operators read: status and health, trace, activity, the findings audit, and
//! namespace housekeeping.

pub mod activity;
pub mod doctor;
mod drills;
pub mod findings;
pub mod health;
mod horizon;
pub mod namespaces;
mod proactive_findings;
pub mod prometheus;
pub mod status;
pub mod trace;
pub mod vault;
