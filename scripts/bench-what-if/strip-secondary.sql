-- A what-if for the benchmarks (WHAT_IF_B=scripts/bench-what-if/strip-secondary.sql
-- scripts/bench-ab.sh HEAD HEAD; BENCH_WHAT_IF=... scripts/bench-supervisor.sh): what the guards and
-- indexes that a job's claim, admission and close do not need for themselves cost them.
-- It drops, in the benchmark's scratch databases only:
--   the indexes of jobs the hot path neither reads nor needs for uniqueness (by creation
--   time, open and finished by agent, finished, flow, correlation, parent, origin event, and
--   by agent and status until migration 0029 dropped it: nine of fifteen at 0028, eight of
--   fourteen since);
--   twelve of its fourteen checks (the six identifier checks and six number ranges; the
--   two that tie a status to its columns stay);
--   three triggers (updated_at, the standing-order run's end, the two-person rule);
--   the failed-attempts index (and the by-start index until 0029), two checks of
--   job_attempts, and the history's foreign key and check.
-- Never run this on a ledger: it removes guards that agentbus's guarantees rest on, and
-- queries that read those indexes become scans.
drop index jobs_correlation_idx, jobs_created_idx, jobs_finished_by_agent_idx, jobs_finished_idx,
  jobs_flow_idx, jobs_origin_event_idx, jobs_parent_idx, jobs_open_by_agent_idx;
drop index if exists jobs_target_status_idx, job_attempts_job_started_idx;
alter table jobs
  drop constraint jobs_approvals_required_check, drop constraint jobs_attempt_count_check,
  drop constraint jobs_correlation_key_is_key, drop constraint jobs_flow_key_is_key,
  drop constraint jobs_lease_owner_is_name, drop constraint jobs_max_attempts_check,
  drop constraint jobs_namespace_is_name, drop constraint jobs_priority_check,
  drop constraint jobs_reaction_depth_check, drop constraint jobs_source_agent_is_name,
  drop constraint jobs_target_agent_is_name, drop constraint jobs_unreached_attempts_check;
drop trigger jobs_set_updated_at on jobs;
drop trigger jobs_finish_standing_order_run on jobs;
drop trigger jobs_two_person_rule on jobs;
drop index job_attempts_failed_idx;
alter table job_attempts
  drop constraint job_attempts_dispatcher_id_is_name, drop constraint job_attempts_attempt_no_check;
alter table job_history
  drop constraint job_history_job_id_fkey, drop constraint job_history_namespace_is_name;
