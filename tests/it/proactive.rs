//! The proactive lane: ideas, opportunities, triage, conversion, budgets (also under 16
//! concurrent creators), digests and the auditor's hygiene findings.

use serde_json::Value;

use crate::support::{s, TestDb};

fn opportunity_args<'a>(agent: &'a str, title: &'a str, scores: [&'a str; 3]) -> Vec<&'a str> {
    vec![
        "create-opportunity",
        "--source-agent",
        agent,
        "--theme",
        "onboarding",
        "--title",
        title,
        "--why-now",
        "Three sources report setup churn",
        "--evidence",
        r#"{"sources":["a","b","c"]}"#,
        "--impact-score",
        scores[0],
        "--confidence-score",
        scores[1],
        "--urgency-score",
        scores[2],
        "--reversibility",
        "high",
        "--suggested-next-step",
        "Scope an experiment",
    ]
}

fn budget(db: &TestDb, agent: &str, opps: i32, urgent: i32, ideas: i32) {
    db.client()
        .execute(
            "insert into proactive_budgets (namespace, agent_id, max_opportunities_per_day, max_urgent_per_day, max_ideas_per_day)
             values ('default', $1, $2, $3, $4)",
            &[&agent, &opps, &urgent, &ideas],
        )
        .unwrap();
}

#[test]
fn an_idea_becomes_an_opportunity_then_a_job() {
    let db = TestDb::new();
    let idea = db
        .cli(&[
            "create-idea",
            "--source-agent",
            "design",
            "--theme",
            "onboarding",
            "--title",
            "Setup could feel collaborative",
            "--body",
            "A paired-setup pattern might reduce friction.",
            "--tags",
            "ux,activation",
            "--dedupe-key",
            "onboarding:paired-setup",
        ])
        .ok();
    assert_eq!(idea["status"], "new");
    assert_eq!(idea["tags"], serde_json::json!(["ux", "activation"]));
    let idea_id = s(&idea, "id");
    let again = db
        .cli(&[
            "create-idea",
            "--source-agent",
            "design",
            "--theme",
            "onboarding",
            "--title",
            "same",
            "--body",
            "same",
            "--dedupe-key",
            "onboarding:paired-setup",
        ])
        .ok();
    assert_eq!(again["deduped"], true);
    assert_eq!(again["id"], idea_id.as_str());
    assert_eq!(
        db.cli(&["review-idea", "--idea-id", &idea_id]).ok()["status"],
        "reviewed"
    );

    let promoted = db
        .cli(&[
            "promote-idea-to-opportunity",
            "--idea-id",
            &idea_id,
            "--source-agent",
            "coordinator",
            "--theme",
            "onboarding",
            "--title",
            "Test paired setup for activation",
            "--why-now",
            "Funnel weakness plus repeated idea reads",
            "--impact-score",
            "4",
            "--confidence-score",
            "3",
            "--urgency-score",
            "3",
            "--reversibility",
            "high",
            "--owner-candidate",
            "product-metrics",
            "--suggested-next-step",
            "Design the experiment",
            "--notes",
            "cross-pollination review",
        ])
        .ok();
    let opp = s(&promoted["opportunity"], "id");
    assert_eq!(promoted["idea"]["status"], "promoted_to_opportunity");
    assert_eq!(promoted["idea"]["promoted_opportunity_id"], opp.as_str());
    assert_eq!(promoted["opportunity"]["idea_id"], idea_id.as_str());
    assert_eq!(promoted["opportunity"]["score"], 4 * 3 + 3 + 2);

    db.cli(&["archive-idea", "--idea-id", &idea_id])
        .fails(4, "is promoted_to_opportunity");
    db.cli(&[
        "convert-opportunity",
        "--opportunity-id",
        &opp,
        "--target-agent",
        "coordinator",
    ])
    .fails(4, "triage it first");

    let t = db
        .cli(&[
            "--actor",
            "coordinator",
            "triage-opportunity",
            "--opportunity-id",
            &opp,
            "--decision",
            "accepted",
            "--notes",
            "strong signal",
        ])
        .ok();
    assert_eq!(t["status"], "accepted");
    assert_eq!(t["triaged_by"], "coordinator");

    let conv = db
        .cli(&[
            "--actor",
            "coordinator",
            "convert-opportunity",
            "--opportunity-id",
            &opp,
            "--target-agent",
            "product-metrics",
            "--priority",
            "120",
            "--payload",
            r#"{"kind":"experiment-proposal"}"#,
        ])
        .ok();
    assert_eq!(conv["opportunity"]["status"], "converted_to_job");
    let job = &conv["job"];
    assert_eq!(job["job_type"], "proactive");
    assert_eq!(job["correlation_key"], format!("opportunity:{opp}"));
    assert_eq!(job["payload"]["kind"], "experiment-proposal");
    assert_eq!(
        job["payload"]["opportunity"]["title"],
        "Test paired setup for activation"
    );
    assert_eq!(job["payload"]["opportunity"]["score"], 17);
    assert_eq!(conv["opportunity"]["converted_job_id"], job["id"]);

    let shown = db.cli(&["show-opportunity", &opp, "--format", "json"]).ok();
    let decisions: Vec<&str> = shown["reviews"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["new", "accepted", "converted_to_job"]);
    assert_eq!(shown["idea"]["id"], idea_id.as_str());
    assert_eq!(shown["job"]["id"], job["id"]);

    // The job's trace names the opportunity it came from.
    let trace = db
        .cli(&["trace", job["id"].as_str().unwrap(), "--format", "table"])
        .ok_text();
    assert!(trace.contains("from opportunity"), "{trace}");
    db.cli(&[
        "triage-opportunity",
        "--opportunity-id",
        &opp,
        "--decision",
        "rejected",
    ])
    .fails(4, "is converted_to_job");
}

#[test]
fn list_opportunities_ranks_by_the_documented_score() {
    let db = TestDb::new();
    for (title, scores) in [
        ("low", ["1", "1", "1"]),
        ("high", ["5", "5", "5"]),
        ("mid", ["3", "3", "2"]),
    ] {
        db.cli(&opportunity_args("research", title, scores)).ok();
    }
    let list = db.cli(&["list-opportunities", "--format", "json"]).ok();
    let ranked: Vec<(String, i64)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (s(o, "title"), o["score"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        ranked,
        [
            ("high".to_string(), 32),
            ("mid".to_string(), 13),
            ("low".to_string(), 4)
        ]
    );
    let table = db
        .cli(&["list-opportunities", "--format", "table"])
        .ok_text();
    for line in table.lines() {
        assert!(line.chars().count() <= 100, "{line}");
    }
}

#[test]
fn bad_proactive_input_is_refused_and_writes_nothing() {
    let db = TestDb::new();
    let before = db.snapshot();
    db.cli(&opportunity_args("research", "x", ["6", "3", "3"]))
        .fails(2, "from 1 to 5");
    db.cli(&opportunity_args("research", "x", ["0", "3", "3"]))
        .fails(2, "from 1 to 5");
    db.cli(&opportunity_args("research", " ", ["3", "3", "3"]))
        .fails(2, "--title");
    let mut bad_rev = opportunity_args("research", "x", ["3", "3", "3"]);
    let i = bad_rev.iter().position(|a| *a == "high").unwrap();
    bad_rev[i] = "maybe";
    db.cli(&bad_rev).fails(2, "invalid value 'maybe'");
    let mut bad_ev = opportunity_args("research", "x", ["3", "3", "3"]);
    let i = bad_ev
        .iter()
        .position(|a| a.starts_with("{\"sources"))
        .unwrap();
    bad_ev[i] = "[1,2]";
    db.cli(&bad_ev).fails(2, "--evidence");
    db.cli(&[
        "create-idea",
        "--source-agent",
        "design",
        "--theme",
        "t",
        "--title",
        "t",
        "--body",
        "",
    ])
    .fails(2, "--body");
    db.cli(&[
        "review-idea",
        "--idea-id",
        "6f9619ff-8b86-4d01-b42d-00cf4fc964ff",
    ])
    .fails(3, "not found");
    db.cli(&[
        "triage-opportunity",
        "--opportunity-id",
        "6f9619ff-8b86-4d01-b42d-00cf4fc964ff",
        "--decision",
        "accepted",
    ])
    .fails(3, "not found");
    db.cli(&[
        "triage-opportunity",
        "--opportunity-id",
        "6f9619ff-8b86-4d01-b42d-00cf4fc964ff",
        "--decision",
        "maybe",
    ])
    .fails(2, "invalid value");
    db.cli(&["list-opportunities", "--status", "open"])
        .fails(2, "expected one of");
    assert_eq!(db.snapshot(), before);
}

#[test]
fn budgets_refuse_with_the_budget_the_use_and_the_reset_and_can_overflow_to_ideas() {
    let db = TestDb::new();
    budget(&db, "research", 1, 1, 1);
    db.cli(&opportunity_args("research", "first", ["3", "3", "3"]))
        .ok();
    let before = db.snapshot();
    let out = db.cli(&opportunity_args("research", "second", ["3", "3", "3"]));
    out.fails(
        4,
        "budget: research may create 1 new opportunities per day; 1 used today; resets at",
    );
    let refusals: i64 = db.one("select count(*) from proactive_budget_refusals");
    assert_eq!(refusals, 1, "the refusal is kept for the auditor");
    let opps: i64 = db.one("select count(*) from opportunities");
    assert_eq!(opps, 1);
    let _ = before;

    let mut overflow = opportunity_args("research", "second", ["3", "3", "3"]);
    overflow.push("--overflow-to-idea");
    let filed = db.cli(&overflow).ok();
    assert_eq!(filed["outcome"], "idea");
    assert_eq!(filed["idea"]["title"], "second");
    assert_eq!(filed["budget"]["limit"], 1);
    // The idea budget (1) is now used up too.
    db.cli(&overflow).fails(4, "ideas per day");

    // Urgent escalations have their own budget.
    budget(&db, "security", 5, 1, 5);
    db.cli(&opportunity_args("security", "urgent one", ["3", "3", "5"]))
        .ok();
    db.cli(&opportunity_args("security", "urgent two", ["3", "3", "5"]))
        .fails(4, "urgent escalations");
    db.cli(&opportunity_args("security", "calm", ["3", "3", "4"]))
        .ok();

    // The database holds the budget for any writer, not only agentbus.
    let err = db
        .client()
        .execute(
            "insert into opportunities (source_agent, theme, title, why_now, impact_score, confidence_score,
                                        urgency_score, reversibility, suggested_next_step)
             values ('research', 't', 'by hand', 'w', 1, 1, 1, 'low', 's')",
            &[],
        )
        .unwrap_err();
    let message = err
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_default();
    assert!(
        message.starts_with("budget: research may create 1"),
        "{message}"
    );
}

#[test]
fn sixteen_concurrent_creators_never_exceed_the_budget() {
    let db = TestDb::new();
    budget(&db, "research", 5, 5, 100);
    let codes: Vec<i32> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let db = &db;
                scope.spawn(move || {
                    let title = format!("idea {i}");
                    db.cli(&opportunity_args("research", &title, ["3", "3", "3"]))
                        .code
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = codes.iter().filter(|c| **c == 0).count();
    let refused = codes.iter().filter(|c| **c == 4).count();
    assert_eq!((ok, refused), (5, 11), "{codes:?}");
    let n: i64 = db.one("select count(*) from opportunities");
    assert_eq!(n, 5);
}

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
            .ok()["opportunity"],
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

    let top_id = s(&top["opportunity"], "id");
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
            .ok()["opportunity"],
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
    for code in &agentbus::console::findings::CODES[9..] {
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
    assert_eq!(second["opportunity"]["id"], first["opportunity"]["id"]);
    // Rejected, the key is free again.
    let id = s(&first["opportunity"], "id");
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
