//! Every (state, command) pair: legal ones move the job where the state machine says,
//! illegal ones exit 4 and change nothing.

use agentbus::ledger::jobs::JobStatus;

use crate::support::TestDb;

/// Where each command takes a job from each state; `None` = illegal.
fn expected(command: &str, from: JobStatus) -> Option<JobStatus> {
    use JobStatus::*;
    let leased_or_running = matches!(from, Leased | Running);
    match command {
        "mark-running-job" => leased_or_running.then_some(Running),
        "complete-job" => leased_or_running.then_some(Succeeded),
        "block-job" => leased_or_running.then_some(Blocked),
        "fail-job" => leased_or_running.then_some(Dead),
        "fail-job-retry" => leased_or_running.then_some(Queued),
        "renew-job-lease" => leased_or_running.then_some(from),
        _ => unreachable!("unknown command {command}"),
    }
}

fn args<'a>(command: &'a str, id: &'a str) -> Vec<&'a str> {
    match command {
        "block-job" => vec!["block-job", id, "--blocked-reason", "waiting on a human"],
        "fail-job" => vec!["fail-job", id, "--last-error", "boom"],
        "fail-job-retry" => vec![
            "fail-job",
            id,
            "--last-error",
            "boom",
            "--retry-seconds",
            "30",
        ],
        other => vec![other, id],
    }
}

#[test]
fn every_state_and_command_pair_follows_the_state_machine() {
    let db = TestDb::new();
    let commands = [
        "mark-running-job",
        "complete-job",
        "block-job",
        "fail-job",
        "fail-job-retry",
        "renew-job-lease",
    ];
    let mut checked = 0;
    for from in JobStatus::ALL {
        for command in commands {
            let id = db.insert_job_in(from.as_str()).to_string();
            let before = db.snapshot();

            // The job's own lease, when it has one (a close without it is refused: fencing).
            let token: Option<uuid::Uuid> =
                db.one(&format!("select lease_token from jobs where id = '{id}'"));
            let token = token.map(|t| t.to_string());
            let mut argv = args(command, &id);
            if let Some(t) = &token {
                argv.extend(["--lease-token", t.as_str()]);
            }
            let out = db.cli(&argv);

            match expected(command, from) {
                Some(to) => {
                    let job = out.ok();
                    assert_eq!(job["status"], to.as_str(), "{command} from {from}");
                    if from != to {
                        let history =
                            db.cli(&["show-job", &id, "--format", "json"]).ok()["history"].clone();
                        let last = history
                            .as_array()
                            .and_then(|h| h.last())
                            .cloned()
                            .unwrap_or_default();
                        assert_eq!(
                            last["from_status"],
                            from.as_str(),
                            "{command} from {from}: history"
                        );
                        assert_eq!(
                            last["to_status"],
                            to.as_str(),
                            "{command} from {from}: history"
                        );
                    }
                }
                None => {
                    out.fails(4, &format!("is {from}"));
                    assert_eq!(
                        db.snapshot(),
                        before,
                        "{command} from {from} changed the database"
                    );
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, JobStatus::ALL.len() * commands.len());
}

#[test]
fn only_queued_jobs_whose_time_has_come_are_claimed() {
    let db = TestDb::new();
    for from in JobStatus::ALL {
        let id = db.insert_job_in(from.as_str());
        let before = db.snapshot();

        let claimed = db
            .cli(&["claim-jobs", "--lease-owner", "d1", "--limit", "100"])
            .ok();

        let claimed = claimed.as_array().cloned().unwrap_or_default();
        if from == JobStatus::Queued {
            assert_eq!(claimed.len(), 1);
            assert_eq!(claimed[0]["id"].as_str(), Some(id.to_string().as_str()));
        } else {
            assert!(claimed.is_empty(), "a {from} job was claimed");
            assert_eq!(
                db.snapshot(),
                before,
                "claiming with a {from} job changed the database"
            );
        }
    }
    let later = db
        .cli(&[
            "enqueue-job",
            "--target-agent",
            "a",
            "--subject",
            "later",
            "--run-after",
            "+1h",
        ])
        .ok();
    let claimed = db
        .cli(&["claim-jobs", "--lease-owner", "d1", "--limit", "100"])
        .ok();
    assert!(
        claimed.as_array().is_some_and(Vec::is_empty),
        "claimed {} before its run_after",
        later["id"]
    );
}
