//! What operators read: status, health and metrics, trace and activity, events, the
//! findings audit, the health views, and namespace housekeeping.

mod doctor;
mod events;
mod findings;
mod namespaces;
mod status;
mod trace;
mod vault;
mod views;
