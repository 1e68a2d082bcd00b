-- 0020: coding runs. A `dev.code_change` job is the business intent (repo, base ref,
-- problem, acceptance criteria, constraints); a coding run is one execution of it by a
-- coder (Claude Code, a ralph loop, any command) in its own git worktree, with one row per
-- pass (the coder's turn, the diff it left, the tests after it). `agentbus code run`
-- writes them while it holds the job's lease; `dev.merge` and `dev.deploy` jobs, each
-- held for an operator's approval, act on a run afterwards.
--
-- Status of a run:
--   queued → running ⇄ waiting_for_tests → waiting_for_review → completed
--   waiting_for_review → revision_requested (a reviewer asked for changes)
--   running / waiting_for_tests → blocked (a constraint broken, tests never passed:
--                                          the evidence is in the passes)
--                               → failed  (the coder crashed or ran out of time, or the
--                                          runner was lost)

create type coding_run_status as enum (
  'queued', 'running', 'waiting_for_tests', 'waiting_for_review', 'revision_requested',
  'completed', 'blocked', 'failed'
);

create table coding_runs (
  id uuid primary key default gen_random_uuid(),
  namespace text not null check (agentbus_is_name(namespace)),
  job_id uuid not null references jobs (id) on delete cascade,
  -- The runner and repository names of the runner host's coding config (never a command
  -- or a path taken from the job).
  runner text not null check (agentbus_is_name(runner)),
  run_mode text not null check (run_mode in ('single-shot', 'ralph-loop')),
  status coding_run_status not null default 'queued',
  repo text not null check (agentbus_is_name(repo)),
  base_ref text not null check (base_ref ~ '^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$' and base_ref !~ '\.\.'),
  base_commit text check (base_commit ~ '^[0-9a-f]{40,64}$'),
  branch text check (branch ~ '^agentbus/[a-z0-9][a-z0-9._-]{0,120}$'),
  head_commit text check (head_commit ~ '^[0-9a-f]{40,64}$'),
  worktree_path text,
  worktree_removed_at timestamptz,
  runner_host text,
  runner_pid integer,
  external_session_id text check (length(external_session_id) <= 200),
  attempt_no integer not null default 1 check (attempt_no > 0),
  max_iterations integer not null default 1 check (max_iterations between 1 and 50),
  -- The prompt as given to the coder (problem, criteria, constraints).
  prompt_input jsonb not null default '{}'::jsonb check (jsonb_typeof(prompt_input) = 'object'),
  result_summary text check (length(result_summary) <= 4000),
  changed_files jsonb not null default '[]'::jsonb check (jsonb_typeof(changed_files) = 'array'),
  patch_ref text,
  patch_sha256 text check (patch_sha256 ~ '^[0-9a-f]{64}$'),
  test_summary jsonb check (test_summary is null or jsonb_typeof(test_summary) = 'object'),
  -- [{"kind": "log"|"patch"|"prompt", "path": ..., "sha256": ..., "bytes": ...}]
  artifact_refs jsonb not null default '[]'::jsonb check (jsonb_typeof(artifact_refs) = 'array'),
  artifacts_removed_at timestamptz,
  error text check (length(error) <= 4000),
  merged_commit text check (merged_commit ~ '^[0-9a-f]{40,64}$'),
  merged_at timestamptz,
  deployed_at timestamptz,
  started_at timestamptz,
  finished_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create index coding_runs_job_idx on coding_runs (job_id);
create index coding_runs_active_idx on coding_runs (namespace, repo)
  where status in ('queued', 'running', 'waiting_for_tests');
create index coding_runs_recent_idx on coding_runs (namespace, created_at desc);

create trigger coding_runs_set_updated_at
before update on coding_runs
for each row
execute function set_updated_at();

create table coding_run_passes (
  run_id uuid not null references coding_runs (id) on delete cascade,
  pass_no integer not null check (pass_no > 0),
  coder_exit integer,
  -- {"files": n, "insertions": n, "deletions": n}
  diff_stat jsonb not null default '{}'::jsonb check (jsonb_typeof(diff_stat) = 'object'),
  tests_passed boolean,
  test_exit integer,
  test_tail text check (length(test_tail) <= 4000),
  -- Why the loop stopped after this pass, if it did.
  outcome text check (length(outcome) <= 2000),
  duration_ms bigint check (duration_ms >= 0),
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  primary key (run_id, pass_no)
);

-- Runs and passes are seen and written within the login's namespaces; a run's passes
-- through their run.
alter table coding_runs enable row level security;
create policy namespace_of_login on coding_runs
  using (namespace = any (coalesce((select agentbus_login_namespaces()), '{}')))
  with check (namespace = any (coalesce((select agentbus_login_namespaces()), '{}')));
alter table coding_run_passes enable row level security;
create policy namespace_of_login on coding_run_passes
  using (exists (select 1 from coding_runs r where r.id = run_id));

-- Agent and supervisor logins write a run only while they hold the lease of its job, or
-- of the dev.merge / dev.deploy job that acts on it (payload run_id).
create function guard_coding_runs()
returns trigger
language plpgsql
set search_path from current
as $$
declare
  -- One function for both tables: their columns are read through jsonb (a run has id and
  -- job_id, a pass run_id).
  doc jsonb := to_jsonb(new);
  run uuid := coalesce(doc ->> 'run_id', doc ->> 'id')::uuid;
  job uuid := coalesce((doc ->> 'job_id')::uuid,
                       (select r.job_id from coding_runs r where r.id = (doc ->> 'run_id')::uuid));
begin
  if agentbus_unrestricted()
     or exists (select 1 from agentbus_logins where login = current_user and class = 'operator') then
    return new;
  end if;
  if not exists (select 1 from jobs j
                  where j.lease_token = agentbus_session_lease()
                    and j.status in ('leased', 'running')
                    and (j.id = job or j.payload ->> 'run_id' = run::text)) then
    perform agentbus_refuse(format('coding run %s is written only by the runner holding its job''s lease', run));
  end if;
  return new;
end;
$$;

select agentbus_create_login_trigger('coding_runs_guard', 'before insert or update', 'coding_runs',
                                     'guard_coding_runs');
select agentbus_create_login_trigger('coding_run_passes_guard', 'before insert or update',
                                     'coding_run_passes', 'guard_coding_runs');

-- The grants of 0012 stay as they are; the runner's tables are granted after them: an
-- agent login (the runner is an exec agent) inserts and updates runs and passes (the guard
-- above decides which).
-- contract: none. agentbus_apply_grants() keeps its name (roles install and migrate call
-- it); only 0012's body moves to agentbus_apply_core_grants(), which no binary calls.
alter function agentbus_apply_grants() rename to agentbus_apply_core_grants;

create function agentbus_apply_grants()
returns void
language plpgsql
set search_path from current
as $$
begin
  perform agentbus_apply_core_grants();
  grant insert, update on coding_runs, coding_run_passes to agentbus_agent;
end;
$$;
