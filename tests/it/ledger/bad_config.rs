//! Configuration problems (no database named, one unreachable, a malformed URL, a database
//! never migrated) have their own exit codes, and never print the password they were given.

use crate::support::{run_cli, TestDb};

#[test]
fn configuration_problems_have_their_own_exit_codes() {
    let out = run_cli(&["list-jobs"], &[], None);
    out.fails(78, "DATABASE_URL is not set");

    let out = run_cli(
        &["list-jobs"],
        &[("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")],
        None,
    );
    out.fails(75, "database unreachable");

    let out = run_cli(
        &["list-jobs"],
        &[("DATABASE_URL", "postgresql://u:s3cret-pw@127.0.0.1:1/none")],
        None,
    );
    assert!(
        !out.stderr.contains("s3cret-pw"),
        "the password leaked: {}",
        out.stderr
    );

    let out = run_cli(
        &["list-jobs"],
        &[("DATABASE_URL", "postgresql://u:s3cret-pw@[bad")],
        None,
    );
    out.fails(78, "not a valid");
    assert!(
        !out.stderr.contains("s3cret-pw"),
        "the password leaked: {}",
        out.stderr
    );

    let empty = TestDb::empty();
    let out = empty.cli(&["list-jobs"]);
    out.fails(78, "agentbus migrate");
}
