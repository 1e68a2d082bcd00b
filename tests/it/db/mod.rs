//! The database layer: migrations, and every statement of the library against the schema.

mod backup;
mod connection;
mod migrations;
mod sql;
mod tls;
