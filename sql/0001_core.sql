-- 0001_core: the ledger spine.
--
-- Jobs and their attempts, dependencies and history; events; standing-order runs;
-- supervisor heartbeats; the health views; claim_jobs() and requeue_expired_jobs();
-- the NOTIFY triggers that wake supervisors and followers.
--
-- Names follow the user's sketch (seed 004) so its queries and scripts keep working.
-- Additions over the sketch: lease tokens (fencing), the waiting / awaiting_approval /
-- cancelled job states, an append-only job_history written by trigger, dependency
-- resolution inside the completing transaction, fair claiming across agents, and
-- attempt bookkeeping for expired leases.
--
-- Requires PostgreSQL 13 or newer (gen_random_uuid() is built in; no extension needed).
-- The migration runner wraps this file in one transaction.

-- ---------------------------------------------------------------------------
-- Types
-- ---------------------------------------------------------------------------

-- Job lifecycle (see agentbus(1), "JOB STATES"):
--   waiting            dependencies not yet succeeded
--   awaiting_approval  held until an operator approves
--   queued             claimable once run_after has passed
--   leased             claimed by a supervisor, agent not yet running
--   running            the agent is working on it
--   blocked            the agent cannot proceed; blocked_reason says why
--   succeeded, dead, cancelled   terminal
--   failed             kept for compatibility with the sketch; a failed attempt sends
--                      the job back to queued (retry) or to dead, so jobs never rest here.
create type job_status as enum (
  'queued',
  'leased',
  'running',
  'blocked',
  'succeeded',
  'failed',
  'dead',
  'waiting',
  'awaiting_approval',
  'cancelled'
);

create type attempt_status as enum (
  'leased',
  'running',
  'succeeded',
  'blocked',
  'failed',
  'timed_out',
  'cancelled'
);

create type standing_order_status as enum (
  'started',
  'no_work',
  'completed',
  'blocked',
  'failed',
  'skipped',
  'missed'
);

create function set_updated_at()
returns trigger
language plpgsql
as $$
begin
  new.updated_at := now();
  return new;
end;
$$;

-- ---------------------------------------------------------------------------
-- Jobs
-- ---------------------------------------------------------------------------

create table jobs (
  id uuid primary key default gen_random_uuid(),
  namespace text not null default 'default',

  parent_job_id uuid references jobs(id) on delete set null,
  flow_key text,
  correlation_key text,

  source_agent text,
  target_agent text not null,

  job_type text not null,
  subject text not null,

  priority int not null default 100 check (priority between 1 and 1000),
  dedupe_key text,

  payload jsonb not null default '{}'::jsonb,
  state jsonb not null default '{}'::jsonb,
  result jsonb not null default '{}'::jsonb,
  summary text,

  status job_status not null default 'queued',
  run_after timestamptz not null default now(),

  lease_owner text,
  leased_until timestamptz,
  -- Fencing: a fresh token per claim. Writes that carry a token must match it.
  lease_token uuid,

  attempt_count int not null default 0 check (attempt_count >= 0),
  max_attempts int not null default 5 check (max_attempts > 0),

  blocked_reason text,
  last_error text,

  requires_approval boolean not null default false,

  openclaw_task_ref text,
  openclaw_session_key text,
  openclaw_meta jsonb not null default '{}'::jsonb,

  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  completed_at timestamptz,

  check ((status <> 'blocked') or blocked_reason is not null),
  check ((status not in ('leased', 'running')) or lease_token is not null)
);

create trigger jobs_set_updated_at
before update on jobs
for each row
execute function set_updated_at();

create table job_dependencies (
  job_id uuid not null references jobs(id) on delete cascade,
  depends_on_job_id uuid not null references jobs(id) on delete cascade,
  primary key (job_id, depends_on_job_id),
  check (job_id <> depends_on_job_id)
);

create index job_dependencies_depends_on_idx
  on job_dependencies (depends_on_job_id);

create table job_attempts (
  id bigserial primary key,
  job_id uuid not null references jobs(id) on delete cascade,
  attempt_no int not null check (attempt_no > 0),
  dispatcher_id text,
  status attempt_status not null default 'leased',
  summary text,
  error text,
  openclaw_task_ref text,
  openclaw_session_key text,
  response jsonb not null default '{}'::jsonb,
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  -- The token this attempt was issued; calls presenting it after the attempt lost its
  -- lease are refused and noted in stale_calls (command, time, caller).
  lease_token uuid,
  stale_calls jsonb not null default '[]'::jsonb,
  unique (job_id, attempt_no)
);

create index job_attempts_job_started_idx
  on job_attempts (job_id, started_at desc);

create index job_attempts_lease_token_idx
  on job_attempts (lease_token)
  where lease_token is not null;

-- Append-only record of every job status change, written by trigger so that no path
-- (CLI, SQL function, psql) can change a status without leaving a row here.
-- The actor and reason come from the transaction-local settings agentbus.actor and
-- agentbus.reason, which every agentbus command sets; psql users appear as their role.
create table job_history (
  id bigserial primary key,
  job_id uuid not null references jobs(id) on delete cascade,
  namespace text not null,
  from_status job_status,
  to_status job_status not null,
  attempt_no int not null,
  actor text not null,
  reason text,
  created_at timestamptz not null default now()
);

create index job_history_job_idx
  on job_history (job_id, id);

create function job_history_is_append_only()
returns trigger
language plpgsql
as $$
begin
  raise exception 'job_history is append-only'
    using errcode = 'restrict_violation';
end;
$$;

create trigger job_history_no_update
before update on job_history
for each row
execute function job_history_is_append_only();

create function record_job_transition()
returns trigger
language plpgsql
as $$
begin
  if tg_op = 'INSERT' or old.status is distinct from new.status then
    insert into job_history (job_id, namespace, from_status, to_status, attempt_no, actor, reason)
    values (
      new.id,
      new.namespace,
      case when tg_op = 'INSERT' then null else old.status end,
      new.status,
      new.attempt_count,
      coalesce(nullif(current_setting('agentbus.actor', true), ''), session_user::text),
      nullif(current_setting('agentbus.reason', true), '')
    );
  end if;
  return null;
end;
$$;

create trigger jobs_record_insert
after insert on jobs
for each row
execute function record_job_transition();

create trigger jobs_record_transition
after update of status on jobs
for each row
when (old.status is distinct from new.status)
execute function record_job_transition();

-- Dependencies: when a job succeeds, every waiting dependent whose dependencies have all
-- succeeded becomes queued (and the NOTIFY trigger wakes the supervisors); when a job ends
-- dead or cancelled, its waiting dependents become blocked with a reason naming it.
-- This runs inside the transaction that made the change, so there is no window in which a
-- finished dependency leaves a dependent waiting.
--
-- Concurrency: each dependent row is locked before its dependencies are checked, and the
-- check is a separate statement, so two dependencies succeeding at the same moment cannot
-- both see the other as unfinished (the second waits for the first and then sees it).
create function resolve_job_dependents()
returns trigger
language plpgsql
as $$
declare
  dependent uuid;
begin
  if new.status = 'succeeded' then
    for dependent in
      select j.id
      from job_dependencies d
      join jobs j on j.id = d.job_id
      where d.depends_on_job_id = new.id
        and j.status = 'waiting'
      order by j.id
      for update of j
    loop
      if not exists (
        select 1
        from job_dependencies d
        join jobs dep on dep.id = d.depends_on_job_id
        where d.job_id = dependent
          and dep.status <> 'succeeded'
      ) then
        update jobs
        set status = 'queued',
            run_after = greatest(run_after, now())
        where id = dependent
          and status = 'waiting';
      end if;
    end loop;
  elsif new.status in ('dead', 'cancelled') then
    update jobs j
    set status = 'blocked',
        blocked_reason = format('dependency %s ended %s', new.id, new.status)
    from job_dependencies d
    where d.depends_on_job_id = new.id
      and j.id = d.job_id
      and j.status = 'waiting';
  end if;
  return null;
end;
$$;

create trigger jobs_resolve_dependents
after update of status on jobs
for each row
when (old.status is distinct from new.status
      and new.status in ('succeeded', 'dead', 'cancelled'))
execute function resolve_job_dependents();

create index jobs_ready_idx
  on jobs (namespace, target_agent, priority desc, run_after, created_at)
  where status = 'queued';

create index jobs_lease_idx
  on jobs (namespace, status, leased_until)
  where status in ('leased', 'running');

create index jobs_target_status_idx
  on jobs (namespace, target_agent, status, run_after);

create index jobs_flow_idx
  on jobs (namespace, flow_key, created_at desc);

create index jobs_correlation_idx
  on jobs (namespace, correlation_key, created_at desc)
  where correlation_key is not null;

create index jobs_parent_idx
  on jobs (parent_job_id);

create index jobs_created_idx
  on jobs (namespace, created_at desc);

-- One active job per (namespace, target_agent, dedupe_key). "Active" is every state a job
-- can still make progress from; terminal jobs release the key.
create unique index jobs_active_dedupe_idx
  on jobs (namespace, target_agent, dedupe_key)
  where dedupe_key is not null
    and status in ('queued', 'leased', 'running', 'blocked', 'failed', 'waiting', 'awaiting_approval');

-- ---------------------------------------------------------------------------
-- Events
-- ---------------------------------------------------------------------------

create table events (
  id bigserial primary key,
  namespace text not null default 'default',
  topic text not null,
  source_agent text,
  source_job_id uuid references jobs(id) on delete set null,
  dedupe_key text,
  payload jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now()
);

create index events_topic_created_idx
  on events (namespace, topic, created_at desc);

create index events_source_job_idx
  on events (source_job_id, created_at desc);

create index events_created_idx
  on events (namespace, created_at desc);

create unique index events_dedupe_idx
  on events (namespace, topic, dedupe_key)
  where dedupe_key is not null;

-- ---------------------------------------------------------------------------
-- Standing-order runs
-- ---------------------------------------------------------------------------

create table standing_order_runs (
  id uuid primary key default gen_random_uuid(),
  namespace text not null default 'default',
  agent_id text not null,
  order_name text not null,
  trigger_source text not null default 'cron',
  cron_job_id text,
  scheduled_for timestamptz not null,
  status standing_order_status not null default 'started',
  summary text,
  evidence jsonb not null default '{}'::jsonb,
  openclaw_task_ref text,
  openclaw_session_key text,
  -- The job that carried this occurrence, when the supervisor fired it.
  job_id uuid references jobs(id) on delete set null,
  created_at timestamptz not null default now(),
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  updated_at timestamptz not null default now(),
  unique (namespace, agent_id, order_name, scheduled_for)
);

create trigger standing_order_runs_set_updated_at
before update on standing_order_runs
for each row
execute function set_updated_at();

create index standing_order_runs_lookup_idx
  on standing_order_runs (namespace, agent_id, order_name, scheduled_for desc);

create index standing_order_runs_open_idx
  on standing_order_runs (namespace, status, scheduled_for)
  where status = 'started';

create index standing_order_runs_job_idx
  on standing_order_runs (job_id)
  where job_id is not null;

-- ---------------------------------------------------------------------------
-- Supervisor heartbeats
-- ---------------------------------------------------------------------------

create table dispatcher_heartbeats (
  namespace text not null default 'default',
  dispatcher_id text not null,
  host text,
  pid int,
  version text,
  started_at timestamptz not null default now(),
  last_seen timestamptz not null default now(),
  leases_owned int not null default 0,
  busy_agents int not null default 0,
  in_flight int not null default 0,
  last_error text,
  metrics jsonb not null default '{}'::jsonb,
  primary key (namespace, dispatcher_id)
);

create index dispatcher_heartbeats_last_seen_idx
  on dispatcher_heartbeats (namespace, last_seen desc);

-- ---------------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------------

create view ready_jobs_v as
select *
from jobs
where status = 'queued'
  and run_after <= now();

create view stuck_jobs_v as
select *
from jobs
where status in ('leased', 'running')
  and leased_until is not null
  and leased_until < now();

-- failed_count counts jobs waiting to retry after a failed attempt (queued with an error
-- recorded), since a failed attempt sends the job back to queued rather than parking it.
create view queue_health_summary_v as
select
  namespace,
  count(*) filter (where status = 'queued') as queued_count,
  count(*) filter (where status = 'leased') as leased_count,
  count(*) filter (where status = 'running') as running_count,
  count(*) filter (where status = 'blocked') as blocked_count,
  count(*) filter (where status = 'succeeded') as succeeded_count,
  count(*) filter (where status = 'failed'
                      or (status = 'queued' and attempt_count > 0 and last_error is not null)) as failed_count,
  count(*) filter (where status = 'dead') as dead_count,
  count(*) filter (where status = 'waiting') as waiting_count,
  count(*) filter (where status = 'awaiting_approval') as awaiting_approval_count,
  count(*) filter (where status = 'cancelled') as cancelled_count,
  count(*) filter (
    where status in ('leased', 'running')
      and leased_until is not null
      and leased_until < now()
  ) as expired_lease_count,
  count(*) filter (where attempt_count >= 3
                     and status not in ('succeeded', 'dead', 'cancelled')) as retry_hotspot_count,
  extract(epoch from (now() - min(created_at) filter (where status = 'queued'))) as oldest_queued_age_seconds,
  extract(epoch from (now() - min(updated_at) filter (where status = 'blocked'))) as oldest_blocked_age_seconds
from jobs
group by namespace;

create view standing_order_health_summary_v as
select
  namespace,
  count(*) filter (where scheduled_for >= now() - interval '24 hours') as runs_last_24h,
  count(*) filter (where status = 'completed' and scheduled_for >= now() - interval '24 hours') as completed_last_24h,
  count(*) filter (where status = 'no_work' and scheduled_for >= now() - interval '24 hours') as no_work_last_24h,
  count(*) filter (where status = 'blocked' and scheduled_for >= now() - interval '24 hours') as blocked_last_24h,
  count(*) filter (where status = 'failed' and scheduled_for >= now() - interval '24 hours') as failed_last_24h,
  count(*) filter (where status = 'missed' and scheduled_for >= now() - interval '24 hours') as missed_last_24h,
  count(*) filter (where status = 'started') as started_open_count
from standing_order_runs
group by namespace;

create view dispatcher_health_summary_v as
select
  namespace,
  count(*) as dispatcher_count,
  count(*) filter (where last_seen >= now() - interval '90 seconds') as healthy_dispatcher_count,
  count(*) filter (where last_seen < now() - interval '90 seconds') as stale_dispatcher_count,
  max(last_seen) as last_dispatcher_seen_at,
  extract(epoch from (now() - max(last_seen))) as seconds_since_last_dispatcher_seen,
  sum(leases_owned) as leases_owned_total,
  sum(busy_agents) as busy_agents_total
from dispatcher_heartbeats
group by namespace;

create view system_health_snapshot_v as
select
  coalesce(q.namespace, s.namespace, d.namespace) as namespace,

  coalesce(q.queued_count, 0) as queued_count,
  coalesce(q.leased_count, 0) as leased_count,
  coalesce(q.running_count, 0) as running_count,
  coalesce(q.blocked_count, 0) as blocked_count,
  coalesce(q.failed_count, 0) as failed_count,
  coalesce(q.dead_count, 0) as dead_count,
  coalesce(q.waiting_count, 0) as waiting_count,
  coalesce(q.awaiting_approval_count, 0) as awaiting_approval_count,
  coalesce(q.expired_lease_count, 0) as expired_lease_count,
  coalesce(q.retry_hotspot_count, 0) as retry_hotspot_count,
  q.oldest_queued_age_seconds,
  q.oldest_blocked_age_seconds,

  coalesce(s.runs_last_24h, 0) as standing_runs_last_24h,
  coalesce(s.completed_last_24h, 0) as standing_completed_last_24h,
  coalesce(s.no_work_last_24h, 0) as standing_no_work_last_24h,
  coalesce(s.blocked_last_24h, 0) as standing_blocked_last_24h,
  coalesce(s.failed_last_24h, 0) as standing_failed_last_24h,
  coalesce(s.missed_last_24h, 0) as standing_missed_last_24h,

  coalesce(d.dispatcher_count, 0) as dispatcher_count,
  coalesce(d.healthy_dispatcher_count, 0) as healthy_dispatcher_count,
  coalesce(d.stale_dispatcher_count, 0) as stale_dispatcher_count,
  d.last_dispatcher_seen_at,
  d.seconds_since_last_dispatcher_seen,
  coalesce(d.leases_owned_total, 0) as leases_owned_total,
  coalesce(d.busy_agents_total, 0) as busy_agents_total

from queue_health_summary_v q
full outer join standing_order_health_summary_v s using (namespace)
full outer join dispatcher_health_summary_v d using (namespace);

-- ---------------------------------------------------------------------------
-- NOTIFY: wake-up hints (never the source of truth; supervisors also poll)
-- ---------------------------------------------------------------------------

create function notify_jobs_ready()
returns trigger
language plpgsql
as $$
begin
  if new.status = 'queued' then
    perform pg_notify(
      'jobs_ready',
      json_build_object(
        'namespace', new.namespace,
        'target_agent', new.target_agent,
        'job_id', new.id,
        'run_after', new.run_after
      )::text
    );
  end if;
  return null;
end;
$$;

create trigger jobs_notify_insert
after insert on jobs
for each row
execute function notify_jobs_ready();

create trigger jobs_notify_update
after update of status, run_after on jobs
for each row
when (
  new.status = 'queued'
  and (
    old.status is distinct from new.status
    or old.run_after is distinct from new.run_after
  )
)
execute function notify_jobs_ready();

create function notify_events_inserted()
returns trigger
language plpgsql
as $$
begin
  perform pg_notify(
    'events_inserted',
    json_build_object(
      'namespace', new.namespace,
      'topic', new.topic,
      'event_id', new.id
    )::text
  );
  return null;
end;
$$;

create trigger events_notify_insert
after insert on events
for each row
execute function notify_events_inserted();

-- ---------------------------------------------------------------------------
-- claim_jobs: lease up to p_limit ready jobs, fairly across agents.
-- ---------------------------------------------------------------------------
--
-- Fairness: each agent's ready jobs are ranked by priority, then run_after, then age;
-- the claim takes every agent's first job before any agent's second, so one agent with a
-- deep high-priority backlog cannot starve the others (the sketch ordered by priority
-- across all agents). Within one rank, higher priority goes first.
--
-- Each claimed job gets a fresh lease token, attempt_count + 1, and a job_attempts row
-- ('leased') carrying that token. Rows another claimer holds are skipped (SKIP LOCKED), so
-- concurrent claimers never receive the same job.
--
-- Cost: a loose index scan finds the agents with queued work, then at most p_limit
-- candidates per agent are read from jobs_ready_idx; nothing scans the whole backlog.
create function claim_jobs(
  p_namespace text,
  p_lease_owner text,
  p_lease_seconds integer,
  p_limit integer default 1,
  p_target_agent text default null
)
returns setof jobs
language plpgsql
as $$
begin
  if p_lease_seconds is null or p_lease_seconds <= 0 then
    raise exception 'lease seconds must be positive, got %', p_lease_seconds
      using errcode = 'invalid_parameter_value';
  end if;
  if p_limit is null or p_limit <= 0 then
    raise exception 'limit must be positive, got %', p_limit
      using errcode = 'invalid_parameter_value';
  end if;
  if p_lease_owner is null or p_lease_owner = '' then
    raise exception 'lease owner must be given'
      using errcode = 'invalid_parameter_value';
  end if;

  perform set_config('agentbus.actor', p_lease_owner, true);
  perform set_config('agentbus.reason', 'claimed', true);

  return query
  with recursive agents(target_agent) as (
    (
      select j.target_agent
      from jobs j
      where j.namespace = p_namespace
        and j.status = 'queued'
        and (p_target_agent is null or j.target_agent = p_target_agent)
      order by j.target_agent
      limit 1
    )
    union all
    select (
      select j.target_agent
      from jobs j
      where j.namespace = p_namespace
        and j.status = 'queued'
        and j.target_agent > a.target_agent
        and (p_target_agent is null or j.target_agent = p_target_agent)
      order by j.target_agent
      limit 1
    )
    from agents a
    where a.target_agent is not null
  ),
  candidates as (
    select c.id, c.agent_rank, c.priority, c.run_after, c.created_at
    from agents a
    cross join lateral (
      select j.id, j.priority, j.run_after, j.created_at,
             row_number() over (order by j.priority desc, j.run_after, j.created_at) as agent_rank
      from jobs j
      where j.namespace = p_namespace
        and j.status = 'queued'
        and j.target_agent = a.target_agent
        and j.run_after <= now()
      order by j.priority desc, j.run_after, j.created_at
      limit p_limit
    ) c
    where a.target_agent is not null
  ),
  locked as (
    select j.id, c.agent_rank, c.priority, c.run_after, c.created_at
    from jobs j
    join candidates c on c.id = j.id
    where j.status = 'queued'
      and j.run_after <= now()
    order by c.agent_rank, c.priority desc, c.run_after, c.created_at
    limit p_limit
    for update of j skip locked
  ),
  claimed as (
    update jobs j
    set status = 'leased',
        lease_owner = p_lease_owner,
        leased_until = now() + make_interval(secs => p_lease_seconds),
        lease_token = gen_random_uuid(),
        attempt_count = j.attempt_count + 1
    from locked l
    where j.id = l.id
    returning j.*
  ),
  attempts as (
    insert into job_attempts (job_id, attempt_no, dispatcher_id, status, lease_token)
    select c.id, c.attempt_count, p_lease_owner, 'leased', c.lease_token
    from claimed c
    returning job_id
  )
  select c.*
  from claimed c
  join locked l on l.id = c.id
  order by l.agent_rank, l.priority desc, l.run_after, l.created_at;
end;
$$;

-- ---------------------------------------------------------------------------
-- requeue_expired_jobs: recover jobs whose lease ran out.
-- ---------------------------------------------------------------------------
--
-- The current attempt ends 'timed_out'. A job with attempts left goes back to queued after
-- an exponential backoff with jitter (10 s, 20 s, 40 s ... capped at one hour, +-20 %);
-- a job that has used max_attempts goes dead (and its waiting dependents are blocked).
-- The sketch requeued immediately and never checked max_attempts.
create function requeue_expired_jobs(
  p_namespace text,
  p_limit integer default 1000
)
returns setof jobs
language plpgsql
as $$
begin
  perform set_config('agentbus.actor', 'requeue_expired_jobs', true);
  perform set_config('agentbus.reason', 'lease expired', true);

  return query
  with expired as (
    select j.id
    from jobs j
    where j.namespace = p_namespace
      and j.status in ('leased', 'running')
      and j.leased_until is not null
      and j.leased_until < now()
    order by j.leased_until asc
    limit p_limit
    for update skip locked
  ),
  updated as (
    update jobs j
    set status = case when j.attempt_count >= j.max_attempts
                      then 'dead'::job_status
                      else 'queued'::job_status end,
        last_error = format('lease expired at %s (attempt %s of %s, owner %s)',
                            to_char(j.leased_until at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                            j.attempt_count, j.max_attempts, coalesce(j.lease_owner, 'unknown')),
        run_after = case when j.attempt_count >= j.max_attempts
                         then j.run_after
                         else now() + make_interval(secs =>
                                least(3600, 10 * power(2, greatest(j.attempt_count - 1, 0)))
                                * (0.8 + random() * 0.4)) end,
        completed_at = case when j.attempt_count >= j.max_attempts then now() else null end,
        lease_owner = null,
        leased_until = null,
        lease_token = null
    from expired e
    where j.id = e.id
    returning j.*
  ),
  attempts as (
    update job_attempts a
    set status = 'timed_out',
        error = 'lease expired before the job was closed',
        finished_at = now()
    from updated u
    where a.job_id = u.id
      and a.attempt_no = u.attempt_count
      and a.finished_at is null
    returning a.job_id
  )
  select u.* from updated u;
end;
$$;
