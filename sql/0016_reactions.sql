-- 0016: reactions. An agent declares in its agent.toml which event topics it reacts to
-- ([[reactions]]); `agentbus fleet sync` writes them here. When an event is inserted, a
-- trigger enqueues the reacting agents' jobs in the same statement, so an event that
-- commits always has its reactions and a crash cannot separate them.
--
-- Each reaction job carries the event as its origin (jobs.origin_event_id) and its depth
-- (jobs.reaction_depth): one more than the depth of the job the event came from. A
-- reaction whose job would be deeper than its max_depth is refused with a
-- `reaction.refused` event instead, so an agent that reacts to its own events stops.
-- Topics under `reaction.` never trigger reactions.

alter table jobs
  add column origin_event_id bigint,
  add column reaction_depth integer not null default 0 check (reaction_depth >= 0);

create index jobs_origin_event_idx on jobs (origin_event_id) where origin_event_id is not null;

create table reactions (
  namespace text not null check (agentbus_is_name(namespace)),
  agent_id text not null check (agentbus_is_name(agent_id)),
  reaction_name text not null check (agentbus_is_name(reaction_name)),
  -- A LIKE pattern on the topic (fleet files write globs: * any text).
  topic_like text not null check (topic_like <> ''),
  -- {topic} {event_id} {source_agent} {payload.FIELD} are filled in.
  subject_template text not null check (subject_template <> ''),
  priority integer not null default 100 check (priority between 1 and 1000),
  -- Top-level payload fields the event must carry: a value, or an array of allowed values.
  conditions jsonb not null default '{}'::jsonb check (jsonb_typeof(conditions) = 'object'),
  max_depth integer not null default 3 check (max_depth between 1 and 10),
  enabled boolean not null default true,
  -- file:line of the declaration, for operators.
  source text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (namespace, agent_id, reaction_name)
);

create trigger reactions_set_updated_at
before update on reactions
for each row
execute function set_updated_at();

alter table reactions enable row level security;
create policy namespace_of_login on reactions
  using (namespace = any (coalesce((select agentbus_login_namespaces()), '{}')))
  with check (namespace = any (coalesce((select agentbus_login_namespaces()), '{}')));

-- The subject of a reaction's job: the template with the event's fields, one line.
create function reaction_subject(p_template text, p_event events)
returns text
language plpgsql
immutable
as $$
declare
  out text := p_template;
  field text;
begin
  out := replace(out, '{topic}', p_event.topic);
  out := replace(out, '{event_id}', p_event.id::text);
  out := replace(out, '{source_agent}', coalesce(p_event.source_agent, ''));
  for field in select (regexp_matches(p_template, '\{payload\.([A-Za-z0-9_]+)\}', 'g'))[1] loop
    out := replace(out, '{payload.' || field || '}', coalesce(p_event.payload ->> field, ''));
  end loop;
  return left(regexp_replace(out, '[[:cntrl:]]+', ' ', 'g'), 300);
end;
$$;

-- Whether an event's payload meets a reaction's conditions.
create function reaction_matches(p_conditions jsonb, p_payload jsonb)
returns boolean
language sql
immutable
as $$
  select not exists (
    select 1 from jsonb_each(p_conditions) c
     where not case
             when jsonb_typeof(c.value) = 'array'
               then c.value @> jsonb_build_array(coalesce(p_payload -> c.key, 'null'::jsonb))
             else coalesce(p_payload -> c.key, 'null'::jsonb) = c.value
           end)
$$;

-- Runs as the owner: the reacting agent may be one the emitter may not hand work to, and
-- the reaction is the fleet's declaration, not the emitter's hand-off. Approval gates
-- still hold a reaction job for a gated agent.
create function react_to_event()
returns trigger
language plpgsql
security definer
set search_path from current
as $$
declare
  r reactions;
  depth integer;
  prior_reason text := current_setting('agentbus.reason', true);
begin
  if new.topic like 'reaction.%' then
    return null;
  end if;
  select coalesce(max(j.reaction_depth), 0) + 1 into depth
    from jobs j where j.id = new.source_job_id;
  for r in
    select * from reactions x
     where x.namespace = new.namespace and x.enabled
       and new.topic like x.topic_like
       and reaction_matches(x.conditions, new.payload)
     order by x.agent_id, x.reaction_name
  loop
    if depth > r.max_depth then
      insert into events (namespace, topic, source_agent, source_job_id, dedupe_key, payload)
      values (new.namespace, 'reaction.refused', r.agent_id, new.source_job_id,
              format('reaction:%s:%s:%s', r.agent_id, r.reaction_name, new.id),
              jsonb_build_object('reaction', r.reaction_name, 'agent', r.agent_id,
                                 'event_id', new.id, 'topic', new.topic, 'depth', depth,
                                 'max_depth', r.max_depth,
                                 'reason', 'the reaction would be deeper than its max_depth: a loop'))
      on conflict do nothing;
      continue;
    end if;
    perform set_config('agentbus.reason',
                       format('reaction %s to event %s (%s)', r.reaction_name, new.id, new.topic), true);
    insert into jobs (namespace, source_agent, target_agent, job_type, subject, priority,
                      dedupe_key, payload, parent_job_id, origin_event_id, reaction_depth)
    values (new.namespace, new.source_agent, r.agent_id, 'reaction',
            reaction_subject(r.subject_template, new), r.priority,
            format('reaction:%s:%s', r.reaction_name, new.id),
            jsonb_build_object(
              'reaction', r.reaction_name,
              'event', jsonb_build_object('id', new.id, 'topic', new.topic,
                                          'source_agent', new.source_agent,
                                          'source_job_id', new.source_job_id,
                                          'payload', new.payload)),
            new.source_job_id, new.id, depth)
    on conflict do nothing;
  end loop;
  perform set_config('agentbus.reason', coalesce(prior_reason, ''), true);
  return null;
end;
$$;

create trigger events_react
after insert on events
for each row
execute function react_to_event();
