//! The fleets shipped under agents/: they validate and sync, every hand-off they name
//! exists, and the operations fleet carries the seed's 22 standing orders.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::support::TestDb;

const FLEETS: [&str; 5] = ["ops", "gtm", "b2b", "enterprise", "assistant"];

pub(super) fn fleet_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("agents")
        .join(name)
}

fn agent_ids(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("agent.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn every_shipped_fleet_validates_and_syncs_twice_without_changes() {
    let db = TestDb::new();
    for name in FLEETS {
        let dir = fleet_dir(name);
        let dir = dir.to_str().unwrap();
        let v = db.cli(&["fleet", "validate", dir, "--format", "json"]).ok();
        assert_eq!(v["valid"], true, "{name}");
        let first = db.cli(&["fleet", "sync", dir, "--format", "json"]).ok();
        assert!(!first["added"].as_array().unwrap().is_empty(), "{name}");
        let second = db.cli(&["fleet", "sync", dir, "--format", "json"]).ok();
        for k in ["added", "changed", "disabled"] {
            assert_eq!(second[k], serde_json::json!([]), "{name}: {k}");
        }
    }
}

/// Hand-off targets named in agent.toml (`handoffs`), in AGENTS.md (the bullets of its
/// "Hand-offs" section, and every `--target-agent NAME`) are agents of the same fleet, and
/// the two lists agree.
#[test]
fn every_hand_off_target_exists_in_its_fleet() {
    for name in FLEETS {
        let dir = fleet_dir(name);
        let ids = agent_ids(&dir);
        assert!(!ids.is_empty(), "{name}: {ids:?}");
        for agent in &ids {
            let toml: toml::Table = std::fs::read_to_string(dir.join(agent).join("agent.toml"))
                .unwrap()
                .parse()
                .unwrap();
            let declared: BTreeSet<String> = toml
                .get("handoffs")
                .and_then(|h| h.as_array())
                .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
                .unwrap_or_default();
            for t in &declared {
                assert!(
                    ids.contains(t),
                    "{name}/{agent}: agent.toml hands off to unknown {t}"
                );
            }

            let md = std::fs::read_to_string(dir.join(agent).join("AGENTS.md")).unwrap();
            let section = md
                .split("## Hand-offs")
                .nth(1)
                .unwrap_or_else(|| panic!("{name}/{agent}: AGENTS.md has no Hand-offs section"));
            let section = section.split("\n## ").next().unwrap();
            let listed: BTreeSet<String> = section
                .lines()
                .filter_map(|l| l.strip_prefix("- `"))
                .filter_map(|l| l.split('`').next())
                .map(str::to_string)
                .collect();
            for t in &listed {
                assert!(
                    ids.contains(t),
                    "{name}/{agent}: AGENTS.md hands off to unknown {t}"
                );
            }
            assert_eq!(
                listed, declared,
                "{name}/{agent}: AGENTS.md and agent.toml disagree"
            );
            for (i, _) in md.match_indices("--target-agent ") {
                let word: String = md[i + "--target-agent ".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                    .collect();
                let placeholder = word.chars().all(|c| !c.is_ascii_lowercase());
                assert!(
                    placeholder || ids.contains(&word),
                    "{name}/{agent}: AGENTS.md names --target-agent {word}, not in the fleet"
                );
            }
            for needle in [
                "agentbus complete-job",
                "--lease-token",
                "agentbus block-job",
                "agentbus fail-job",
                "agentbus enqueue-job",
                "agentbus emit-event",
                "closes nothing",
                "## Escalation",
                "## Never",
                "## Events it emits",
                "## Work it accepts",
                "## Authority",
            ] {
                assert!(
                    md.contains(needle),
                    "{name}/{agent}: AGENTS.md lacks {needle:?}"
                );
            }
        }
    }
}

#[test]
fn the_operations_fleet_has_the_seed_roles_its_standing_orders_and_budgets() {
    let db = TestDb::new();
    let dir = fleet_dir("ops");
    let ids = agent_ids(&dir);
    let roles: BTreeSet<String> = [
        "coordinator",
        "auditor",
        "project-tracker",
        "knowledge",
        "devops",
        "product-metrics",
        "design",
        "security",
        "research",
        "publisher",
        // Not a seed role: the executor of coding runs (issue 20), an exec agent.
        "dev-runner",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(ids, roles);
    db.cli(&["fleet", "sync", dir.to_str().unwrap()]).ok();
    let orders: i64 = db.one(
        "select count(*) from standing_orders where namespace = 'ops' and enabled and timezone = 'UTC'",
    );
    assert_eq!(
        orders,
        22 + 12 + 12 + 1 + 2 + 1,
        "22 operational, 12 proactive, 12 memory, the vault export, the backup and its drill, the retention prune"
    );
    let memory: i64 = db.one(
        "select count(*) from standing_orders where namespace = 'ops'
            and (order_name like '%-memory-extract' or order_name in ('knowledge-memory-promote', 'knowledge-memory-review'))",
    );
    assert_eq!(memory, 12);
    let curators: String =
        db.one("select string_agg(agent_id, ',') from memory_curators where namespace = 'ops'");
    assert_eq!(curators, "knowledge");
    let proactive: i64 = db.one(
        "select count(*) from standing_orders where namespace = 'ops'
            and order_name in ('coord-opportunity-ranking', 'coord-weekly-bets-review',
              'audit-opportunity-hygiene', 'tracker-opportunity-triage', 'knowledge-gap-opportunities',
              'devops-automation-opportunities', 'metrics-growth-opportunities', 'design-ux-opportunities',
              'security-hardening-opportunities', 'research-external-opportunities',
              'publisher-opportunity-digest', 'publisher-weekly-bets-memo')",
    );
    assert_eq!(proactive, 12);
    let budgets: i64 = db.one(
        "select count(*) from proactive_budgets where namespace = 'ops' and max_opportunities_per_day = 3",
    );
    assert_eq!(budgets, 11, "every agent gets the fleet's default budgets");
    // The OpenClaw agents (all but the coding runs' executor) think and remember.
    for agent in ids.iter().filter(|a| *a != "dev-runner") {
        let md = std::fs::read_to_string(dir.join(agent).join("AGENTS.md")).unwrap();
        assert!(md.contains("## Proactive work"), "{agent}");
        assert!(md.contains("## Memory"), "{agent}");
        assert!(
            md.contains("only from\nevidence") || md.contains("only from evidence"),
            "{agent}"
        );
    }
    let agents: Value = db.one(
        "select jsonb_agg(jsonb_build_object('id', agent_id, 'c', max_concurrency, 'w', wake_mode) order by agent_id)
         from agents where namespace = 'ops'",
    );
    for a in agents.as_array().unwrap() {
        if a["id"] == "dev-runner" {
            // Runs `agentbus code run` per job; two runs at once on its host.
            assert_eq!(
                (a["c"].clone(), a["w"].clone()),
                (json!(2), json!("exec")),
                "{a}"
            );
            continue;
        }
        assert_eq!(a["c"], 1, "{a}");
        assert_eq!(a["w"], "hook", "{a}");
    }
    // The seed's reactions: a security alert to security, an anomaly to devops.
    let reactions: String = db.one(
        "select string_agg(agent_id || ':' || topic_like, ',' order by agent_id, reaction_name)
           from reactions where namespace = 'ops'",
    );
    assert!(
        reactions.contains("security:security.alert.%"),
        "{reactions}"
    );
    assert!(reactions.contains("devops:ops.anomaly"), "{reactions}");
    db.cli(&[
        "emit-event",
        "--namespace",
        "ops",
        "--topic",
        "ops.anomaly",
        "--source-agent",
        "auditor",
        "--payload",
        r#"{"kind":"retry_storm","agent":"research"}"#,
    ])
    .ok();
    let subject: String = db.one(
        "select subject from jobs where namespace = 'ops' and target_agent = 'devops' and job_type = 'reaction'",
    );
    assert_eq!(subject, "service.diagnose: retry_storm (research)");
    // The seed's schedules, a few by name.
    for (order, cron) in [
        ("audit-lease-reaper", "*/5 * * * *"),
        ("coord-daily-replan", "0 6 * * *"),
        ("design-queue-triage", "0 9 * * 1-5"),
        ("publisher-weekly-report", "0 17 * * 5"),
        ("knowledge-hygiene", "30 2 * * *"),
    ] {
        let got: String = db.one(&format!(
            "select cron from standing_orders where namespace = 'ops' and order_name = '{order}'"
        ));
        assert_eq!(got, cron, "{order}");
    }
}

#[test]
fn the_b2b_fleet_gates_everything_past_negotiation_behind_approval() {
    let dir = fleet_dir("b2b");
    for agent in ["orchestrator", "deal-conversion"] {
        let md = std::fs::read_to_string(dir.join(agent).join("AGENTS.md")).unwrap();
        assert!(md.contains("Nothing moves past negotiation"), "{agent}");
        assert!(md.contains("--requires-approval"), "{agent}");
    }
    for agent in ["lead-gen", "customer-success"] {
        let md = std::fs::read_to_string(dir.join(agent).join("AGENTS.md")).unwrap();
        assert!(md.contains("T3 (long tail)"), "{agent}: the tier rules");
    }
}

/// The seed's hub and spoke: the coordinator hands work to anyone but the auditor; the
/// specialists and the auditor only to the coordinator, the project tracker and the
/// publisher; the project tracker back to specialists for follow-ups; and each role's
/// AGENTS.md names the seed's job subjects and event topics.
#[test]
fn the_operations_fleet_speaks_the_seed_vocabulary_hub_and_spoke() {
    let dir = fleet_dir("ops");
    let specialists = [
        "knowledge",
        "devops",
        "product-metrics",
        "design",
        "security",
        "research",
    ];
    let control = ["coordinator", "project-tracker", "publisher"];
    let vocabulary: [(&str, &[&str]); 10] = [
        (
            "coordinator",
            &[
                "plan.new",
                "cross_specialist.route",
                "work.assigned",
                "blocker.rerouted",
            ],
        ),
        (
            "auditor",
            &[
                "audit.leases",
                "audit.stuck_jobs",
                "ops.anomaly",
                "standing_order.missed",
            ],
        ),
        (
            "project-tracker",
            &[
                "project.debrief.collect",
                "project.followup.request",
                "project.debrief.missing",
            ],
        ),
        (
            "knowledge",
            &[
                "knowledge.consolidate",
                "knowledge.promote_fact",
                "memory.conflict.detected",
            ],
        ),
        (
            "devops",
            &[
                "infra.check",
                "ops.runbook",
                "service.state.changed",
                "incident.note.recorded",
            ],
        ),
        (
            "product-metrics",
            &[
                "metrics.analyze",
                "funnel.check",
                "metrics.anomaly",
                "decision.support.ready",
            ],
        ),
        (
            "design",
            &[
                "design.explore",
                "flow.propose",
                "ux.issue.found",
                "design.brief.ready",
            ],
        ),
        (
            "security",
            &[
                "security.review",
                "threat.model",
                "risk.blocker",
                "security.review.completed",
            ],
        ),
        (
            "research",
            &[
                "research.scan",
                "source.compare",
                "research.packet.ready",
                "evidence.bundle.ready",
            ],
        ),
        (
            "publisher",
            &[
                "digest.publish",
                "report.compose",
                "digest.ready",
                "publication.blocked",
            ],
        ),
    ];
    for (agent, words) in vocabulary {
        let md = std::fs::read_to_string(dir.join(agent).join("AGENTS.md")).unwrap();
        for w in words {
            assert!(
                md.contains(&format!("`{w}`")),
                "{agent}: AGENTS.md lacks `{w}`"
            );
        }
        let toml: toml::Table = std::fs::read_to_string(dir.join(agent).join("agent.toml"))
            .unwrap()
            .parse()
            .unwrap();
        let handoffs: BTreeSet<&str> = toml["handoffs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            !handoffs.contains("auditor"),
            "{agent} hands work to the auditor"
        );
        match agent {
            "coordinator" => {
                for s in specialists.iter().chain(&["project-tracker", "publisher"]) {
                    assert!(handoffs.contains(s), "coordinator cannot reach {s}");
                }
            }
            "project-tracker" => assert!(handoffs.contains("coordinator")),
            // The seed's planner -> executor -> review loop: devops plans code changes for
            // the runner and reviews what it returns; the runner is a tool, not a
            // specialist, and answers only to devops.
            "dev-runner" => assert_eq!(handoffs, BTreeSet::from(["devops"])),
            _ => {
                for h in handoffs
                    .iter()
                    .filter(|h| !(agent == "devops" && **h == "dev-runner"))
                {
                    assert!(
                        control.contains(h),
                        "{agent} hands work to {h}: specialists talk through the coordinator"
                    );
                }
            }
        }
    }
}

/// The working files of the fleet the go-to-market design described: a soul per agent,
/// a playbook per sales agent that its AGENTS.md tells it to read, progress and daily logs
/// kept by the standup; no WORKING.md (agentbus is the queue).
#[test]
fn the_gtm_fleet_keeps_its_working_files_and_the_standup_writes_the_daily_log() {
    let dir = fleet_dir("gtm");
    for (agent, playbook) in [
        ("scout", Some("STRATEGY-icp.md")),
        ("writer", Some("STRATEGY-copy.md")),
        ("rep", Some("STRATEGY-objections.md")),
        ("closer", Some("STRATEGY-pricing.md")),
        ("mission-control", None),
    ] {
        let folder = dir.join(agent);
        assert!(folder.join("SOUL.md").is_file(), "{agent}: SOUL.md");
        assert!(
            !folder.join("WORKING.md").exists(),
            "{agent}: agentbus is the queue"
        );
        let md = std::fs::read_to_string(folder.join("AGENTS.md")).unwrap();
        assert!(md.contains("## Working files"), "{agent}");
        if let Some(p) = playbook {
            assert!(folder.join(p).is_file(), "{agent}: {p}");
            assert!(
                md.contains(&format!("`{p}`")),
                "{agent}: AGENTS.md names {p}"
            );
        }
    }
    let mc = dir.join("mission-control");
    assert!(mc.join("PROGRESS.md").is_file());
    assert!(mc.join("memory").is_dir());
    let toml: toml::Table = std::fs::read_to_string(mc.join("agent.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let standup = toml["standing_orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"].as_str() == Some("nightly-standup"))
        .unwrap();
    let message = standup["message"].as_str().unwrap();
    assert!(message.contains("memory/YYYY-MM-DD.md"), "{message}");
    assert!(message.contains("PROGRESS.md"), "{message}");
    assert_eq!(standup["cron"].as_str(), Some("30 23 * * *"));
}
