//! Loading a fleet folder: read every file, check every key, report every problem with its
//! file and line.

use super::request_keys::check_requestable;
use super::walk::{
    Walker, BLOCKED_KEYS, DEFAULTS_KEYS, FLEET_KEYS, MEMORY_KEYS, OPENCLAW_KEYS, REQUESTS_KEYS,
    ROLLOUT_KEYS,
};
use super::{Diagnostic, Fleet, RolloutSpec};
use crate::ledger::schedule::parse_zone;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use toml::Table;

/// Loads and checks the fleet in `dir`; every problem found is returned.
pub fn load(dir: &Path) -> Result<Fleet, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let fleet_file = dir.join("fleet.toml");
    let Some((fleet_table, fleet_lines)) = read_toml(&fleet_file, &mut diags) else {
        return Err(diags);
    };
    let mut w = Walker {
        file: &fleet_file,
        lines: &fleet_lines,
        diags: &mut diags,
    };
    w.unknown_keys(&fleet_table, "", FLEET_KEYS);
    let folder_name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "fleet".to_string());
    let name = w.string(&fleet_table, "", "name").unwrap_or(folder_name);
    let namespace = w
        .string(&fleet_table, "", "namespace")
        .unwrap_or_else(|| "default".to_string());
    if !crate::ledger::validate::is_name(&namespace) {
        w.error_at(
            "namespace",
            format!("namespace {namespace:?} may hold only a-z, 0-9, _, ., : and - (1-64, starting with a letter or digit)"),
        );
    }
    let _ = w.string(&fleet_table, "", "description");
    let defaults = w.table(&fleet_table, "", "defaults");
    let default_concurrency = defaults.and_then(|t| w.positive(t, "defaults", "max_concurrency"));
    let default_zone = defaults.and_then(|t| w.string(t, "defaults", "timezone"));
    if let Some(z) = &default_zone {
        if let Err(e) = parse_zone(z) {
            w.error_at("defaults.timezone", e);
        }
    }
    let default_grace = defaults.and_then(|t| w.positive(t, "defaults", "grace_seconds"));
    let default_wake = defaults.and_then(|t| {
        w.unknown_keys(t, "defaults", DEFAULTS_KEYS);
        w.table(t, "defaults", "wake")
            .map(|wt| w.wake(wt, "defaults.wake", None))
    });
    let default_idle = defaults
        .and_then(|t| w.table(t, "defaults", "idle"))
        .cloned();
    let default_budgets = defaults
        .and_then(|t| w.table(t, "defaults", "budgets"))
        .map(|bt| w.budgets(bt, "defaults.budgets"))
        .unwrap_or_default();
    let openclaw = w.table(&fleet_table, "", "openclaw");
    let (hook_url, hook_token_env, openclaw_heartbeat) = match openclaw {
        Some(t) => {
            w.unknown_keys(t, "openclaw", OPENCLAW_KEYS);
            let url = w.string(t, "openclaw", "hook_url");
            if let Some(u) = &url {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    w.error_at(
                        "openclaw.hook_url",
                        format!("{u:?} is not an http:// or https:// URL"),
                    );
                }
            }
            (
                url,
                w.string(t, "openclaw", "token_env"),
                w.cadence(t, "openclaw", "heartbeat"),
            )
        }
        None => (None, None, None),
    };

    let mut request_config_keys = Vec::new();
    if let Some(t) = w.table(&fleet_table, "", "requests") {
        w.unknown_keys(t, "requests", REQUESTS_KEYS);
        for key in w.strings(t, "requests", "config_keys").unwrap_or_default() {
            match check_requestable(&key) {
                Ok(()) => request_config_keys.push(key),
                Err(why) => w.error_at("requests.config_keys", why),
            }
        }
    }

    let rollout = w
        .table(&fleet_table, "", "rollout")
        .map(|t| {
            w.unknown_keys(t, "rollout", ROLLOUT_KEYS);
            let d = RolloutSpec::default();
            RolloutSpec {
                proactive: w.phase(t, "rollout", "proactive").unwrap_or(d.proactive),
                memory: w.phase(t, "rollout", "memory").unwrap_or(d.memory),
                idle: w.phase(t, "rollout", "idle").unwrap_or(d.idle),
                window_hours: w
                    .positive(t, "rollout", "window_hours")
                    .unwrap_or(d.window_hours),
                max_expired_leases: w
                    .positive(t, "rollout", "max_expired_leases")
                    .unwrap_or(d.max_expired_leases),
                max_handoff_p95_seconds: w
                    .positive(t, "rollout", "max_handoff_p95_seconds")
                    .unwrap_or(d.max_handoff_p95_seconds),
            }
        })
        .unwrap_or_default();
    let blocked = w.table(&fleet_table, "", "blocked").and_then(|t| {
        w.unknown_keys(t, "blocked", BLOCKED_KEYS);
        let source = format!("{}:{}", fleet_file.display(), w.line_of("blocked"));
        let route_to = w.string(t, "blocked", "route_to");
        let seconds = |w: &mut Walker<'_>, key: &str| -> Option<i64> {
            let text = w.string(t, "blocked", key)?;
            match crate::ledger::time::parse_duration(&text) {
                Some(d) if d.num_seconds() > 0 => Some(d.num_seconds()),
                _ => {
                    w.error_at(
                        &format!("blocked.{key}"),
                        format!("{key} {text:?} is not a duration such as 90s, 30m, 4h or 1d"),
                    );
                    None
                }
            }
        };
        let route_after = seconds(&mut w, "route_after");
        let escalate_after = seconds(&mut w, "escalate_after");
        if let (Some(r), Some(e)) = (route_after, escalate_after) {
            if e <= r {
                w.error_at(
                    "blocked.escalate_after",
                    "escalate_after must be longer than route_after",
                );
            }
        }
        match (route_to, route_after) {
            (Some(route_to), Some(route_after)) => Some(super::BlockedPolicy {
                route_to,
                route_after_seconds: route_after,
                escalate_after_seconds: escalate_after,
                source,
            }),
            _ => {
                w.error_at("blocked", "[blocked] needs route_to and route_after");
                None
            }
        }
    });
    let blocked_line = w.line_of("blocked.route_to");
    let retention = w
        .table(&fleet_table, "", "retention")
        .and_then(|t| super::retention::read(&mut w, t));
    let retention_line = w.line_of("retention.agent");

    let memory = w.table(&fleet_table, "", "memory");
    let (curators, memory_inject, curators_line) = match memory {
        Some(t) => {
            w.unknown_keys(t, "memory", MEMORY_KEYS);
            (
                w.strings(t, "memory", "curators"),
                w.boolean(t, "memory", "inject").unwrap_or(true),
                w.line_of("memory.curators"),
            )
        }
        None => (None, true, 1),
    };
    let fleet_file = dir.join("fleet.toml");

    let mut agents = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    for agent_dir in entries.into_iter().filter(|p| p.is_dir()) {
        let file = agent_dir.join("agent.toml");
        if !file.exists() {
            continue;
        }
        let Some((table, lines)) = read_toml(&file, &mut diags) else {
            continue;
        };
        let folder = agent_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut w = Walker {
            file: &file,
            lines: &lines,
            diags: &mut diags,
        };
        let mut agent = w.agent(
            &table,
            &folder,
            default_concurrency,
            default_wake.clone().flatten(),
            default_zone.as_deref(),
            default_grace,
            default_budgets,
        );
        agent.idle = w.idle(&table, default_idle.as_ref(), default_zone.as_deref());
        agents.push(agent);
    }

    // Across agents: unique ids, existing hand-off targets.
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for a in &agents {
        if let Some(first) = seen.insert(a.id.clone(), a.file.clone()) {
            diags.push(Diagnostic {
                file: a.file.clone(),
                line: a.lines.id,
                message: format!("agent id {:?} is already used by {}", a.id, first.display()),
            });
        }
    }
    let ids: BTreeSet<&str> = agents.iter().map(|a| a.id.as_str()).collect();
    for a in &agents {
        for h in &a.handoffs {
            if !ids.contains(h.as_str()) {
                diags.push(Diagnostic {
                    file: a.file.clone(),
                    line: a.lines.handoffs,
                    message: format!("hand-off target {h:?} is not an agent of this fleet"),
                });
            }
        }
    }
    let memory_curators = match curators {
        Some(list) => {
            for c in &list {
                if !ids.contains(c.as_str()) {
                    diags.push(Diagnostic {
                        file: fleet_file.clone(),
                        line: curators_line,
                        message: format!("memory curator {c:?} is not an agent of this fleet"),
                    });
                }
            }
            list
        }
        None if ids.contains("knowledge") => vec!["knowledge".to_string()],
        None => Vec::new(),
    };
    if let Some(b) = &blocked {
        if !ids.contains(b.route_to.as_str()) {
            diags.push(Diagnostic {
                file: fleet_file.clone(),
                line: blocked_line,
                message: format!(
                    "blocked.route_to {:?} is not an agent of this fleet",
                    b.route_to
                ),
            });
        }
    }
    if let Some(r) = &retention {
        match agents.iter_mut().find(|a| a.id == r.agent) {
            Some(a)
                if a.standing_orders
                    .iter()
                    .any(|o| o.name == super::retention::ORDER_NAME) =>
            {
                diags.push(Diagnostic {
                    file: a.file.clone(),
                    line: 1,
                    message: format!(
                        "standing order {:?} is made by [retention] in fleet.toml; rename this one",
                        super::retention::ORDER_NAME
                    ),
                })
            }
            Some(a) => {
                let order = r.order(default_zone.as_deref().unwrap_or("UTC"));
                a.standing_orders.push(order);
            }
            None => diags.push(Diagnostic {
                file: fleet_file.clone(),
                line: retention_line,
                message: format!(
                    "retention.agent {:?} is not an agent of this fleet",
                    r.agent
                ),
            }),
        }
    }
    if agents.is_empty() && diags.is_empty() {
        diags.push(Diagnostic {
            file: dir.to_path_buf(),
            line: 1,
            message: "no agents: expected folders with an agent.toml next to fleet.toml".into(),
        });
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    Ok(Fleet {
        dir: dir.to_path_buf(),
        name,
        namespace,
        hook_url,
        hook_token_env,
        openclaw_heartbeat,
        agents,
        memory_curators,
        memory_inject,
        request_config_keys,
        blocked,
        rollout,
    })
}

fn read_toml(file: &Path, diags: &mut Vec<Diagnostic>) -> Option<(Table, BTreeMap<String, usize>)> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            diags.push(Diagnostic {
                file: file.to_path_buf(),
                line: 1,
                message: format!("cannot read: {e}"),
            });
            return None;
        }
    };
    match text.parse::<Table>() {
        Ok(t) => Some((t, key_lines(&text))),
        Err(e) => {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(1);
            diags.push(Diagnostic {
                file: file.to_path_buf(),
                line,
                message: format!("not valid TOML: {}", e.message()),
            });
            None
        }
    }
}

/// Maps key paths (`wake.mode`, `standing_orders[2].cron`) to the line that sets them,
/// from the spans of toml_edit's parser; a table header maps to its own line. A path
/// without a line of its own (an implicit table) is reported at its parent's line.
fn key_lines(text: &str) -> BTreeMap<String, usize> {
    let mut map = BTreeMap::new();
    if let Ok(doc) = toml_edit::ImDocument::parse(text) {
        let line = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        walk_lines(doc.as_table(), "", &line, &mut map);
    }
    map
}

fn walk_lines(
    table: &toml_edit::Table,
    prefix: &str,
    line: &dyn Fn(usize) -> usize,
    map: &mut BTreeMap<String, usize>,
) {
    for (key, item) in table.iter() {
        let path = if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        };
        let at = match item {
            toml_edit::Item::Table(t) => t.span(),
            _ => None,
        }
        .or_else(|| table.key(key).and_then(toml_edit::Key::span))
        .or_else(|| item.span());
        if let Some(span) = at {
            map.entry(path.clone()).or_insert(line(span.start));
        }
        match item {
            toml_edit::Item::Table(t) => walk_lines(t, &path, line, map),
            toml_edit::Item::ArrayOfTables(tables) => {
                for (i, t) in tables.iter().enumerate() {
                    let entry = format!("{path}[{i}]");
                    if let Some(span) = t.span() {
                        map.entry(entry.clone()).or_insert(line(span.start));
                    }
                    walk_lines(t, &entry, line, map);
                }
            }
            toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) => {
                for (k, v) in t.iter() {
                    let entry = format!("{path}.{k}");
                    if let Some(span) = t.key(k).and_then(toml_edit::Key::span).or_else(|| v.span())
                    {
                        map.entry(entry).or_insert(line(span.start));
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::key_lines;

    #[test]
    fn lines_come_from_the_parser_not_from_the_look_of_a_line() {
        let text = "id = \"scout\"\n\
                    wake = { mode = \"exec\", command = [\"run\"] }\n\
                    budgets.max_ideas_per_day = 3\n\
                    [[standing_orders]]\n\
                    name = \"a\"\n\
                    message = \"\"\"\n\
                    [[standing_orders]]\n\
                    cron = \"not a key\"\n\
                    \"\"\"\n\
                    cron = \"0 9 * * *\"\n\
                    [[standing_orders]]\n\
                    name = \"b\"\n";
        let lines = key_lines(text);
        assert_eq!(lines.get("id"), Some(&1));
        assert_eq!(lines.get("wake.mode"), Some(&2));
        assert_eq!(lines.get("wake.command"), Some(&2));
        assert_eq!(lines.get("budgets.max_ideas_per_day"), Some(&3));
        assert_eq!(lines.get("standing_orders[0]"), Some(&4));
        assert_eq!(lines.get("standing_orders[0].message"), Some(&6));
        // The text inside the multi-line string is not a table header nor a key.
        assert_eq!(lines.get("standing_orders[0].cron"), Some(&10));
        assert_eq!(lines.get("standing_orders[1]"), Some(&11));
        assert_eq!(lines.get("standing_orders[1].name"), Some(&12));
        assert_eq!(lines.get("standing_orders[2]"), None);
    }
}
