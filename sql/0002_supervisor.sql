-- agentbus migration 0002: what the supervisor needs.
--
--   agents          per-agent settings shared by every supervisor: concurrency limit,
--                   pause, how to wake the agent, and the wake errors seen
--   job_attempts    what each wake-up did: mode, prompt hash, hook status and runId,
--                   exit code, stderr tail
--   claim_jobs      now honours max_concurrency (across supervisors), paused agents and
--                   agents whose wake-up is backing off
--   notify          a NOTIFY when a job leaves leased/running, so a supervisor waiting
--                   for an agent's slot to free claims the next job at once

-- 'lost': the supervisor that held the attempt went away before waking the agent, and a
-- restart of that supervisor (same id) released the job.
alter type attempt_status add value if not exists 'lost';

-- ---------------------------------------------------------------------------
-- Agents
-- ---------------------------------------------------------------------------
--
-- An agent needs no row here to receive work: a supervisor started with --exec or
-- --hook-url wakes agents that have none, with its own defaults. A row says how this
-- agent in particular is woken and limited.
create table agents (
  namespace text not null default 'default',
  agent_id text not null,
  name text,
  role text,

  -- At most this many of the agent's jobs leased or running at once, whatever number of
  -- supervisors run. NULL: the claiming supervisor's --default-concurrency.
  max_concurrency int check (max_concurrency is null or max_concurrency > 0),

  paused boolean not null default false,
  paused_reason text,
  paused_at timestamptz,
  paused_by text,

  -- How to wake it. NULL: the supervisor's default (--exec / --hook-url).
  wake_mode text check (wake_mode is null or wake_mode in ('hook', 'exec')),
  hook_url text,
  hook_agent_id text,
  hook_session_key text,
  hook_timeout_seconds int check (hook_timeout_seconds is null or hook_timeout_seconds > 0),
  -- The NAME of the environment variable holding the bearer token, never the token.
  hook_token_env text,
  exec_command text[] check (exec_command is null or cardinality(exec_command) > 0),
  exec_timeout_seconds int check (exec_timeout_seconds is null or exec_timeout_seconds > 0),

  -- Wake errors: the last one, and a back-off before the agent is claimed again.
  wake_failures int not null default 0,
  wake_backoff_until timestamptz,
  last_wake_error text,
  last_wake_error_at timestamptz,

  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (namespace, agent_id),
  check ((not paused) or paused_reason is not null)
);

create trigger agents_set_updated_at
before update on agents
for each row
execute function set_updated_at();

-- ---------------------------------------------------------------------------
-- Attempts that never reached the agent
-- ---------------------------------------------------------------------------
--
-- A wake-up that provably did not reach the agent (connection refused, HTTP 5xx, a hook
-- that refused the request, a command that could not be started) still leaves its
-- attempt row, but does not count toward max_attempts: a gateway that is down for an
-- hour must not send the fleet's work to the dead letters. The agent's wake back-off
-- (agents.wake_backoff_until) keeps such retries from hammering it.
alter table jobs
  add column unreached_attempts int not null default 0 check (unreached_attempts >= 0);

-- ---------------------------------------------------------------------------
-- What each attempt did
-- ---------------------------------------------------------------------------
alter table job_attempts
  add column wake_mode text,
  add column woken_at timestamptz,
  add column prompt_hash text,
  add column prompt_version int,
  add column hook_status int,
  add column run_id text,
  add column exit_code int,
  add column exit_signal int,
  add column stderr_tail text;

-- ---------------------------------------------------------------------------
-- NOTIFY when a slot frees up
-- ---------------------------------------------------------------------------
create function notify_job_slot_freed()
returns trigger
language plpgsql
as $$
begin
  perform pg_notify(
    'jobs_ready',
    json_build_object(
      'namespace', new.namespace,
      'target_agent', new.target_agent,
      'job_id', new.id,
      'slot_freed', true
    )::text
  );
  return null;
end;
$$;

create trigger jobs_notify_slot_freed
after update of status on jobs
for each row
when (
  old.status in ('leased', 'running')
  and new.status not in ('leased', 'running')
)
execute function notify_job_slot_freed();

-- ---------------------------------------------------------------------------
-- claim_jobs, with concurrency limits, pause and wake back-off
-- ---------------------------------------------------------------------------
--
-- Same fairness as before (every agent's first job before any agent's second; priority
-- within an agent). In addition, for each agent with queued work:
--   * paused agents, and agents whose wake-up is backing off, are skipped;
--   * agents without a wake_mode are skipped unless p_claim_unconfigured;
--   * with a limit (agents.max_concurrency, else p_default_max_concurrency), the claim
--     takes a transaction-level advisory lock on the agent (skipping the agent when another
--     claimer holds it), counts the agent's leased and running jobs, and claims at most
--     the difference. Every claimer of that agent goes through the same lock, and the
--     count runs after the lock is granted, so it sees every claim committed before; the
--     limit therefore holds across any number of supervisors. Jobs leaving leased/running
--     only lower the count, so closing calls need no lock.
drop function claim_jobs(text, text, integer, integer, text);

create function claim_jobs(
  p_namespace text,
  p_lease_owner text,
  p_lease_seconds integer,
  p_limit integer default 1,
  p_target_agent text default null,
  p_default_max_concurrency integer default null,
  p_claim_unconfigured boolean default true
)
returns setof jobs
language plpgsql
as $$
declare
  v_agent record;
  v_active int;
  v_limit int;
  v_ids uuid[] := '{}';
  v_ranks int[] := '{}';
  v_priorities int[] := '{}';
  v_run_afters timestamptz[] := '{}';
  v_created timestamptz[] := '{}';
  v_job record;
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
  if p_default_max_concurrency is not null and p_default_max_concurrency <= 0 then
    raise exception 'default max concurrency must be positive, got %', p_default_max_concurrency
      using errcode = 'invalid_parameter_value';
  end if;

  -- Each agent with queued work, once (a loose index scan over jobs_ready_idx).
  for v_agent in
    with recursive queued_agents(target_agent) as (
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
          and j.target_agent > q.target_agent
          and (p_target_agent is null or j.target_agent = p_target_agent)
        order by j.target_agent
        limit 1
      )
      from queued_agents q
      where q.target_agent is not null
    )
    select q.target_agent,
           a.wake_mode,
           coalesce(a.paused, false) as paused,
           a.wake_backoff_until,
           coalesce(a.max_concurrency, p_default_max_concurrency) as max_concurrency
    from queued_agents q
    left join agents a
      on a.namespace = p_namespace and a.agent_id = q.target_agent
    where q.target_agent is not null
  loop
    continue when v_agent.paused;
    continue when v_agent.wake_backoff_until is not null and v_agent.wake_backoff_until > now();
    continue when v_agent.wake_mode is null and not p_claim_unconfigured;

    v_limit := p_limit;
    if v_agent.max_concurrency is not null then
      continue when not pg_try_advisory_xact_lock(
        hashtext('agentbus.claim'), hashtext(p_namespace || '/' || v_agent.target_agent));
      select count(*) into v_active
      from jobs j
      where j.namespace = p_namespace
        and j.target_agent = v_agent.target_agent
        and j.status in ('leased', 'running');
      v_limit := least(p_limit, v_agent.max_concurrency - v_active);
      continue when v_limit <= 0;
    end if;

    -- This agent's best ready jobs, in its own order (one bounded index scan).
    for v_job in
      select j.id, j.priority, j.run_after, j.created_at,
             row_number() over () as agent_rank
      from (
        select j.id, j.priority, j.run_after, j.created_at
        from jobs j
        where j.namespace = p_namespace
          and j.status = 'queued'
          and j.target_agent = v_agent.target_agent
          and j.run_after <= now()
        order by j.priority desc, j.run_after, j.created_at
        limit v_limit
      ) j
    loop
      v_ids := v_ids || v_job.id;
      v_ranks := v_ranks || v_job.agent_rank::int;
      v_priorities := v_priorities || v_job.priority;
      v_run_afters := v_run_afters || v_job.run_after;
      v_created := v_created || v_job.created_at;
    end loop;
  end loop;

  if cardinality(v_ids) = 0 then
    return;
  end if;

  perform set_config('agentbus.actor', p_lease_owner, true);
  perform set_config('agentbus.reason', 'claimed', true);

  -- Every agent's first job before any agent's second; priority within a rank.
  return query
  with candidates as (
    select c.id, c.agent_rank, c.priority, c.run_after, c.created_at
    from unnest(v_ids, v_ranks, v_priorities, v_run_afters, v_created)
      as c(id, agent_rank, priority, run_after, created_at)
  ),
  locked as (
    select j.id, c.agent_rank, c.priority, c.run_after, c.created_at
    from candidates c
    join jobs j on j.id = c.id
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

-- Agents whose wake-up failed or that are paused: what `agentbus status` and the
-- supervisor's heartbeat surface.
create view agent_wake_problems_v as
select namespace, agent_id, paused, paused_reason, paused_at,
       wake_failures, wake_backoff_until, last_wake_error, last_wake_error_at
from agents
where paused
   or (wake_backoff_until is not null and wake_backoff_until > now())
   or last_wake_error is not null;
