-- A what-if for the benchmarks (WHAT_IF_B=scripts/bench-what-if/drop-overlapping-indexes.sql
-- scripts/bench-ab.sh HEAD HEAD): two indexes whose reads other indexes already serve,
-- and that every job pays for on each row version.
--   jobs_target_status_idx (namespace, target_agent, status, run_after), on every job:
--     an agent's open jobs are in jobs_open_by_agent_idx, its finished ones in
--     jobs_finished_by_agent_idx, its ready ones in jobs_ready_idx, its leased and running
--     ones in jobs_lease_idx; four entries a job (insert, claim, running, close).
--   job_attempts_job_started_idx (job_id, started_at desc): a job's attempts are found by
--     job_attempts_job_id_attempt_no_key (job_id, attempt_no), a handful a job.
-- Measured with it, then made migration 0029 (sql/0029_drop_overlapping_indexes.sql); on a
-- schema at 0029 or later this file changes nothing.
drop index if exists jobs_target_status_idx;
drop index if exists job_attempts_job_started_idx;
