//! Exec mode: run the agent as a local command, keep its lease renewed while it lives,
//! stop it at its deadline, and make sure the job is closed one way or another when it
//! exits.
//!
//! The child runs in its own process group, so a deadline stops everything it started
//! (TERM to the group, KILL after the kill grace). When the command exits, whatever it
//! left running in its group is killed too: the job's processes end with the job.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::log::Level;
use super::metrics::Outcome;
use super::outcome::wake_failed;
use super::shared::Shared;
use crate::error::{ErrorKind, Result};
use crate::ledger::agents::WakeFailure;
use crate::ledger::jobs::{self, AttemptFacts, FailParams, Fence, Job, JobStatus};

/// Lines of stderr kept for the attempt row.
const TAIL_LINES: usize = 20;
/// Longest line kept.
const TAIL_LINE_CHARS: usize = 500;

/// Why the child stopped, as far as the supervisor is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// It exited by itself.
    Exited,
    /// Killed at its deadline.
    Deadline,
    /// Killed because the supervisor is stopping and the grace period ran out.
    Shutdown,
    /// Killed because its lease was taken over (another attempt owns the job).
    LeaseLost,
}

/// Replaces `{job_id}`, `{agent}`, `{attempt}`, `{lease_token}`, `{prompt_file}` and
/// `{namespace}` in each argument. Anything else in braces is left as it is.
pub fn expand_argv(template: &[String], job: &Job, prompt_file: &Path) -> Vec<String> {
    let token = job.lease_token.map(|t| t.to_string()).unwrap_or_default();
    template
        .iter()
        .map(|arg| {
            arg.replace("{job_id}", &job.id.to_string())
                .replace("{agent}", &job.target_agent)
                .replace("{attempt}", &job.attempt_count.to_string())
                .replace("{lease_token}", &token)
                .replace("{prompt_file}", &prompt_file.to_string_lossy())
                .replace("{namespace}", &job.namespace)
        })
        .collect()
}

/// The argument after a shell's `-c` that holds a `{...}` placeholder, if any: substituted
/// text inside a shell string would be interpreted by the shell. Names are restricted to
/// characters a shell does not interpret (sql/0014_identifiers.sql), but the environment
/// variables the command gets are the safe way to pass them.
pub fn placeholder_in_shell_string(template: &[String]) -> Option<String> {
    const PLACEHOLDERS: [&str; 6] = [
        "{job_id}",
        "{agent}",
        "{attempt}",
        "{lease_token}",
        "{prompt_file}",
        "{namespace}",
    ];
    template
        .windows(2)
        .find(|w| {
            w[0].starts_with('-')
                && w[0].contains('c')
                && !w[0].starts_with("--")
                && PLACEHOLDERS.iter().any(|p| w[1].contains(p))
        })
        .map(|w| w[1].clone())
}

pub(super) fn run(
    shared: &Shared,
    job: &Job,
    fence: Fence,
    template: &[String],
    timeout: Duration,
    prompt: &str,
) {
    let prompt_file = shared
        .cfg
        .work_dir
        .join(format!("{}-{}.prompt", job.id, job.attempt_count));
    if let Err(e) = write_private(&prompt_file, prompt) {
        wake_failed(
            shared,
            job,
            fence,
            &format!(
                "cannot write the prompt file {}: {e}",
                prompt_file.display()
            ),
            WakeFailure::Transient,
            true,
            AttemptFacts::default(),
        );
        return;
    }
    let argv = expand_argv(template, job, &prompt_file);
    let mut child = match spawn(shared, job, &argv, &prompt_file) {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&prompt_file);
            let config_error = matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            );
            wake_failed(
                shared,
                job,
                fence,
                &format!(
                    "cannot start {:?}: {e}",
                    argv.first().map_or("", |s| s.as_str())
                ),
                if config_error {
                    WakeFailure::Rejected
                } else {
                    WakeFailure::Transient
                },
                true,
                AttemptFacts::default(),
            );
            return;
        }
    };
    shared.metrics.count(Outcome::Woken, &job.target_agent);
    let pid = child.id();
    shared.log(
        Level::Info,
        "agent started",
        &[
            ("job", &job.id),
            ("agent", &job.target_agent),
            ("attempt", &job.attempt_count),
            ("pid", &pid),
        ],
    );
    let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
    let readers = [
        child.stdout.take().map(|out| spawn_tail(out, None)),
        child
            .stderr
            .take()
            .map(|err| spawn_tail(err, Some(Arc::clone(&stderr_tail)))),
    ];

    let (status, ending) = watch(shared, job, fence, &mut child, timeout);
    // Whatever the command left behind in its group goes with it.
    let _ = killpg(pgid(pid), Signal::SIGKILL);
    for reader in readers.into_iter().flatten() {
        let _ = reader.join();
    }
    let _ = std::fs::remove_file(&prompt_file);

    // The child's words are outside text: redacted line by line before they are kept.
    let tail = stderr_tail
        .lock()
        .map(|t| {
            t.iter()
                .map(|line| shared.redactor.clean(line, &[], 500))
                .collect::<Vec<String>>()
                .join("\n")
        })
        .unwrap_or_default();
    let facts = AttemptFacts {
        exit_code: status.and_then(|s| s.code()),
        exit_signal: status.and_then(|s| s.signal()),
        stderr_tail: (!tail.is_empty()).then_some(tail),
        ..Default::default()
    };
    close_out(shared, job, fence, ending, timeout, status, facts);
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

fn spawn(
    shared: &Shared,
    job: &Job,
    argv: &[String],
    prompt_file: &PathBuf,
) -> std::io::Result<Child> {
    let program = argv.first().map(String::as_str).unwrap_or("");
    let mut cmd = Command::new(program);
    cmd.args(argv.iter().skip(1))
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("AGENTBUS_JOB_ID", job.id.to_string())
        .env(
            "AGENTBUS_LEASE_TOKEN",
            job.lease_token.map(|t| t.to_string()).unwrap_or_default(),
        )
        .env("AGENTBUS_ATTEMPT", job.attempt_count.to_string())
        .env("AGENTBUS_AGENT", &job.target_agent)
        .env("AGENTBUS_NAMESPACE", &job.namespace)
        .env("AGENTBUS_PROMPT_FILE", prompt_file);
    if let Some(url) = &shared.cfg.database_url {
        cmd.env("AGENTBUS_DATABASE_URL", url)
            .env("DATABASE_URL", url);
    }
    if let Some(mode) = &shared.cfg.agent_pool_mode {
        cmd.env("AGENTBUS_POOL_MODE", mode);
    }
    cmd.spawn()
}

fn spawn_tail(
    pipe: impl Read + Send + 'static,
    keep: Option<Arc<Mutex<VecDeque<String>>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        // Read to the end either way, so the child never blocks on a full pipe.
        while let Ok(n) = reader.read_until(b'\n', &mut buf) {
            if n == 0 {
                break;
            }
            if let Some(keep) = &keep {
                let line: String = String::from_utf8_lossy(&buf)
                    .trim_end()
                    .chars()
                    .take(TAIL_LINE_CHARS)
                    .collect();
                if let Ok(mut tail) = keep.lock() {
                    if tail.len() == TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            }
            buf.clear();
        }
    })
}

fn pgid(pid: u32) -> Pid {
    Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX))
}

/// Waits for the child, renewing the lease and enforcing the deadline, the shutdown grace
/// and the loss of the lease.
fn watch(
    shared: &Shared,
    job: &Job,
    fence: Fence,
    child: &mut Child,
    timeout: Duration,
) -> (Option<ExitStatus>, Ending) {
    let started = Instant::now();
    let lease = u64::try_from(shared.cfg.lease_seconds).unwrap_or(60);
    let renew_every = Duration::from_secs((lease / 3).max(1));
    let mut next_renew = started + renew_every;
    let mut ending = Ending::Exited;
    let mut kill_at: Option<Instant> = None;
    let mut nap = Duration::from_millis(2);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (Some(status), ending),
            Ok(None) => {}
            Err(e) => {
                shared.log(
                    Level::Error,
                    "cannot wait for the agent's process",
                    &[("job", &job.id), ("error", &e)],
                );
                let _ = killpg(pgid(child.id()), Signal::SIGKILL);
                return (child.wait().ok(), ending);
            }
        }
        let now = Instant::now();
        if ending == Ending::Exited {
            let stop = if now >= started + timeout {
                Some(Ending::Deadline)
            } else if shared.grace_over() {
                Some(Ending::Shutdown)
            } else if now >= next_renew {
                next_renew = now + renew_every;
                renew(shared, job, fence)
            } else {
                None
            };
            if let Some(why) = stop {
                ending = why;
                kill_at = Some(now + shared.cfg.kill_grace);
                shared.log(
                    Level::Warn,
                    "stopping the agent's process group",
                    &[
                        ("job", &job.id),
                        ("why", &format!("{why:?}")),
                        ("pid", &child.id()),
                    ],
                );
                let _ = killpg(pgid(child.id()), Signal::SIGTERM);
            }
        }
        if kill_at.is_some_and(|at| now >= at) {
            let _ = killpg(pgid(child.id()), Signal::SIGKILL);
            kill_at = None;
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(50));
    }
}

/// Renews the lease; `Some(LeaseLost)` when another attempt owns the job now.
fn renew(shared: &Shared, job: &Job, fence: Fence) -> Option<Ending> {
    let result = shared.pool.get().and_then(|mut c| {
        crate::db::transaction(&mut c, |tx| {
            jobs::renew_lease(
                tx,
                job.id,
                fence,
                &shared.caller("renew-lease"),
                shared.cfg.lease_seconds,
            )
        })
    });
    match result {
        Ok(_) => {
            shared
                .metrics
                .lease_renewals
                .fetch_add(1, Ordering::Relaxed);
            None
        }
        Err(e) => {
            shared
                .metrics
                .lease_renewal_failures
                .fetch_add(1, Ordering::Relaxed);
            if e.kind == ErrorKind::Conflict {
                // Either the agent closed the job a moment ago (the token is still the
                // job's) or another attempt took it over (it is not).
                let closed_by_agent = shared
                    .pool
                    .get()
                    .and_then(|mut c| jobs::get(&mut *c, job.id))
                    .map(|j| j.lease_token == fence.lease_token)
                    .unwrap_or(true);
                (!closed_by_agent).then_some(Ending::LeaseLost)
            } else {
                shared.note_error("renewing a lease", &e);
                None
            }
        }
    }
}

/// After the child is gone: if the job is still ours and open, fail the attempt (with
/// the exit code and stderr tail); otherwise only record what the child did.
fn close_out(
    shared: &Shared,
    job: &Job,
    fence: Fence,
    ending: Ending,
    timeout: Duration,
    status: Option<ExitStatus>,
    facts: AttemptFacts,
) {
    let how = match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            _ => "unknown exit status".to_string(),
        },
        None => "exit status unknown".to_string(),
    };
    let last_line = facts
        .stderr_tail
        .as_deref()
        .and_then(telling_line)
        .map(|l| format!("; stderr: {l}"))
        .unwrap_or_default();
    let counted = job.attempt_count - job.unreached_attempts;
    let (error, retry, timed_out) = match ending {
        Ending::Deadline => (
            format!(
                "killed at its deadline of {}s ({how}){last_line}",
                timeout.as_secs()
            ),
            jobs::retry_backoff_seconds(counted),
            true,
        ),
        Ending::Shutdown => (
            format!("stopped because the supervisor shut down ({how}){last_line}"),
            0,
            false,
        ),
        Ending::Exited | Ending::LeaseLost => (
            format!("exited without closing the loop ({how}){last_line}"),
            jobs::retry_backoff_seconds(counted),
            false,
        ),
    };

    // The database may be away for a moment: keep trying for about a lease length (after
    // that the lease recovers the job anyway).
    let lease = u64::try_from(shared.cfg.lease_seconds).unwrap_or(60);
    let give_up = Instant::now() + Duration::from_secs(lease);
    loop {
        match close_once(shared, job, fence, &error, retry, timed_out, &facts) {
            Ok(outcome) => {
                shared.metrics.count(outcome, &job.target_agent);
                shared.log(
                    if matches!(outcome, Outcome::Succeeded | Outcome::Blocked) {
                        Level::Info
                    } else {
                        Level::Warn
                    },
                    "agent finished",
                    &[
                        ("job", &job.id),
                        ("agent", &job.target_agent),
                        ("attempt", &job.attempt_count),
                        ("outcome", &format!("{outcome:?}").to_lowercase()),
                        ("how", &how),
                    ],
                );
                return;
            }
            Err(e) if e.kind == ErrorKind::Temporary && Instant::now() < give_up => {
                shared.note_error("closing out a finished exec attempt", &e);
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => {
                shared.note_error("closing out a finished exec attempt", &e);
                return;
            }
        }
    }
}

fn close_once(
    shared: &Shared,
    job: &Job,
    fence: Fence,
    error: &str,
    retry: i64,
    timed_out: bool,
    facts: &AttemptFacts,
) -> Result<Outcome> {
    let mut client = shared.pool.get()?;
    // The child's facts go on its attempt whatever happened to the job; the same round
    // trip reads the job.
    let mut now =
        jobs::record_attempt_facts_and_get(&mut *client, job.id, job.attempt_count, facts)?;
    let ours = now.lease_token == fence.lease_token && now.attempt_count == job.attempt_count;
    if ours && matches!(now.status, JobStatus::Leased | JobStatus::Running) {
        let params = FailParams {
            last_error: error.to_string(),
            retry_seconds: Some(retry),
            timed_out,
            facts: facts.clone(),
            ..Default::default()
        };
        match crate::db::transaction(&mut client, |tx| {
            jobs::fail(tx, job.id, fence, &shared.caller("exec"), &params)
        }) {
            Ok(_) => {
                return Ok(if timed_out {
                    Outcome::TimedOut
                } else {
                    Outcome::Failed
                })
            }
            // The child's own close landed between our read and our write.
            Err(e) if e.kind == ErrorKind::Conflict => now = jobs::get(&mut *client, job.id)?,
            Err(e) => return Err(e),
        }
    }
    Ok(match (ours, now.status) {
        (true, JobStatus::Succeeded) => Outcome::Succeeded,
        (true, JobStatus::Blocked) => Outcome::Blocked,
        _ => Outcome::Failed,
    })
}

/// The stderr line that says what went wrong, for the job's error: the last line that
/// names an error (a command's hint or usage note usually follows its error), else the
/// last line that is not blank.
fn telling_line(tail: &str) -> Option<&str> {
    let lines = || tail.lines().map(str::trim).filter(|l| !l.is_empty());
    lines()
        .rfind(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("error") || l.contains("fatal") || l.contains("panicked")
        })
        .or_else(|| lines().next_back())
}

#[cfg(test)]
mod telling_line_tests {
    use super::telling_line;

    #[test]
    fn the_error_is_kept_over_the_hint_that_follows_it() {
        let tail = "agentbus: error: database busy: too many clients already\nagentbus: hint: safe to retry the same command";
        assert_eq!(
            telling_line(tail),
            Some("agentbus: error: database busy: too many clients already")
        );
        assert_eq!(
            telling_line("thread 'main' panicked at src/x.rs:3\nnote: run with RUST_BACKTRACE=1\n"),
            Some("thread 'main' panicked at src/x.rs:3")
        );
        assert_eq!(
            telling_line("working\nstill working\n\n"),
            Some("still working")
        );
        assert_eq!(telling_line("\n  \n"), None);
    }
}

#[cfg(test)]
mod placeholder_tests {
    use super::placeholder_in_shell_string;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn a_placeholder_inside_a_shell_string_is_found_and_whole_arguments_are_fine() {
        assert_eq!(
            placeholder_in_shell_string(&argv(&["sh", "-c", "run {agent} now"])),
            Some("run {agent} now".to_string())
        );
        assert!(placeholder_in_shell_string(&argv(&["bash", "-lc", "x {job_id}"])).is_some());
        assert_eq!(
            placeholder_in_shell_string(&argv(&["./run.sh", "{agent}", "{job_id}"])),
            None
        );
        assert_eq!(
            placeholder_in_shell_string(&argv(&["sh", "-c", "run \"$AGENTBUS_AGENT\""])),
            None
        );
    }
}
