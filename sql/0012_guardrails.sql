-- 0012: guardrails PostgreSQL enforces: who may do what, in which namespace.
--
-- Three group roles (created by `agentbus roles install`, not here: roles belong to the
-- cluster and creating them needs CREATEROLE):
--   agentbus_agent       the commands agents run: enqueue, close the jobs whose lease
--                        they hold, emit events, the proactive and memory lanes
--   agentbus_supervisor  the daemon: claim, wake, recover leases, fire standing orders
--   agentbus_operator    people: everything, within their namespaces
-- Each login (`agentbus roles grant`) is a member of one group and is bound, in the table
-- agentbus_logins, to its namespaces and (agent logins, optionally) to one agent.
--
-- The mechanisms, each holding for psql as much as for agentbus:
--   grants      which tables a group may insert, update or delete at all
--               (agentbus_apply_grants(), run by `roles install` and by `migrate`)
--   policies    row security by namespace on every table: a login sees and writes only
--               its namespaces; child tables follow their parent row
--   triggers    the rules within a table: agent logins change only jobs whose lease they
--               hold and act as their bound (or leased) agent; supervisors never approve,
--               cancel, retry, unblock or resume; only operators change what a job is
-- The owner of the tables (the role that migrates) and superusers bypass all three:
-- without roles installed, agentbus behaves as a single-user ledger ("guardrails off").
-- Refusals raise SQLSTATE AB003 (agentbus exits 77).

create table agentbus_logins (
  login text primary key check (login ~ '^[a-z_][a-z0-9_]{0,62}$'),
  class text not null check (class in ('agent', 'supervisor', 'operator')),
  namespaces text[] not null
    check (cardinality(namespaces) between 1 and 64
           and array_position(namespaces, null) is null),
  agent_id text check (agent_id is null or class = 'agent'),
  granted_by text not null default session_user,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

alter table agentbus_logins enable row level security;
create policy agentbus_logins_own on agentbus_logins for select using (login = current_user);

-- Whether the current role bypasses the guardrails: a superuser, the owner of the ledger,
-- or code running inside one of the ledger's security definer functions.
create function agentbus_unrestricted()
returns boolean
language sql
stable
set search_path from current
as $$
  select coalesce((select rolsuper from pg_roles where rolname = current_user), false)
      or pg_has_role(current_user, (select relowner from pg_class where oid = 'jobs'::regclass), 'MEMBER')
$$;

-- The namespaces the current login may see and write ('{}' for a role that is not a login).
create function agentbus_login_namespaces()
returns text[]
language sql
stable
set search_path from current
as $$
  select coalesce((select namespaces from agentbus_logins where login = current_user), '{}')
$$;

-- The lease token the session presented (agentbus sets it from --lease-token or
-- $AGENTBUS_LEASE_TOKEN), or null.
create function agentbus_session_lease()
returns uuid
language sql
stable
as $$
  select case when current_setting('agentbus.lease_token', true)
                   ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
              then current_setting('agentbus.lease_token', true)::uuid end
$$;

create index jobs_live_lease_token_idx on jobs (lease_token) where status in ('leased', 'running');

-- The agent the current login acts as: the agent it is bound to, else the agent whose
-- job's lease the session holds, else null (an unbound login outside a run).
create function agentbus_acting_agent()
returns text
language sql
stable
set search_path from current
as $$
  select coalesce(
    (select agent_id from agentbus_logins where login = current_user),
    (select j.target_agent from jobs j
      where j.lease_token = agentbus_session_lease() and j.status in ('leased', 'running')
      limit 1))
$$;

-- Why an agent may not hand work from p_from to p_target, or null (the rule of 0010,
-- checked from the acting agent rather than from a parent job).
create function handoff_refusal_from(p_namespace text, p_from text, p_target text)
returns text
language sql
stable
set search_path from current
as $$
  select format('%s may hand work only to %s, not to %s (handoffs in its agent.toml)',
                a.agent_id,
                coalesce(nullif(array_to_string(a.handoffs, ', '), ''), 'no one'),
                p_target)
    from agents a
   where a.namespace = p_namespace
     and a.agent_id = p_from
     and a.fleet is not null
     and p_target <> p_from
     and not (p_target = any (a.handoffs))
$$;

-- Who recorded a row: the database login, whatever name the caller claimed.
alter table job_history add column login text not null default session_user;
alter table events add column login text not null default session_user;
alter table events add column claimed_source_agent text;

create function agentbus_refuse(p_what text)
returns void
language plpgsql
as $$
begin
  raise exception 'not permitted for login %: %', session_user, p_what using errcode = 'AB003';
end;
$$;

-- The rules within jobs for agent and supervisor logins. Called only for a restricted
-- login by the small trigger function below: PL/pgSQL parses a function on its first call
-- in each session, and every agentbus command is a fresh session, so the owner's writes
-- do not pay for parsing rules that never apply to them (measured: about 0.8 ms per
-- command when this body was the trigger itself, under 0.2 ms now).
create function guard_jobs_for_login(p_op text, old jobs, new jobs)
returns jobs
language plpgsql
set search_path from current
as $$
declare
  me agentbus_logins;
  acting text;
  why text;
begin
  select * into me from agentbus_logins where login = current_user;
  if not found then
    perform agentbus_refuse('it is not an agentbus login (agentbus roles grant)');
  end if;
  if me.class = 'operator' then
    return new;
  end if;

  if p_op = 'INSERT' then
    if new.status not in ('queued', 'waiting', 'awaiting_approval', 'blocked') then
      perform agentbus_refuse(format('a new job cannot start %s', new.status));
    end if;
    if me.class = 'agent' then
      acting := agentbus_acting_agent();
      if acting is not null then
        new.source_agent := acting;
        why := handoff_refusal_from(new.namespace, acting, new.target_agent);
        if why is not null then
          raise exception 'hand-off refused: %', why using errcode = 'AB003';
        end if;
      end if;
    end if;
    return new;
  end if;

  if (new.id, new.namespace, new.target_agent, new.source_agent, new.parent_job_id,
      new.flow_key, new.correlation_key, new.job_type, new.subject, new.priority,
      new.dedupe_key, new.payload, new.requires_approval, new.approval_gate,
      new.max_attempts, new.created_at)
     is distinct from
     (old.id, old.namespace, old.target_agent, old.source_agent, old.parent_job_id,
      old.flow_key, old.correlation_key, old.job_type, old.subject, old.priority,
      old.dedupe_key, old.payload, old.requires_approval, old.approval_gate,
      old.max_attempts, old.created_at) then
    perform agentbus_refuse(format('only operators change what job %s is (target, payload, priority, approval)', old.id));
  end if;

  if me.class = 'agent' then
    if old.status not in ('leased', 'running')
       or old.lease_token is distinct from agentbus_session_lease() then
      perform agentbus_refuse(format(
        'agent logins change only jobs whose lease they hold; job %s is %s and this session holds no lease of it',
        old.id, old.status));
    end if;
    if me.agent_id is not null and old.target_agent <> me.agent_id then
      perform agentbus_refuse(format('login is bound to agent %s; job %s is for %s',
                                     me.agent_id, old.id, old.target_agent));
    end if;
    if new.status = 'cancelled' then
      perform agentbus_refuse(format('only operators cancel jobs (job %s)', old.id));
    end if;
    return new;
  end if;

  -- supervisor: claim, wake, keep or recover a lease, close a wake-up that failed
  if not (old.status = new.status and old.status in ('queued', 'leased', 'running')
          or old.status = 'queued' and new.status = 'leased'
          or old.status in ('leased', 'running')
             and new.status in ('running', 'queued', 'dead', 'blocked', 'succeeded', 'failed')) then
    perform agentbus_refuse(format(
      'supervisor logins do not move a job from %s to %s (approve, reject, cancel, retry, unblock and dead-letter are for operators; job %s)',
      old.status, new.status, old.id));
  end if;
  return new;
end;
$$;

create function guard_jobs()
returns trigger
language plpgsql
as $$
begin
  if agentbus_unrestricted() then
    return new;
  end if;
  return guard_jobs_for_login(tg_op, old, new);
end;
$$;

-- Creates a row trigger that the role running this migration (the owner, who bypasses
-- the guardrails anyway) skips in its WHEN clause: the owner's writes pay nothing for rules
-- that never apply to it (a PL/pgSQL function costs its first call in every session, and
-- every agentbus command is a fresh session). Any other role (a superuser, a new owner)
-- goes through the function, which lets the unrestricted through.
create function agentbus_create_login_trigger(p_name text, p_events text, p_table text, p_function text)
returns void
language plpgsql
as $$
begin
  execute format('create trigger %I %s on %I for each row when (current_user <> %L) execute function %I()',
                 p_name, p_events, p_table, current_user, p_function);
end;
$$;

select agentbus_create_login_trigger('jobs_guard', 'before insert or update', 'jobs', 'guard_jobs');

-- Attempts: an agent login closes only the attempt whose lease it holds.
create function guard_job_attempts()
returns trigger
language plpgsql
set search_path from current
as $$
begin
  if agentbus_unrestricted()
     or exists (select 1 from agentbus_logins where login = current_user and class <> 'agent') then
    return new;
  end if;
  if old.lease_token is distinct from agentbus_session_lease() then
    perform agentbus_refuse(format('agent logins change only the attempt whose lease they hold (job %s attempt %s)',
                                   old.job_id, old.attempt_no));
  end if;
  if (new.job_id, new.attempt_no, new.lease_token) is distinct from (old.job_id, old.attempt_no, old.lease_token) then
    perform agentbus_refuse('an attempt''s job, number and lease are fixed');
  end if;
  return new;
end;
$$;

select agentbus_create_login_trigger('job_attempts_guard', 'before update', 'job_attempts', 'guard_job_attempts');

-- Agents: a supervisor login may record wake failures and pause an agent whose wake-up
-- was refused (column grants keep it to those columns), never pause one otherwise, never
-- resume one.
create function guard_agents()
returns trigger
language plpgsql
set search_path from current
as $$
begin
  if agentbus_unrestricted()
     or exists (select 1 from agentbus_logins where login = current_user and class = 'operator') then
    return new;
  end if;
  if tg_op = 'UPDATE' and old.paused and not new.paused then
    perform agentbus_refuse(format('only operators resume agents (%s)', old.agent_id));
  end if;
  -- A supervisor pauses an agent only together with the refused wake-up it records.
  if new.paused and (tg_op = 'INSERT' and new.wake_failures < 1
                     or tg_op = 'UPDATE' and not old.paused and new.wake_failures <= old.wake_failures) then
    perform agentbus_refuse(format('only operators pause agents (%s); a supervisor pauses one only when its wake-up is refused',
                                   new.agent_id));
  end if;
  return new;
end;
$$;

select agentbus_create_login_trigger('agents_guard', 'before insert or update', 'agents', 'guard_agents');

-- Events and history name the login; an agent login's events name the agent it acts as.
create function stamp_events()
returns trigger
language plpgsql
set search_path from current
as $$
declare
  acting text;
begin
  new.login := session_user;
  if not agentbus_unrestricted()
     and exists (select 1 from agentbus_logins where login = current_user and class = 'agent') then
    acting := agentbus_acting_agent();
    if acting is not null and new.source_agent is distinct from acting then
      new.claimed_source_agent := new.source_agent;
      new.source_agent := acting;
    end if;
  end if;
  return new;
end;
$$;

select agentbus_create_login_trigger('events_stamp', 'before insert', 'events', 'stamp_events');

-- The login of a row is the session's, whatever the writer put there (operators write
-- same-status history rows, a reprioritized job, themselves; approvals in 0013). Rows the
-- owner writes keep the column default, session_user.
create function stamp_login()
returns trigger
language plpgsql
as $$
begin
  new.login := session_user;
  return new;
end;
$$;

select agentbus_create_login_trigger('job_history_stamp', 'before insert', 'job_history', 'stamp_login');

-- History is written only by this trigger, as the owner; the login is the session's.
create or replace function record_job_transition()
returns trigger
language plpgsql
security definer
set search_path from current
as $$
begin
  if tg_op = 'INSERT' or old.status is distinct from new.status then
    insert into job_history (job_id, namespace, from_status, to_status, attempt_no, actor, reason, login)
    values (
      new.id,
      new.namespace,
      case when tg_op = 'INSERT' then null else old.status end,
      new.status,
      new.attempt_count,
      coalesce(nullif(current_setting('agentbus.actor', true), ''), session_user::text),
      nullif(current_setting('agentbus.reason', true), ''),
      session_user
    );
  end if;
  return null;
end;
$$;

-- Dependents move when their dependency ends, whoever closed it: the owner does it.
alter function resolve_job_dependents() security definer;
alter function resolve_job_dependents() set search_path from current;

-- Memory rules: an agent or supervisor login promotes only as the agent it acts as (its
-- binding or its lease), and never as an operator.
create or replace function enforce_memory_rules()
returns trigger
language plpgsql
set search_path from current
as $$
declare
  writer text := coalesce(nullif(current_setting('agentbus.actor', true), ''), new.created_by, session_user::text);
  me agentbus_logins;
begin
  if not agentbus_unrestricted() then
    select * into me from agentbus_logins where login = current_user;
    if not found or me.class <> 'operator' then
      writer := coalesce(agentbus_acting_agent(), 'login:' || session_user);
    end if;
  end if;
  if exists (select 1 from lane_controls
              where namespace = new.namespace and lane = 'memory' and paused) then
    raise exception 'memory lane of namespace % is paused: no promotions until agentbus resume-lane memory', new.namespace
      using errcode = 'AB002';
  end if;
  if new.source_refs = '{}'::jsonb then
    raise exception 'a memory needs its evidence or source references'
      using errcode = 'AB002';
  end if;
  if new.visibility = 'shared'
     and writer not like 'operator:%'
     and not exists (select 1 from memory_curators
                      where namespace = new.namespace and agent_id = writer) then
    if me.login is not null then
      raise exception 'not permitted for login %: % may not promote into shared memory (only curators, acting as themselves: a login bound to the curator, or inside its run)',
        session_user, writer using errcode = 'AB003';
    end if;
    raise exception '% may not promote into shared memory: only curators (fleet.toml [memory] curators) and operators may', writer
      using errcode = 'AB002';
  end if;
  return new;
end;
$$;

-- Row security: a login sees and writes only its namespaces. The owner bypasses it.
do $$
declare
  t text;
begin
  foreach t in array array[
    'agents', 'approval_gates', 'dispatcher_heartbeats', 'events', 'ideas', 'job_history',
    'jobs', 'lane_controls', 'memories', 'memory_candidates', 'memory_curators',
    'opportunities', 'proactive_budget_refusals', 'proactive_budgets',
    'standing_order_runs', 'standing_orders']
  loop
    execute format('alter table %I enable row level security', t);
    execute format(
      'create policy namespace_of_login on %I
         using (namespace = any (coalesce((select agentbus_login_namespaces()), ''{}'')))
         with check (namespace = any (coalesce((select agentbus_login_namespaces()), ''{}'')))', t);
  end loop;
end;
$$;

alter table job_attempts enable row level security;
create policy namespace_of_login on job_attempts
  using (exists (select 1 from jobs j where j.id = job_id));
alter table job_dependencies enable row level security;
create policy namespace_of_login on job_dependencies
  using (exists (select 1 from jobs j where j.id = job_id));
alter table memory_links enable row level security;
create policy namespace_of_login on memory_links
  using (exists (select 1 from memories m where m.id = memory_id));
alter table opportunity_reviews enable row level security;
create policy namespace_of_login on opportunity_reviews
  using (exists (select 1 from opportunities o where o.id = opportunity_id));

-- Whether the guardrails are on (the group roles exist and hold their grants here).
create function agentbus_guardrails_on()
returns boolean
language sql
stable
as $$
  select exists (select 1 from pg_roles where rolname = 'agentbus_agent')
     and has_table_privilege('agentbus_agent', 'jobs', 'select')
$$;

-- The privileges of each group, applied by `agentbus roles install` and by every
-- `agentbus migrate` once the roles exist. Idempotent; run as the owner or a superuser.
create function agentbus_apply_grants()
returns void
language plpgsql
set search_path from current
as $$
declare
  s text := current_schema();
  g text;
  t text;
begin
  foreach g in array array['agentbus_agent', 'agentbus_supervisor', 'agentbus_operator'] loop
    execute format('grant usage on schema %I to %I', s, g);
    execute format('grant select on all tables in schema %I to %I', s, g);
    execute format('grant usage, select on all sequences in schema %I to %I', s, g);
    execute format('revoke insert, update, delete, truncate on all tables in schema %I from %I', s, g);
  end loop;

  foreach t in array array['jobs', 'job_attempts', 'events', 'ideas', 'opportunities',
                           'memory_candidates', 'memories', 'standing_order_runs'] loop
    execute format('grant update on %I to agentbus_agent', t);
  end loop;
  foreach t in array array['jobs', 'job_dependencies', 'events', 'ideas', 'opportunities',
                           'opportunity_reviews', 'memory_candidates', 'memories',
                           'memory_links', 'proactive_budget_refusals',
                           'standing_order_runs'] loop
    execute format('grant insert on %I to agentbus_agent', t);
  end loop;

  foreach t in array array['jobs', 'job_attempts', 'events', 'standing_order_runs',
                           'dispatcher_heartbeats', 'job_dependencies'] loop
    execute format('grant insert on %I to agentbus_supervisor', t);
  end loop;
  foreach t in array array['jobs', 'job_attempts', 'standing_order_runs', 'dispatcher_heartbeats'] loop
    execute format('grant update on %I to agentbus_supervisor', t);
  end loop;
  grant delete on dispatcher_heartbeats to agentbus_supervisor;
  grant insert (namespace, agent_id, wake_failures, wake_backoff_until, last_wake_error,
                last_wake_error_at, paused, paused_reason, paused_at, paused_by)
    on agents to agentbus_supervisor;
  grant update (wake_failures, wake_backoff_until, last_wake_error, last_wake_error_at,
                paused, paused_reason, paused_at, paused_by)
    on agents to agentbus_supervisor;

  execute format('grant insert, update, delete on all tables in schema %I to agentbus_operator', s);
  revoke update on job_history from agentbus_operator;
  revoke insert, update, delete on agentbus_migrations, agentbus_logins from agentbus_operator;
end;
$$;
