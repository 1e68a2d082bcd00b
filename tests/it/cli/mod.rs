//! The command line as a user meets it: help, man pages, completions, and the demo.

mod demo;
mod docs;
mod seed;
mod terminal;
