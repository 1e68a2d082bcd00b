//! Argument types shared by several commands.

use std::io::Read;

use crate::error::{Error, Result};
use crate::ledger::validate::{self, MAX_JSON_BYTES};

/// Reads a JSON-object argument: inline text, `@path` for a file, or `-` for stdin.
/// `stdin_used` makes sure only one argument reads stdin.
pub fn json_object(
    what: &str,
    raw: Option<&str>,
    stdin: &mut dyn Read,
    stdin_used: &mut bool,
) -> Result<Option<serde_json::Value>> {
    let Some(raw) = raw else { return Ok(None) };
    let text = if raw == "-" {
        if *stdin_used {
            return Err(Error::usage(format!(
                "{what}: only one argument can read standard input (-)"
            )));
        }
        *stdin_used = true;
        read_limited(what, stdin, "standard input")?
    } else if let Some(path) = raw.strip_prefix('@') {
        let file = std::fs::File::open(path)
            .map_err(|e| Error::usage(format!("{what}: cannot read {path}: {e}")))?;
        read_limited(what, &mut std::io::BufReader::new(file), path)?
    } else {
        raw.to_string()
    };
    validate::parse_json_object(what, &text).map(Some)
}

/// Reads at most one byte over the limit, so an endless stream cannot exhaust memory.
fn read_limited(what: &str, reader: &mut dyn Read, source: &str) -> Result<String> {
    let mut buf = Vec::new();
    reader
        .take(MAX_JSON_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::usage(format!("{what}: cannot read {source}: {e}")))?;
    String::from_utf8(buf).map_err(|_| Error::usage(format!("{what}: {source} is not UTF-8")))
}

/// A job named on the command line: its uuid, or a unique prefix of at least 8 of its
/// hexadecimal characters (what tables print).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobRef {
    /// A whole id.
    Id(uuid::Uuid),
    /// A prefix of one, lower case, as written (hyphens kept).
    Prefix(String),
}

impl std::str::FromStr for JobRef {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        if let Ok(id) = uuid::Uuid::parse_str(&s) {
            return Ok(JobRef::Id(id));
        }
        let hex = s.chars().filter(|c| *c != '-').count();
        if (8..32).contains(&hex) && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            Ok(JobRef::Prefix(s))
        } else {
            Err("expected a job id (uuid) or its first 8 or more characters".into())
        }
    }
}

impl JobRef {
    /// The job's id; a prefix must match exactly one job of `namespace` (a whole id is
    /// taken as it is).
    pub fn resolve(
        &self,
        client: &mut impl postgres::GenericClient,
        namespace: &str,
    ) -> Result<uuid::Uuid> {
        match self {
            JobRef::Id(id) => Ok(*id),
            JobRef::Prefix(p) => crate::ledger::jobs::resolve_prefix(client, namespace, p),
        }
    }
}

/// The namespace a command works in: a fleet, a tenant, or a staging copy of either.
#[derive(Debug, Clone, clap::Args)]
pub struct NamespaceArg {
    /// Namespace
    #[arg(long, env = "AGENTBUS_NAMESPACE", default_value = "default")]
    pub namespace: String,
}

/// Where the work runs in OpenClaw, recorded on the job and its attempt (or on a
/// standing-order run) so an operator can find the run in the gateway.
#[derive(Debug, Clone, clap::Args)]
pub struct OpenClawRefs {
    /// OpenClaw task or run reference
    #[arg(long, value_name = "REF")]
    pub openclaw_task_ref: Option<String>,

    /// OpenClaw session key
    #[arg(long, value_name = "KEY")]
    pub openclaw_session_key: Option<String>,
}

/// The hook token in `path`: its first line, trimmed (a file's trailing newline is not part
/// of it). Errors name the flag and the file, never the content.
pub fn read_token_file(flag: &str, path: &std::path::Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config(format!("{flag} {}: {e}", path.display())))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(Error::config(format!(
            "{flag} {}: the file is empty",
            path.display()
        )));
    }
    Ok(token.to_string())
}

/// The job named on the command line, else (inside a run) the job being run:
/// `$AGENTBUS_JOB_ID`. `what` names the role of the job in the error.
pub fn job_or_running(
    ctx: &mut super::Ctx,
    job: Option<&JobRef>,
    what: &str,
) -> Result<Option<uuid::Uuid>> {
    match job {
        Some(job) => Ok(Some(ctx.job_id(job)?)),
        None => match ctx.env("AGENTBUS_JOB_ID") {
            Some(raw) => Ok(Some(uuid::Uuid::parse_str(raw.trim()).map_err(|_| {
                crate::error::Error::usage(format!(
                    "AGENTBUS_JOB_ID is not a valid uuid (it names the {what})"
                ))
            })?)),
            None => Ok(None),
        },
    }
}
