//! The key walker: typed reads of a TOML table that record a diagnostic, at the key's line,
//! for every missing, unknown or ill-typed key.

use super::{
    AgentSpec, Budgets, CatchUp, Diagnostic, FiredBy, GateSpec, KeyLines, OrderSpec, ToolPolicy,
    WakeSpec,
};
use crate::ledger::agents::WakeMode;
use crate::ledger::schedule::{parse_cron, parse_zone};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use toml::{Table, Value};

// The keys each table may hold (agentbus-fleet(5) documents every one).
pub(super) use super::keys::*;

pub(super) struct Walker<'a> {
    pub(super) file: &'a Path,
    pub(super) lines: &'a BTreeMap<String, usize>,
    pub(super) diags: &'a mut Vec<Diagnostic>,
}

impl Walker<'_> {
    pub(super) fn line_of(&self, path: &str) -> usize {
        if let Some(n) = self.lines.get(path) {
            return *n;
        }
        // Fall back to the enclosing table.
        let mut p = path;
        while let Some((parent, _)) = p.rsplit_once('.') {
            if let Some(n) = self.lines.get(parent) {
                return *n;
            }
            p = parent;
        }
        1
    }

    pub(super) fn error_at(&mut self, path: &str, message: impl Into<String>) {
        let line = self.line_of(path);
        self.diags.push(Diagnostic {
            file: self.file.to_path_buf(),
            line,
            message: message.into(),
        });
    }

    pub(super) fn join(prefix: &str, key: &str) -> String {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    }

    pub(super) fn unknown_keys(&mut self, t: &Table, prefix: &str, known: &[&str]) {
        for key in t.keys() {
            if !known.contains(&key.as_str()) {
                let path = Self::join(prefix, key);
                self.error_at(
                    &path,
                    format!("unknown key {path:?} (known here: {})", known.join(", ")),
                );
            }
        }
    }

    /// `t[key]` through `pick`; a value `pick` refuses is reported as not `expected`.
    fn typed<'t, T>(
        &mut self,
        t: &'t Table,
        prefix: &str,
        key: &str,
        expected: &str,
        pick: impl FnOnce(&'t Value) -> Option<T>,
    ) -> Option<T> {
        let value = t.get(key)?;
        let got = pick(value);
        if got.is_none() {
            let shown = match value {
                Value::Table(_) | Value::Array(_) => value.type_str().to_string(),
                other => format!("{} {other}", other.type_str()),
            };
            self.error_at(
                &Self::join(prefix, key),
                format!("{key} must be {expected}, not {shown}"),
            );
        }
        got
    }

    pub(super) fn string(&mut self, t: &Table, prefix: &str, key: &str) -> Option<String> {
        self.typed(t, prefix, key, "a non-empty string", |v| {
            v.as_str()
                .filter(|s| !s.trim().is_empty() && !s.contains('\0'))
                .map(str::to_string)
        })
    }

    pub(super) fn boolean(&mut self, t: &Table, prefix: &str, key: &str) -> Option<bool> {
        self.typed(t, prefix, key, "true or false", Value::as_bool)
    }

    /// A rollout phase (`phase = 1` to 5, agentbus rollout).
    pub(super) fn phase(&mut self, t: &Table, prefix: &str, key: &str) -> Option<u8> {
        let n = self.positive(t, prefix, key)?;
        match u8::try_from(n) {
            Ok(p) if (1..=5).contains(&p) => Some(p),
            _ => {
                self.error_at(
                    &Self::join(prefix, key),
                    format!("{key} {n} is not a rollout phase (1 to 5)"),
                );
                None
            }
        }
    }

    pub(super) fn positive(&mut self, t: &Table, prefix: &str, key: &str) -> Option<i32> {
        self.typed(t, prefix, key, "a positive integer", |v| {
            v.as_integer()
                .filter(|n| *n > 0)
                .and_then(|n| i32::try_from(n).ok())
        })
    }

    fn non_negative(&mut self, t: &Table, prefix: &str, key: &str) -> Option<i32> {
        self.typed(t, prefix, key, "a whole number, 0 or more", |v| {
            v.as_integer()
                .filter(|n| *n >= 0)
                .and_then(|n| i32::try_from(n).ok())
        })
    }

    /// `[[approval_gates]]` of an agent file.
    fn gates(&mut self, t: &Table) -> Vec<GateSpec> {
        let mut gates = Vec::new();
        let mut names = BTreeSet::new();
        let items = match t.get("approval_gates") {
            None => return gates,
            Some(Value::Array(items)) => items,
            Some(_) => {
                self.error_at(
                    "approval_gates",
                    "approval_gates must be [[approval_gates]] tables",
                );
                return gates;
            }
        };
        for (i, item) in items.iter().enumerate() {
            let prefix = format!("approval_gates[{i}]");
            let Value::Table(gt) = item else {
                self.error_at(
                    "approval_gates",
                    "approval_gates must be [[approval_gates]] tables",
                );
                continue;
            };
            self.unknown_keys(gt, &prefix, GATE_KEYS);
            let source = format!("{}:{}", self.file.display(), self.line_of(&prefix));
            let Some(name) = self.string(gt, &prefix, "name") else {
                self.error_at(&prefix, "an approval gate needs a name");
                continue;
            };
            let valid_name = name.len() <= 64
                && name.chars().enumerate().all(|(i, c)| {
                    c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || (i > 0 && matches!(c, '-' | '_' | '.'))
                });
            if !valid_name {
                self.error_at(
                    &format!("{prefix}.name"),
                    format!("gate name {name:?} may hold only a-z, 0-9, -, _ and ."),
                );
            }
            if !names.insert(name.clone()) {
                self.error_at(
                    &format!("{prefix}.name"),
                    format!("approval gate {name:?} is declared twice"),
                );
            }
            let payload_field = self.string(gt, &prefix, "payload_field");
            let at_least = gt.get("at_least").and_then(|v| {
                let n = v.as_float().or_else(|| v.as_integer().map(|n| n as f64));
                if n.is_none() {
                    self.error_at(&format!("{prefix}.at_least"), "at_least must be a number");
                }
                n
            });
            if payload_field.is_some() != at_least.is_some() {
                self.error_at(&prefix, "payload_field and at_least go together");
            }
            let approvals = match gt.get("approvals").map(|v| v.as_integer()) {
                None => 1,
                Some(Some(n)) if (1..=5).contains(&n) => n as i32,
                Some(_) => {
                    self.error_at(
                        &format!("{prefix}.approvals"),
                        "approvals must be a whole number from 1 to 5 (2 is the two-person rule)",
                    );
                    1
                }
            };
            gates.push(GateSpec {
                name,
                subject: self.string(gt, &prefix, "subject"),
                payload_field,
                at_least,
                approvals,
                source,
            });
        }
        gates
    }

    /// An OpenClaw heartbeat cadence: a whole number of minutes or hours (`15m`, `1h`, `0m`).
    pub(super) fn cadence(&mut self, t: &Table, prefix: &str, key: &str) -> Option<String> {
        let value = self.string(t, prefix, key)?;
        let ok = value
            .strip_suffix('m')
            .or_else(|| value.strip_suffix('h'))
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if !ok {
            self.error_at(
                &Self::join(prefix, key),
                format!(
                    "{key} {value:?} must be minutes or hours, e.g. \"15m\", \"1h\" (\"0m\": off)"
                ),
            );
            return None;
        }
        Some(value)
    }

    /// `[budgets]` or `[defaults.budgets]`.
    pub(super) fn budgets(&mut self, t: &Table, prefix: &str) -> Budgets {
        self.unknown_keys(t, prefix, BUDGET_KEYS);
        Budgets {
            max_opportunities_per_day: self.non_negative(t, prefix, "max_opportunities_per_day"),
            max_urgent_per_day: self.non_negative(t, prefix, "max_urgent_per_day"),
            max_ideas_per_day: self.non_negative(t, prefix, "max_ideas_per_day"),
            max_memory_candidates_per_day: self.non_negative(
                t,
                prefix,
                "max_memory_candidates_per_day",
            ),
        }
    }

    pub(super) fn strings(&mut self, t: &Table, prefix: &str, key: &str) -> Option<Vec<String>> {
        self.typed(t, prefix, key, "a list of strings", |v| {
            v.as_array()?
                .iter()
                .map(|item| item.as_str().map(str::to_string))
                .collect()
        })
    }

    pub(super) fn table<'t>(&mut self, t: &'t Table, prefix: &str, key: &str) -> Option<&'t Table> {
        self.typed(t, prefix, key, "a table", Value::as_table)
    }

    /// `[wake]` (or `[defaults.wake]`), over `base` when given.
    pub(super) fn wake(
        &mut self,
        t: &Table,
        prefix: &str,
        base: Option<&WakeSpec>,
    ) -> Option<WakeSpec> {
        self.unknown_keys(t, prefix, WAKE_KEYS);
        let mode = match self.string(t, prefix, "mode").as_deref() {
            Some("hook") => Some(WakeMode::Hook),
            Some("exec") => Some(WakeMode::Exec),
            Some(other) => {
                self.error_at(
                    &Self::join(prefix, "mode"),
                    format!("wake mode {other:?} is not hook or exec"),
                );
                return None;
            }
            None => base.map(|b| b.mode),
        };
        let Some(mode) = mode else {
            self.error_at(prefix, format!("{prefix}: mode is required (hook or exec)"));
            return None;
        };
        let command = self
            .strings(t, prefix, "command")
            .or_else(|| base.and_then(|b| b.command.clone()));
        if let Some(c) = &command {
            if c.first().is_none_or(|p| p.trim().is_empty()) {
                self.error_at(
                    &Self::join(prefix, "command"),
                    "command must name a program first",
                );
            }
        }
        if mode == WakeMode::Exec && command.is_none() {
            self.error_at(
                prefix,
                "exec wake mode needs command = [\"program\", \"{job_id}\", ...]",
            );
        }
        Some(WakeSpec {
            mode,
            agent_id: self
                .string(t, prefix, "agent_id")
                .or_else(|| base.and_then(|b| b.agent_id.clone())),
            session_key: self
                .string(t, prefix, "session_key")
                .or_else(|| base.and_then(|b| b.session_key.clone())),
            timeout_seconds: self
                .positive(t, prefix, "timeout_seconds")
                .or_else(|| base.and_then(|b| b.timeout_seconds)),
            command,
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn agent(
        &mut self,
        t: &Table,
        folder: &str,
        default_concurrency: Option<i32>,
        default_wake: Option<WakeSpec>,
        default_zone: Option<&str>,
        default_grace: Option<i32>,
        default_budgets: Budgets,
    ) -> AgentSpec {
        self.unknown_keys(t, "", AGENT_KEYS);
        let id = self.string(t, "", "id").unwrap_or_else(|| {
            self.error_at("", "id is required");
            folder.to_string()
        });
        if id != folder {
            self.error_at(
                "id",
                format!("id {id:?} differs from its folder name {folder:?}"),
            );
        }
        if !id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            self.error_at("id", format!("id {id:?} may hold only a-z, 0-9, - and _"));
        }
        let wake = match self.table(t, "", "wake") {
            Some(wt) => self.wake(wt, "wake", default_wake.as_ref()),
            None => default_wake,
        };
        let mut orders = Vec::new();
        let mut names = BTreeSet::new();
        match t.get("standing_orders") {
            None => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let prefix = format!("standing_orders[{i}]");
                    match item {
                        Value::Table(ot) => {
                            if let Some(o) = self.order(ot, &prefix, default_zone, default_grace) {
                                if !names.insert(o.name.clone()) {
                                    self.error_at(
                                        &format!("{prefix}.name"),
                                        format!("standing order {:?} is declared twice", o.name),
                                    );
                                }
                                orders.push(o);
                            }
                        }
                        _ => self.error_at(
                            "standing_orders",
                            "standing_orders must be [[standing_orders]] tables",
                        ),
                    }
                }
            }
            Some(_) => self.error_at(
                "standing_orders",
                "standing_orders must be [[standing_orders]] tables",
            ),
        }
        let model = self.string(t, "", "model");
        if let Some(m) = &model {
            if !m.contains('/') || m.chars().any(char::is_whitespace) {
                self.error_at(
                    "model",
                    format!("model {m:?} must be provider/model, e.g. anthropic/claude-sonnet-4-6"),
                );
            }
        }
        let heartbeat = self.cadence(t, "", "heartbeat");
        let tools = self.table(t, "", "tools").map(|tt| {
            self.unknown_keys(tt, "tools", TOOLS_KEYS);
            ToolPolicy {
                allow: self.strings(tt, "tools", "allow").unwrap_or_default(),
                deny: self.strings(tt, "tools", "deny").unwrap_or_default(),
            }
        });
        let tier = self.string(t, "", "tier");
        if let Some(tier) = &tier {
            if !matches!(tier.as_str(), "T1" | "T2" | "T3") {
                self.error_at("tier", format!("tier {tier:?} is not T1, T2 or T3"));
            }
        }
        let outbound = self.strings(t, "", "outbound").unwrap_or_default();
        let approval_gates = self.gates(t);
        let reactions = self.reactions(t);
        AgentSpec {
            phase: self.phase(t, "", "phase").unwrap_or(1),
            reactions,
            idle: None,
            tier,
            outbound,
            approval_gates,
            model,
            heartbeat,
            tools,
            name: self.string(t, "", "name"),
            role: self.string(t, "", "role"),
            max_concurrency: self
                .positive(t, "", "max_concurrency")
                .or(default_concurrency),
            paused: self.boolean(t, "", "paused").unwrap_or(false),
            handoffs: self.strings(t, "", "handoffs").unwrap_or_default(),
            wake,
            standing_orders: orders,
            budgets: self
                .table(t, "", "budgets")
                .map(|bt| self.budgets(bt, "budgets"))
                .unwrap_or_default()
                .over(default_budgets),
            file: self.file.to_path_buf(),
            lines: KeyLines {
                id: self.line_of("id"),
                handoffs: self.line_of("handoffs"),
            },
            id,
        }
    }

    pub(super) fn order(
        &mut self,
        t: &Table,
        prefix: &str,
        default_zone: Option<&str>,
        default_grace: Option<i32>,
    ) -> Option<OrderSpec> {
        self.unknown_keys(t, prefix, ORDER_KEYS);
        let source = format!("{}:{}", self.file.display(), self.line_of(prefix));
        let name = self.string(t, prefix, "name");
        match &name {
            None => self.error_at(prefix, "a standing order needs a name"),
            Some(n) if !crate::ledger::validate::is_name(n) => self.error_at(
                &format!("{prefix}.name"),
                format!("order name {n:?} may hold only a-z, 0-9, _, ., : and - (1-64, starting with a letter or digit)"),
            ),
            Some(_) => {}
        }
        let cron = self.string(t, prefix, "cron");
        match &cron {
            None => self.error_at(prefix, "a standing order needs cron = \"...\""),
            Some(c) => {
                if let Err(e) = parse_cron(c) {
                    self.error_at(&format!("{prefix}.cron"), e);
                }
            }
        }
        let timezone = self
            .string(t, prefix, "timezone")
            .or(default_zone.map(str::to_string))
            .unwrap_or_else(|| "UTC".to_string());
        if let Err(e) = parse_zone(&timezone) {
            self.error_at(&format!("{prefix}.timezone"), e);
        }
        let message = self.string(t, prefix, "message");
        if message.is_none() {
            self.error_at(
                prefix,
                "a standing order needs a message (what the agent is told)",
            );
        }
        let catch_up = match self.string(t, prefix, "catch_up").as_deref() {
            None | Some("skip") => CatchUp::Skip,
            Some("run_once") => CatchUp::RunOnce,
            Some(other) => {
                self.error_at(
                    &format!("{prefix}.catch_up"),
                    format!("catch_up {other:?} is not skip or run_once"),
                );
                CatchUp::Skip
            }
        };
        let fired_by = match self.string(t, prefix, "fired_by").as_deref() {
            None | Some("supervisor") => FiredBy::Supervisor,
            Some("external") => FiredBy::External,
            Some(other) => {
                self.error_at(
                    &format!("{prefix}.fired_by"),
                    format!("fired_by {other:?} is not supervisor or external"),
                );
                FiredBy::Supervisor
            }
        };
        Some(OrderSpec {
            name: name?,
            cron: cron?,
            timezone,
            grace_seconds: self
                .positive(t, prefix, "grace_seconds")
                .or(default_grace)
                .unwrap_or(300),
            max_runtime_seconds: self.positive(t, prefix, "max_runtime_seconds"),
            message: message?,
            session: self.string(t, prefix, "session"),
            catch_up,
            enabled: self.boolean(t, prefix, "enabled").unwrap_or(true),
            fired_by,
            alert_after_no_work: self.positive(t, prefix, "alert_after_no_work"),
            alert_after_failures: self.positive(t, prefix, "alert_after_failures"),
            phase: self.phase(t, prefix, "phase"),
            source,
        })
    }
}
