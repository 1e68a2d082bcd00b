//! Events: facts agents emit (`security.review.completed`), deduplicated by key per topic.
//! Inserting one notifies `events_inserted` listeners.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::db::decode;
use crate::error::{Error, Result};
use crate::input::{check_optional_text, check_required_text};

/// A row of `events`.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: i64,
    pub namespace: String,
    pub topic: String,
    pub source_agent: Option<String>,
    pub source_job_id: Option<Uuid>,
    pub dedupe_key: Option<String>,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}

/// What to emit.
#[derive(Debug, Clone)]
pub struct EmitParams {
    /// Namespace.
    pub namespace: String,
    /// Dotted topic, e.g. `security.review.completed`.
    pub topic: String,
    /// The emitting agent.
    pub source_agent: Option<String>,
    /// The job the fact came from.
    pub source_job_id: Option<Uuid>,
    /// At most one event per (namespace, topic, dedupe key), ever.
    pub dedupe_key: Option<String>,
    /// The fact (an object).
    pub payload: Value,
}

/// The result of an emit: the event, and whether it already existed.
#[derive(Debug, Clone, Serialize)]
pub struct Emitted {
    /// The new event, or the earlier one with the same dedupe key.
    #[serde(flatten)]
    pub event: Event,
    /// True when an event with the same dedupe key was returned instead.
    pub deduped: bool,
}

/// Emits an event (one transaction). With a dedupe key already used on this topic, the
/// earlier event is returned with `deduped: true` and nothing is written.
pub fn emit(client: &mut postgres::Client, p: &EmitParams) -> Result<Emitted> {
    check_required_text("--namespace", &p.namespace)?;
    check_required_text("--topic", &p.topic)?;
    check_optional_text("--source-agent", p.source_agent.as_deref())?;
    if let Some(key) = &p.dedupe_key {
        check_required_text("--dedupe-key", key)?;
    }
    if !p.payload.is_object() {
        return Err(Error::usage("--payload: expected a JSON object"));
    }
    let mut tx = client.transaction()?;
    if let Some(job) = p.source_job_id {
        if tx
            .query_opt("select 1 from jobs where id = $1", &[&job])?
            .is_none()
        {
            return Err(Error::not_found(format!(
                "--source-job-id: job {job} not found"
            )));
        }
    }
    let inserted = tx.query_opt(
        "insert into events (namespace, topic, source_agent, source_job_id, dedupe_key, payload)
         values ($1, $2, $3, $4, $5, $6)
         on conflict (namespace, topic, dedupe_key) where dedupe_key is not null do nothing
         returning to_jsonb(events.*) as row",
        &[
            &p.namespace,
            &p.topic,
            &p.source_agent,
            &p.source_job_id,
            &p.dedupe_key,
            &p.payload,
        ],
    )?;
    let (row, deduped) = match inserted {
        Some(row) => (row, false),
        None => (
            tx.query_one(
                "select to_jsonb(e.*) as row from events e
                 where namespace = $1 and topic = $2 and dedupe_key = $3",
                &[&p.namespace, &p.topic, &p.dedupe_key],
            )?,
            true,
        ),
    };
    let event = decode(&row, "row")?;
    tx.commit()?;
    Ok(Emitted { event, deduped })
}
