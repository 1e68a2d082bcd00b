-- 0008: named status sets, and the NOTIFY triggers nobody listened to.
--
-- job_in_flight(status): a worker holds the job under a lease (leased or running).
-- job_active(status):    the job is not finished, so it holds its dedupe key (must match
--                        the predicate of jobs_active_dedupe_idx).
-- Both are plain SQL, immutable, so the planner inlines them and partial indexes on the
-- spelled-out sets still apply. Queries name the set instead of repeating its members.

create function job_in_flight(s job_status)
returns boolean
language sql
immutable
parallel safe
as $$ select s in ('leased', 'running') $$;

create function job_active(s job_status)
returns boolean
language sql
immutable
parallel safe
as $$ select s in ('queued', 'leased', 'running', 'blocked', 'failed', 'waiting', 'awaiting_approval') $$;

comment on function job_in_flight(job_status) is
  'A worker holds the job under a lease: leased or running.';
comment on function job_active(job_status) is
  'The job is unfinished and holds its dedupe key (the predicate of jobs_active_dedupe_idx).';

-- opportunities_ready, ideas_ready and memory_candidates_ready were announced by
-- triggers since 0004/0005, but no agentbus process (and no documented tool) listens to
-- them: every insert paid for a notification nobody read. Agents find new proposals with
-- list-opportunities, list-ideas and memories-due-review; a listener, if one is built,
-- adds its trigger back together with the code that reads it.
drop trigger opportunities_notify_insert on opportunities;
drop trigger opportunities_notify_update on opportunities;
drop function notify_opportunities_ready();
drop trigger ideas_notify_insert on ideas;
drop trigger ideas_notify_update on ideas;
drop function notify_ideas_ready();
drop trigger memory_candidates_notify_insert on memory_candidates;
drop trigger memory_candidates_notify_update on memory_candidates;
drop function notify_memory_candidates_ready();
