-- 0009: approval gates declared by the fleet and enforced when a job is written.
--
-- A job an agent or an operator enqueues for a gated agent waits in awaiting_approval
-- whether or not the caller asked for it, whoever wrote the row (the CLI, a script, psql):
-- the gate is a trigger. Gates come from the fleet files (agentbus fleet sync):
--   agents.approval_tier   T1: every job waits; T2: jobs whose subject is one of the
--                          agent's outbound subjects wait; T3 (or none): no tier gate
--   approval_gates         per agent: a subject pattern, and/or a payload number that
--                          reaches a threshold (the B2B canon's stage >= 5)
-- Standing-order runs (job_type 'scheduled') are duties the fleet declared and are not
-- gated. The gate that held a job is kept in jobs.approval_gate.

alter table agents
  add column approval_tier text check (approval_tier in ('T1', 'T2', 'T3')),
  add column outbound_subjects text[] not null default '{}';

alter table jobs add column approval_gate text;

create table approval_gates (
  namespace text not null default 'default',
  agent_id text not null,
  gate_name text not null check (gate_name ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
  -- A LIKE pattern on the subject (fleet files write globs: * and ?).
  subject_like text,
  -- A top-level payload field whose number must reach at_least.
  payload_field text,
  at_least numeric,
  -- file:line of the declaration, for operators.
  source text,
  created_at timestamptz not null default now(),
  primary key (namespace, agent_id, gate_name),
  check ((payload_field is null) = (at_least is null))
);

-- The gate that holds a job for this agent with this subject and payload, or null.
create function approval_gate_for(p_namespace text, p_agent text, p_subject text, p_payload jsonb)
returns text
language sql
stable
as $$
  select coalesce(
    (select 'tier T1' from agents a
      where a.namespace = p_namespace and a.agent_id = p_agent and a.approval_tier = 'T1'),
    (select 'tier T2 (outbound subject)' from agents a
      where a.namespace = p_namespace and a.agent_id = p_agent and a.approval_tier = 'T2'
        and p_subject = any (a.outbound_subjects)),
    (select 'gate ' || g.gate_name from approval_gates g
      where g.namespace = p_namespace and g.agent_id = p_agent
        and (g.subject_like is null or p_subject like g.subject_like)
        and (g.payload_field is null
             or (jsonb_typeof(p_payload -> g.payload_field) = 'number'
                 and (p_payload ->> g.payload_field)::numeric >= g.at_least))
      order by g.gate_name
      limit 1)
  )
$$;

create function enforce_approval_gates()
returns trigger
language plpgsql
as $$
declare
  gate text;
begin
  if new.job_type <> 'scheduled' and new.status in ('queued', 'waiting', 'awaiting_approval') then
    gate := approval_gate_for(new.namespace, new.target_agent, new.subject, new.payload);
    if gate is not null then
      new.status := 'awaiting_approval';
      new.requires_approval := true;
      new.approval_gate := gate;
    end if;
  end if;
  return new;
end;
$$;

create trigger jobs_approval_gates
before insert on jobs
for each row
execute function enforce_approval_gates();
