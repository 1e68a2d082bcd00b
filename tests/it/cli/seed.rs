//! The design conversation's own commands, run as it wrote them: every subcommand and
//! flag of its parser is accepted, and every usage example runs literally
//! (tests/fixtures/seed-usage.sh) with the outputs its scripts read.

use crate::support::{path_with_binaries, s, Scratch, TestDb};
use serde_json::Value;
use std::process::Command;

const PARSER: &str = include_str!("../../fixtures/seed-parser.txt");
const USAGE: &str = include_str!("../../fixtures/seed-usage.sh");
const SEEDED: &str = "11111111-1111-1111-1111-111111111111";

#[test]
fn every_subcommand_and_flag_of_the_seed_parser_is_accepted() {
    let db = TestDb::new();
    let mut checked = 0;
    for line in PARSER
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('=') && !l.is_empty())
    {
        let mut words = line.split_whitespace();
        let Some(sub) = words.next() else { continue };
        let help = db.cli(&[sub, "--help"]).ok_text();
        for word in words {
            let wanted = match word.strip_prefix('<').and_then(|w| w.strip_suffix('>')) {
                Some(positional) => positional.to_uppercase(),
                None => word.to_string(),
            };
            assert!(
                help.contains(&wanted),
                "{sub}: the seed's {word} is missing from --help:\n{help}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 139, "the fixture changed: recount");
}

/// Each value the seed's parser allows is accepted: clap rejects an unknown value with
/// exit 2 before anything else, so any other outcome (here: a missing required flag or a
/// row that does not exist) means the value parsed.
#[test]
fn every_value_the_seed_parser_allows_is_accepted() {
    let db = TestDb::new();
    let mut checked = 0;
    for line in PARSER.lines().filter_map(|l| l.strip_prefix("= ")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (sub, flag) = (words[0], words[1]);
        for value in &words[2..] {
            let out = db.cli(&[sub, flag, value]);
            assert!(
                !out.stderr.contains("invalid value"),
                "{sub} {flag} {value}: {}",
                out.stderr
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 50, "the fixture changed: recount");
}

/// The example blocks, in order, each with its title.
fn examples() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in USAGE.lines() {
        if let Some(title) = line.strip_prefix("# example: ") {
            out.push((title.to_string(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

#[test]
fn every_usage_example_of_the_seed_runs_literally() {
    let db = TestDb::new();
    // The rows the examples name by id.
    db.client()
        .batch_execute(&format!(
            "insert into jobs (id, target_agent, job_type, subject)
               values ('{SEEDED}', 'security', 'reactive', 'the job the example event names');
             insert into opportunities (id, source_agent, theme, title, why_now, impact_score,
                                        confidence_score, urgency_score, reversibility,
                                        suggested_next_step)
               values ('{SEEDED}', 'research', 'onboarding-gap', 'Onboarding gap',
                       'seeded for the example', 4, 3, 3, 'high', 'scope an experiment');
             insert into ideas (id, source_agent, theme, title, body, evidence)
               values ('{SEEDED}', 'design', 'onboarding', 'Paired setup',
                       'A guided paired setup might reduce friction.', '{{\"reads\": 3}}');"
        ))
        .expect("seed rows");
    // `./agentbus.py` as the seed calls it: the same binary under the seed's name.
    let bin = Scratch::new();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_agentbus"), bin.0.join("agentbus.py"))
        .expect("symlink");
    let blocks = examples();
    assert_eq!(blocks.len(), 11, "the fixture changed: recount");
    let mut outputs = Vec::new();
    for (title, body) in &blocks {
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", body])
            .current_dir(&bin.0)
            .env_clear()
            .env("PATH", path_with_binaries())
            .env("USER", "tester")
            .env("AGENTBUS_DATABASE_URL", &db.url)
            .output()
            .expect("bash");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "example {title:?} failed ({}):\n{body}\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let printed: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("example {title:?} printed no JSON ({e}): {stdout}"));
        outputs.push((title.clone(), printed));
    }
    let out = |title: &str| -> &Value {
        &outputs
            .iter()
            .find(|(t, _)| t == title)
            .unwrap_or_else(|| panic!("no example {title:?}"))
            .1
    };

    // What each example wrote, as the seed means it.
    let job = out("enqueue work for the security agent");
    assert_eq!(job["status"], "queued");
    assert_eq!(job["dedupe_key"], "dep:fastapi:0.116.0");
    assert_eq!(
        out("emit an event after completion")["source_job_id"],
        SEEDED
    );
    let run = out("record a standing order run");
    assert_eq!(run["status"], "completed");
    assert_eq!(run["evidence"]["requeued"], 2);
    let claimed = out("dispatcher claim")
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(claimed.len(), 2, "the seeded job and the security job");
    assert!(claimed.iter().all(|j| j["lease_owner"] == "dispatcher-1"));
    // `… | jq -r .id` gets the new opportunity.
    let opp = out("create-opportunity");
    assert_eq!(opp["outcome"], "opportunity");
    assert_eq!(opp["deduped"], false);
    assert_eq!(opp["status"], "new");
    assert!(opp["id"].is_string(), "{opp}");
    assert_eq!(out("triage-opportunity")["status"], "accepted");
    let converted = out("convert-opportunity");
    assert_eq!(converted["opportunity"]["status"], "converted_to_job");
    let job = &converted["job"];
    assert_eq!(job["priority"], 120);
    assert_eq!(job["job_type"], "proactive");
    for key in [
        "origin",
        "opportunity_id",
        "title",
        "theme",
        "why_now",
        "suggested_next_step",
    ] {
        assert!(
            job["payload"].get(key).is_some(),
            "payload lacks {key}: {job}"
        );
    }
    assert_eq!(job["payload"]["kind"], "experiment-proposal");
    assert_eq!(out("create-idea")["status"], "new");
    assert_eq!(out("review-idea")["status"], "reviewed");
    let promoted = out("promote-idea-to-opportunity");
    assert_eq!(promoted["idea"]["status"], "promoted_to_opportunity");
    assert_eq!(promoted["opportunity"]["status"], "triaged");
    assert_eq!(promoted["opportunity"]["source_agent"], "coordinator");
    assert_eq!(
        promoted["opportunity"]["evidence"]["idea_body"],
        "A guided paired setup might reduce friction."
    );
    assert_eq!(
        promoted["opportunity"]["evidence"]["promotion_evidence"]["origin"],
        "idea-promotion"
    );
    assert_eq!(out("phase 1 smoke test")["subject"], "phase1.smoke-test");
}

#[test]
fn promotion_falls_back_to_the_ideas_theme_and_title_as_the_seed_parser_does() {
    let db = TestDb::new();
    let idea = s(
        &db.cli(&[
            "create-idea",
            "--source-agent",
            "design",
            "--theme",
            "onboarding",
            "--title",
            "Paired setup",
            "--body",
            "Setup could feel collaborative.",
        ])
        .ok(),
        "id",
    );
    let promoted = db
        .cli(&[
            "promote-idea-to-opportunity",
            "--idea-id",
            &idea,
            "--promoted-by",
            "coordinator",
            "--why-now",
            "three reads this week",
            "--impact-score",
            "3",
            "--confidence-score",
            "3",
            "--urgency-score",
            "2",
            "--reversibility",
            "medium",
            "--suggested-next-step",
            "scope it",
        ])
        .ok();
    let opp = &promoted["opportunity"];
    assert_eq!(opp["theme"], "onboarding");
    assert_eq!(opp["title"], "Paired setup");
    assert_eq!(opp["triaged_by"], "coordinator");
    assert_eq!(opp["triage_notes"], format!("promoted from idea {idea}"));
    assert_eq!(
        opp["evidence"]["idea_body"],
        "Setup could feel collaborative."
    );
}
