//! The proactive lane after proposal: promotion and conversion as one transaction, digests,
//! the auditor's findings, fleet budgets, dedupe keys and archiving.

use super::proactive::{budget, opportunity_args};
use crate::support::{s, TestDb};
use serde_json::Value;

#[test]
fn promotion_and_conversion_are_all_or_nothing() {
    let db = TestDb::new();
    let idea = s(
        &db.cli(&[
            "create-idea",
            "--source-agent",
            "design",
            "--theme",
            "t",
            "--title",
            "t",
            "--body",
            "b",
        ])
        .ok(),
        "id",
    );
    // The promoter's budget is full: no opportunity, the idea untouched.
    budget(&db, "coordinator", 0, 0, 0);
    let before = db.snapshot();
    let mut promote = vec!["promote-idea-to-opportunity", "--idea-id", &idea];
    let fields = opportunity_args("coordinator", "promoted", ["3", "3", "3"]);
    promote.extend_from_slice(&fields[1..]);
    let out = db.cli(&promote);
    out.fails(4, "budget: coordinator");
    let after = db.snapshot();
    assert_eq!(after["ideas"], before["ideas"]);
    assert_eq!(after["opportunities"], before["opportunities"]);

    // A conversion that fails midway (here: at its review row) leaves no job behind.
    let opp = s(
        &db.cli(&opportunity_args("research", "to convert", ["3", "3", "3"]))
            .ok(),
        "id",
    );
    db.cli(&[
        "triage-opportunity",
        "--opportunity-id",
        &opp,
        "--decision",
        "accepted",
    ])
    .ok();
    db.client()
        .batch_execute(
            "create function fail_review() returns trigger language plpgsql as $$
             begin
               if new.decision = 'converted_to_job' then raise exception 'injected failure'; end if;
               return new;
             end $$;
             create trigger fail_review before insert on opportunity_reviews
               for each row execute function fail_review();",
        )
        .unwrap();
    let before = db.snapshot();
    let out = db.cli(&[
        "convert-opportunity",
        "--opportunity-id",
        &opp,
        "--target-agent",
        "coordinator",
    ]);
    assert_ne!(out.code, 0);
    assert_eq!(db.snapshot(), before, "nothing written");
    let jobs: i64 = db.one("select count(*) from jobs");
    assert_eq!(jobs, 0);
}

#[test]
fn digests_are_ranked_markdown_with_evidence_and_next_steps() {
    let db = TestDb::new();
    db.cli(&opportunity_args("research", "Mid bet", ["3", "3", "2"]))
        .ok();
    let top = db
        .cli(&opportunity_args("research", "Top bet", ["5", "4", "3"]))
        .ok();
    db.cli(&[
        "create-idea",
        "--source-agent",
        "design",
        "--theme",
        "onboarding",
        "--title",
        "Collaborative setup",
        "--body",
        "Maybe a paired pattern.",
    ])
    .ok();
    let md = db
        .cli(&["digest", "opportunities", "--since", "1h"])
        .ok_text();
    let body: Vec<&str> = md
        .lines()
        .map(|l| {
            if l.starts_with("Namespace default, ") {
                "Namespace default, WINDOW."
            } else {
                l
            }
        })
        .collect();
    let expected = "\
# Opportunities

Namespace default, WINDOW.

1. **Top bet** (score 25; impact 5, confidence 4, urgency 3, reversibility high) from research, new
   Why now: Three sources report setup churn
   Evidence: sources: a, b, c
   Next step: Scope an experiment
2. **Mid bet** (score 13; impact 3, confidence 3, urgency 2, reversibility high) from research, new
   Why now: Three sources report setup churn
   Evidence: sources: a, b, c
   Next step: Scope an experiment";
    assert_eq!(body.join("\n").trim(), expected, "{md}");

    let ideas = db.cli(&["digest", "ideas", "--since", "1h"]).ok_text();
    assert!(ideas.contains(
        "- **Collaborative setup** (onboarding, from design, new): Maybe a paired pattern."
    ));

    let top_id = s(&top, "id");
    db.cli(&[
        "triage-opportunity",
        "--opportunity-id",
        &top_id,
        "--decision",
        "accepted",
    ])
    .ok();
    let bets = db
        .cli(&["digest", "opportunities", "--weekly-bets", "3"])
        .ok_text();
    assert!(bets.starts_with("# Weekly bets: the top 3 accepted opportunities"));
    assert!(bets.contains("## onboarding\n\n1. **Top bet**"), "{bets}");
    assert!(!bets.contains("Mid bet"), "only accepted ones");
    let json: Value = serde_json::from_str(
        &db.cli(&["digest", "opportunities", "--format", "json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(json["opportunities"].as_array().unwrap().len(), 2);
}

#[test]
fn the_auditor_sees_stale_duplicate_weak_and_over_budget_proposals() {
    let db = TestDb::new();
    let stale = s(
        &db.cli(&opportunity_args("research", "Same title", ["3", "3", "3"]))
            .ok(),
        "id",
    );
    db.client()
        .batch_execute(&format!(
            "update opportunities set created_at = now() - interval '2 days' where id = '{stale}'"
        ))
        .unwrap();
    db.cli(&opportunity_args("design", "same title", ["3", "3", "3"]))
        .ok();
    for i in 0..3 {
        db.cli(&opportunity_args(
            "devops",
            &format!("weak {i}"),
            ["2", "1", "1"],
        ))
        .ok();
    }
    budget(&db, "security", 0, 0, 0);
    db.cli(&opportunity_args("security", "blocked", ["3", "3", "3"]))
        .fails(4, "budget");
    let report = db.cli(&["audit", "--format", "json"]).ok();
    let codes: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    // The proactive lane's codes (guardrail_refused has its own test, ledger::guardrails).
    for code in &agentbus::console::findings::CODES[9..13] {
        assert!(codes.contains(code), "{code} missing from {codes:?}");
    }
}

#[test]
fn fleet_files_set_budgets() {
    let db = TestDb::new();
    let dir = std::env::temp_dir()
        .join(format!("agentbus-budgets-{}", uuid::Uuid::new_v4()))
        .join("ops");
    std::fs::create_dir_all(dir.join("research")).unwrap();
    std::fs::write(
        dir.join("fleet.toml"),
        "namespace = \"default\"\n[defaults.budgets]\nmax_opportunities_per_day = 3\nmax_ideas_per_day = 10\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("research/agent.toml"),
        "id = \"research\"\n[budgets]\nmax_opportunities_per_day = 1\nmax_urgent_per_day = 0\n",
    )
    .unwrap();
    let report = db
        .cli(&["fleet", "sync", dir.to_str().unwrap(), "--format", "json"])
        .ok();
    assert!(report["added"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["object"] == "budgets"));
    let row: Value = db.one(
        "select jsonb_build_array(max_opportunities_per_day, max_urgent_per_day, max_ideas_per_day)
           from proactive_budgets where agent_id = 'research'",
    );
    assert_eq!(row, serde_json::json!([1, 0, 10]));
    db.cli(&opportunity_args("research", "one", ["3", "3", "3"]))
        .ok();
    db.cli(&opportunity_args("research", "two", ["3", "3", "3"]))
        .fails(4, "budget");
    std::fs::write(
        dir.join("research/agent.toml"),
        "id = \"research\"\n[budgets]\nmax_opportunities_per_day = -1\n",
    )
    .unwrap();
    db.cli(&["fleet", "validate", dir.to_str().unwrap()])
        .fails(2, "a whole number, 0 or more");
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[test]
fn opportunity_dedupe_keys_and_archiving() {
    let db = TestDb::new();
    let mut args = opportunity_args("research", "gap", ["3", "3", "3"]);
    args.extend(["--dedupe-key", "gap:2026-11"]);
    let first = db.cli(&args).ok();
    assert_eq!(first["deduped"], false);
    let second = db.cli(&args).ok();
    assert_eq!(second["deduped"], true);
    assert_eq!(second["id"], first["id"]);
    // Rejected, the key is free again.
    let id = s(&first, "id");
    db.cli(&[
        "triage-opportunity",
        "--opportunity-id",
        &id,
        "--decision",
        "rejected",
    ])
    .ok();
    assert_eq!(db.cli(&args).ok()["deduped"], false);

    let idea = s(
        &db.cli(&[
            "create-idea",
            "--source-agent",
            "design",
            "--theme",
            "t",
            "--title",
            "t",
            "--body",
            "b",
            "--tags",
            r#"["a","b"]"#,
        ])
        .ok(),
        "id",
    );
    assert_eq!(
        db.cli(&["archive-idea", "--idea-id", &idea]).ok()["status"],
        "archived"
    );
    db.cli(&["review-idea", "--idea-id", &idea])
        .fails(4, "is archived");
    let listed = db
        .cli(&["list-ideas", "--status", "archived", "--format", "json"])
        .ok();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["tags"], serde_json::json!(["a", "b"]));
}

#[test]
fn a_paused_proactive_lane_files_and_converts_nothing_until_resumed() {
    let db = TestDb::new();
    let opp = s(
        &db.cli(&super::proactive::opportunity_args(
            "scout",
            "Paired setup",
            ["4", "3", "2"],
        ))
        .ok(),
        "id",
    );
    db.cli(&[
        "--actor",
        "coordinator",
        "triage-opportunity",
        "--opportunity-id",
        &opp,
        "--decision",
        "accepted",
    ])
    .ok();
    db.cli(&["pause-lane", "proactive"])
        .fails(2, "--reason is required");
    let paused = db
        .cli(&[
            "pause-lane",
            "proactive",
            "--reason",
            "duplicate opportunities",
        ])
        .ok();
    assert_eq!(paused["lane"], "proactive");
    assert_eq!(paused["paused"], true);
    let before = db.snapshot();
    db.cli(&super::proactive::opportunity_args(
        "scout",
        "Another",
        ["3", "3", "3"],
    ))
    .fails(
        4,
        "the proactive lane of namespace default is paused (duplicate opportunities)",
    );
    db.cli(&[
        "create-idea",
        "--source-agent",
        "scout",
        "--theme",
        "t",
        "--title",
        "t",
        "--body",
        "b",
    ])
    .fails(4, "the proactive lane of namespace default is paused");
    db.cli(&[
        "--actor",
        "coordinator",
        "convert-opportunity",
        "--opportunity-id",
        &opp,
        "--target-agent",
        "scout",
    ])
    .fails(4, "no new ideas, opportunities or conversions");
    assert_eq!(db.snapshot(), before, "a paused lane wrote something");
    db.cli(&["pause-lane", "reactive", "--reason", "x"])
        .fails(2, "the lanes that can be paused are: memory, proactive");
    db.cli(&["resume-lane", "proactive"]).ok();
    let converted = db
        .cli(&[
            "--actor",
            "coordinator",
            "convert-opportunity",
            "--opportunity-id",
            &opp,
            "--target-agent",
            "scout",
        ])
        .ok();
    assert_eq!(converted["opportunity"]["status"], "converted_to_job");
}
