//! Fleets: a folder with `fleet.toml` and one folder per agent holding `agent.toml`
//! (DESIGN.md §3.7; every key is documented in agentbus-fleet(5), rendered from
//! [`FORMAT_DOC`]).
//!
//! Loading checks everything and reports every problem with its file and line, so an
//! operator fixes a fleet in one pass.

pub mod audit;
pub mod openclaw;
pub mod scaffold;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use toml::{Table, Value};

use crate::ledger::agents::WakeMode;
use crate::ledger::schedule::{parse_cron, parse_zone};

/// One problem in a fleet's files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file.
    pub file: PathBuf,
    /// 1-based line (1 when the problem is the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// Who fires a standing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FiredBy {
    /// The supervisor creates a job per occurrence.
    Supervisor,
    /// OpenClaw's cron fires it; the agent records start/finish.
    External,
}

/// What happens to occurrences missed while nothing could fire them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Fire none of them (they are recorded missed).
    Skip,
    /// Fire the latest one once (the rest are recorded missed).
    RunOnce,
}

/// How the supervisor wakes an agent, from `[wake]` (and `fleet.toml` defaults).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WakeSpec {
    /// hook or exec.
    pub mode: WakeMode,
    /// hook: OpenClaw agentId.
    pub agent_id: Option<String>,
    /// hook: sessionKey.
    pub session_key: Option<String>,
    /// hook: timeoutSeconds; exec: deadline.
    pub timeout_seconds: Option<i32>,
    /// exec: argv template.
    pub command: Option<Vec<String>>,
}

/// One `[[standing_orders]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderSpec {
    /// Unique per agent.
    pub name: String,
    /// The cron expression as written.
    pub cron: String,
    /// IANA zone.
    pub timezone: String,
    /// How long after the occurrence a start still counts.
    pub grace_seconds: i32,
    /// How long a run may take.
    pub max_runtime_seconds: Option<i32>,
    /// What the agent is told.
    pub message: String,
    /// OpenClaw session for the run.
    pub session: Option<String>,
    /// Catch-up policy.
    pub catch_up: CatchUp,
    /// Whether it is scheduled at all.
    pub enabled: bool,
    /// Who fires it.
    pub fired_by: FiredBy,
    /// Emit an alert event after this many consecutive `no_work` runs.
    pub alert_after_no_work: Option<i32>,
    /// Emit an alert event after this many consecutive failed runs.
    pub alert_after_failures: Option<i32>,
    /// `file:line` of its entry.
    pub source: String,
}

/// Daily proactive budgets (`[budgets]`, defaults in `[defaults.budgets]`); `None` = no
/// limit. Enforced by the database (proactive_budgets).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Budgets {
    /// New opportunities per UTC day.
    pub max_opportunities_per_day: Option<i32>,
    /// Urgent escalations (opportunities with urgency 5) per UTC day.
    pub max_urgent_per_day: Option<i32>,
    /// Ideas per UTC day.
    pub max_ideas_per_day: Option<i32>,
}

impl Budgets {
    fn over(self, base: Budgets) -> Budgets {
        Budgets {
            max_opportunities_per_day: self
                .max_opportunities_per_day
                .or(base.max_opportunities_per_day),
            max_urgent_per_day: self.max_urgent_per_day.or(base.max_urgent_per_day),
            max_ideas_per_day: self.max_ideas_per_day.or(base.max_ideas_per_day),
        }
    }

    fn is_empty(self) -> bool {
        self == Budgets::default()
    }
}

/// One agent folder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentSpec {
    /// Agent id (the folder name).
    pub id: String,
    /// Display name.
    pub name: Option<String>,
    /// Role, one line.
    pub role: Option<String>,
    /// Concurrency limit.
    pub max_concurrency: Option<i32>,
    /// Paused in the files.
    pub paused: bool,
    /// Agents it may enqueue work for.
    pub handoffs: Vec<String>,
    /// How it is woken.
    pub wake: Option<WakeSpec>,
    /// Its standing orders.
    pub standing_orders: Vec<OrderSpec>,
    /// Its proactive budgets.
    pub budgets: Budgets,
    /// Its agent.toml.
    pub file: PathBuf,
    /// Lines of `id` and `handoffs` in it, for diagnostics found across agents.
    #[serde(skip)]
    lines: KeyLines,
}

/// Where an agent file sets the keys checked across the whole fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct KeyLines {
    id: usize,
    handoffs: usize,
}

/// A loaded, valid fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fleet {
    /// The fleet folder.
    pub dir: PathBuf,
    /// Fleet name (`name` in fleet.toml, else the folder name).
    pub name: String,
    /// Namespace of its agents and jobs.
    pub namespace: String,
    /// OpenClaw hook URL for hook agents (`[openclaw] hook_url`).
    pub hook_url: Option<String>,
    /// Name of the environment variable holding the hook token.
    pub hook_token_env: Option<String>,
    /// Agents, by id.
    pub agents: Vec<AgentSpec>,
    /// Agents that may promote into shared memory (`[memory] curators`; default: the
    /// `knowledge` agent when the fleet has one).
    pub memory_curators: Vec<String>,
    /// Whether the supervisor injects memories into prompts (`[memory] inject`).
    pub memory_inject: bool,
}

/// The documentation of every key, rendered as agentbus-fleet(5).
pub const FORMAT_DOC: &str = include_str!("fleet_format.txt");

const FLEET_KEYS: &[&str] = &[
    "name",
    "namespace",
    "description",
    "defaults",
    "openclaw",
    "memory",
];
const MEMORY_KEYS: &[&str] = &["curators", "inject"];
const DEFAULTS_KEYS: &[&str] = &[
    "max_concurrency",
    "timezone",
    "grace_seconds",
    "wake",
    "budgets",
];
const BUDGET_KEYS: &[&str] = &[
    "max_opportunities_per_day",
    "max_urgent_per_day",
    "max_ideas_per_day",
];
const OPENCLAW_KEYS: &[&str] = &["hook_url", "token_env"];
const AGENT_KEYS: &[&str] = &[
    "id",
    "name",
    "role",
    "max_concurrency",
    "paused",
    "handoffs",
    "wake",
    "standing_orders",
    "budgets",
];
const WAKE_KEYS: &[&str] = &[
    "mode",
    "agent_id",
    "session_key",
    "timeout_seconds",
    "command",
];
const ORDER_KEYS: &[&str] = &[
    "name",
    "cron",
    "timezone",
    "grace_seconds",
    "max_runtime_seconds",
    "message",
    "session",
    "catch_up",
    "enabled",
    "fired_by",
    "alert_after_no_work",
    "alert_after_failures",
];

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
    let default_budgets = defaults
        .and_then(|t| w.table(t, "defaults", "budgets"))
        .map(|bt| w.budgets(bt, "defaults.budgets"))
        .unwrap_or_default();
    let openclaw = w.table(&fleet_table, "", "openclaw");
    let (hook_url, hook_token_env) = match openclaw {
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
            (url, w.string(t, "openclaw", "token_env"))
        }
        None => (None, None),
    };

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
        agents.push(w.agent(
            &table,
            &folder,
            default_concurrency,
            default_wake.clone().flatten(),
            default_zone.as_deref(),
            default_grace,
            default_budgets,
        ));
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
        agents,
        memory_curators,
        memory_inject,
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
        Ok(t) => Some((t, line_index(&text))),
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

/// Maps key paths (`wake.mode`, `standing_orders[2].cron`) to the line that sets them;
/// table headers map to their own line. Good enough for hand-written fleet files; keys
/// it cannot place are reported at their table's line.
fn line_index(text: &str) -> BTreeMap<String, usize> {
    let mut map = BTreeMap::new();
    let mut table = String::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut in_multiline = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let n = i + 1;
        if in_multiline {
            if line.matches("\"\"\"").count() % 2 == 1 || line.matches("'''").count() % 2 == 1 {
                in_multiline = false;
            }
            continue;
        }
        if line.starts_with("[[") {
            let name = line
                .trim_start_matches("[[")
                .split("]]")
                .next()
                .unwrap_or("")
                .trim();
            let idx = counts.entry(name.to_string()).or_insert(0);
            table = format!("{name}[{idx}]");
            *idx += 1;
            map.entry(table.clone()).or_insert(n);
            continue;
        }
        if line.starts_with('[') {
            table = line
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            map.entry(table.clone()).or_insert(n);
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            let key = key.trim().trim_matches('"');
            if key.is_empty() || key.starts_with('#') {
                continue;
            }
            let path = if table.is_empty() {
                key.to_string()
            } else {
                format!("{table}.{key}")
            };
            map.entry(path).or_insert(n);
            let v = value.trim();
            if (v.starts_with("\"\"\"") && v.matches("\"\"\"").count() == 1)
                || (v.starts_with("'''") && v.matches("'''").count() == 1)
            {
                in_multiline = true;
            }
        }
    }
    map
}

struct Walker<'a> {
    file: &'a Path,
    lines: &'a BTreeMap<String, usize>,
    diags: &'a mut Vec<Diagnostic>,
}

impl Walker<'_> {
    fn line_of(&self, path: &str) -> usize {
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

    fn error_at(&mut self, path: &str, message: impl Into<String>) {
        let line = self.line_of(path);
        self.diags.push(Diagnostic {
            file: self.file.to_path_buf(),
            line,
            message: message.into(),
        });
    }

    fn join(prefix: &str, key: &str) -> String {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    }

    fn unknown_keys(&mut self, t: &Table, prefix: &str, known: &[&str]) {
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

    fn string(&mut self, t: &Table, prefix: &str, key: &str) -> Option<String> {
        self.typed(t, prefix, key, "a non-empty string", |v| {
            v.as_str()
                .filter(|s| !s.trim().is_empty() && !s.contains('\0'))
                .map(str::to_string)
        })
    }

    fn boolean(&mut self, t: &Table, prefix: &str, key: &str) -> Option<bool> {
        self.typed(t, prefix, key, "true or false", Value::as_bool)
    }

    fn positive(&mut self, t: &Table, prefix: &str, key: &str) -> Option<i32> {
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

    /// `[budgets]` or `[defaults.budgets]`.
    fn budgets(&mut self, t: &Table, prefix: &str) -> Budgets {
        self.unknown_keys(t, prefix, BUDGET_KEYS);
        Budgets {
            max_opportunities_per_day: self.non_negative(t, prefix, "max_opportunities_per_day"),
            max_urgent_per_day: self.non_negative(t, prefix, "max_urgent_per_day"),
            max_ideas_per_day: self.non_negative(t, prefix, "max_ideas_per_day"),
        }
    }

    fn strings(&mut self, t: &Table, prefix: &str, key: &str) -> Option<Vec<String>> {
        self.typed(t, prefix, key, "a list of strings", |v| {
            v.as_array()?
                .iter()
                .map(|item| item.as_str().map(str::to_string))
                .collect()
        })
    }

    fn table<'t>(&mut self, t: &'t Table, prefix: &str, key: &str) -> Option<&'t Table> {
        self.typed(t, prefix, key, "a table", Value::as_table)
    }

    /// `[wake]` (or `[defaults.wake]`), over `base` when given.
    fn wake(&mut self, t: &Table, prefix: &str, base: Option<&WakeSpec>) -> Option<WakeSpec> {
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
            if c.first().map_or(true, |p| p.trim().is_empty()) {
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
    fn agent(
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
        AgentSpec {
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

    fn order(
        &mut self,
        t: &Table,
        prefix: &str,
        default_zone: Option<&str>,
        default_grace: Option<i32>,
    ) -> Option<OrderSpec> {
        self.unknown_keys(t, prefix, ORDER_KEYS);
        let source = format!("{}:{}", self.file.display(), self.line_of(prefix));
        let name = self.string(t, prefix, "name");
        if name.is_none() {
            self.error_at(prefix, "a standing order needs a name");
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
            source,
        })
    }
}

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
        });
        let existing: Option<J> = tx
            .query_opt(
                "select to_jsonb(a.*) from agents a where namespace = $1 and agent_id = $2 for update",
                &[ns, &agent.id],
            )?
            .map(|r| r.try_get(0))
            .transpose()?;
        let pause_reason = format!("paused in {}", agent.file.display());
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
        // Pauses declared in files.
        let paused_by_file = tx.execute(
            "update agents
             set paused = $3, paused_reason = case when $3 then $4 end,
                 paused_at = case when $3 then now() end,
                 paused_by = case when $3 then $5 end
             where namespace = $1 and agent_id = $2
               and ((not paused and $3)
                    or (paused and not $3 and paused_reason like 'paused in %agent.toml'))",
            &[ns, &agent.id, &agent.paused, &pause_reason, &actor],
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
