//! The database layer: migrations, and every statement of the library against the schema.

mod migrations;
mod sql;
