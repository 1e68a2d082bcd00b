//! Reading jobs: one, one with its attempts and history, and filtered lists.

use super::{Attempt, HistoryEntry, Job, JobStatus};
use crate::db::{decode, decode_all};
use crate::error::{Error, Result};
use crate::ledger::time::Since;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A job one job depends on, or that depends on it.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobLink {
    pub id: Uuid,
    pub status: JobStatus,
    pub target_agent: String,
    pub subject: String,
}

/// A job with everything `show-job` prints about it.
#[derive(Debug, Clone, Serialize)]
pub struct JobDetail {
    /// The job row.
    #[serde(flatten)]
    pub job: Job,
    /// Jobs it waits for.
    pub depends_on: Vec<JobLink>,
    /// Jobs waiting for it.
    pub dependents: Vec<JobLink>,
    /// Every attempt, oldest first.
    pub attempts: Vec<Attempt>,
    /// Every status change, oldest first.
    pub history: Vec<HistoryEntry>,
}

/// Reads one job.
pub fn get(client: &mut impl postgres::GenericClient, job_id: Uuid) -> Result<Job> {
    let row = client
        .query_opt(
            "select to_jsonb(j.*) as row from jobs j where id = $1",
            &[&job_id],
        )?
        .ok_or_else(|| Error::not_found(format!("job {job_id} not found")))?;
    decode(&row, "row")
}

/// Reads one job with its dependencies, attempts and history.
pub fn show(client: &mut impl postgres::GenericClient, job_id: Uuid) -> Result<JobDetail> {
    let job = get(client, job_id)?;
    let depends_on = client.query(
        "select jsonb_build_object('id', j.id, 'status', j.status, 'target_agent', j.target_agent,
                                   'subject', j.subject) as row
           from job_dependencies d join jobs j on j.id = d.depends_on_job_id
          where d.job_id = $1 order by j.created_at",
        &[&job_id],
    )?;
    let dependents = client.query(
        "select jsonb_build_object('id', j.id, 'status', j.status, 'target_agent', j.target_agent,
                                   'subject', j.subject) as row
           from job_dependencies d join jobs j on j.id = d.job_id
          where d.depends_on_job_id = $1 order by j.created_at",
        &[&job_id],
    )?;
    let attempts = client.query(
        "select to_jsonb(a.*) as row from job_attempts a where job_id = $1 order by attempt_no",
        &[&job_id],
    )?;
    let history = client.query(
        "select to_jsonb(h.*) as row from job_history h where job_id = $1 order by id",
        &[&job_id],
    )?;
    Ok(JobDetail {
        job,
        depends_on: decode_all(&depends_on, "row")?,
        dependents: decode_all(&dependents, "row")?,
        attempts: decode_all(&attempts, "row")?,
        history: decode_all(&history, "row")?,
    })
}

/// Filters for `list-jobs`.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    /// Namespace.
    pub namespace: String,
    /// Only jobs for this agent.
    pub target_agent: Option<String>,
    /// Only jobs enqueued by this agent.
    pub source_agent: Option<String>,
    /// Only jobs in these states (any, when empty).
    pub statuses: Vec<JobStatus>,
    /// Only jobs of this type.
    pub job_type: Option<String>,
    /// Only jobs created in this window.
    pub since: Option<Since>,
    /// Only jobs of this flow.
    pub flow_key: Option<String>,
    /// Only jobs with this correlation key.
    pub correlation_key: Option<String>,
    /// At most this many (newest first).
    pub limit: i64,
}

/// Lists jobs, newest first.
pub fn list(client: &mut impl postgres::GenericClient, p: &ListParams) -> Result<Vec<Job>> {
    if !(1..=100_000).contains(&p.limit) {
        return Err(Error::usage(format!(
            "`limit`: {} is out of range (1 to 100000)",
            p.limit
        )));
    }
    let statuses: Option<Vec<&str>> = if p.statuses.is_empty() {
        None
    } else {
        Some(p.statuses.iter().map(|s| s.as_str()).collect())
    };
    let (since_at, since_secs) = match p.since {
        None => (None, None),
        Some(Since::At(at)) => (Some(at), None),
        Some(Since::Ago(d)) => (None, Some(d.num_seconds() as f64)),
    };
    let rows = client.query(
        "select to_jsonb(j.*) as row from jobs j
         where namespace = $1
           and ($2::text is null or target_agent = $2)
           and ($3::text is null or source_agent = $3)
           and ($4::text[] is null or status::text = any($4))
           and ($5::text is null or job_type = $5)
           and ($6::timestamptz is null or created_at >= $6)
           and ($7::float8 is null or created_at >= now() - make_interval(secs => $7))
           and ($9::text is null or flow_key = $9)
           and ($10::text is null or correlation_key = $10)
         order by created_at desc, id
         limit $8",
        &[
            &p.namespace,
            &p.target_agent,
            &p.source_agent,
            &statuses,
            &p.job_type,
            &since_at,
            &since_secs,
            &p.limit,
            &p.flow_key,
            &p.correlation_key,
        ],
    )?;
    decode_all(&rows, "row")
}

/// The smallest and largest ids that start with `prefix` (hexadecimal digits, hyphens
/// ignored), so a prefix is looked up as a range of the primary key rather than by
/// scanning every id as text.
pub fn prefix_range(prefix: &str) -> Result<(Uuid, Uuid)> {
    let hex: String = prefix.chars().filter(|c| *c != '-').collect();
    if hex.is_empty() || hex.len() > 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::usage(format!(
            "{prefix:?} is not the start of a job id (hexadecimal digits)"
        )));
    }
    let bound = |fill: char| {
        let mut full = hex.clone();
        while full.len() < 32 {
            full.push(fill);
        }
        Uuid::parse_str(&full).map_err(|e| Error::usage(format!("{prefix:?}: {e}")))
    };
    Ok((bound('0')?, bound('f')?))
}

/// The id of the one job whose id starts with `prefix` (what tables print: 8 or more
/// hexadecimal characters, hyphens as in the id). Several matches: a usage error.
pub fn resolve_prefix(
    client: &mut impl postgres::GenericClient,
    namespace: &str,
    prefix: &str,
) -> Result<Uuid> {
    let (lo, hi) = prefix_range(prefix)?;
    let rows = client.query(
        "select id from jobs where namespace = $3 and id between $1 and $2 order by id limit 2",
        &[&lo, &hi, &namespace],
    )?;
    match rows.as_slice() {
        [] => Err(Error::not_found(format!(
            "no job id of namespace {namespace} starts with {prefix}"
        ))
        .with_hint("short ids resolve within the namespace (--namespace, $AGENTBUS_NAMESPACE); give the whole id for another one")),
        [one] => Ok(one.try_get(0)?),
        _ => Err(Error::usage(format!(
            "{prefix} is the start of more than one job id; give more characters"
        ))),
    }
}
