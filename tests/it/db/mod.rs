//! The database layer: migrations, and every statement of the library against the schema.

mod backup;
mod connection;
mod migrations;
pub(crate) mod session;
mod sql;
mod tls;
