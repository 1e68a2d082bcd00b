-- 0024: fewer writes per job. Every claim, wake and close updates the job's row, and a
-- changed status means a new entry in every index of jobs that covers the row; every
-- status change also ran the waiters' trigger, whose function then did nothing for all
-- but two kinds of change. Behaviour is unchanged; the costs are in the README's scaling
-- section.

-- Two indexes held an entry for every job although almost no job has a parent or a flow
-- key: they now hold only the jobs that do (`parent_job_id = $1` and `flow_key = $1`
-- imply the condition, so the same lookups use them).
drop index jobs_parent_idx;
create index jobs_parent_idx on jobs (parent_job_id) where parent_job_id is not null;

drop index jobs_flow_idx;
create index jobs_flow_idx on jobs (namespace, flow_key, created_at desc)
  where flow_key is not null;

-- unblock_waiters acts on a success, or on an approval letting a job go; the trigger now
-- says so, so the other transitions (claimed, woken, failed, ...) no longer call it.
drop trigger jobs_unblock_waiters on jobs;
create trigger jobs_unblock_waiters
  after update of status on jobs
  for each row
  when (old.status is distinct from new.status
        and (new.status = 'succeeded'
             or (old.status = 'awaiting_approval' and new.status in ('queued', 'waiting'))))
  execute function unblock_waiters();
