//! `db::Session`: a connection that prepares the close once and reuses it, with the same
//! rows, the same refusals and the same transactions as a plain connection.

use agentbus::db::{self, Session, Tx};
use agentbus::error::Error;
use agentbus::ledger::jobs::{self, Caller, CompleteParams, Fence};
use postgres::fallible_iterator::FallibleIterator;
use serde_json::Value;

use crate::support::{settings, TestDb};

fn agent() -> Caller {
    Caller {
        actor: "scout".into(),
        command: "complete-job".into(),
    }
}

fn by_token(token: &str) -> Fence {
    Fence {
        lease_token: Some(token.parse().unwrap()),
        attempt: None,
        force: false,
    }
}

/// Named statements prepared on `session`'s server connection (asked through the simple
/// protocol, which prepares nothing itself).
fn prepared_on(session: &mut Session) -> i64 {
    let rows = session
        .simple_query("select count(*) from pg_prepared_statements")
        .unwrap();
    rows.iter()
        .find_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => r.get(0).map(|v| v.parse().unwrap()),
            _ => None,
        })
        .unwrap()
}

/// A closed job's rows without what differs from job to job (ids, times, tokens).
pub(crate) fn closed_shape(db: &TestDb, id: &str) -> Value {
    db.one(&format!(
        "select jsonb_build_object(
           'job', (select to_jsonb(j.*) - '{{id,subject,created_at,updated_at,completed_at,lease_token,run_after}}'::text[]
                     from jobs j where id = '{id}'),
           'attempt', (select to_jsonb(a.*) - '{{id,job_id,lease_token,started_at,finished_at}}'::text[]
                         from job_attempts a where job_id = '{id}'),
           'history', (select jsonb_agg(jsonb_build_array(from_status, to_status, actor, reason) order by id)
                         from job_history where job_id = '{id}'))"
    ))
}

/// Three jobs for `scout`, claimed: their ids, and (id, token) of each claim in order.
fn three_claimed(db: &TestDb) -> (Vec<String>, Vec<(String, String)>) {
    let ids = (0..3)
        .map(|i| db.enqueue("scout", &format!("job {i}"), &[]))
        .collect();
    let claims = (0..3).map(|_| db.claim_one("sup", None)).collect();
    (ids, claims)
}

#[test]
fn a_session_prepares_the_close_once_and_leaves_the_rows_a_plain_connection_leaves() {
    let db = TestDb::new();
    let (ids, claims) = three_claimed(&db);
    let params = CompleteParams {
        summary: Some("done".into()),
        ..Default::default()
    };

    let mut session = Session::new(db.client());
    for (id, token) in &claims[..2] {
        let job = session
            .transaction(|tx| {
                jobs::complete(tx, id.parse().unwrap(), by_token(token), &agent(), &params)
            })
            .unwrap();
        assert_eq!(job.id.to_string(), *id);
    }
    // The close and the notice of its freed slot, each prepared once.
    assert_eq!(prepared_on(&mut session), 2);

    let (id, token) = &claims[2];
    let mut plain = db.client();
    db::transaction(&mut plain, |tx| {
        jobs::complete(tx, id.parse().unwrap(), by_token(token), &agent(), &params)
    })
    .unwrap();

    let first = closed_shape(&db, &ids[0]);
    assert_eq!(first["job"]["status"], "succeeded", "{first}");
    for id in &ids[1..] {
        assert_eq!(closed_shape(&db, id), first, "job {id} differs");
    }
}

#[test]
fn a_session_refuses_a_stale_token_and_keeps_its_statement_across_rolled_back_work() {
    let db = TestDb::new();
    let id = db.enqueue("scout", "find leads", &[]);
    let (claimed, token) = db.claim_one("sup", None);
    assert_eq!(claimed, id);
    let job_id = id.parse().unwrap();
    let params = CompleteParams::default();
    let mut session = Session::new(db.client());

    // A token that is not the job's: refused (exit 4), nothing written.
    let before = db.snapshot();
    let stale = session
        .transaction(|tx| {
            jobs::complete(
                tx,
                job_id,
                by_token(&uuid::Uuid::new_v4().to_string()),
                &agent(),
                &params,
            )
        })
        .unwrap_err();
    assert_eq!(stale.kind.exit_code(), 4, "{stale:?}");
    assert_eq!(before, db.snapshot(), "a refused close wrote something");

    // A close whose transaction is then rolled back leaves the job as it was ...
    let rolled_back = session.transaction(|tx| {
        jobs::complete(tx, job_id, by_token(&token), &agent(), &params)?;
        Err::<(), _>(Error::not_found("the caller gave up"))
    });
    assert!(rolled_back.is_err());
    let status: String = db.one(&format!("select status::text from jobs where id = '{id}'"));
    assert_eq!(status, "leased", "a rolled-back close changed the job");

    // ... and the statement prepared meanwhile still serves the session.
    let job = session
        .transaction(|tx| jobs::complete(tx, job_id, by_token(&token), &agent(), &params))
        .unwrap();
    assert_eq!(job.status.to_string(), "succeeded");
    assert_eq!(prepared_on(&mut session), 2, "the close and its notice");
    let closes: i64 = db.one(&format!(
        "select count(*) from job_history where job_id = '{id}' and to_status = 'succeeded'"
    ));
    assert_eq!(closes, 1);
}

/// The `jobs_ready` notifications `listener` received within half a second.
fn heard(listener: &mut postgres::Client) -> Vec<Value> {
    let mut notes = listener.notifications();
    let mut iter = notes.timeout_iter(std::time::Duration::from_millis(500));
    let mut heard = Vec::new();
    while let Ok(Some(n)) = iter.next() {
        heard.push(serde_json::from_str(n.payload()).unwrap());
    }
    heard
}

#[test]
fn a_session_announces_the_freed_slot_once_after_its_commit_and_not_after_a_rollback() {
    let db = TestDb::new();
    let id = db.enqueue("scout", "find leads", &[]);
    let other = db.enqueue("scout", "write it up", &[]);
    let (first, token) = db.claim_one("sup", None);
    let (second, other_token) = db.claim_one("sup", None);
    assert_eq!(
        (first.as_str(), second.as_str()),
        (id.as_str(), other.as_str())
    );
    let third = db.enqueue("scout", "read it back", &[]);
    db.claim_one("sup", None);
    let fourth = db.enqueue("scout", "file it", &[]);
    assert_eq!(db.claim_one("sup", None).0, fourth);
    let mut listener = db.client();
    listener.batch_execute("LISTEN jobs_ready").unwrap();
    let params = CompleteParams::default();
    let mut session = Session::new(db.client());

    // Rolled back: the job is not closed and nothing is announced.
    let _ = session.transaction(|tx| {
        jobs::complete(tx, id.parse().unwrap(), by_token(&token), &agent(), &params)?;
        Err::<(), _>(Error::not_found("the caller gave up"))
    });
    assert!(heard(&mut listener).is_empty());

    // Committed: one notice, naming the job. The close named its job for the trigger,
    // which leaves such a job's notice to the caller (shown below), so the one heard is
    // the session's, sent after the commit.
    let named: String = session
        .transaction(|tx| {
            jobs::complete(tx, id.parse().unwrap(), by_token(&token), &agent(), &params)?;
            let row = tx
                .transaction()
                .query_one("select current_setting('agentbus.slot_notice', true)", &[])?;
            Ok(row.get(0))
        })
        .unwrap();
    assert_eq!(named, id);
    let notes = heard(&mut listener);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["job_id"], id.as_str());
    assert_eq!(notes[0]["target_agent"], "scout");
    assert_eq!(notes[0]["slot_freed"], true);

    // A plain transaction's close is announced by the trigger, once, as before.
    let mut plain = db.client();
    db::transaction(&mut plain, |tx| {
        jobs::complete(
            tx,
            other.parse().unwrap(),
            by_token(&other_token),
            &agent(),
            &params,
        )
    })
    .unwrap();
    let notes = heard(&mut listener);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["job_id"], other.as_str());

    // A session close on the general path (an operator's forced close) is announced by
    // the trigger alone: the session adds no second notice.
    let forced = Fence {
        lease_token: None,
        attempt: None,
        force: true,
    };
    session
        .transaction(|tx| jobs::complete(tx, fourth.parse().unwrap(), forced, &agent(), &params))
        .unwrap();
    let notes = heard(&mut listener);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["job_id"], fourth.as_str());

    // The trigger stays silent for the job a transaction names, and only for it.
    let mut raw = db.client();
    let mut tx = raw.transaction().unwrap();
    tx.execute(
        "select set_config('agentbus.slot_notice', $1, true)",
        &[&third],
    )
    .unwrap();
    tx.execute(
        "update jobs set status = 'cancelled' where id = $1::text::uuid",
        &[&third],
    )
    .unwrap();
    tx.commit().unwrap();
    assert!(
        heard(&mut listener).is_empty(),
        "the trigger announced a named job"
    );
}

#[test]
fn a_session_is_refused_through_a_transaction_pooler_before_connecting() {
    // Port 1 answers nothing: had it tried to connect, the error would say unreachable.
    let url = "postgresql://agent@127.0.0.1:1/agentbus";
    let lookup = |mode: &'static str| {
        move |k: &str| match k {
            "AGENTBUS_DATABASE_URL" => Some(url.to_string()),
            "AGENTBUS_POOL_MODE" => Some(mode.to_string()),
            _ => None,
        }
    };
    let through_pooler = db::DbConfig::from_lookup(lookup("transaction")).unwrap();
    let e = Session::connect(&through_pooler, &settings())
        .err()
        .expect("refused");
    assert_eq!(e.kind, agentbus::error::ErrorKind::Config, "{e:?}");
    assert_eq!(e.kind.exit_code(), 78);
    assert!(
        e.message.contains("AGENTBUS_POOL_MODE=transaction"),
        "{e:?}"
    );

    // The same address in session mode does try, and finds nobody there.
    let direct = db::DbConfig::from_lookup(lookup("session")).unwrap();
    let e = Session::connect(&direct, &settings())
        .err()
        .expect("nobody");
    assert_eq!(e.kind, agentbus::error::ErrorKind::Temporary, "{e:?}");

    // A real server in session mode: a session that prepares its statements.
    let db = TestDb::new();
    let mut session =
        Session::connect(&db::DbConfig::parse(&db.url).unwrap(), &settings()).expect("a session");
    let id = db.enqueue("scout", "through a session", &[]);
    let (_, token) = db.claim_one("sup", None);
    let job = session
        .transaction(|tx| {
            jobs::complete(
                tx,
                id.parse().unwrap(),
                by_token(&token),
                &agent(),
                &CompleteParams::default(),
            )
        })
        .unwrap();
    assert_eq!(job.status.as_str(), "succeeded");
    assert!(prepared_on(&mut session) >= 1);
}

#[test]
fn a_close_on_a_session_in_one_round_trip_leaves_the_rows_of_a_transaction_and_one_notice() {
    let db = TestDb::new();
    let (ids, claims) = three_claimed(&db);
    let params = CompleteParams {
        summary: Some("done".into()),
        ..Default::default()
    };
    let mut listener = db.client();
    listener.batch_execute("LISTEN jobs_ready").unwrap();
    let mut session = Session::new(db.client());
    let close = |session: &mut Session, id: &str, token: &str, p: &CompleteParams| {
        jobs::complete_on_session(session, id.parse().unwrap(), by_token(token), &agent(), p)
    };

    // Current token: the one statement, committed on its own, then the session's notice.
    let (id, token) = &claims[0];
    let job = close(&mut session, id, token, &params).unwrap();
    assert_eq!(job.status.to_string(), "succeeded");
    let notes = heard(&mut listener);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["job_id"], id.as_str());
    assert_eq!(notes[0]["slot_freed"], true);
    // No transaction was left open on the session: a query outside one (the simple
    // protocol, one message) is its own transaction, started when the query was, and has
    // written nothing.
    let own_transaction = session
        .simple_query(
            "select now() = statement_timestamp() and pg_current_xact_id_if_assigned() is null",
        )
        .unwrap()
        .iter()
        .any(|m| matches!(m, postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("t")));
    assert!(own_transaction, "the close left a transaction open");

    // The same rows as a close in a session's transaction.
    let (other, other_token) = &claims[1];
    session
        .transaction(|tx| {
            jobs::complete(
                tx,
                other.parse().unwrap(),
                by_token(other_token),
                &agent(),
                &params,
            )
        })
        .unwrap();
    heard(&mut listener);
    assert_eq!(closed_shape(&db, &ids[0]), closed_shape(&db, &ids[1]));

    // Closed again with its token: the general path repeats the close, announces nothing.
    let again = close(&mut session, id, token, &params).unwrap();
    assert_eq!(again.status.to_string(), "succeeded");
    assert!(heard(&mut listener).is_empty());

    // A token that is not the job's: refused (exit 4) by the general path, nothing
    // written, nothing announced; a summary that is not text: refused before anything runs.
    let (third, _) = &claims[2];
    let before = db.snapshot();
    let stale = close(
        &mut session,
        third,
        &uuid::Uuid::new_v4().to_string(),
        &params,
    )
    .unwrap_err();
    assert_eq!(stale.kind.exit_code(), 4, "{stale:?}");
    let bad = CompleteParams {
        summary: Some("done\u{0}".into()),
        ..Default::default()
    };
    let refused = close(&mut session, third, &claims[2].1, &bad).unwrap_err();
    assert_eq!(refused.kind.exit_code(), 2, "{refused:?}");
    assert_eq!(before, db.snapshot(), "a refused close wrote something");
    assert!(heard(&mut listener).is_empty());
}
