-- agentbus migration 0003: fleets in the database.
--
--   agents            which fleet declared the agent, its hand-off targets
--   standing_orders   the declared standing orders (synced from agent.toml files);
--                     an order removed from the files is disabled, never deleted, so
--                     its runs keep their meaning

alter table agents
  add column fleet text,
  add column handoffs text[] not null default '{}';

create table standing_orders (
  namespace text not null default 'default',
  agent_id text not null,
  order_name text not null,
  cron text not null,
  timezone text not null default 'UTC',
  grace_seconds int not null default 300 check (grace_seconds > 0),
  max_runtime_seconds int check (max_runtime_seconds is null or max_runtime_seconds > 0),
  message text not null,
  session_key text,
  catch_up text not null default 'skip' check (catch_up in ('skip', 'run_once')),
  fired_by text not null default 'supervisor' check (fired_by in ('supervisor', 'external')),
  enabled boolean not null default true,
  alert_after_no_work int check (alert_after_no_work is null or alert_after_no_work > 0),
  alert_after_failures int check (alert_after_failures is null or alert_after_failures > 0),
  fleet text,
  -- file:line of the declaration, for operators.
  source text,
  -- Set when the order disappeared from the files (enabled is then false).
  removed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (namespace, agent_id, order_name)
);

create trigger standing_orders_set_updated_at
before update on standing_orders
for each row
execute function set_updated_at();

create index standing_orders_enabled_idx
  on standing_orders (namespace, fired_by)
  where enabled;

-- ---------------------------------------------------------------------------
-- A fired standing order's run follows its job
-- ---------------------------------------------------------------------------
--
-- The supervisor fires an occurrence as a job linked to its run ('started'). When the
-- job ends, the run ends the same way, in the same transaction: succeeded -> completed
-- (no_work when the agent closed it with `complete-job --no-work`), blocked -> blocked,
-- dead -> failed, cancelled -> skipped.
create function finish_standing_order_run()
returns trigger
language plpgsql
as $$
begin
  update standing_order_runs r
  set status = case
                 when new.status = 'succeeded'
                      and coalesce(new.result ->> 'no_work', 'false') = 'true' then 'no_work'
                 when new.status = 'succeeded' then 'completed'
                 when new.status = 'blocked' then 'blocked'
                 when new.status = 'dead' then 'failed'
                 else 'skipped'
               end::standing_order_status,
      summary = coalesce(new.summary, new.blocked_reason, new.last_error, r.summary),
      finished_at = now()
  where r.job_id = new.id
    and r.status = 'started';
  return null;
end;
$$;

create trigger jobs_finish_standing_order_run
after update of status on jobs
for each row
when (old.status is distinct from new.status
      and new.status in ('succeeded', 'blocked', 'dead', 'cancelled')
      and new.job_type = 'scheduled')
execute function finish_standing_order_run();
