//! Running the real `agentbus` binary with a clean environment, and reading what it said.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

/// What one run of the binary did.
#[derive(Debug)]
pub struct CliOutput {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CliOutput {
    /// Stdout parsed as JSON; panics with the whole output when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}); exit {}\nstdout:\n{}\nstderr:\n{}",
                self.code, self.stdout, self.stderr
            )
        })
    }

    /// Asserts success and returns the JSON document.
    pub fn ok(&self) -> Value {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self.json()
    }

    /// Asserts success and returns stdout as text (for table and Markdown output).
    pub fn ok_text(&self) -> String {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self.stdout.clone()
    }

    /// Asserts the exit code and a one-line `agentbus: error:` message containing `needle`.
    pub fn fails(&self, code: i32, needle: &str) {
        assert_eq!(
            self.code, code,
            "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        let first = self.stderr.lines().next().unwrap_or("");
        assert!(
            first.starts_with("agentbus: error: "),
            "first stderr line is not an agentbus error: {:?}",
            self.stderr
        );
        assert!(
            self.stderr.to_lowercase().contains(&needle.to_lowercase()),
            "stderr does not mention {needle:?}: {:?}",
            self.stderr
        );
        assert!(
            self.stdout.is_empty(),
            "stdout must be empty on error: {:?}",
            self.stdout
        );
    }
}

/// Runs the binary with a cleared environment plus `env`.
pub fn run_cli(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> CliOutput {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentbus"));
    cmd.args(args).env_clear().env("USER", "tester");
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn agentbus");
    if let Some(input) = stdin {
        if let Some(mut pipe) = child.stdin.take() {
            // The child may exit before reading everything (e.g. oversized input).
            let _ = pipe.write_all(input);
        }
    }
    let out = child.wait_with_output().expect("wait for agentbus");
    CliOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `value[key]` as a string; panics with the document when absent.
pub fn s(value: &Value, key: &str) -> String {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {value}"))
        .to_string()
}

/// `value[key]` as a time; panics when absent or not RFC 3339.
pub fn t(value: &Value, key: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(&s(value, key))
        .unwrap_or_else(|e| panic!("{key} is not RFC 3339 in {value}: {e}"))
        .with_timezone(&chrono::Utc)
}
