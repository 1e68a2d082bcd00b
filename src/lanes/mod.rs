//! The lanes beside the core ledger: proactive work (ideas, opportunities, budgets),
//! curated memory, and digests.

pub mod coding;
pub mod digest;
pub mod idle;
pub mod memory;
pub mod proactive;
