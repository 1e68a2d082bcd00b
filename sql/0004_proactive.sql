-- 0004_proactive: the proactive lane. Ideas (cheap, "this might matter"), scored
-- opportunities ("this clears the bar, decide"), their reviews, per-agent daily budgets
-- enforced here in the database, and the health views.
--
-- Names and columns follow the user's sketch (seed 004). Additions: the budgets table and
-- the trigger that enforces it, a link from an opportunity to the idea it came from, the
-- documented ranking score (opportunity_score), and budget refusals kept as rows.

create type opportunity_status as enum (
  'new',
  'triaged',
  'accepted',
  'rejected',
  'parked',
  'converted_to_job'
);

create type opportunity_reversibility as enum (
  'high',
  'medium',
  'low'
);

create type idea_status as enum (
  'new',
  'reviewed',
  'promoted_to_opportunity',
  'archived'
);

create table opportunities (
  id uuid primary key default gen_random_uuid(),
  namespace text not null default 'default',

  source_agent text not null check (source_agent <> ''),
  theme text not null check (theme <> ''),
  title text not null check (title <> ''),
  why_now text not null check (why_now <> ''),
  evidence jsonb not null default '{}'::jsonb check (jsonb_typeof(evidence) = 'object'),

  impact_score int not null check (impact_score between 1 and 5),
  confidence_score int not null check (confidence_score between 1 and 5),
  urgency_score int not null check (urgency_score between 1 and 5),
  reversibility opportunity_reversibility not null,

  owner_candidate text,
  suggested_next_step text not null check (suggested_next_step <> ''),

  status opportunity_status not null default 'new',
  triaged_by text,
  triage_notes text,
  triaged_at timestamptz,

  converted_job_id uuid references jobs(id) on delete set null,
  dedupe_key text,
  -- The idea it was promoted from, if any.
  idea_id uuid,

  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create trigger opportunities_set_updated_at
before update on opportunities
for each row
execute function set_updated_at();

create table opportunity_reviews (
  id bigserial primary key,
  opportunity_id uuid not null references opportunities(id) on delete cascade,
  reviewer text not null,
  decision opportunity_status not null,
  notes text,
  created_at timestamptz not null default now()
);

create index opportunity_reviews_opportunity_idx
  on opportunity_reviews (opportunity_id, id);

create index opportunities_status_idx
  on opportunities (namespace, status, created_at desc);

create index opportunities_source_idx
  on opportunities (namespace, source_agent, created_at desc);

create index opportunities_theme_idx
  on opportunities (namespace, theme, created_at desc);

create unique index opportunities_active_dedupe_idx
  on opportunities (namespace, source_agent, dedupe_key)
  where dedupe_key is not null
    and status in ('new', 'triaged', 'accepted', 'parked');

create table ideas (
  id uuid primary key default gen_random_uuid(),
  namespace text not null default 'default',

  source_agent text not null check (source_agent <> ''),
  theme text not null check (theme <> ''),
  title text not null check (title <> ''),
  body text not null check (body <> ''),

  evidence jsonb not null default '{}'::jsonb check (jsonb_typeof(evidence) = 'object'),
  tags text[] not null default '{}',

  status idea_status not null default 'new',
  promoted_opportunity_id uuid references opportunities(id) on delete set null,
  dedupe_key text,

  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

alter table opportunities
  add constraint opportunities_idea_fk foreign key (idea_id) references ideas(id) on delete set null;

create trigger ideas_set_updated_at
before update on ideas
for each row
execute function set_updated_at();

create index ideas_status_idx
  on ideas (namespace, status, created_at desc);

create index ideas_source_idx
  on ideas (namespace, source_agent, created_at desc);

create index ideas_theme_idx
  on ideas (namespace, theme, created_at desc);

create unique index ideas_active_dedupe_idx
  on ideas (namespace, source_agent, dedupe_key)
  where dedupe_key is not null
    and status in ('new', 'reviewed');

-- The ranking score (agentbus-list-opportunities(1)): impact x confidence, plus urgency,
-- plus 2 for an easily reversible step and 1 for a medium one. From 2 to 32.
create function opportunity_score(
  impact int, confidence int, urgency int, reversibility opportunity_reversibility
) returns int
language sql
immutable
as $$
  select impact * confidence + urgency
         + case reversibility when 'high' then 2 when 'medium' then 1 else 0 end
$$;

create view open_opportunities_v as
select o.*, opportunity_score(o.impact_score, o.confidence_score, o.urgency_score, o.reversibility) as score
from opportunities o
where status in ('new', 'triaged', 'accepted', 'parked');

-- ---------------------------------------------------------------------------
-- Budgets: per agent per UTC day. A missing row or a null limit means no limit.
-- ---------------------------------------------------------------------------

create table proactive_budgets (
  namespace text not null,
  agent_id text not null,
  max_opportunities_per_day int check (max_opportunities_per_day >= 0),
  max_urgent_per_day int check (max_urgent_per_day >= 0),
  max_ideas_per_day int check (max_ideas_per_day >= 0),
  updated_at timestamptz not null default now(),
  primary key (namespace, agent_id)
);

-- Refusals, kept so the auditor sees agents that push against their budget.
create table proactive_budget_refusals (
  id bigserial primary key,
  namespace text not null,
  agent_id text not null,
  kind text not null check (kind in ('opportunity', 'urgent', 'idea')),
  budget int not null,
  used int not null,
  title text,
  overflowed_to_idea uuid,
  created_at timestamptz not null default now()
);

create index proactive_budget_refusals_idx
  on proactive_budget_refusals (namespace, agent_id, created_at desc);

-- What an agent may still create today: for `kind` (opportunity, urgent, idea), the
-- limit, what today's rows used, and when the day ends (UTC). Takes a transaction-scoped
-- advisory lock per (namespace, agent) first, so concurrent creators of one agent count
-- one after the other and the budget holds.
create function proactive_budget(p_namespace text, p_agent text, p_kind text,
                                 out budget int, out used int, out resets_at timestamptz)
language plpgsql
as $$
begin
  perform pg_advisory_xact_lock(hashtextextended('agentbus.proactive:' || p_namespace || '/' || p_agent, 0));
  resets_at := date_trunc('day', now() at time zone 'UTC') at time zone 'UTC' + interval '1 day';
  select case p_kind
           when 'opportunity' then b.max_opportunities_per_day
           when 'urgent' then b.max_urgent_per_day
           else b.max_ideas_per_day
         end
    into budget
    from proactive_budgets b
   where b.namespace = p_namespace and b.agent_id = p_agent;
  if p_kind = 'idea' then
    select count(*) into used from ideas
     where namespace = p_namespace and source_agent = p_agent
       and created_at >= resets_at - interval '1 day';
  else
    select count(*) into used from opportunities
     where namespace = p_namespace and source_agent = p_agent
       and created_at >= resets_at - interval '1 day'
       and (p_kind = 'opportunity' or urgency_score >= 5);
  end if;
end;
$$;

-- The budgets hold for every writer, not only agentbus: an insert over budget fails.
create function enforce_proactive_budget()
returns trigger
language plpgsql
as $$
declare
  b record;
begin
  if tg_table_name = 'ideas' then
    b := proactive_budget(new.namespace, new.source_agent, 'idea');
    if b.budget is not null and b.used >= b.budget then
      raise exception 'budget: % may create % idea(s) per day; % used today; resets at %',
        new.source_agent, b.budget, b.used, b.resets_at
        using errcode = 'AB001';
    end if;
  else
    b := proactive_budget(new.namespace, new.source_agent, 'opportunity');
    if b.budget is not null and b.used >= b.budget then
      raise exception 'budget: % may create % opportunit(ies) per day; % used today; resets at %',
        new.source_agent, b.budget, b.used, b.resets_at
        using errcode = 'AB001';
    end if;
    if new.urgency_score >= 5 then
      b := proactive_budget(new.namespace, new.source_agent, 'urgent');
      if b.budget is not null and b.used >= b.budget then
        raise exception 'budget: % may raise % urgent escalation(s) per day; % used today; resets at %',
          new.source_agent, b.budget, b.used, b.resets_at
          using errcode = 'AB001';
      end if;
    end if;
  end if;
  return new;
end;
$$;

create trigger opportunities_budget
before insert on opportunities
for each row
execute function enforce_proactive_budget();

create trigger ideas_budget
before insert on ideas
for each row
execute function enforce_proactive_budget();

-- ---------------------------------------------------------------------------
-- NOTIFY: a new opportunity or idea wakes whoever listens (the coordinator's tooling).
-- ---------------------------------------------------------------------------

create function notify_opportunities_ready()
returns trigger
language plpgsql
as $$
begin
  if new.status = 'new' then
    perform pg_notify('opportunities_ready', json_build_object(
      'namespace', new.namespace, 'source_agent', new.source_agent, 'opportunity_id', new.id)::text);
  end if;
  return null;
end;
$$;

create trigger opportunities_notify_insert
after insert on opportunities
for each row
execute function notify_opportunities_ready();

create trigger opportunities_notify_update
after update of status on opportunities
for each row
when (new.status = 'new' and old.status is distinct from new.status)
execute function notify_opportunities_ready();

create function notify_ideas_ready()
returns trigger
language plpgsql
as $$
begin
  if new.status = 'new' then
    perform pg_notify('ideas_ready', json_build_object(
      'namespace', new.namespace, 'source_agent', new.source_agent, 'idea_id', new.id)::text);
  end if;
  return null;
end;
$$;

create trigger ideas_notify_insert
after insert on ideas
for each row
execute function notify_ideas_ready();

create trigger ideas_notify_update
after update of status on ideas
for each row
when (new.status = 'new' and old.status is distinct from new.status)
execute function notify_ideas_ready();

-- ---------------------------------------------------------------------------
-- Health views
-- ---------------------------------------------------------------------------

create view opportunity_health_summary_v as
select
  namespace,
  count(*) filter (where status = 'new') as new_count,
  count(*) filter (where status = 'triaged') as triaged_count,
  count(*) filter (where status = 'accepted') as accepted_count,
  count(*) filter (where status = 'rejected') as rejected_count,
  count(*) filter (where status = 'parked') as parked_count,
  count(*) filter (where status = 'converted_to_job') as converted_count,
  extract(epoch from (now() - min(created_at) filter (where status = 'new'))) as oldest_new_age_seconds
from opportunities
group by namespace;

create view idea_health_summary_v as
select
  namespace,
  count(*) filter (where status = 'new') as new_count,
  count(*) filter (where status = 'reviewed') as reviewed_count,
  count(*) filter (where status = 'promoted_to_opportunity') as promoted_count,
  count(*) filter (where status = 'archived') as archived_count,
  extract(epoch from (now() - min(created_at) filter (where status = 'new'))) as oldest_new_age_seconds
from ideas
group by namespace;

-- The snapshot gains the proactive lane (new columns are added after the old ones, so
-- queries written against 0001's view keep working).
drop view system_health_snapshot_v;

create view system_health_snapshot_v as
select
  coalesce(q.namespace, s.namespace, d.namespace, o.namespace, i.namespace) as namespace,

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
  coalesce(d.busy_agents_total, 0) as busy_agents_total,

  coalesce(o.new_count, 0) as opp_new_count,
  coalesce(o.triaged_count, 0) as opp_triaged_count,
  coalesce(o.accepted_count, 0) as opp_accepted_count,
  coalesce(o.parked_count, 0) as opp_parked_count,
  coalesce(o.converted_count, 0) as opp_converted_count,
  o.oldest_new_age_seconds as opp_oldest_new_age_seconds,

  coalesce(i.new_count, 0) as idea_new_count,
  coalesce(i.reviewed_count, 0) as idea_reviewed_count,
  coalesce(i.promoted_count, 0) as idea_promoted_count,
  coalesce(i.archived_count, 0) as idea_archived_count,
  i.oldest_new_age_seconds as idea_oldest_new_age_seconds

from queue_health_summary_v q
full outer join standing_order_health_summary_v s using (namespace)
full outer join dispatcher_health_summary_v d using (namespace)
full outer join opportunity_health_summary_v o using (namespace)
full outer join idea_health_summary_v i using (namespace);
