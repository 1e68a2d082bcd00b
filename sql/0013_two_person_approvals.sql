-- 0013: the two-person rule. An approval gate may ask for more than one approval
-- (`approvals = 2` in an agent.toml's [[approval_gates]]); a job it holds is released only
-- when that many distinct approvers have approved it: distinct database logins when the
-- guardrails are on, distinct names when they are off (one owner: the honour system).
-- Each approval is a row of job_approvals; the release is checked by a trigger, so psql
-- cannot skip it. Rejection needs one operator.

alter table approval_gates
  add column approvals integer not null default 1 check (approvals between 1 and 5);
alter table jobs
  add column approvals_required integer not null default 1 check (approvals_required between 1 and 5);

create table job_approvals (
  job_id uuid not null references jobs (id) on delete cascade,
  login text not null default session_user,
  actor text not null check (length(actor) between 1 and 200),
  note text check (length(note) <= 2000),
  created_at timestamptz not null default now(),
  primary key (job_id, login, actor)
);

alter table job_approvals enable row level security;
create policy namespace_of_login on job_approvals
  using (exists (select 1 from jobs j where j.id = job_id));

select agentbus_create_login_trigger('job_approvals_stamp', 'before insert', 'job_approvals', 'stamp_login');

-- How many distinct approvers a job has.
create function job_approval_count(p_job uuid)
returns integer
language sql
stable
as $$
  select count(distinct case when agentbus_guardrails_on() then login else actor end)::integer
    from job_approvals where job_id = p_job
$$;

create function enforce_two_person_rule()
returns trigger
language plpgsql
as $$
declare
  have integer;
begin
  if old.status = 'awaiting_approval' and new.status in ('queued', 'waiting')
     and old.approvals_required > 1 then
    have := job_approval_count(old.id);
    if have < old.approvals_required then
      raise exception 'job % needs % approvals from distinct operators; it has %',
        old.id, old.approvals_required, have using errcode = 'AB003';
    end if;
  end if;
  return new;
end;
$$;

-- The condition is in WHEN, so an ordinary status change calls no function at all
-- (every agentbus command is a fresh session, and a PL/pgSQL function costs its first call
-- in each one).
create trigger jobs_two_person_rule
before update of status on jobs
for each row
when (old.status = 'awaiting_approval' and new.status in ('queued', 'waiting')
      and old.approvals_required > 1)
execute function enforce_two_person_rule();

-- The gate trigger of 0011, now also saying how many approvals the gate asks for.
create or replace function enforce_approval_gates()
returns trigger
language plpgsql
as $$
declare
  tier text;
  outbound text[];
  gate text;
  needed integer := 1;
begin
  if new.job_type = 'scheduled' or new.status not in ('queued', 'waiting', 'awaiting_approval') then
    return new;
  end if;
  select a.approval_tier, a.outbound_subjects into tier, outbound
    from agents a
   where a.namespace = new.namespace and a.agent_id = new.target_agent;
  if tier = 'T1' then
    gate := 'tier T1';
  elsif tier = 'T2' and new.subject = any (outbound) then
    gate := 'tier T2 (outbound subject)';
  else
    select 'gate ' || g.gate_name, g.approvals into gate, needed
      from approval_gates g
     where g.namespace = new.namespace and g.agent_id = new.target_agent
       and (g.subject_like is null or new.subject like g.subject_like)
       and (g.payload_field is null
            or (jsonb_typeof(new.payload -> g.payload_field) = 'number'
                and (new.payload ->> g.payload_field)::numeric >= g.at_least))
     order by g.approvals desc, g.gate_name
     limit 1;
  end if;
  if gate is not null then
    new.status := 'awaiting_approval';
    new.requires_approval := true;
    new.approval_gate := gate;
    new.approvals_required := coalesce(needed, 1);
  end if;
  return new;
end;
$$;
