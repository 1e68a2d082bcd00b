//! The keys each table of the fleet files may hold; anything else is reported as unknown
//! with the keys known there.

pub(super) const FLEET_KEYS: &[&str] = &[
    "name",
    "namespace",
    "description",
    "defaults",
    "openclaw",
    "memory",
    "requests",
    "blocked",
    "rollout",
    "retention",
];
pub(super) const ROLLOUT_KEYS: &[&str] = &[
    "proactive",
    "memory",
    "idle",
    "window_hours",
    "max_expired_leases",
    "max_handoff_p95_seconds",
];
pub(super) const BLOCKED_KEYS: &[&str] = &["route_to", "route_after", "escalate_after"];
pub(super) const REQUESTS_KEYS: &[&str] = &["config_keys"];
pub(super) const MEMORY_KEYS: &[&str] = &["curators", "inject"];
pub(super) const DEFAULTS_KEYS: &[&str] = &[
    "max_concurrency",
    "timezone",
    "grace_seconds",
    "wake",
    "budgets",
    "idle",
];
pub(super) const BUDGET_KEYS: &[&str] = &[
    "max_opportunities_per_day",
    "max_urgent_per_day",
    "max_ideas_per_day",
    "max_memory_candidates_per_day",
];
pub(super) const OPENCLAW_KEYS: &[&str] = &["hook_url", "token_env", "heartbeat"];
pub(super) const AGENT_KEYS: &[&str] = &[
    "id",
    "name",
    "role",
    "max_concurrency",
    "paused",
    "handoffs",
    "wake",
    "standing_orders",
    "budgets",
    "model",
    "heartbeat",
    "tools",
    "tier",
    "outbound",
    "approval_gates",
    "reactions",
    "idle",
    "phase",
];
pub(super) const GATE_KEYS: &[&str] =
    &["name", "subject", "payload_field", "at_least", "approvals"];
pub(super) const TOOLS_KEYS: &[&str] = &["allow", "deny"];
pub(super) const WAKE_KEYS: &[&str] = &[
    "mode",
    "agent_id",
    "session_key",
    "timeout_seconds",
    "command",
];
pub(super) const ORDER_KEYS: &[&str] = &[
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
    "phase",
];
