//! Fixture builders: put a job where time, a crash or a long history would have put it,
//! so a test reads as the situation it sets up ("a job whose lease expired 5 minutes ago")
//! instead of as an UPDATE statement.
//!
//! ```ignore
//! db.job(&id).lease_expired("5 minutes").attempts(4).last_error("gateway 502");
//! ```
//!
//! Intervals are PostgreSQL intervals (`"90 seconds"`, `"3 days"`), measured against the
//! database's clock. Each call is one statement with the triggers off (no history row, no
//! notification, `updated_at` as set): a fixture writes a state, it does not live through
//! it. A job that does not exist fails the test.

use super::TestDb;

/// Runs one statement with triggers off.
fn untriggered(db: &TestDb, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> u64 {
    let mut client = db.client();
    let mut tx = client.transaction().expect("begin");
    tx.batch_execute("set local session_replication_role = replica")
        .expect("triggers off (the test role must be a superuser)");
    let n = tx
        .execute(sql, params)
        .unwrap_or_else(|e| panic!("fixture {sql}: {e}"));
    tx.commit().expect("commit");
    n
}

/// One job of a test database, to move in time or fill with history.
pub struct JobFixture<'a> {
    db: &'a TestDb,
    id: String,
}

impl TestDb {
    /// The job `id` (a uuid, as text or `Uuid`), for the fixture builders.
    pub fn job(&self, id: impl ToString) -> JobFixture<'_> {
        JobFixture {
            db: self,
            id: id.to_string(),
        }
    }

    /// Every leased or running job's lease ran out a second ago (a crashed supervisor).
    pub fn expire_all_leases(&self) {
        untriggered(
            self,
            "update jobs set leased_until = now() - interval '1 second'
              where job_in_flight(status)",
            &[],
        );
    }
}

impl JobFixture<'_> {
    fn set(&self, assignment: &str, value: &(dyn postgres::types::ToSql + Sync)) -> &Self {
        let sql = format!("update jobs set {assignment} where id = $1::text::uuid");
        let n = untriggered(self.db, &sql, &[&self.id, value]);
        assert_eq!(n, 1, "fixture: no job {}", self.id);
        self
    }

    /// Its lease ran out `ago` (the agent or its supervisor stopped answering).
    pub fn lease_expired(&self, ago: &str) -> &Self {
        self.set("leased_until = now() - $2::text::interval", &ago)
    }

    /// Claimable now (its retry back-off is over).
    pub fn due_now(&self) -> &Self {
        self.set("run_after = now() - $2::text::interval", &"0 seconds")
    }

    /// Claimable since `ago` (it has been waiting that long).
    pub fn ready_since(&self, ago: &str) -> &Self {
        self.set("run_after = now() - $2::text::interval", &ago)
    }

    /// Created `ago`.
    pub fn created(&self, ago: &str) -> &Self {
        self.set("created_at = now() - $2::text::interval", &ago)
    }

    /// Last changed `ago` (how long a blocked job has been blocked).
    pub fn updated(&self, ago: &str) -> &Self {
        self.set("updated_at = now() - $2::text::interval", &ago)
    }

    /// Finished `ago`.
    pub fn completed(&self, ago: &str) -> &Self {
        self.set("completed_at = now() - $2::text::interval", &ago)
    }

    /// On attempt `n` (without the attempt rows; see [`JobFixture::failed_attempts`]).
    pub fn attempts(&self, n: i32) -> &Self {
        self.set("attempt_count = $2", &n)
    }

    /// Its last error.
    pub fn last_error(&self, text: &str) -> &Self {
        self.set("last_error = $2", &text)
    }

    /// Belongs to `agent`.
    pub fn target(&self, agent: &str) -> &Self {
        self.set("target_agent = $2", &agent)
    }

    /// Its attempts started `ago` (a run that has been going that long).
    pub fn attempts_started(&self, ago: &str) -> &Self {
        untriggered(
            self.db,
            "update job_attempts set started_at = now() - $2::text::interval
              where job_id = $1::text::uuid",
            &[&self.id, &ago],
        );
        self
    }

    /// `n` failed attempts, one a minute, the latest a minute ago, and the job on attempt
    /// `n` (a retry storm).
    pub fn failed_attempts(&self, n: i32, error: &str) -> &Self {
        self.attempts(n);
        untriggered(
            self.db,
            "insert into job_attempts (job_id, attempt_no, status, finished_at, error)
             select $1::text::uuid, k, 'failed', now() - make_interval(mins => k), $3
               from generate_series(1, $2) k",
            &[&self.id, &n, &error],
        );
        self
    }

    /// One attempt that timed out: woken 20 minutes ago, its lease gone 5 minutes ago
    /// (an agent that never closed the loop).
    pub fn timed_out_attempt(&self) -> &Self {
        self.attempts(1);
        untriggered(
            self.db,
            "insert into job_attempts (job_id, attempt_no, status, woken_at, finished_at, error)
             values ($1::text::uuid, 1, 'timed_out', now() - interval '20 minutes',
                     now() - interval '5 minutes', 'lease expired')",
            &[&self.id],
        );
        self
    }
}
