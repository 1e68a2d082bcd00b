//! `fleet sync`: make the database match a fleet (agents, standing orders, budgets,
//! curators), idempotently, reporting what changed.

use super::Fleet;
use crate::ledger::agents::WakeMode;
use serde::Serialize;

/// One difference `sync` found and fixed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `agent`, `standing_order` or `budgets`.
    pub object: &'static str,
    /// `agent_id` or `agent_id/order_name`.
    pub id: String,
    /// The settings that differed (empty for added and disabled).
    pub fields: Vec<String>,
}

/// What `sync` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct SyncReport {
    /// Fleet name.
    pub fleet: String,
    /// Namespace.
    pub namespace: String,
    /// New agents and orders.
    pub added: Vec<Change>,
    /// Agents and orders whose settings changed.
    pub changed: Vec<Change>,
    /// Orders removed from the files (now disabled) and agents removed (now paused).
    pub disabled: Vec<Change>,
    /// Agents and orders already matching the files.
    pub unchanged: usize,
}

impl SyncReport {
    /// Whether the database already matched the files.
    pub fn is_noop(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.disabled.is_empty()
    }
}

/// Makes the database's agents and standing orders match `fleet`, in one transaction.
/// Running it twice changes nothing the second time.
///
/// Pauses: `paused = true` in a file pauses the agent; `paused = false` only lifts a pause
/// that a file made, never one an operator or a supervisor made (see `resume-agent`). An
/// agent removed from the files is paused, and orders removed are disabled (kept, with
/// their runs).
pub fn sync(
    tx: &mut postgres::Transaction<'_>,
    fleet: &Fleet,
    actor: &str,
) -> crate::Result<SyncReport> {
    use serde_json::{json, Value as J};

    crate::db::set_actor(tx, actor, Some("fleet sync"))?;
    // One sync per namespace at a time; a second waits and then finds nothing to do.
    tx.execute(
        "select pg_advisory_xact_lock(hashtext('agentbus.fleet-sync'), hashtext($1))",
        &[&fleet.namespace],
    )?;
    let ns = &fleet.namespace;
    let mut report = SyncReport {
        fleet: fleet.name.clone(),
        namespace: ns.clone(),
        ..Default::default()
    };

    for agent in &fleet.agents {
        let wake = agent.wake.as_ref();
        let hook = wake.is_some_and(|w| w.mode == WakeMode::Hook);
        let exec = wake.is_some_and(|w| w.mode == WakeMode::Exec);
        let desired = json!({
            "name": agent.name,
            "role": agent.role,
            "max_concurrency": agent.max_concurrency,
            "wake_mode": wake.map(|w| w.mode.as_str()),
            "hook_url": if hook { fleet.hook_url.clone() } else { None },
            "hook_agent_id": if hook { wake.and_then(|w| w.agent_id.clone()) } else { None },
            "hook_session_key": if hook { wake.and_then(|w| w.session_key.clone()) } else { None },
            "hook_timeout_seconds": if hook { wake.and_then(|w| w.timeout_seconds) } else { None },
            "hook_token_env": if hook { fleet.hook_token_env.clone() } else { None },
            "exec_command": if exec { wake.and_then(|w| w.command.clone()) } else { None },
            "exec_timeout_seconds": if exec { wake.and_then(|w| w.timeout_seconds) } else { None },
            "fleet": fleet.name,
            "handoffs": agent.handoffs,
            "approval_tier": agent.tier,
            "outbound_subjects": agent.outbound,
        });
        let existing: Option<J> = tx
            .query_opt(
                "select to_jsonb(a.*) from agents a where namespace = $1 and agent_id = $2 for update",
                &[ns, &agent.id],
            )?
            .map(|r| r.try_get(0))
            .transpose()?;
        let pause_reason = format!("paused in {}", agent.file.display());
        let is_new = existing.is_none();
        match existing {
            None => {
                upsert(
                    tx,
                    "agents",
                    &["namespace", "agent_id"],
                    &[ns, &agent.id],
                    &desired,
                    true,
                )?;
                report.added.push(Change {
                    object: "agent",
                    id: agent.id.clone(),
                    fields: vec![],
                });
            }
            Some(row) => {
                let fields = differing(&row, &desired);
                if fields.is_empty() {
                    report.unchanged += 1;
                } else {
                    upsert(
                        tx,
                        "agents",
                        &["namespace", "agent_id"],
                        &[ns, &agent.id],
                        &desired,
                        false,
                    )?;
                    report.changed.push(Change {
                        object: "agent",
                        id: agent.id.clone(),
                        fields,
                    });
                }
            }
        }
        if sync_gates(tx, ns, agent)? && !is_new {
            report.changed.push(Change {
                object: "approval_gates",
                id: agent.id.clone(),
                fields: agent
                    .approval_gates
                    .iter()
                    .map(|g| g.name.clone())
                    .collect(),
            });
        }
        if super::idle::sync_idle(tx, ns, agent)? && !is_new {
            report.changed.push(Change {
                object: "idle",
                id: agent.id.clone(),
                fields: vec![],
            });
        }
        if super::reactions::sync_reactions(tx, ns, agent)? && !is_new {
            report.changed.push(Change {
                object: "reactions",
                id: agent.id.clone(),
                fields: agent.reactions.iter().map(|r| r.name.clone()).collect(),
            });
        }
        // Pauses declared in files; an agent back in the files after its removal (a
        // rollout going back, then forward again) is resumed too.
        let removed_reason = format!("removed from fleet {}", fleet.name);
        let paused_by_file = tx.execute(
            "update agents
             set paused = $3, paused_reason = case when $3 then $4 end,
                 paused_at = case when $3 then now() end,
                 paused_by = case when $3 then $5 end
             where namespace = $1 and agent_id = $2
               and ((not paused and $3)
                    or (paused and not $3 and (paused_reason like 'paused in %agent.toml'
                                               or paused_reason = $6)))",
            &[
                ns,
                &agent.id,
                &agent.paused,
                &pause_reason,
                &actor,
                &removed_reason,
            ],
        )?;
        if paused_by_file > 0 {
            report.changed.push(Change {
                object: "agent",
                id: agent.id.clone(),
                fields: vec!["paused".into()],
            });
        }

        // Proactive budgets: a row when the files set any, kept in step after that.
        let existing: Option<J> = tx
            .query_opt(
                "select to_jsonb(b.*) from proactive_budgets b
                  where namespace = $1 and agent_id = $2 for update",
                &[ns, &agent.id],
            )?
            .map(|r| r.try_get(0))
            .transpose()?;
        if existing.is_some() || !agent.budgets.is_empty() {
            let desired = json!({
                "max_opportunities_per_day": agent.budgets.max_opportunities_per_day,
                "max_urgent_per_day": agent.budgets.max_urgent_per_day,
                "max_ideas_per_day": agent.budgets.max_ideas_per_day,
                "max_memory_candidates_per_day": agent.budgets.max_memory_candidates_per_day,
            });
            let keys = ["namespace", "agent_id"];
            let values: [&(dyn postgres::types::ToSql + Sync); 2] = [ns, &agent.id];
            let id = format!("{}/budgets", agent.id);
            let target = Row {
                table: "proactive_budgets",
                object: "budgets",
                keys: &keys,
                values: &values,
            };
            reconcile(tx, &mut report, &target, id, existing, &desired)?;
        }

        let mut declared = Vec::new();
        for o in &agent.standing_orders {
            declared.push(o.name.clone());
            let desired = json!({
                "cron": o.cron,
                "timezone": o.timezone,
                "grace_seconds": o.grace_seconds,
                "max_runtime_seconds": o.max_runtime_seconds,
                "message": o.message,
                "session_key": o.session,
                "catch_up": o.catch_up,
                "fired_by": o.fired_by,
                "enabled": o.enabled,
                "alert_after_no_work": o.alert_after_no_work,
                "alert_after_failures": o.alert_after_failures,
                "fleet": fleet.name,
                "removed_at": J::Null,
            });
            let id = format!("{}/{}", agent.id, o.name);
            let existing: Option<J> = tx
                .query_opt(
                    "select to_jsonb(s.*) from standing_orders s
                     where namespace = $1 and agent_id = $2 and order_name = $3 for update",
                    &[ns, &agent.id, &o.name],
                )?
                .map(|r| r.try_get(0))
                .transpose()?;
            let keys = ["namespace", "agent_id", "order_name"];
            let values: [&(dyn postgres::types::ToSql + Sync); 3] = [ns, &agent.id, &o.name];
            let target = Row {
                table: "standing_orders",
                object: "standing_order",
                keys: &keys,
                values: &values,
            };
            reconcile(tx, &mut report, &target, id, existing, &desired)?;
            // Where it is declared (not a change worth reporting when only lines moved).
            tx.execute(
                "update standing_orders set source = $4
                 where namespace = $1 and agent_id = $2 and order_name = $3
                   and source is distinct from $4",
                &[ns, &agent.id, &o.name, &o.source],
            )?;
        }
        // Orders of this agent no longer in its file.
        let rows = tx.query(
            "update standing_orders
             set enabled = false, removed_at = now()
             where namespace = $1 and agent_id = $2 and removed_at is null
               and not (order_name = any($3))
             returning order_name",
            &[ns, &agent.id, &declared],
        )?;
        for r in rows {
            let name: String = r.try_get(0)?;
            report.disabled.push(Change {
                object: "standing_order",
                id: format!("{}/{}", agent.id, name),
                fields: vec![],
            });
        }
    }

    // Agents this fleet declared before that are gone from its files.
    let ids: Vec<String> = fleet.agents.iter().map(|a| a.id.clone()).collect();
    let reason = format!("removed from fleet {}", fleet.name);
    let rows = tx.query(
        "update agents
         set paused = true, paused_reason = $4, paused_at = now(), paused_by = $5
         where namespace = $1 and fleet = $2 and not (agent_id = any($3)) and not paused
         returning agent_id",
        &[ns, &fleet.name, &ids, &reason, &actor],
    )?;
    for r in rows {
        let id: String = r.try_get(0)?;
        tx.execute(
            "update standing_orders set enabled = false, removed_at = now()
             where namespace = $1 and agent_id = $2 and removed_at is null",
            &[ns, &id],
        )?;
        report.disabled.push(Change {
            object: "agent",
            id,
            fields: vec![],
        });
    }
    // The memory lane: curators and the injection switch.
    let current: Vec<String> = tx
        .query(
            "select agent_id from memory_curators where namespace = $1 order by agent_id",
            &[ns],
        )?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    let mut wanted = fleet.memory_curators.clone();
    wanted.sort();
    wanted.dedup();
    if current != wanted {
        tx.execute("delete from memory_curators where namespace = $1", &[ns])?;
        tx.execute(
            "insert into memory_curators (namespace, agent_id) select $1, unnest($2::text[])",
            &[ns, &wanted],
        )?;
        report.changed.push(Change {
            object: "memory",
            id: "curators".into(),
            fields: wanted.clone(),
        });
    }
    let inject: Option<bool> = tx
        .query_opt(
            "select inject from lane_controls where namespace = $1 and lane = 'memory' for update",
            &[ns],
        )?
        .map(|r| r.try_get(0))
        .transpose()?;
    if inject != Some(fleet.memory_inject) {
        tx.execute(
            "insert into lane_controls (namespace, lane, inject) values ($1, 'memory', $2)
             on conflict (namespace, lane) do update set inject = excluded.inject, updated_at = now()",
            &[ns, &fleet.memory_inject],
        )?;
        // A first sync that leaves injection on (the default) is not worth reporting.
        if inject.is_some() || !fleet.memory_inject {
            report.changed.push(Change {
                object: "memory",
                id: "inject".into(),
                fields: vec![fleet.memory_inject.to_string()],
            });
        }
    }
    if let Some(change) = super::reactions::sync_blocked_policy(tx, ns, fleet.blocked.as_ref())? {
        report.changed.push(change);
    }

    Ok(report)
}

/// The keys of `desired` whose values differ from `row`.
fn differing(row: &serde_json::Value, desired: &serde_json::Value) -> Vec<String> {
    let Some(map) = desired.as_object() else {
        return vec![];
    };
    map.iter()
        .filter(|(k, v)| row.get(k.as_str()).unwrap_or(&serde_json::Value::Null) != *v)
        .map(|(k, _)| k.clone())
        .collect()
}

/// Inserts (or updates) one row of `table` from `desired`'s keys, which are column names
/// chosen by this module (never user input), through jsonb_populate_record.
/// A row `sync` keeps in step: its table, what the report calls it, its key.
struct Row<'a> {
    table: &'static str,
    object: &'static str,
    keys: &'a [&'a str],
    values: &'a [&'a (dyn postgres::types::ToSql + Sync)],
}

/// Inserts the row, or updates the fields that differ, and says so in the report.
fn reconcile(
    tx: &mut postgres::Transaction<'_>,
    report: &mut SyncReport,
    row: &Row<'_>,
    id: String,
    existing: Option<serde_json::Value>,
    desired: &serde_json::Value,
) -> crate::Result<()> {
    match existing {
        None => {
            upsert(tx, row.table, row.keys, row.values, desired, true)?;
            report.added.push(Change {
                object: row.object,
                id,
                fields: vec![],
            });
        }
        Some(current) => {
            let fields = differing(&current, desired);
            if fields.is_empty() {
                report.unchanged += 1;
            } else {
                upsert(tx, row.table, row.keys, row.values, desired, false)?;
                report.changed.push(Change {
                    object: row.object,
                    id,
                    fields,
                });
            }
        }
    }
    Ok(())
}

fn upsert(
    tx: &mut postgres::Transaction<'_>,
    table: &str,
    key_columns: &[&str],
    key_values: &[&(dyn postgres::types::ToSql + Sync)],
    desired: &serde_json::Value,
    insert: bool,
) -> crate::Result<()> {
    let columns: Vec<&str> = desired
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let n = key_columns.len();
    let json_param = format!("${}", n + 1);
    // SQL: dynamic. Table and column names come from the fleet spec's own types (never
    // from a file's text); every `fleet sync` test runs both forms.
    let sql = if insert {
        let keys = key_columns.join(", ");
        let key_params: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
        format!(
            "insert into {table} ({keys}, {cols}) select {kp}, {rc} from jsonb_populate_record(null::{table}, {json_param}) r",
            cols = columns.join(", "),
            kp = key_params.join(", "),
            rc = columns.iter().map(|c| format!("r.{c}")).collect::<Vec<_>>().join(", "),
        )
    } else {
        // SQL: dynamic, as the insert above.
        let set: Vec<String> = columns.iter().map(|c| format!("{c} = r.{c}")).collect();
        let cond: Vec<String> = key_columns
            .iter()
            .enumerate()
            .map(|(i, k)| format!("t.{k} = ${}", i + 1))
            .collect();
        format!(
            "update {table} t set {set} from jsonb_populate_record(null::{table}, {json_param}) r where {cond}",
            set = set.join(", "),
            cond = cond.join(" and "),
        )
    };
    let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = key_values.to_vec();
    params.push(desired);
    tx.execute(sql.as_str(), &params)?;
    Ok(())
}

/// A gate as stored: name, subject LIKE pattern, payload field, threshold.
type GateRow = (String, Option<String>, Option<String>, Option<f64>, i32);

/// Makes the agent's approval gates those of its file; returns whether they changed.
fn sync_gates(
    tx: &mut postgres::Transaction<'_>,
    ns: &str,
    agent: &crate::fleet::AgentSpec,
) -> crate::Result<bool> {
    let current: Vec<GateRow> = tx
        .query(
            "select gate_name, subject_like, payload_field, at_least::float8, approvals
               from approval_gates
              where namespace = $1 and agent_id = $2 order by gate_name",
            &[&ns, &agent.id],
        )?
        .iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
            ))
        })
        .collect::<std::result::Result<_, postgres::Error>>()?;
    let mut wanted: Vec<GateRow> = agent
        .approval_gates
        .iter()
        .map(|g| {
            (
                g.name.clone(),
                g.subject_like(),
                g.payload_field.clone(),
                g.at_least,
                g.approvals,
            )
        })
        .collect();
    wanted.sort_by(|a, b| a.0.cmp(&b.0));
    if current == wanted {
        return Ok(false);
    }
    tx.execute(
        "delete from approval_gates where namespace = $1 and agent_id = $2",
        &[&ns, &agent.id],
    )?;
    for g in &agent.approval_gates {
        tx.execute(
            "insert into approval_gates (namespace, agent_id, gate_name, subject_like,
                                         payload_field, at_least, source, approvals)
             values ($1, $2, $3, $4, $5, $6::float8::numeric, $7, $8)",
            &[
                &ns,
                &agent.id,
                &g.name,
                &g.subject_like(),
                &g.payload_field,
                &g.at_least,
                &g.source,
                &g.approvals,
            ],
        )?;
    }
    Ok(true)
}
