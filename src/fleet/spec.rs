//! The shape of a loaded fleet: agents, wake settings, standing orders, budgets, and the
//! diagnostics loading reports.

use crate::ledger::agents::WakeMode;
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

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
    /// The rollout phase that schedules it (`None`: its agent's; never earlier).
    pub phase: Option<u8>,
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
    /// Memory candidates per UTC day.
    pub max_memory_candidates_per_day: Option<i32>,
}

impl Budgets {
    pub(super) fn over(self, base: Budgets) -> Budgets {
        Budgets {
            max_opportunities_per_day: self
                .max_opportunities_per_day
                .or(base.max_opportunities_per_day),
            max_urgent_per_day: self.max_urgent_per_day.or(base.max_urgent_per_day),
            max_ideas_per_day: self.max_ideas_per_day.or(base.max_ideas_per_day),
            max_memory_candidates_per_day: self
                .max_memory_candidates_per_day
                .or(base.max_memory_candidates_per_day),
        }
    }

    pub(super) fn is_empty(self) -> bool {
        self == Budgets::default()
    }
}

/// One agent folder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentSpec {
    /// Agent id (the folder name).
    pub id: String,
    /// The rollout phase that brings it in (`phase`, default 1; agentbus rollout).
    pub phase: u8,
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
    /// Its OpenClaw model (`provider/model`), when it does not use the gateway's default.
    pub model: Option<String>,
    /// Its OpenClaw heartbeat cadence (`15m`, `1h`; `0m` turns it off).
    pub heartbeat: Option<String>,
    /// The OpenClaw tools it may use (`[tools] allow`) and may not (`[tools] deny`).
    pub tools: Option<ToolPolicy>,
    /// Its autonomy tier: `T1` (every job waits for approval), `T2` (jobs whose subject is
    /// in `outbound` wait), `T3` (no tier gate).
    pub tier: Option<String>,
    /// Subjects that leave the company (gated under tier `T2`).
    pub outbound: Vec<String>,
    /// Its `[[approval_gates]]`.
    pub approval_gates: Vec<GateSpec>,
    /// Its `[[reactions]]`.
    pub reactions: Vec<super::reactions::ReactionSpec>,
    /// Its `[idle]` thinking windows (over `[defaults.idle]`).
    pub idle: Option<super::idle::IdleSpec>,
    /// Its agent.toml.
    pub file: PathBuf,
    /// Lines of `id` and `handoffs` in it, for diagnostics found across agents.
    #[serde(skip)]
    pub(super) lines: KeyLines,
}

/// One `[[approval_gates]]` entry: jobs for the agent that match wait for approval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateSpec {
    /// Its name, unique per agent.
    pub name: String,
    /// A glob on the subject (`Proposal:*`); every subject when absent.
    pub subject: Option<String>,
    /// A top-level payload field whose number must reach `at_least`.
    pub payload_field: Option<String>,
    /// The threshold of `payload_field`.
    pub at_least: Option<f64>,
    /// Approvals from distinct operators a held job needs (1 to 5; 2 is the two-person rule).
    pub approvals: i32,
    /// FILE:LINE of the declaration.
    pub source: String,
}

impl GateSpec {
    /// The subject glob as a SQL LIKE pattern (`*` any text, `?` one character; `%`, `_`
    /// and `\` match themselves).
    pub fn subject_like(&self) -> Option<String> {
        self.subject.as_ref().map(|glob| {
            let mut like = String::with_capacity(glob.len());
            for c in glob.chars() {
                match c {
                    '*' => like.push('%'),
                    '?' => like.push('_'),
                    '%' | '_' | '\\' => {
                        like.push('\\');
                        like.push(c);
                    }
                    c => like.push(c),
                }
            }
            like
        })
    }
}

/// OpenClaw tool names an agent may and may not use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ToolPolicy {
    /// Only these (empty: OpenClaw's default set).
    pub allow: Vec<String>,
    /// Never these.
    pub deny: Vec<String>,
}

/// Where an agent file sets the keys checked across the whole fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct KeyLines {
    pub(super) id: usize,
    pub(super) handoffs: usize,
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
    /// The heartbeat cadence of agents that set none (`[openclaw] heartbeat`; OpenClaw's
    /// own default when unset is every 30 minutes, so `fleet openclaw-config` writes `0m`:
    /// agentbus wakes these agents).
    pub openclaw_heartbeat: Option<String>,
    /// Agents, by id.
    pub agents: Vec<AgentSpec>,
    /// Agents that may promote into shared memory (`[memory] curators`; default: the
    /// `knowledge` agent when the fleet has one).
    pub memory_curators: Vec<String>,
    /// Whether the supervisor injects memories into prompts (`[memory] inject`).
    pub memory_inject: bool,
    /// Keys of its own agent.toml an agent may ask to change (`[requests] config_keys`;
    /// `agentbus request-config-change`, applied only after an operator approves).
    pub request_config_keys: Vec<String>,
    /// Who picks up work blocked too long (`[blocked]`).
    pub blocked: Option<BlockedPolicy>,
    /// The phases of its lanes and the exit criteria of its gates (`[rollout]`).
    pub rollout: RolloutSpec,
}

/// `[rollout]` of fleet.toml: from which phase each lane runs, and the limits
/// `agentbus rollout check` holds a phase to before the next may be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RolloutSpec {
    /// The proactive lane (ideas, opportunities) runs from this phase (default 3).
    pub proactive: u8,
    /// The memory lane from this phase (default 4).
    pub memory: u8,
    /// Idle thinking from this phase (default 5).
    pub idle: u8,
    /// The gate looks at this many hours of the ledger (default 24).
    pub window_hours: i32,
    /// Lost or expired attempts the gate tolerates in the window (default 3).
    pub max_expired_leases: i32,
    /// The 95th percentile of enqueue-to-claim the gate tolerates, seconds (default 120).
    pub max_handoff_p95_seconds: i32,
}

impl Default for RolloutSpec {
    fn default() -> Self {
        RolloutSpec {
            proactive: 3,
            memory: 4,
            idle: 5,
            window_hours: 24,
            max_expired_leases: 3,
            max_handoff_p95_seconds: 120,
        }
    }
}

/// `[blocked]` of fleet.toml: blocked work goes to a routing agent, then to a human.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockedPolicy {
    /// The routing agent (the coordinator in the ops fleet).
    pub route_to: String,
    /// How long a job stays blocked before it gets a triage job.
    pub route_after_seconds: i64,
    /// How long before an escalation waits for a human, if at all.
    pub escalate_after_seconds: Option<i64>,
    /// FILE:LINE of the declaration.
    pub source: String,
}

/// The documentation of every key, rendered as agentbus-fleet(5).
pub const FORMAT_DOC: &str = include_str!("fleet_format.txt");
