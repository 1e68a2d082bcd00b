//! The audit's `vacuum_horizon_pinned` findings: what keeps vacuum from removing the
//! ledger's dead rows. Every claim, wake and close leaves a dead version of a jobs row; a
//! transaction that stays open (an idle psql session in `BEGIN`, a stuck report), a
//! prepared transaction nobody finished or a replication slot nobody reads holds the
//! oldest snapshot vacuum must respect, so nothing dead after it can be removed and the
//! tables and indexes of a busy fleet grow by the hour (`scripts/bench-bloat.sh` measures
//! it). agentbus never ends them itself: it names them and says how.
//!
//! PostgreSQL shows the transactions of other roles only to superusers and members of
//! `pg_read_all_stats`; for anyone else this finds their own.

use std::time::Duration;

use super::findings::Finding;
use crate::error::Result;

/// At most this many characters of a client's `application_name` in a finding.
const APPLICATION_CHARS: usize = 64;

/// Adds one finding per transaction of this database open longer than `older_than` that
/// holds a snapshot or has written, per prepared transaction of this database older than
/// that (named by its transaction id: its gid is any text its client chose), and per
/// inactive replication slot holding a horizon.
pub(super) fn findings(
    tx: &mut postgres::Transaction<'_>,
    older_than: Duration,
    findings: &mut Vec<Finding>,
) -> Result<()> {
    let rows = tx.query(
        "select 'transaction', pid::text, coalesce(application_name, ''), coalesce(state, ''),
                extract(epoch from now() - xact_start)::float8,
                to_char(xact_start at time zone 'UTC', 'YYYYMMDDHH24MISSUS')
           from pg_stat_activity
          where datname = current_database() and pid <> pg_backend_pid()
            and (backend_xmin is not null or backend_xid is not null)
            and xact_start < now() - make_interval(secs => $1)
         union all
         select 'prepared', transaction::text, '', '', extract(epoch from now() - prepared)::float8,
                to_char(prepared at time zone 'UTC', 'YYYYMMDDHH24MISSUS')
           from pg_prepared_xacts
          where database = current_database()
            and prepared < now() - make_interval(secs => $1)
         union all
         select 'slot', slot_name::text, slot_type, '', null, ''
           from pg_replication_slots
          where not active and (xmin is not null or catalog_xmin is not null)
          order by 1, 5 desc nulls last",
        &[&older_than.as_secs_f64()],
    )?;
    for r in rows {
        let kind: String = r.try_get(0)?;
        let name: String = r.try_get(1)?;
        let what: String = r.try_get(2)?;
        let state: String = r.try_get(3)?;
        let open_for: Option<f64> = r.try_get(4)?;
        let since: String = r.try_get(5)?;
        let open_for = super::findings::age(open_for.unwrap_or(0.0));
        let (key, detail, suggestion) = match kind.as_str() {
            "transaction" => {
                let application: String = what.chars().take(APPLICATION_CHARS).collect();
                (
                    format!("vacuum_horizon_pinned:pid:{name}:{since}"),
                    format!(
                        "a transaction open for {open_for} (pid {name}, application {application:?}, {state}) holds back vacuum: the ledger's dead rows since it began stay, and its tables and indexes grow"
                    ),
                    format!(
                        "end it where it runs (commit or roll back), or as a superuser: select pg_terminate_backend({name});"
                    ),
                )
            }
            "prepared" => (
                format!("vacuum_horizon_pinned:prepared:{name}:{since}"),
                format!(
                    "a prepared transaction waiting for {open_for} holds back vacuum: the ledger's dead rows since it was prepared stay"
                ),
                format!("finish it with COMMIT PREPARED or ROLLBACK PREPARED once you know whose it is (its gid: select gid from pg_prepared_xacts where transaction = '{name}';)"),
            ),
            _ => (
                format!("vacuum_horizon_pinned:slot:{name}"),
                format!(
                    "an inactive {what} replication slot holds back vacuum: nothing reads it, and the ledger's dead rows stay"
                ),
                "reconnect its replica or consumer, or drop it with pg_drop_replication_slot (see pg_replication_slots)"
                    .to_string(),
            ),
        };
        findings.push(Finding {
            code: "vacuum_horizon_pinned",
            key,
            agent: None,
            ids: vec![name],
            detail,
            suggestion,
        });
    }
    Ok(())
}
