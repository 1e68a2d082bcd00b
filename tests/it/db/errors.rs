//! How a database error becomes an exit code: data this build cannot read is a failure
//! (exit 1, retrying cannot help), a lost or refused connection is temporary (exit 75).

use agentbus::error::{Error, ErrorKind};

use crate::support::{settings, TestDb};

fn classified(e: postgres::Error) -> Error {
    Error::from(e)
}

#[test]
fn a_value_this_build_cannot_read_is_a_failure_not_a_retry() {
    let db = TestDb::new();
    let mut c = db.client();

    // A column of another type than the one asked for.
    let row = c.query_one("select 'not a number'::text", &[]).unwrap();
    let e = classified(row.try_get::<_, i32>(0).unwrap_err());
    assert_eq!(e.kind, ErrorKind::Failure, "{e:?}");
    assert_eq!(e.kind.exit_code(), 1);
    assert!(
        e.message.starts_with("unexpected database response"),
        "{e:?}"
    );

    // A column that is not there.
    let e = classified(row.try_get::<_, String>("missing").unwrap_err());
    assert_eq!(e.kind, ErrorKind::Failure, "{e:?}");

    // One row expected, none returned.
    let e = classified(c.query_one("select 1 where false", &[]).unwrap_err());
    assert_eq!(e.kind, ErrorKind::Failure, "{e:?}");

    // Fewer parameters than the statement has.
    let e = classified(c.query("select $1::int", &[]).unwrap_err());
    assert_eq!(e.kind, ErrorKind::Failure, "{e:?}");
}

#[test]
fn a_lost_or_refused_connection_is_temporary() {
    let db = TestDb::new();
    let mut c = db.client();
    let pid: i32 = c.query_one("select pg_backend_pid()", &[]).unwrap().get(0);
    db.client()
        .execute("select pg_terminate_backend($1)", &[&pid])
        .unwrap();
    let e = classified(c.query_one("select 1", &[]).unwrap_err());
    assert_eq!(e.kind, ErrorKind::Temporary, "{e:?}");
    assert_eq!(e.kind.exit_code(), 75);

    let dead = agentbus::db::DbConfig::parse("postgresql://nobody@127.0.0.1:1/none").unwrap();
    let e = agentbus::db::connect(&dead, &settings())
        .err()
        .expect("nobody listens");
    assert_eq!(e.kind, ErrorKind::Temporary, "{e:?}");
}
