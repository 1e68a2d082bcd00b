//! Runs a coder or a test command: argv (no shell), in a directory, with a bare
//! environment (PATH, HOME, LANG and the variables the config passes through), output to a
//! log file, killed with its whole process group at its deadline.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::redact::Redactor;

/// How a command ended.
#[derive(Debug, Clone)]
pub struct Ended {
    /// Its exit code; `None` when it was killed (deadline or signal).
    pub code: Option<i32>,
    /// It ran past its deadline and was killed.
    pub timed_out: bool,
    pub duration: Duration,
    /// The end of its output, secrets removed.
    pub tail: String,
}

/// Runs `argv` in `dir` until it exits or `timeout` passes; output appended to `log`.
pub fn run(
    argv: &[String],
    dir: &Path,
    pass_env: &[String],
    timeout: Duration,
    log: &Path,
    redactor: &Redactor,
) -> Result<Ended> {
    let program = argv
        .first()
        .ok_or_else(|| Error::config("an empty command"))?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| Error::failure(format!("{}: {e}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(|e| Error::failure(format!("{}: {e}", log.display())))?;
    let mut cmd = Command::new(program);
    cmd.args(argv.iter().skip(1))
        .current_dir(dir)
        .env_clear()
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    for name in ["PATH", "HOME", "LANG", "TMPDIR"]
        .iter()
        .map(|s| s.to_string())
        .chain(pass_env.iter().cloned())
    {
        if let Ok(v) = std::env::var(&name) {
            cmd.env(&name, v);
        }
    }
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::config(format!("cannot start {program:?}: {e}")))?;
    let pgid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(_) => break None,
        }
        if started.elapsed() >= timeout {
            timed_out = true;
            let _ = killpg(pgid, Signal::SIGTERM);
            let grace = Instant::now();
            while grace.elapsed() < Duration::from_secs(2) {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = killpg(pgid, Signal::SIGKILL);
            break child.wait().ok();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Anything the command left running in its group goes with it.
    let _ = killpg(pgid, Signal::SIGKILL);
    Ok(Ended {
        code: if timed_out {
            None
        } else {
            status.and_then(|s| s.code())
        },
        timed_out,
        duration: started.elapsed(),
        tail: tail(log, redactor),
    })
}

/// The last 2,000 characters of a log, secrets removed.
pub fn tail(log: &Path, redactor: &Redactor) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = std::fs::File::open(log) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(8000)));
        let _ = f.read_to_end(&mut buf);
    }
    let text = String::from_utf8_lossy(&buf);
    let clean = redactor.mask(&text);
    let chars: Vec<char> = clean.chars().collect();
    chars[chars.len().saturating_sub(2000)..].iter().collect()
}

/// Removes secrets from a whole file (a log about to be kept as an artifact).
pub fn scrub(path: &Path, redactor: &Redactor) {
    if let Ok(text) = std::fs::read_to_string(path) {
        let clean = redactor.mask(&text);
        if clean != text {
            let _ = std::fs::write(path, clean);
        }
    }
}
