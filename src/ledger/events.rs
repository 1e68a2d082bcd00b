//! Events: facts agents emit (`security.review.completed`), deduplicated by key per topic.
//! Inserting one notifies `events_inserted` listeners.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::db::decode;
use crate::error::{Error, Result};
use crate::ledger::validate::{check_name, check_required_text};

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
    /// The database login that wrote it (it cannot be faked; `source_agent` is a claim
    /// unless the login is bound to an agent or holds a lease).
    #[serde(default)]
    pub login: Option<String>,
    /// The source agent the caller claimed, when the guardrails replaced it with the agent
    /// its login acts as.
    #[serde(default)]
    pub claimed_source_agent: Option<String>,
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
pub fn emit(tx: &mut postgres::Transaction<'_>, p: &EmitParams) -> Result<Emitted> {
    check_name("`namespace`", &p.namespace)?;
    check_required_text("`topic`", &p.topic)?;
    crate::ledger::validate::check_optional_name("`source_agent`", p.source_agent.as_deref())?;
    if let Some(key) = &p.dedupe_key {
        check_required_text("`dedupe_key`", key)?;
    }
    if !p.payload.is_object() {
        return Err(Error::usage("`payload`: expected a JSON object"));
    }
    if let Some(job) = p.source_job_id {
        if tx
            .query_opt("select 1 from jobs where id = $1", &[&job])?
            .is_none()
        {
            return Err(Error::not_found(format!(
                "`source_job_id`: job {job} not found"
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
    Ok(Emitted { event, deduped })
}

/// Which events to read.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Namespace.
    pub namespace: String,
    /// Topics (exact, or a prefix ending in `.*` such as `standing_order.*`); any when empty.
    pub topics: Vec<String>,
    /// Only events this agent emitted.
    pub source_agent: Option<String>,
    /// Only events of this job.
    pub source_job_id: Option<Uuid>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
}

/// Events matching `f` with an id over `after_id`, returned oldest first: the first
/// `limit` of them, or with `tail` the last `limit`.
pub fn list(
    client: &mut impl postgres::GenericClient,
    f: &EventFilter,
    after_id: i64,
    limit: i64,
    tail: bool,
) -> Result<Vec<Event>> {
    let exact: Vec<&str> = f
        .topics
        .iter()
        .filter(|t| !t.ends_with(".*"))
        .map(String::as_str)
        .collect();
    let prefixes: Vec<String> = f
        .topics
        .iter()
        .filter_map(|t| t.strip_suffix('*'))
        .map(|p| {
            format!(
                "{}%",
                p.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            )
        })
        .collect();
    let any_topic = f.topics.is_empty();
    let rows = client.query(
        "select row from (
           select id, to_jsonb(e.*) as row from events e
            where namespace = $1 and id > $2
              and ($3 or topic = any($4) or topic like any($5))
              and ($6::text is null or source_agent = $6)
              and ($7::uuid is null or source_job_id = $7)
              and ($8::timestamptz is null or created_at >= $8)
            order by case when $10 then -id else id end
            limit $9) picked
          order by id",
        &[
            &f.namespace,
            &after_id,
            &any_topic,
            &exact,
            &prefixes,
            &f.source_agent,
            &f.source_job_id,
            &f.since,
            &limit,
            &tail,
        ],
    )?;
    crate::db::decode_all(&rows, "row")
}

/// A follower of the event stream (`events --follow`): every matching event exactly
/// once, in the order it becomes visible.
///
/// Ids are handed out before commit, so an event with a lower id can become visible after
/// a higher one: each batch also looks back over the last few seconds and skips the ids
/// already returned. The connection `LISTEN`s on `events_inserted`, so a batch comes as
/// soon as an event commits (or after a second at most).
#[derive(Debug)]
pub struct Follower {
    filter: EventFilter,
    seen: std::collections::BTreeSet<i64>,
    high: i64,
}

/// How far back each batch looks for events that committed late.
const LOOKBACK_SECONDS: f64 = 10.0;

impl Follower {
    /// Starts listening; `already` are the events the caller has shown (the backlog).
    pub fn start(
        client: &mut postgres::Client,
        filter: EventFilter,
        already: &[Event],
    ) -> Result<Self> {
        client.batch_execute("LISTEN events_inserted")?;
        Ok(Follower {
            filter,
            seen: already.iter().map(|e| e.id).collect(),
            high: already.iter().map(|e| e.id).max().unwrap_or(0),
        })
    }

    /// Waits for a notification (a second at most), then returns the events not returned
    /// before, oldest first (possibly none).
    pub fn next_batch(&mut self, client: &mut postgres::Client) -> Result<Vec<Event>> {
        use postgres::fallible_iterator::FallibleIterator;
        client
            .notifications()
            .timeout_iter(std::time::Duration::from_secs(1))
            .next()?;
        while client.notifications().iter().next()?.is_some() {}
        let mut batch = list(client, &self.filter, self.high, 10_000, false)?;
        let rows = client.query(
            "select to_jsonb(e.*) as row from events e
              where namespace = $1 and id <= $2
                and created_at >= now() - make_interval(secs => $3)
              order by id",
            &[&self.filter.namespace, &self.high, &LOOKBACK_SECONDS],
        )?;
        let late: Vec<Event> = crate::db::decode_all(&rows, "row")?;
        batch.splice(0..0, late.into_iter().filter(|e| matches(&self.filter, e)));
        // Ids older than the look-back cannot come again: forget them.
        if let Some(oldest) = batch.first().map(|e| e.id) {
            self.seen = self.seen.split_off(&oldest.min(self.high));
        }
        let fresh: Vec<Event> = batch
            .into_iter()
            .filter(|e| self.seen.insert(e.id))
            .collect();
        if let Some(top) = fresh.iter().map(|e| e.id).max() {
            self.high = self.high.max(top);
        }
        Ok(fresh)
    }
}

/// Whether `e` passes `f` (the same test `list` makes in SQL).
fn matches(f: &EventFilter, e: &Event) -> bool {
    let topic_ok = f.topics.is_empty()
        || f.topics.iter().any(|t| match t.strip_suffix('*') {
            Some(prefix) => e.topic.starts_with(prefix),
            None => &e.topic == t,
        });
    topic_ok
        && f.source_agent
            .as_ref()
            .is_none_or(|a| e.source_agent.as_ref() == Some(a))
        && f.source_job_id.is_none_or(|j| e.source_job_id == Some(j))
        && f.since.is_none_or(|s| e.created_at >= s)
}
