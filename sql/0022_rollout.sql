-- 0022: where each namespace stands in its phased rollout (agentbus rollout). One row per
-- namespace: the phase applied, who applied it, and when a gate was overridden, why.
-- Every change is also an event (rollout.applied, rollout.back).
create table rollout_state (
  namespace text primary key check (agentbus_is_name(namespace)),
  phase integer not null check (phase between 1 and 5),
  applied_at timestamptz not null default now(),
  applied_by text not null check (length(applied_by) between 1 and 200),
  forced_reason text check (length(forced_reason) <= 2000),
  updated_at timestamptz not null default now()
);

create trigger rollout_state_set_updated_at
before update on rollout_state
for each row
execute function set_updated_at();

alter table rollout_state enable row level security;
create policy namespace_of_login on rollout_state
  using (namespace = any (coalesce((select agentbus_login_namespaces()), '{}')))
  with check (namespace = any (coalesce((select agentbus_login_namespaces()), '{}')));
