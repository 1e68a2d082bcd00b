-- 0029: two indexes whose reads other indexes serve, and that every job paid for.
--
-- jobs_target_status_idx (namespace, target_agent, status, run_after) held every job and took
-- a new entry at each of a job's row versions (insert, claim, running, close). An agent's open
-- jobs are read through jobs_open_by_agent_idx, its finished ones through
-- jobs_finished_by_agent_idx, its ready ones through jobs_ready_idx and its leased and running
-- ones through jobs_lease_idx; `list-jobs` reads jobs_created_idx. job_attempts_job_started_idx
-- (job_id, started_at) repeated what job_attempts_job_id_attempt_no_key (job_id, attempt_no)
-- finds: a job's few attempts.
--
-- Measured before writing this (README, "Where the rest goes, and what the guards cost"): the
-- hook-mode drain of 20,000 jobs 954-1,011 jobs/s against 864-930 with them, the hand-over p50
-- 3.36-3.61 ms against 3.51-3.85; scripts/bench-scale.sh without them: no command slower at
-- 5,000,000 jobs than at 10,000, and every per-agent query on one of the indexes above.
--
-- Expand-only: no released binary names either index, and a query that used one is planned
-- on another. DROP INDEX takes a brief exclusive lock on the table (it waits for the
-- transactions reading it, and holds back others while it waits): apply during a quiet minute.
drop index if exists jobs_target_status_idx;
drop index if exists job_attempts_job_started_idx;
