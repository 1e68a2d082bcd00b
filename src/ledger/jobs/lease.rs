//! Claiming ready jobs under a lease, and recovering expired leases.

use super::Job;
use crate::db::decode_all;
use crate::error::{Error, Result};
use crate::ledger::validate::check_name;

/// What to claim.
#[derive(Debug, Clone)]
pub struct ClaimParams {
    /// Namespace to claim from.
    pub namespace: String,
    /// Who holds the leases (a supervisor id).
    pub lease_owner: String,
    /// Lease length.
    pub lease_seconds: i32,
    /// At most this many jobs.
    pub limit: i32,
    /// Only this agent's jobs.
    pub target_agent: Option<String>,
    /// The concurrency limit of agents whose `agents.max_concurrency` is unset
    /// (`None`: no limit).
    pub default_max_concurrency: Option<i32>,
    /// Whether agents without a wake mode of their own may be claimed.
    pub claim_unconfigured: bool,
}

impl ClaimParams {
    /// The arguments of `claim_jobs($1, ..., $7)`, in order.
    pub fn sql_args(&self) -> [&(dyn postgres::types::ToSql + Sync); 7] {
        [
            &self.namespace,
            &self.lease_owner,
            &self.lease_seconds,
            &self.limit,
            &self.target_agent,
            &self.default_max_concurrency,
            &self.claim_unconfigured,
        ]
    }
}

/// Checks what a claim asks for (names, lease length, batch size) before anything runs.
pub fn check_claim(p: &ClaimParams) -> Result<()> {
    check_name("`lease_owner`", &p.lease_owner)?;
    check_name("`namespace`", &p.namespace)?;
    crate::ledger::validate::check_optional_name("`target_agent`", p.target_agent.as_deref())?;
    if !(1..=86_400).contains(&p.lease_seconds) {
        return Err(Error::usage(format!(
            "`lease_seconds`: {} is out of range (1 to 86400)",
            p.lease_seconds
        )));
    }
    if !(1..=10_000).contains(&p.limit) {
        return Err(Error::usage(format!(
            "`limit`: {} is out of range (1 to 10000)",
            p.limit
        )));
    }
    Ok(())
}

/// Claims up to `limit` ready jobs fairly across agents (see `claim_jobs` in
/// `sql/0001_core.sql`). Each comes back `leased` with a fresh lease token.
pub fn claim(client: &mut impl postgres::GenericClient, p: &ClaimParams) -> Result<Vec<Job>> {
    check_claim(p)?;
    let rows = client.query(
        "select to_jsonb(c.*) as row from claim_jobs($1, $2, $3, $4, $5, $6, $7) c",
        &p.sql_args(),
    )?;
    decode_all(&rows, "row")
}

/// Recovers up to `limit` jobs whose lease expired (see `requeue_expired_jobs`).
pub fn requeue_expired(
    client: &mut impl postgres::GenericClient,
    namespace: &str,
    limit: i32,
) -> Result<Vec<Job>> {
    if !(1..=100_000).contains(&limit) {
        return Err(Error::usage(format!(
            "`limit`: {limit} is out of range (1 to 100000)"
        )));
    }
    let rows = client.query(
        "select to_jsonb(r.*) as row from requeue_expired_jobs($1, $2) r",
        &[&namespace, &limit],
    )?;
    decode_all(&rows, "row")
}
