-- 0018: bounded idle-time thinking. An agent with an [idle] table in its agent.toml
-- (`agentbus fleet sync` writes idle_settings) gets a short `idle.think` job when it has
-- been quiet for a while, inside its hours, under its daily number of windows, and with
-- nothing urgent queued in its namespace. The job asks one question of a rotation and
-- carries the context to think with; its only outputs are ideas, memory candidates and
-- opportunities (all under their daily budgets) or "no work": a job it tries to enqueue
-- is refused. An agent whose windows produced nothing that was later promoted for
-- adaptive_days thinks half as often until something of its is promoted again.
--
-- fire_idle_thinking() does it; every supervisor calls it once a minute for its
-- namespace. Reasons a quiet check did not fire are counted in idle_skips (one count per
-- check, per agent, day and reason), for `agentbus digest thinking`.

-- Memory candidates get a daily budget like ideas and opportunities.
alter table proactive_budgets
  add column max_memory_candidates_per_day int check (max_memory_candidates_per_day >= 0);

create function enforce_memory_candidate_budget()
returns trigger
language plpgsql
as $$
declare
  budget int;
  used int;
  resets_at timestamptz;
begin
  perform pg_advisory_xact_lock(hashtextextended('agentbus.proactive:' || new.namespace || '/' || new.source_agent, 0));
  resets_at := date_trunc('day', now() at time zone 'UTC') at time zone 'UTC' + interval '1 day';
  select b.max_memory_candidates_per_day into budget
    from proactive_budgets b
   where b.namespace = new.namespace and b.agent_id = new.source_agent;
  if budget is not null then
    select count(*) into used from memory_candidates
     where namespace = new.namespace and source_agent = new.source_agent
       and created_at >= resets_at - interval '1 day';
    if used >= budget then
      raise exception 'budget: % may file % memory candidate(s) per day; % used today; resets at %',
        new.source_agent, budget, used, resets_at
        using errcode = 'AB001';
    end if;
  end if;
  return new;
end;
$$;

create trigger memory_candidates_budget
before insert on memory_candidates
for each row
execute function enforce_memory_candidate_budget();

create table idle_settings (
  namespace text not null check (agentbus_is_name(namespace)),
  agent_id text not null check (agentbus_is_name(agent_id)),
  enabled boolean not null default true,
  quiet_for interval not null check (quiet_for > interval '0'),
  max_runtime interval not null check (max_runtime > interval '0'),
  max_per_day integer not null check (max_per_day between 1 and 48),
  -- Local hours the windows may start in (both null: all day); from > to wraps midnight.
  hours_from time,
  hours_to time,
  timezone text not null default 'UTC',
  questions text[] not null check (cardinality(questions) > 0),
  adaptive_days integer not null default 7 check (adaptive_days between 1 and 90),
  -- Set while the agent thinks half as often (nothing of its was promoted lately).
  halved_since timestamptz,
  source text,
  updated_at timestamptz not null default now(),
  primary key (namespace, agent_id),
  check ((hours_from is null) = (hours_to is null))
);

create table idle_skips (
  namespace text not null,
  agent_id text not null,
  day date not null,
  reason text not null check (reason in ('busy', 'urgent', 'hours', 'budget', 'paused')),
  checks bigint not null default 1,
  last_at timestamptz not null default now(),
  primary key (namespace, agent_id, day, reason)
);

do $$
declare
  t text;
begin
  foreach t in array array['idle_settings', 'idle_skips'] loop
    execute format('alter table %I enable row level security', t);
    execute format(
      'create policy namespace_of_login on %I
         using (namespace = any (coalesce((select agentbus_login_namespaces()), ''{}'')))
         with check (namespace = any (coalesce((select agentbus_login_namespaces()), ''{}'')))', t);
  end loop;
end;
$$;

-- Whether anything an agent filed inside its idle windows of the last p_days was later
-- promoted (an idea to an opportunity, an opportunity accepted or converted, a memory
-- candidate promoted).
create function idle_outputs_promoted(p_namespace text, p_agent text, p_days integer)
returns boolean
language sql
stable
as $$
  with windows as (
    select created_at as started, coalesce(completed_at, now()) as ended
      from jobs
     where namespace = p_namespace and target_agent = p_agent and job_type = 'idle.think'
       and created_at >= now() - make_interval(days => p_days))
  select exists (select 1 from ideas i join windows w on i.created_at between w.started and w.ended
                  where i.namespace = p_namespace and i.source_agent = p_agent
                    and i.status = 'promoted_to_opportunity')
      or exists (select 1 from opportunities o join windows w on o.created_at between w.started and w.ended
                  where o.namespace = p_namespace and o.source_agent = p_agent
                    and o.status in ('accepted', 'converted_to_job'))
      or exists (select 1 from memory_candidates c join windows w on c.created_at between w.started and w.ended
                  where c.namespace = p_namespace and c.source_agent = p_agent
                    and c.status = 'promoted')
$$;

create function record_idle_skip(p_namespace text, p_agent text, p_day date, p_reason text)
returns void
language sql
as $$
  insert into idle_skips (namespace, agent_id, day, reason)
  values (p_namespace, p_agent, p_day, p_reason)
  on conflict (namespace, agent_id, day, reason)
  do update set checks = idle_skips.checks + 1, last_at = now()
$$;

create function fire_idle_thinking(p_namespace text)
returns table (agent_id text, job_id uuid, question text)
language plpgsql
security definer
set search_path from current
as $$
declare
  s idle_settings;
  local_now timestamp;
  day_start timestamptz;
  in_hours boolean;
  halved boolean;
  allowed integer;
  n bigint;
  q text;
  last_end timestamptz;
  made uuid;
  prior_actor text := current_setting('agentbus.actor', true);
  prior_reason text := current_setting('agentbus.reason', true);
begin
  -- A login fires only in its own namespaces.
  if not (agentbus_session_unrestricted()
          or p_namespace = any (agentbus_login_namespaces_of(session_user))) then
    return;
  end if;
  -- One pass per namespace at a time, however many supervisors run.
  perform pg_advisory_xact_lock(hashtextextended('agentbus.idle:' || p_namespace, 0));
  perform set_config('agentbus.actor', 'agentbus:idle', true);
  for s in select * from idle_settings x where x.namespace = p_namespace and x.enabled
           order by x.agent_id loop
    local_now := now() at time zone s.timezone;
    day_start := date_trunc('day', local_now) at time zone s.timezone;
    -- A window already open: nothing to decide.
    continue when exists (select 1 from jobs j
                           where j.namespace = s.namespace and j.target_agent = s.agent_id
                             and j.job_type = 'idle.think' and job_active(j.status));
    if exists (select 1 from agents a where a.namespace = s.namespace and a.agent_id = s.agent_id
                                       and a.paused) then
      perform record_idle_skip(s.namespace, s.agent_id, local_now::date, 'paused');
      continue;
    end if;
    in_hours := s.hours_from is null
             or (s.hours_from <= s.hours_to and local_now::time >= s.hours_from and local_now::time < s.hours_to)
             or (s.hours_from > s.hours_to and (local_now::time >= s.hours_from or local_now::time < s.hours_to));
    if not in_hours then
      perform record_idle_skip(s.namespace, s.agent_id, local_now::date, 'hours');
      continue;
    end if;
    if exists (select 1 from jobs j
                where j.namespace = s.namespace and j.target_agent = s.agent_id
                  and (j.status in ('queued', 'leased', 'running')
                       or coalesce(j.completed_at, j.updated_at) > now() - s.quiet_for)) then
      perform record_idle_skip(s.namespace, s.agent_id, local_now::date, 'busy');
      continue;
    end if;
    if exists (select 1 from jobs j
                where j.namespace = s.namespace and j.status = 'queued' and j.priority >= 900
                  and j.run_after <= now()) then
      perform record_idle_skip(s.namespace, s.agent_id, local_now::date, 'urgent');
      continue;
    end if;
    -- Adaptive: windows for longer than adaptive_days and nothing of them promoted since.
    halved := exists (select 1 from jobs j
                       where j.namespace = s.namespace and j.target_agent = s.agent_id
                         and j.job_type = 'idle.think'
                         and j.created_at < now() - make_interval(days => s.adaptive_days))
              and not idle_outputs_promoted(s.namespace, s.agent_id, s.adaptive_days);
    if halved and s.halved_since is null then
      update idle_settings set halved_since = now()
       where namespace = s.namespace and idle_settings.agent_id = s.agent_id;
      insert into events (namespace, topic, source_agent, payload)
      values (s.namespace, 'idle.halved', s.agent_id,
              jsonb_build_object('agent', s.agent_id, 'days', s.adaptive_days,
                                 'max_per_day', greatest(1, s.max_per_day / 2),
                                 'reason', 'nothing its thinking windows produced was promoted'));
    elsif not halved and s.halved_since is not null then
      update idle_settings set halved_since = null
       where namespace = s.namespace and idle_settings.agent_id = s.agent_id;
      insert into events (namespace, topic, source_agent, payload)
      values (s.namespace, 'idle.restored', s.agent_id,
              jsonb_build_object('agent', s.agent_id, 'max_per_day', s.max_per_day));
    end if;
    allowed := case when halved then greatest(1, s.max_per_day / 2) else s.max_per_day end;
    if (select count(*) from jobs j
         where j.namespace = s.namespace and j.target_agent = s.agent_id
           and j.job_type = 'idle.think' and j.created_at >= day_start) >= allowed then
      perform record_idle_skip(s.namespace, s.agent_id, local_now::date, 'budget');
      continue;
    end if;

    select count(*), max(coalesce(j.completed_at, j.updated_at)) into n, last_end
      from jobs j
     where j.namespace = s.namespace and j.target_agent = s.agent_id and j.job_type = 'idle.think';
    q := s.questions[1 + (n % cardinality(s.questions))::int];
    last_end := coalesce(last_end, now() - interval '1 day');
    perform set_config('agentbus.reason', 'idle: quiet, in hours, under its windows for today', true);
    insert into jobs (namespace, target_agent, job_type, subject, priority, max_attempts,
                      dedupe_key, payload)
    values (s.namespace, s.agent_id, 'idle.think', left('idle.think: ' || q, 300), 1, 1,
            'idle-think:' || s.agent_id,
            jsonb_build_object(
              'question', q,
              'role', (select a.role from agents a where a.namespace = s.namespace and a.agent_id = s.agent_id),
              'max_runtime_seconds', extract(epoch from s.max_runtime)::int,
              'window', n + 1,
              'since', last_end,
              'outputs', jsonb_build_array('create-idea', 'create-memory-candidate',
                                           'create-opportunity', 'complete-job --no-work'),
              'events', coalesce((select jsonb_agg(jsonb_build_object('id', e.id, 'topic', e.topic,
                                                                      'source_agent', e.source_agent,
                                                                      'at', e.created_at) order by e.id desc)
                                    from (select * from events e
                                           where e.namespace = s.namespace and e.created_at > last_end
                                             and e.topic not like 'idle.%'
                                           order by e.id desc limit 20) e), '[]'::jsonb),
              'open_ideas', coalesce((select jsonb_agg(jsonb_build_object('id', i.id, 'agent', i.source_agent,
                                                                          'theme', i.theme, 'title', i.title)
                                                       order by i.created_at desc)
                                        from (select * from ideas i
                                               where i.namespace = s.namespace and i.status in ('new', 'reviewed')
                                               order by i.created_at desc limit 10) i), '[]'::jsonb),
              'open_opportunities', coalesce((select jsonb_agg(jsonb_build_object('id', o.id, 'agent', o.source_agent,
                                                                                  'theme', o.theme, 'title', o.title,
                                                                                  'status', o.status)
                                                               order by o.created_at desc)
                                                from (select * from opportunities o
                                                       where o.namespace = s.namespace
                                                         and o.status in ('new', 'triaged', 'accepted')
                                                       order by o.created_at desc limit 10) o), '[]'::jsonb),
              'previous_windows', coalesce((select jsonb_agg(jsonb_build_object('question', p.payload ->> 'question',
                                                                                'status', p.status, 'summary', p.summary,
                                                                                'at', p.created_at) order by p.created_at desc)
                                              from (select * from jobs p
                                                     where p.namespace = s.namespace and p.target_agent = s.agent_id
                                                       and p.job_type = 'idle.think'
                                                     order by p.created_at desc limit 3) p), '[]'::jsonb)))
    on conflict do nothing
    returning id into made;
    if made is not null then
      agent_id := s.agent_id; job_id := made; question := q;
      return next;
    end if;
  end loop;
  perform set_config('agentbus.actor', coalesce(prior_actor, ''), true);
  perform set_config('agentbus.reason', coalesce(prior_reason, ''), true);
end;
$$;

-- An idle window thinks; it does not hand out work. A job enqueued from inside one (its
-- parent, or the lease the session presents, is an idle.think job) is refused, for every
-- writer; so is an event whose reactions would make work.
create function refuse_work_from_idle_windows()
returns trigger
language plpgsql
as $$
begin
  if exists (select 1 from jobs p where p.id = new.parent_job_id and p.job_type = 'idle.think')
     or exists (select 1 from jobs l
                 where l.lease_token = agentbus_session_lease()
                   and l.status in ('leased', 'running') and l.job_type = 'idle.think') then
    raise exception 'an idle-thinking window files ideas, memory candidates and opportunities only: it hands out no work (% for %)',
      new.subject, new.target_agent using errcode = 'AB003';
  end if;
  return new;
end;
$$;

create trigger jobs_0_no_work_from_idle
before insert on jobs
for each row
execute function refuse_work_from_idle_windows();
