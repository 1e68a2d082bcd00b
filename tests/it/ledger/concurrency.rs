//! Concurrency hazards: many claimers, many enqueuers with one dedupe key.

use std::collections::HashSet;
use std::sync::{Arc, Barrier};

use agentbus::ledger::jobs::{self, ClaimParams, EnqueueParams};

use crate::support::TestDb;

#[test]
fn eight_claimers_over_ten_thousand_jobs_claim_each_exactly_once() {
    let db = TestDb::new();
    let mut c = db.client();
    c.batch_execute(
        "insert into jobs (target_agent, job_type, subject, priority)
         select 'agent-' || (g % 10), 'reactive', 'job ' || g, 1 + (g % 7) * 100
         from generate_series(1, 10000) g",
    )
    .unwrap();
    let barrier = Arc::new(Barrier::new(8));

    let handles: Vec<_> = (0..8)
        .map(|w| {
            let url = db.url.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut c = crate::support::connect(&url);
                let params = ClaimParams {
                    namespace: "default".into(),
                    lease_owner: format!("claimer-{w}"),
                    lease_seconds: 600,
                    limit: 25,
                    target_agent: None,
                    default_max_concurrency: None,
                    claim_unconfigured: true,
                };
                barrier.wait();
                let mut mine = Vec::new();
                loop {
                    let got = jobs::claim(&mut c, &params).expect("claim");
                    if got.is_empty() {
                        let left: i64 = c
                            .query_one("select count(*) from jobs where status = 'queued'", &[])
                            .unwrap()
                            .get(0);
                        if left == 0 {
                            break;
                        }
                        continue;
                    }
                    mine.extend(got.into_iter().map(|j| j.id));
                }
                mine
            })
        })
        .collect();
    let per_worker: Vec<Vec<uuid::Uuid>> = handles.into_iter().map(|h| h.join().unwrap()).collect();

    let total: usize = per_worker.iter().map(Vec::len).sum();
    let distinct: HashSet<_> = per_worker.iter().flatten().collect();
    assert_eq!(total, 10_000, "claims handed out");
    assert_eq!(distinct.len(), 10_000, "no job was claimed twice");
    assert!(
        per_worker.iter().filter(|w| !w.is_empty()).count() > 1,
        "work was shared"
    );
    let row = c
        .query_one(
            "select count(*) filter (where status = 'leased' and attempt_count = 1),
                    (select count(*) from job_attempts),
                    (select count(distinct lease_token) from jobs)
             from jobs",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 10_000);
    assert_eq!(row.get::<_, i64>(1), 10_000, "one attempt row per claim");
    assert_eq!(row.get::<_, i64>(2), 10_000, "one fresh token per claim");
}

#[test]
fn claims_are_fair_across_agents_before_priority() {
    let db = TestDb::new();
    let mut c = db.client();
    c.batch_execute(
        "insert into jobs (target_agent, job_type, subject, priority)
         select 'busy', 'reactive', 'hot ' || g, 1000 from generate_series(1, 50) g;
         insert into jobs (target_agent, job_type, subject, priority)
         values ('quiet-1', 'reactive', 'low', 1), ('quiet-2', 'reactive', 'low', 5);",
    )
    .unwrap();

    let got = jobs::claim(
        &mut c,
        &ClaimParams {
            namespace: "default".into(),
            lease_owner: "d".into(),
            lease_seconds: 60,
            limit: 3,
            target_agent: None,
            default_max_concurrency: None,
            claim_unconfigured: true,
        },
    )
    .unwrap();

    let agents: HashSet<_> = got.iter().map(|j| j.target_agent.as_str()).collect();
    assert_eq!(
        agents,
        HashSet::from(["busy", "quiet-1", "quiet-2"]),
        "every agent gets its turn"
    );
    assert_eq!(
        got[0].target_agent, "busy",
        "within a round, higher priority first"
    );
}

#[test]
fn sixteen_concurrent_enqueues_with_one_dedupe_key_make_one_job() {
    let db = TestDb::new();
    let barrier = Arc::new(Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let url = db.url.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut c = crate::support::connect(&url);
                let mut p = EnqueueParams::new(
                    "default",
                    "security",
                    "reactive",
                    "review",
                    format!("caller-{i}"),
                );
                p.source_agent = Some(format!("caller-{i}"));
                p.dedupe_key = Some("dep:fastapi:0.116.0".into());
                barrier.wait();
                agentbus::db::transaction(&mut c, |tx| jobs::enqueue(tx, &p)).expect("enqueue")
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();

    let ids: HashSet<_> = results.iter().map(|r| r.job.id).collect();
    assert_eq!(ids.len(), 1, "all callers got the same job");
    assert_eq!(
        results.iter().filter(|r| !r.deduped).count(),
        1,
        "exactly one insert"
    );
    let count: i64 = db
        .client()
        .query_one("select count(*) from jobs", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
}

#[test]
fn sixteen_concurrent_emits_with_one_dedupe_key_make_one_event() {
    let db = TestDb::new();
    let barrier = Arc::new(Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let url = db.url.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut c = crate::support::connect(&url);
                let p = agentbus::ledger::events::EmitParams {
                    namespace: "default".into(),
                    topic: "deploy.finished".into(),
                    source_agent: None,
                    source_job_id: None,
                    dedupe_key: Some("v1".into()),
                    payload: serde_json::json!({}),
                };
                barrier.wait();
                agentbus::db::transaction(&mut c, |tx| agentbus::ledger::events::emit(tx, &p))
                    .expect("emit")
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| !r.deduped).count(), 1);
    let count: i64 = db
        .client()
        .query_one("select count(*) from events", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
}
