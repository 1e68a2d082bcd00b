-- 0005_memory: the memory lane. Agents propose memory candidates from evidence; curators
-- (the knowledge agent by default) or operators promote them into memories; the
-- supervisor retrieves a few relevant memories into every job prompt and records which.
--
-- Names and columns follow the user's sketch (seed 004). Additions: visibility (shared, or
-- private to one agent), links from a memory to its sources, curators and the lane's
-- switches as rows, the promotion rules enforced here, and the memory ids each attempt saw.

create type memory_kind as enum (
  'decision', 'preference', 'pattern', 'mistake', 'lesson', 'playbook', 'constraint',
  'entity_fact', 'context'
);

create type memory_scope as enum ('global', 'agent', 'project', 'person', 'service');

create type memory_stability as enum ('volatile', 'medium', 'stable');

create type memory_candidate_status as enum ('new', 'reviewed', 'promoted', 'rejected', 'archived');

create type memory_status as enum ('active', 'superseded', 'expired', 'archived');

-- shared: every agent of the namespace may retrieve it; private: only owner_agent.
create type memory_visibility as enum ('shared', 'private');

create table memory_candidates (
  id uuid primary key default gen_random_uuid(),
  namespace text not null default 'default',

  source_agent text not null check (source_agent <> ''),
  candidate_kind memory_kind not null,
  scope memory_scope not null,
  subject_key text not null check (subject_key <> ''),

  title text not null check (title <> ''),
  body text not null check (body <> ''),

  evidence jsonb not null default '{}'::jsonb check (jsonb_typeof(evidence) = 'object'),
  source_refs jsonb not null default '{}'::jsonb check (jsonb_typeof(source_refs) = 'object'),

  confidence_score int not null check (confidence_score between 1 and 5),
  stability memory_stability not null default 'medium',
  visibility memory_visibility not null default 'shared',

  status memory_candidate_status not null default 'new',
  reviewer text,
  review_notes text,

  promoted_memory_id uuid,
  dedupe_key text,

  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create trigger memory_candidates_set_updated_at
before update on memory_candidates
for each row
execute function set_updated_at();

create table memories (
  id uuid primary key default gen_random_uuid(),
  namespace text not null default 'default',

  kind memory_kind not null,
  scope memory_scope not null,
  subject_key text not null check (subject_key <> ''),
  title text not null check (title <> ''),
  body text not null check (body <> ''),

  source_candidate_id uuid references memory_candidates(id) on delete set null,
  source_refs jsonb not null default '{}'::jsonb check (jsonb_typeof(source_refs) = 'object'),

  confidence_score int not null check (confidence_score between 1 and 5),
  stability memory_stability not null default 'medium',
  visibility memory_visibility not null default 'shared',
  -- The agent a private memory belongs to (its proposer).
  owner_agent text,

  status memory_status not null default 'active',

  created_by text,
  updated_by text,

  valid_from timestamptz not null default now(),
  expires_at timestamptz,
  next_review_at timestamptz,

  supersedes_memory_id uuid references memories(id) on delete set null,
  dedupe_key text,

  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),

  check (visibility = 'shared' or owner_agent is not null)
);

create trigger memories_set_updated_at
before update on memories
for each row
execute function set_updated_at();

alter table memory_candidates
  add constraint memory_candidates_promoted_memory_fk
  foreign key (promoted_memory_id) references memories(id) on delete set null;

create index memory_candidates_status_idx
  on memory_candidates (namespace, status, created_at desc);

create index memory_candidates_source_idx
  on memory_candidates (namespace, source_agent, created_at desc);

create index memory_candidates_subject_idx
  on memory_candidates (namespace, candidate_kind, scope, subject_key, created_at desc);

create unique index memory_candidates_active_dedupe_idx
  on memory_candidates (namespace, source_agent, dedupe_key)
  where dedupe_key is not null and status in ('new', 'reviewed');

create index memories_status_idx
  on memories (namespace, status, created_at desc);

create index memories_subject_idx
  on memories (namespace, kind, scope, subject_key, created_at desc);

create index memories_review_idx
  on memories (namespace, next_review_at)
  where status = 'active' and next_review_at is not null;

create unique index memories_active_dedupe_idx
  on memories (namespace, dedupe_key)
  where dedupe_key is not null and status = 'active';

-- Where a memory came from: the jobs, attempts, events and opportunities its candidate
-- cited (from source_refs), so "why do we believe this" has an answer.
create table memory_links (
  memory_id uuid not null references memories(id) on delete cascade,
  kind text not null check (kind in ('job', 'attempt', 'event', 'opportunity', 'candidate')),
  ref text not null,
  primary key (memory_id, kind, ref)
);

create view active_memories_v as
select *
from memories
where status = 'active'
  and (expires_at is null or expires_at > now());

-- Who may promote into shared memory besides operators (fleet.toml [memory] curators).
create table memory_curators (
  namespace text not null,
  agent_id text not null,
  primary key (namespace, agent_id)
);

-- The lanes' switches per namespace: injection on or off (fleet.toml [memory] inject), and
-- a freeze (`agentbus pause-lane memory`) that stops promotions and injection.
create table lane_controls (
  namespace text not null,
  lane text not null check (lane in ('memory')),
  inject boolean not null default true,
  paused boolean not null default false,
  paused_reason text,
  paused_by text,
  paused_at timestamptz,
  updated_at timestamptz not null default now(),
  primary key (namespace, lane),
  check (not paused or paused_reason is not null)
);

-- The promotion rules, for every writer: no memory while the lane is frozen; shared memory
-- only from a curator or an operator; never without sources.
create function enforce_memory_rules()
returns trigger
language plpgsql
as $$
declare
  writer text := coalesce(nullif(current_setting('agentbus.actor', true), ''), new.created_by, session_user::text);
begin
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
    raise exception '% may not promote into shared memory: only curators (fleet.toml [memory] curators) and operators may', writer
      using errcode = 'AB002';
  end if;
  return new;
end;
$$;

create trigger memories_rules
before insert on memories
for each row
execute function enforce_memory_rules();

create function notify_memory_candidates_ready()
returns trigger
language plpgsql
as $$
begin
  if new.status = 'new' then
    perform pg_notify('memory_candidates_ready', json_build_object(
      'namespace', new.namespace, 'source_agent', new.source_agent, 'candidate_id', new.id)::text);
  end if;
  return null;
end;
$$;

create trigger memory_candidates_notify_insert
after insert on memory_candidates
for each row
execute function notify_memory_candidates_ready();

create trigger memory_candidates_notify_update
after update of status on memory_candidates
for each row
when (new.status = 'new' and old.status is distinct from new.status)
execute function notify_memory_candidates_ready();

-- Which memories each run was shown (with the prompt hash already on the attempt).
alter table job_attempts add column memory_ids uuid[] not null default '{}';
