//! The audit's view of backups: a ledger that is backed up (`backup.completed` events,
//! written by `agentbus backup`) but whose backups were not proven by a restore drill
//! (`backup.restore_verified`, written by `agentbus restore --verify`) within
//! [`DRILL_EVERY_DAYS`], or whose latest drill failed, is a finding: "the backup was never
//! restored" is a risk you can see, not one you find out about.

use super::findings::Finding;
use crate::error::Result;

/// A restore drill is due this often (monthly, with a few days' slack).
pub const DRILL_EVERY_DAYS: i32 = 35;

/// Adds `restore_drill_overdue` to `findings` when it applies to `namespace`.
pub(super) fn findings(
    tx: &mut postgres::Transaction<'_>,
    namespace: &str,
    findings: &mut Vec<Finding>,
) -> Result<()> {
    let r = tx.query_one(
        "select min(created_at) filter (where topic = 'backup.completed') < now() - make_interval(days => $2),
                bool_or(topic = 'backup.completed'),
                max(id) filter (where topic = 'backup.restore_verified'),
                max(created_at) filter (where topic = 'backup.restore_verified') >= now() - make_interval(days => $2),
                max(id) filter (where topic = 'backup.restore_failed'),
                (array_agg(payload ->> 'file' order by id desc) filter (where topic = 'backup.restore_failed'))[1]
           from events where namespace = $1 and topic in ('backup.completed', 'backup.restore_verified', 'backup.restore_failed')",
        &[&namespace, &DRILL_EVERY_DAYS],
    )?;
    let old_backups: Option<bool> = r.try_get(0)?;
    let any_backup: Option<bool> = r.try_get(1)?;
    let last_ok: Option<i64> = r.try_get(2)?;
    let recent_ok: Option<bool> = r.try_get(3)?;
    let last_failed: Option<i64> = r.try_get(4)?;
    let failed_file: Option<String> = r.try_get(5)?;
    let suggestion = "agentbus restore --from LATEST.dump --into postgres://.../scratch --verify  (createdb a scratch database first)".to_string();
    if let Some(failed) = last_failed.filter(|f| last_ok.is_none_or(|ok| *f > ok)) {
        findings.push(Finding {
            code: "restore_drill_overdue",
            key: format!("restore_drill_overdue:failed:{failed}"),
            agent: None,
            ids: vec![failed.to_string()],
            detail: format!(
                "the latest restore drill failed ({}): the backups are not proven",
                failed_file.unwrap_or_else(|| "?".into())
            ),
            suggestion,
        });
    } else if any_backup == Some(true) && old_backups == Some(true) && recent_ok != Some(true) {
        findings.push(Finding {
            code: "restore_drill_overdue",
            key: format!("restore_drill_overdue:{}", last_ok.unwrap_or(0)),
            agent: None,
            ids: last_ok.map(|id| vec![id.to_string()]).unwrap_or_default(),
            detail: if last_ok.is_some() {
                format!("backups are taken but none was restored and verified in the last {DRILL_EVERY_DAYS} days")
            } else {
                "backups are taken but none was ever restored and verified: they are not proven".to_string()
            },
            suggestion,
        });
    }
    Ok(())
}
