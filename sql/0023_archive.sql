-- 0023: retention. `agentbus prune` moves finished work out of the live tables in bounded
-- batches, so the tables every claim, close and status read stay the size of the work in
-- flight, not of the ledger's whole history.
--
-- Archive tables, not partitions: jobs are referenced by id from eight tables (attempts,
-- history, dependencies, approvals, events, runs, opportunities, coding runs), and a
-- partitioned jobs table would need its partition key in every one of those keys. An
-- archived job is one row holding every row that described it, as `to_jsonb` gave them,
-- so trace --archived reads the same shapes as trace, and a later column added to jobs
-- needs no change here.

create table archived_jobs (
  id uuid primary key,
  namespace text not null check (agentbus_is_name(namespace)),
  target_agent text not null check (agentbus_is_name(target_agent)),
  status job_status not null check (status in ('succeeded', 'dead', 'cancelled')),
  parent_job_id uuid,
  flow_key text,
  correlation_key text,
  created_at timestamptz not null,
  completed_at timestamptz not null,
  archived_at timestamptz not null default now(),
  job jsonb not null check (jsonb_typeof(job) = 'object'),
  attempts jsonb not null default '[]' check (jsonb_typeof(attempts) = 'array'),
  history jsonb not null default '[]' check (jsonb_typeof(history) = 'array'),
  events jsonb not null default '[]' check (jsonb_typeof(events) = 'array'),
  -- The jobs it waited for, as trace shows them: {id, status, target_agent, subject}.
  depends_on jsonb not null default '[]' check (jsonb_typeof(depends_on) = 'array'),
  approvals jsonb not null default '[]' check (jsonb_typeof(approvals) = 'array'),
  standing_order_run jsonb,
  origin_event jsonb,
  opportunity jsonb,
  -- Each run with its passes under "passes".
  coding_runs jsonb not null default '[]' check (jsonb_typeof(coding_runs) = 'array')
);
create index archived_jobs_completed_idx on archived_jobs (completed_at);
create index archived_jobs_parent_idx on archived_jobs (parent_job_id) where parent_job_id is not null;
create index archived_jobs_flow_idx on archived_jobs (namespace, flow_key, created_at)
  where flow_key is not null;
create index archived_jobs_correlation_idx on archived_jobs (namespace, correlation_key, created_at)
  where correlation_key is not null;

-- Events that belonged to no job (a job's events are archived inside its row).
create table archived_events (
  id bigint primary key,
  namespace text not null check (agentbus_is_name(namespace)),
  topic text not null,
  created_at timestamptz not null,
  archived_at timestamptz not null default now(),
  event jsonb not null check (jsonb_typeof(event) = 'object')
);
create index archived_events_created_idx on archived_events (created_at);
create index archived_events_topic_idx on archived_events (namespace, topic, created_at desc);

alter table archived_jobs enable row level security;
create policy namespace_of_login on archived_jobs
  using (namespace = any (coalesce((select agentbus_login_namespaces()), '{}')))
  with check (namespace = any (coalesce((select agentbus_login_namespaces()), '{}')));
alter table archived_events enable row level security;
create policy namespace_of_login on archived_events
  using (namespace = any (coalesce((select agentbus_login_namespaces()), '{}')))
  with check (namespace = any (coalesce((select agentbus_login_namespaces()), '{}')));

-- The prune walks finished jobs oldest first; deleting a job clears the opportunity that
-- was converted into it (an index, or every deleted job scans every opportunity).
create index jobs_finished_idx on jobs ((coalesce(completed_at, updated_at)))
  where status in ('succeeded', 'dead', 'cancelled');
-- The planner takes no statistics from a partial index's expression, so without these it
-- guessed a third of all jobs finished in any window ("the last 24 hours" of 1M jobs
-- estimated at 300,000 rows, a parallel plan for 14,000).
create statistics jobs_finished_at_stats on (coalesce(completed_at, updated_at)) from jobs;
create index opportunities_converted_job_idx on opportunities (converted_job_id)
  where converted_job_id is not null;
create index events_unlinked_created_idx on events (created_at, id) where source_job_id is null;

-- The audit's windows over failed attempts (wake-ups that never closed the loop, retry
-- storms) read the last hour or day of failures, not every attempt ever made.
create index job_attempts_failed_idx on job_attempts (finished_at)
  where status in ('failed', 'timed_out', 'lost');

-- The batch size every prune function takes: 1 to 10000 rows (one short transaction).
create function agentbus_check_batch(p_limit integer)
returns void
language plpgsql
as $$
begin
  if p_limit is null or p_limit < 1 or p_limit > 10000 then
    raise exception 'batch size must be between 1 and 10000, not %', p_limit
      using errcode = '22023';
  end if;
end;
$$;

-- Whether a finished job may leave the live tables: nothing unfinished points at it (a
-- child, a job blocked on it or waiting for it, a reaction to one of its events, a merge
-- or deploy acting on its coding run), its parent is finished too (a tree leaves whole,
-- from the leaves up), and no coding run of it is still going.
create function agentbus_job_prunable(p_id uuid)
returns boolean
language sql
stable
set search_path from current
as $$
  select not exists (select 1 from jobs a
                      where a.parent_job_id = p_id
                        and a.status not in ('succeeded', 'dead', 'cancelled'))
     and not exists (select 1 from jobs j join jobs p on p.id = j.parent_job_id
                      where j.id = p_id
                        and p.status not in ('succeeded', 'dead', 'cancelled'))
     and not exists (select 1 from jobs a
                      where a.blocked_on_job_id = p_id
                        and a.status not in ('succeeded', 'dead', 'cancelled'))
     and not exists (select 1 from job_dependencies d join jobs a on a.id = d.job_id
                      where d.depends_on_job_id = p_id
                        and a.status not in ('succeeded', 'dead', 'cancelled'))
     and not exists (select 1 from events e join jobs a on a.origin_event_id = e.id
                      where e.source_job_id = p_id
                        and a.status not in ('succeeded', 'dead', 'cancelled'))
     and not exists (select 1 from coding_runs r
                      where r.job_id = p_id
                        and (r.status in ('queued', 'running', 'waiting_for_tests')
                             or exists (select 1 from jobs a
                                         where a.job_type in ('dev.merge', 'dev.deploy')
                                           and a.payload ->> 'run_id' = r.id::text
                                           and a.status not in ('succeeded', 'dead', 'cancelled'))))
$$;

-- One batch: at most p_limit finished jobs that ended before p_before leave the live tables
-- with their attempts, history, dependencies, approvals, events and coding runs; with
-- p_archive each first becomes one archived_jobs row. Jobs another transaction holds are
-- skipped, and the checks run again after the rows are locked (a statement of its own, so it
-- sees anything committed while it waited), so nothing that became referenced meanwhile
-- moves. Row security applies: an operator prunes the namespaces they see.
create function agentbus_prune_jobs(p_before timestamptz, p_limit integer, p_archive boolean)
returns table (jobs bigint, attempts bigint, history bigint, events bigint)
language plpgsql
set search_path from current
as $$
declare
  ids uuid[];
begin
  perform agentbus_check_batch(p_limit);
  select coalesce(array_agg(s.id), '{}') into ids
    from (select j.id from jobs j
           where j.status in ('succeeded', 'dead', 'cancelled')
             and coalesce(j.completed_at, j.updated_at) < p_before
             and agentbus_job_prunable(j.id)
           order by coalesce(j.completed_at, j.updated_at)
           limit p_limit
             for update of j skip locked) s;
  ids := array(select i from unnest(ids) i where agentbus_job_prunable(i));

  if p_archive then
    insert into archived_jobs (id, namespace, target_agent, status, parent_job_id, flow_key,
                               correlation_key, created_at, completed_at, job, attempts,
                               history, events, depends_on, approvals, standing_order_run,
                               origin_event, opportunity, coding_runs)
    select j.id, j.namespace, j.target_agent, j.status, j.parent_job_id, j.flow_key,
           j.correlation_key, j.created_at, coalesce(j.completed_at, j.updated_at), to_jsonb(j),
           coalesce((select jsonb_agg(to_jsonb(a) order by a.attempt_no)
                       from job_attempts a where a.job_id = j.id), '[]'),
           coalesce((select jsonb_agg(to_jsonb(h) order by h.id)
                       from job_history h where h.job_id = j.id), '[]'),
           coalesce((select jsonb_agg(to_jsonb(e) order by e.id)
                       from events e where e.source_job_id = j.id), '[]'),
           coalesce((select jsonb_agg(jsonb_build_object('id', x.id, 'status', x.status,
                                                         'target_agent', x.target_agent,
                                                         'subject', x.subject)
                                      order by x.created_at)
                       from job_dependencies d join jobs x on x.id = d.depends_on_job_id
                      where d.job_id = j.id), '[]'),
           coalesce((select jsonb_agg(to_jsonb(p)) from job_approvals p where p.job_id = j.id), '[]'),
           (select to_jsonb(r) from standing_order_runs r where r.job_id = j.id limit 1),
           (select to_jsonb(e) from events e where e.id = j.origin_event_id),
           (select to_jsonb(o) from opportunities o where o.converted_job_id = j.id limit 1),
           coalesce((select jsonb_agg(to_jsonb(r) || jsonb_build_object('passes',
                              coalesce((select jsonb_agg(to_jsonb(p) order by p.pass_no)
                                          from coding_run_passes p where p.run_id = r.id), '[]'))
                              order by r.created_at)
                       from coding_runs r where r.job_id = j.id), '[]')
      from jobs j
     where j.id = any(ids);
  end if;

  select count(*) into attempts from job_attempts a where a.job_id = any(ids);
  select count(*) into history from job_history h where h.job_id = any(ids);
  delete from events e where e.source_job_id = any(ids);
  get diagnostics events = row_count;
  delete from jobs j where j.id = any(ids);
  get diagnostics jobs = row_count;
  return next;
end;
$$;

-- One batch of events that belong to no job, created before p_before: never the newest of
-- its topic in its namespace (what "when did this last happen" reads, e.g. the restore
-- drill's audit), never one an unfinished reaction job was made for.
create function agentbus_prune_events(p_before timestamptz, p_limit integer, p_archive boolean)
returns bigint
language plpgsql
set search_path from current
as $$
declare
  ids bigint[];
  n bigint;
begin
  perform agentbus_check_batch(p_limit);
  select coalesce(array_agg(s.id), '{}') into ids
    from (select e.id from events e
           where e.source_job_id is null
             and e.created_at < p_before
             and exists (select 1 from events n
                          where n.namespace = e.namespace and n.topic = e.topic
                            and n.created_at > e.created_at)
             and not exists (select 1 from jobs a
                              where a.origin_event_id = e.id
                                and a.status not in ('succeeded', 'dead', 'cancelled'))
           order by e.created_at, e.id
           limit p_limit
             for update of e skip locked) s;
  if p_archive then
    insert into archived_events (id, namespace, topic, created_at, event)
    select e.id, e.namespace, e.topic, e.created_at, to_jsonb(e)
      from events e where e.id = any(ids);
  end if;
  delete from events e where e.id = any(ids);
  get diagnostics n = row_count;
  return n;
end;
$$;

-- One batch of the archive's own retention: archived jobs that ended, and archived events
-- created, before p_before are deleted for good.
create function agentbus_drop_archived(p_before timestamptz, p_limit integer)
returns table (jobs bigint, events bigint)
language plpgsql
set search_path from current
as $$
begin
  perform agentbus_check_batch(p_limit);
  delete from archived_jobs a
   where a.id in (select x.id from archived_jobs x where x.completed_at < p_before
                   order by x.completed_at limit p_limit for update skip locked);
  get diagnostics jobs = row_count;
  delete from archived_events a
   where a.id in (select x.id from archived_events x where x.created_at < p_before
                   order by x.created_at limit p_limit for update skip locked);
  get diagnostics events = row_count;
  return next;
end;
$$;
