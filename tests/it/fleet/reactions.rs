//! `[[reactions]]`: an event and the jobs it triggers commit together; one job per event
//! and reaction; conditions; loops refused past max_depth; fleet validate checks patterns
//! and templates; trace names the event.

use super::FleetDir;
use crate::support::{s, TestDb};
use serde_json::Value;

fn fleet(db: &TestDb) -> FleetDir {
    let f = FleetDir::new();
    f.write(
        "security/agent.toml",
        r#"id = "security"
[wake]
mode = "hook"

[[reactions]]
name = "alert-triage"
topic = "security.alert.*"
subject = "triage {payload.component}: {topic}"
priority = 800
when = { severity = ["high", "critical"] }

[[reactions]]
name = "echo"
topic = "loop.ping"
subject = "pong {event_id}"
max_depth = 2
"#,
    );
    db.cli(&["fleet", "sync", f.path()]).ok();
    f
}

fn emit(db: &TestDb, topic: &str, payload: &str, env: &[(&str, &str)]) -> Value {
    db.cli_with(
        &[
            "emit-event",
            "--topic",
            topic,
            "--source-agent",
            "scout",
            "--payload",
            payload,
        ],
        env,
        None,
    )
    .ok()
}

fn reaction_jobs(db: &TestDb) -> Vec<Value> {
    let v: Value = db.one(
        "select coalesce(jsonb_agg(to_jsonb(j) order by created_at, id), '[]') from jobs j where job_type = 'reaction'",
    );
    v.as_array().cloned().unwrap_or_default()
}

#[test]
fn an_event_and_its_reactions_commit_together_once_per_event() {
    let db = TestDb::new();
    let _f = fleet(&db);
    let event = emit(
        &db,
        "security.alert.dependency",
        r#"{"severity":"critical","component":"openssl"}"#,
        &[],
    );
    let jobs = reaction_jobs(&db);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = &jobs[0];
    assert_eq!(job["target_agent"], "security");
    assert_eq!(job["subject"], "triage openssl: security.alert.dependency");
    assert_eq!(job["priority"], 800);
    assert_eq!(job["origin_event_id"], event["id"]);
    assert_eq!(job["reaction_depth"], 1);
    assert_eq!(job["payload"]["event"]["payload"]["component"], "openssl");
    assert_eq!(job["status"], "queued");

    // A condition that does not hold, a topic that does not match: no job.
    emit(
        &db,
        "security.alert.dependency",
        r#"{"severity":"low"}"#,
        &[],
    );
    emit(
        &db,
        "security.review.completed",
        r#"{"severity":"critical"}"#,
        &[],
    );
    assert_eq!(reaction_jobs(&db).len(), 1);
    // The same event again (its dedupe key): no new event, no new job.
    let d1 = db
        .cli(&[
            "emit-event",
            "--topic",
            "security.alert.cve",
            "--dedupe-key",
            "cve-1",
            "--payload",
            r#"{"severity":"high"}"#,
        ])
        .ok();
    let d2 = db
        .cli(&[
            "emit-event",
            "--topic",
            "security.alert.cve",
            "--dedupe-key",
            "cve-1",
            "--payload",
            r#"{"severity":"high"}"#,
        ])
        .ok();
    assert_eq!(d2["deduped"], true);
    assert_eq!(d1["id"], d2["id"]);
    assert_eq!(reaction_jobs(&db).len(), 2);

    // The trace of the job names the event it came from.
    let trace = db
        .cli(&["trace", &s(job, "id"), "--format", "table"])
        .ok_text();
    assert!(
        trace.contains("reaction alert-triage to event")
            && trace.contains("security.alert.dependency"),
        "{trace}"
    );

    // If the job cannot be written, the event is not written either.
    db.client()
        .batch_execute(
            "create function no_reactions() returns trigger language plpgsql as $$
             begin if new.job_type = 'reaction' then raise exception 'injected failure'; end if;
             return new; end $$;
             create trigger no_reactions before insert on jobs
               for each row execute function no_reactions();",
        )
        .unwrap();
    let events_before: i64 = db.one("select count(*) from events");
    let out = db.cli(&[
        "emit-event",
        "--topic",
        "security.alert.x",
        "--payload",
        r#"{"severity":"high"}"#,
    ]);
    assert_ne!(out.code, 0);
    let events_after: i64 = db.one("select count(*) from events");
    assert_eq!(
        events_before, events_after,
        "never an event without its reactions"
    );
}

#[test]
fn an_event_from_a_run_reaches_an_agent_its_emitter_may_not_hand_work_to() {
    let db = TestDb::new();
    let _f = fleet(&db);
    // scout hands work only to writer; its run's event still reaches security.
    let job = db.enqueue("scout", "scan", &[]);
    let event = emit(
        &db,
        "security.alert.leak",
        r#"{"severity":"high","component":"crm"}"#,
        &[("AGENTBUS_JOB_ID", job.as_str())],
    );
    assert_eq!(event["source_job_id"], job.as_str());
    let jobs = reaction_jobs(&db);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["parent_job_id"], job.as_str());
}

#[test]
fn a_reaction_to_its_own_events_stops_at_max_depth() {
    let db = TestDb::new();
    let _f = fleet(&db);
    // Each reaction job emits the same topic from inside its run (AGENTBUS_JOB_ID).
    emit(&db, "loop.ping", "{}", &[]);
    for _ in 0..4 {
        let Some(last) = reaction_jobs(&db).last().cloned() else {
            break;
        };
        let id = s(&last, "id");
        emit(&db, "loop.ping", "{}", &[("AGENTBUS_JOB_ID", id.as_str())]);
    }
    let depths: Vec<i64> = reaction_jobs(&db)
        .iter()
        .map(|j| j["reaction_depth"].as_i64().unwrap())
        .collect();
    assert_eq!(depths, [1, 2], "max_depth = 2");
    let refused: Value = db.one(
        "select coalesce(jsonb_agg(payload order by id), '[]') from events where topic = 'reaction.refused'",
    );
    let refused = refused.as_array().unwrap();
    assert!(!refused.is_empty(), "the loop is recorded");
    assert_eq!(refused[0]["reaction"], "echo");
    assert_eq!(refused[0]["depth"], 3);
}

#[test]
fn fleet_validate_checks_reaction_patterns_templates_and_conditions() {
    let db = TestDb::new();
    let f = FleetDir::new();
    f.write(
        "security/agent.toml",
        r#"id = "security"
[[reactions]]
name = "Bad Name"
topic = "security alert"
subject = "triage {payload.component} {whoami}"
priority = 0
when = { severity = { nested = 1 } }
max_depth = 99

[[reactions]]
name = "own"
topic = "reaction.refused"
subject = "x"
"#,
    );
    let out = db.cli(&["fleet", "validate", f.path()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    for needle in [
        "reaction name \"Bad Name\"",
        "topic pattern \"security alert\"",
        "unknown placeholder(s) {whoami}",
        "priority must be 1 to 1000",
        "a condition is a value",
        "max_depth must be 1 to 10",
        "reaction.* topics are agentbus's own",
        "agent.toml:",
    ] {
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }
}

#[test]
fn reactions_sync_twice_without_change_and_go_when_removed() {
    let db = TestDb::new();
    let f = fleet(&db);
    let again = db
        .cli(&["fleet", "sync", f.path(), "--format", "json"])
        .ok();
    assert_eq!(again["changed"], serde_json::json!([]));
    f.write(
        "security/agent.toml",
        "id = \"security\"\n[wake]\nmode = \"hook\"\n",
    );
    let changed = db
        .cli(&["fleet", "sync", f.path(), "--format", "json"])
        .ok();
    assert_eq!(changed["changed"][0]["object"], "reactions", "{changed}");
    let n: i64 = db.one("select count(*) from reactions");
    assert_eq!(n, 0);
    emit(&db, "security.alert.x", r#"{"severity":"high"}"#, &[]);
    assert!(reaction_jobs(&db).is_empty());
}

#[test]
fn with_the_guardrails_on_an_agent_login_triggers_reactions_it_could_not_hand_off() {
    let mut g = crate::support::logins::Guarded::new();
    let f = FleetDir::new();
    f.write(
        "security/agent.toml",
        "id = \"security\"\n[[reactions]]\nname = \"t\"\ntopic = \"security.alert.*\"\nsubject = \"triage {topic}\"\n",
    );
    f.write("fleet.toml", "name = \"sec\"\nnamespace = \"sec\"\n");
    g.db.cli(&["fleet", "sync", f.path()]).ok();
    let scout = g.grant("scout", "agent", &["sec"], Some("scout"));
    let db = &g.db;
    // scout hands work to writer only: a direct job for security is refused...
    db.cli_as(
        &scout,
        &[
            "enqueue-job",
            "--namespace",
            "sec",
            "--target-agent",
            "security",
            "--subject",
            "x",
        ],
        &[],
    )
    .fails(77, "");
    // ...but the fleet's declared reaction runs for its event.
    db.cli_as(
        &scout,
        &[
            "emit-event",
            "--namespace",
            "sec",
            "--topic",
            "security.alert.leak",
        ],
        &[],
    )
    .ok();
    let jobs: i64 = db.one(
        "select count(*) from jobs where namespace = 'sec' and target_agent = 'security' and job_type = 'reaction'",
    );
    assert_eq!(jobs, 1);
    let login: String = db.one(
        "select login from job_history h join jobs j on j.id = h.job_id where j.job_type = 'reaction'",
    );
    assert_eq!(login, scout, "the history keeps whose event it was");
}
