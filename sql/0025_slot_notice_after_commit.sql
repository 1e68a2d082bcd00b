-- 0025: a freed slot announced after the commit. The supervisor hears that an agent closed
-- a job (and may take its next one) from a `jobs_ready` notification, sent until now by a
-- trigger inside the closing transaction. PostgreSQL holds the notification queue's lock
-- from that transaction's pre-commit until its commit is on disk, so every closing commit
-- waited for the previous one's flush. A caller that names the job it closes in
-- `agentbus.slot_notice` (the library's sessions) now sends that job's notification
-- itself once its commit returned, in a transaction of its own that changes no row and
-- does not wait for a flush. Every other job and caller is unchanged. A notice that
-- never comes (the caller died between its commit and the notice) costs a wait of the
-- supervisor's poll interval, no work.

create or replace function notify_job_slot_freed()
returns trigger
language plpgsql
as $$
begin
  if current_setting('agentbus.slot_notice', true) = new.id::text then
    return null;
  end if;
  perform pg_notify(
    'jobs_ready',
    json_build_object(
      'namespace', new.namespace,
      'target_agent', new.target_agent,
      'job_id', new.id,
      'slot_freed', true
    )::text
  );
  return null;
end;
$$;
