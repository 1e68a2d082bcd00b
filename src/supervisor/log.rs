//! The supervisor's log: one line per event on stderr, `time level message key=value...`
//! (journald and `docker logs` keep it; grep and awk read it). Secrets never reach it:
//! callers pass job ids, agent ids and error texts, never tokens.

use std::io::Write;
use std::str::FromStr;

use chrono::{SecondsFormat, Utc};

/// How much to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Failures that need an operator.
    Error,
    /// Failures the supervisor recovers from.
    Warn,
    /// Claims, wake-ups, outcomes, start and stop.
    Info,
    /// Everything, including every notification and poll.
    Debug,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Ok(Level::Error),
            "warn" | "warning" => Ok(Level::Warn),
            "info" => Ok(Level::Info),
            "debug" | "trace" => Ok(Level::Debug),
            other => Err(format!(
                "unknown log level {other:?} (expected error, warn, info or debug)"
            )),
        }
    }
}

/// A logger writing to stderr at or above a level.
#[derive(Debug, Clone, Copy)]
pub struct Logger {
    level: Level,
}

impl Logger {
    /// A logger that keeps lines at `level` and above.
    pub fn new(level: Level) -> Logger {
        Logger { level }
    }

    /// Whether lines at `level` are kept.
    pub fn enabled(&self, level: Level) -> bool {
        level <= self.level
    }

    /// Writes one line. `fields` values are quoted when they contain spaces.
    pub fn log(&self, level: Level, message: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
        if !self.enabled(level) {
            return;
        }
        let mut line = format!(
            "{} {:5} {}",
            Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            level.label(),
            message
        );
        for (key, value) in fields {
            let v = value.to_string().replace('\n', "\\n");
            if v.is_empty() || v.contains(' ') || v.contains('"') {
                line.push_str(&format!(" {key}={v:?}"));
            } else {
                line.push_str(&format!(" {key}={v}"));
            }
        }
        line.push('\n');
        // One write call per line, so lines from several threads do not interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}
