//! The database layer: migrations, and every statement of the library against the schema.

mod backup;
mod connection;
mod errors;
mod migrations;
pub(crate) mod session;
mod sql;
mod tls;
