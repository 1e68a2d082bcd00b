-- 0017: blocked work is picked up without a human waiting for it.
--
-- A fleet's [blocked] policy (fleet.toml; `agentbus fleet sync` writes blocked_policies)
-- names a routing agent: a job blocked longer than route_after gets one triage job for
-- it (`blocked.replan`), and one escalation that waits for a human (awaiting_approval)
-- once blocked longer than escalate_after. Once per block: a job blocked, unblocked and
-- blocked again is routed again. route_blocked_jobs() does it; every supervisor calls it
-- once a minute, and `agentbus route-blocked` calls it by hand.
--
-- The routing agent answers with reroute_blocked_job(): the job goes back to the queue,
-- for another agent or with a new payload. Only the routing agent or an operator may.
--
-- A job blocked on another job (`block-job --blocked-on JOB`) unblocks by itself when that
-- job succeeds, or when it was waiting for an approval and gets it.

alter table jobs
  add column blocked_on_job_id uuid references jobs(id) on delete set null;

create index jobs_blocked_on_idx on jobs (blocked_on_job_id) where blocked_on_job_id is not null;

create table blocked_policies (
  namespace text primary key check (agentbus_is_name(namespace)),
  route_to text not null check (agentbus_is_name(route_to)),
  route_after interval not null check (route_after > interval '0'),
  escalate_after interval check (escalate_after is null or escalate_after > interval '0'),
  source text,
  updated_at timestamptz not null default now()
);

alter table blocked_policies enable row level security;
create policy namespace_of_login on blocked_policies
  using (namespace = any (coalesce((select agentbus_login_namespaces()), '{}')))
  with check (namespace = any (coalesce((select agentbus_login_namespaces()), '{}')));

-- When the job's current block began, and which block it is (1 for the first).
create function job_block(p_job uuid, out blocked_at timestamptz, out block_no bigint)
language sql
stable
as $$
  select max(h.created_at), count(*)
    from job_history h
   where h.job_id = p_job and h.to_status = 'blocked'
$$;

-- The namespaces of a named login: a security-definer function runs as the owner, so it
-- asks about the session's login by name.
create function agentbus_login_namespaces_of(p_login name)
returns text[]
language sql
stable
set search_path from current
as $$
  select coalesce((select namespaces from agentbus_logins where login = p_login), '{}')
$$;

-- agentbus_unrestricted() for the session's login: inside a security-definer function
-- current_user is the owner, so these functions ask about session_user instead.
create function agentbus_session_unrestricted()
returns boolean
language sql
stable
set search_path from current
as $$
  select coalesce((select rolsuper from pg_roles where rolname = session_user), false)
      or pg_has_role(session_user, (select relowner from pg_class where oid = 'jobs'::regclass), 'MEMBER')
$$;

create function route_blocked_jobs(p_namespace text default null)
returns table (job_id uuid, action text, new_job_id uuid)
language plpgsql
security definer
set search_path from current
as $$
declare
  b record;
  made uuid;
  prior_actor text := current_setting('agentbus.actor', true);
  prior_reason text := current_setting('agentbus.reason', true);
begin
  perform set_config('agentbus.actor', 'agentbus:blocked-routing', true);
  for b in
    select j.*, p.route_to, p.route_after, p.escalate_after, k.blocked_at, k.block_no
      from jobs j
      join blocked_policies p on p.namespace = j.namespace
      cross join lateral job_block(j.id) k
     where j.status = 'blocked'
       and j.job_type not in ('blocked.triage', 'blocked.escalation')
       and (p_namespace is null or j.namespace = p_namespace)
       -- Runs as the owner: a login routes only its own namespaces.
       and (agentbus_session_unrestricted()
            or j.namespace = any (agentbus_login_namespaces_of(session_user)))
       and k.blocked_at is not null
       and k.blocked_at <= now() - p.route_after
     order by k.blocked_at
     for update of j skip locked
  loop
    if not exists (select 1 from jobs t
                    where t.namespace = b.namespace
                      and t.dedupe_key = format('blocked-route:%s:%s', b.id, b.block_no)) then
      perform set_config('agentbus.reason',
                         format('blocked %s for %s since %s', b.target_agent, b.id, b.blocked_at), true);
      insert into jobs (namespace, target_agent, job_type, subject, priority, dedupe_key,
                        payload, parent_job_id, flow_key, correlation_key)
      values (b.namespace, b.route_to, 'blocked.triage',
              left(format('blocked.replan: %s: %s', b.target_agent, b.subject), 300),
              greatest(b.priority, 500),
              format('blocked-route:%s:%s', b.id, b.block_no),
              jsonb_build_object(
                'blocked_job', jsonb_build_object(
                  'id', b.id, 'target_agent', b.target_agent, 'subject', b.subject,
                  'blocked_reason', b.blocked_reason, 'payload', b.payload,
                  'blocked_at', b.blocked_at, 'block', b.block_no),
                'answer_with', format(
                  'agentbus reroute-job %s --to AGENT --reason ... (or --payload JSON to unblock it where it is)',
                  b.id)),
              b.id, b.flow_key, b.correlation_key)
      returning id into made;
      insert into events (namespace, topic, source_job_id, dedupe_key, payload)
      values (b.namespace, 'job.blocked.routed', b.id, format('blocked-route:%s:%s', b.id, b.block_no),
              jsonb_build_object('job_id', b.id, 'triage_job_id', made, 'route_to', b.route_to,
                                 'blocked_reason', b.blocked_reason))
      on conflict do nothing;
      job_id := b.id; action := 'routed'; new_job_id := made;
      return next;
    end if;
    if b.escalate_after is not null
       and b.blocked_at <= now() - b.escalate_after
       and not exists (select 1 from jobs t
                        where t.namespace = b.namespace
                          and t.dedupe_key = format('blocked-escalate:%s:%s', b.id, b.block_no)) then
      perform set_config('agentbus.reason',
                         format('blocked longer than %s: a human decides', b.escalate_after), true);
      insert into jobs (namespace, target_agent, job_type, subject, priority, dedupe_key,
                        payload, parent_job_id, flow_key, correlation_key, status, requires_approval)
      values (b.namespace, b.route_to, 'blocked.escalation',
              left(format('Escalation: %s blocked since %s: %s', b.target_agent,
                          to_char(b.blocked_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'),
                          coalesce(b.blocked_reason, b.subject)), 300),
              greatest(b.priority, 800),
              format('blocked-escalate:%s:%s', b.id, b.block_no),
              jsonb_build_object(
                'blocked_job', jsonb_build_object(
                  'id', b.id, 'target_agent', b.target_agent, 'subject', b.subject,
                  'blocked_reason', b.blocked_reason, 'blocked_at', b.blocked_at,
                  'block', b.block_no)),
              b.id, b.flow_key, b.correlation_key, 'awaiting_approval', true)
      returning id into made;
      insert into events (namespace, topic, source_job_id, dedupe_key, payload)
      values (b.namespace, 'job.blocked.escalated', b.id, format('blocked-escalate:%s:%s', b.id, b.block_no),
              jsonb_build_object('job_id', b.id, 'escalation_job_id', made,
                                 'blocked_reason', b.blocked_reason))
      on conflict do nothing;
      job_id := b.id; action := 'escalated'; new_job_id := made;
      return next;
    end if;
  end loop;
  perform set_config('agentbus.actor', coalesce(prior_actor, ''), true);
  perform set_config('agentbus.reason', coalesce(prior_reason, ''), true);
end;
$$;

-- The routing agent's (or an operator's) answer to a blocked job: back to the queue, for
-- p_to (null: the same agent), with p_payload (null: the same payload).
create function reroute_blocked_job(p_job uuid, p_to text, p_payload jsonb, p_reason text)
returns jobs
language plpgsql
security definer
set search_path from current
as $$
declare
  j jobs;
  me agentbus_logins;
  router text;
  acting text;
begin
  select * into j from jobs where id = p_job for update;
  -- Runs as the owner: who may is decided from the session's login.
  if not agentbus_session_unrestricted() then
    select * into me from agentbus_logins where login = session_user;
    if not found then
      raise exception 'not permitted for login %: it is not an agentbus login', session_user
        using errcode = 'AB003';
    end if;
    if j.id is null or not (j.namespace = any (me.namespaces)) then
      raise exception 'job % not found', p_job using errcode = 'AB004';
    end if;
    if me.class <> 'operator' then
      select route_to into router from blocked_policies where namespace = j.namespace;
      acting := coalesce(me.agent_id,
                         (select x.target_agent from jobs x
                           where x.lease_token = agentbus_session_lease()
                             and x.status in ('leased', 'running') limit 1));
      if router is null or acting is distinct from router then
        raise exception 'not permitted for login %: only the routing agent (%) or an operator re-routes blocked work',
          session_user, coalesce(router, 'none: no [blocked] policy') using errcode = 'AB003';
      end if;
    end if;
  end if;
  if j.id is null then
    raise exception 'job % not found', p_job using errcode = 'AB004';
  end if;
  if j.status <> 'blocked' then
    raise exception 'job % is %, not blocked: only blocked work is re-routed', p_job, j.status
      using errcode = 'AB001';
  end if;
  if p_to is not null and not exists (select 1 from agents a
                                       where a.namespace = j.namespace and a.agent_id = p_to) then
    raise exception 'no agent % in namespace %', p_to, j.namespace using errcode = 'AB004';
  end if;
  perform set_config('agentbus.reason',
                     case when p_to is null or p_to = j.target_agent
                          then format('reroute-job: unblocked with %s payload: %s',
                                      case when p_payload is null then 'the same' else 'a new' end, p_reason)
                          else format('reroute-job: from %s to %s: %s', j.target_agent, p_to, p_reason) end,
                     true);
  update jobs
     set target_agent = coalesce(p_to, target_agent),
         payload = coalesce(p_payload, payload),
         status = 'queued', blocked_reason = null, blocked_on_job_id = null, run_after = now()
   where id = p_job
   returning * into j;
  return j;
end;
$$;

-- Jobs blocked on a job go back to the queue when it succeeds, or when it was waiting for
-- an approval and got it.
create function unblock_waiters()
returns trigger
language plpgsql
security definer
set search_path from current
as $$
declare
  prior_reason text := current_setting('agentbus.reason', true);
begin
  if new.status = 'succeeded'
     or (old.status = 'awaiting_approval' and new.status in ('queued', 'waiting')) then
    perform set_config('agentbus.reason',
                       format('unblocked: %s %s', new.id,
                              case when new.status = 'succeeded' then 'succeeded' else 'was approved' end),
                       true);
    update jobs
       set status = 'queued', blocked_reason = null, blocked_on_job_id = null, run_after = now()
     where blocked_on_job_id = new.id and status = 'blocked';
    perform set_config('agentbus.reason', coalesce(prior_reason, ''), true);
  end if;
  return null;
end;
$$;

create trigger jobs_unblock_waiters
after update of status on jobs
for each row
when (old.status is distinct from new.status)
execute function unblock_waiters();

-- The jobs agentbus makes itself (a reaction to an event, a blocked job's triage or
-- escalation) hang under the job they came from, but they are the fleet's declarations,
-- not that job's agent handing work on: the hand-off rule of 0010 does not apply to
-- them. Only the owner writes them (the security-definer functions of 0016 and this
-- file); with the guardrails on, a login cannot.
create or replace function enforce_handoffs()
returns trigger
language plpgsql
as $$
declare
  why text;
begin
  if new.job_type in ('reaction', 'blocked.triage', 'blocked.escalation') and agentbus_unrestricted() then
    return new;
  end if;
  if new.parent_job_id is not null then
    why := handoff_refusal(new.namespace, new.parent_job_id, new.target_agent);
    if why is not null then
      raise exception 'hand-off refused: %', why using errcode = 'AB003';
    end if;
  end if;
  return new;
end;
$$;
