//! The proactive lane: ideas, opportunities, triage, conversion, budgets (also under 16
//! concurrent creators), digests and the auditor's hygiene findings.

use crate::support::{s, TestDb};

pub(super) fn opportunity_args<'a>(
    agent: &'a str,
    title: &'a str,
    scores: [&'a str; 3],
) -> Vec<&'a str> {
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

pub(super) fn budget(db: &TestDb, agent: &str, opps: i32, urgent: i32, ideas: i32) {
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
    // As the seed: triaged by the promoter, carrying the idea's body and evidence.
    assert_eq!(promoted["opportunity"]["status"], "triaged");
    assert_eq!(promoted["opportunity"]["triaged_by"], "coordinator");
    assert_eq!(promoted["opportunity"]["source_agent"], "coordinator");
    let evidence = &promoted["opportunity"]["evidence"];
    assert_eq!(evidence["idea_origin_id"], idea_id.as_str());
    assert_eq!(
        evidence["idea_body"],
        "A paired-setup pattern might reduce friction."
    );
    assert!(evidence["idea_evidence"].is_object(), "{evidence}");
    assert!(evidence["promotion_evidence"].is_object(), "{evidence}");

    db.cli(&["archive-idea", "--idea-id", &idea_id])
        .fails(4, "is promoted_to_opportunity");
    // A proposal nobody triaged is not converted.
    let fresh = s(
        &db.cli(&opportunity_args("research", "untriaged", ["3", "3", "3"]))
            .ok(),
        "id",
    );
    db.cli(&[
        "convert-opportunity",
        "--opportunity-id",
        &fresh,
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

    // The seed's flags: --converted-by and --notes.
    let conv = db
        .cli(&[
            "convert-opportunity",
            "--opportunity-id",
            &opp,
            "--target-agent",
            "product-metrics",
            "--priority",
            "120",
            "--payload",
            r#"{"kind":"experiment-proposal"}"#,
            "--converted-by",
            "coordinator",
            "--notes",
            "worth a two-week test",
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
    // The seed's payload shape, top level.
    assert_eq!(job["payload"]["origin"], "opportunity");
    assert_eq!(job["payload"]["opportunity_id"], opp.as_str());
    assert_eq!(job["payload"]["title"], "Test paired setup for activation");
    assert!(job["payload"]["why_now"].is_string(), "{}", job["payload"]);
    assert!(job["payload"]["suggested_next_step"].is_string());
    assert_eq!(job["source_agent"], "coordinator");
    assert_eq!(conv["opportunity"]["converted_job_id"], job["id"]);

    let shown = db.cli(&["show-opportunity", &opp, "--format", "json"]).ok();
    let decisions: Vec<&str> = shown["reviews"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["triaged", "accepted", "converted_to_job"]);
    let last = shown["reviews"]
        .as_array()
        .unwrap()
        .last()
        .cloned()
        .unwrap();
    assert_eq!(last["reviewer"], "coordinator");
    assert_eq!(last["notes"], "worth a two-week test");
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
    assert_eq!(filed["title"], "second");
    assert_eq!(filed["overflowed_to_idea"], true);
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
