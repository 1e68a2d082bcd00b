//! The lanes: ideas, opportunities, budgets and digests; curated memory and its retrieval.

mod coding;
mod idle;
mod memory;
mod memory_retrieval;
mod proactive;
mod proactive_lifecycle;
