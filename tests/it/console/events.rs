//! events: filters, topic prefixes, and --follow streaming events that commit late.

use crate::support::{s, TestDb};
use serde_json::Value;

#[test]
fn events_filter_by_topic_prefix_and_agent_and_follow_streams_new_ones() {
    let db = TestDb::new();
    let emit = |topic: &str, agent: &str| {
        db.cli(&[
            "emit-event",
            "--topic",
            topic,
            "--source-agent",
            agent,
            "--payload",
            "{}",
        ])
        .ok()
    };
    emit("standing_order.missed", "auditor");
    emit("standing_order.alert", "auditor");
    emit("prospect.found", "scout");
    let topics = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["events", "--format", "json"];
        all.extend_from_slice(args);
        db.cli(&all)
            .ok()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| s(e, "topic"))
            .collect()
    };
    assert_eq!(topics(&[]).len(), 3);
    assert_eq!(
        topics(&["--topic", "standing_order.*"]),
        ["standing_order.missed", "standing_order.alert"]
    );
    assert_eq!(topics(&["--topic", "prospect.found"]), ["prospect.found"]);
    assert_eq!(topics(&["--source-agent", "scout"]), ["prospect.found"]);
    assert_eq!(topics(&["--limit", "1"]), ["prospect.found"], "the newest");
    db.cli(&["events", "--topic", "a*b"])
        .fails(2, "prefix ending in .*");
    db.cli(&["events", "--limit", "0"]).fails(2, "out of range");

    // --follow: what exists, then what arrives, as JSON Lines.
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_agentbus"))
        .args(["events", "--follow", "--topic", "prospect.*"])
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let next = || -> Value {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("a line within 20 s");
        serde_json::from_str(&line).unwrap()
    };
    assert_eq!(next()["topic"], "prospect.found");
    emit("other.topic", "x");
    emit("prospect.lost", "scout");
    assert_eq!(next()["topic"], "prospect.lost");
    emit("prospect.won", "closer");
    assert_eq!(next()["topic"], "prospect.won");
    child.kill().unwrap();
    let _ = child.wait();
}
