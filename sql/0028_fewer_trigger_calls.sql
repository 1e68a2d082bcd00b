-- 0028: fewer trigger calls per job. Every change of a job's status ran three
-- security-definer triggers after the row was written: the history row
-- (record_job_transition), the jobs that depend on it (resolve_job_dependents) and the jobs
-- blocked on it (unblock_waiters). Each was its own trigger event: the row fetched again,
-- its WHEN clause read back from the catalog for the statement, a PL/pgSQL frame set up and
-- the definer's settings swapped in and out, the two last ones almost always only to find
-- nothing to do. An insert ran two (the history row, then the `jobs_ready` notice). Now a
-- status change runs one function, `jobs_status_changed`, behind the trigger that already
-- wrote the history (`jobs_record_transition`, so it fires at the same place among the
-- other triggers of jobs), and an insert runs `jobs_inserted` behind `jobs_record_insert`;
-- each runs the old statements, a status change's in their old order (an insert now queues
-- its notice after the history row instead of before: it is delivered at commit either
-- way). Behaviour is unchanged. The three old functions stay, attached to nothing (no code
-- names them, release 23 included): dropping them is a contract step for a later release;
-- until then, a migration that edits one of them changes nothing. `notify_jobs_ready` still
-- serves `jobs_notify_update`. The costs are in the
-- README's "Performance" section.

create or replace function jobs_status_changed()
returns trigger
language plpgsql
security definer
set search_path from current
as $$
declare
  dependent uuid;
  prior_reason text;
begin
  -- The history row (what record_job_transition wrote for an update).
  insert into job_history (job_id, namespace, from_status, to_status, attempt_no, actor, reason, login)
  values (
    new.id,
    new.namespace,
    old.status,
    new.status,
    new.attempt_count,
    coalesce(nullif(current_setting('agentbus.actor', true), ''), session_user::text),
    nullif(current_setting('agentbus.reason', true), ''),
    session_user
  );

  -- The jobs that depend on this one (resolve_job_dependents), when it ended.
  if new.status in ('succeeded', 'dead', 'cancelled')
     and exists (select 1 from job_dependencies d where d.depends_on_job_id = new.id) then
    if new.status = 'succeeded' then
      for dependent in
        select j.id
        from job_dependencies d
        join jobs j on j.id = d.job_id
        where d.depends_on_job_id = new.id
          and j.status = 'waiting'
        order by j.id
        for update of j
      loop
        if not exists (
          select 1
          from job_dependencies d
          join jobs dep on dep.id = d.depends_on_job_id
          where d.job_id = dependent
            and dep.status <> 'succeeded'
        ) then
          update jobs
          set status = 'queued',
              run_after = greatest(run_after, now())
          where id = dependent
            and status = 'waiting';
        end if;
      end loop;
    else
      update jobs j
      set status = 'blocked',
          blocked_reason = format('dependency %s ended %s', new.id, new.status)
      from job_dependencies d
      where d.depends_on_job_id = new.id
        and j.id = d.job_id
        and j.status = 'waiting';
    end if;
  end if;

  -- The jobs blocked on this one (unblock_waiters), when it succeeded or was approved.
  if (new.status = 'succeeded'
      or (old.status = 'awaiting_approval' and new.status in ('queued', 'waiting')))
     and exists (select 1 from jobs w where w.blocked_on_job_id = new.id and w.status = 'blocked') then
    prior_reason := current_setting('agentbus.reason', true);
    perform set_config('agentbus.reason',
                       format('unblocked: %s %s', new.id,
                              case when new.status = 'succeeded' then 'succeeded' else 'was approved' end),
                       true);
    update jobs
       set status = 'queued', blocked_reason = null, blocked_on_job_id = null, run_after = now()
     where blocked_on_job_id = new.id and status = 'blocked';
    perform set_config('agentbus.reason', coalesce(prior_reason, ''), true);
  end if;
  return null;
end;
$$;

drop trigger jobs_resolve_dependents on jobs;
drop trigger jobs_unblock_waiters on jobs;
drop trigger jobs_record_transition on jobs;
create trigger jobs_record_transition
  after update of status on jobs
  for each row
  when (old.status is distinct from new.status)
  execute function jobs_status_changed();

create or replace function jobs_inserted()
returns trigger
language plpgsql
security definer
set search_path from current
as $$
begin
  -- The history row (what record_job_transition wrote for an insert).
  insert into job_history (job_id, namespace, from_status, to_status, attempt_no, actor, reason, login)
  values (
    new.id,
    new.namespace,
    null,
    new.status,
    new.attempt_count,
    coalesce(nullif(current_setting('agentbus.actor', true), ''), session_user::text),
    nullif(current_setting('agentbus.reason', true), ''),
    session_user
  );
  -- The notice (what notify_jobs_ready sent for an insert), delivered at commit.
  if new.status = 'queued' then
    perform pg_notify(
      'jobs_ready',
      json_build_object(
        'namespace', new.namespace,
        'target_agent', new.target_agent,
        'job_id', new.id,
        'run_after', new.run_after
      )::text
    );
  end if;
  return null;
end;
$$;

drop trigger jobs_notify_insert on jobs;
drop trigger jobs_record_insert on jobs;
create trigger jobs_record_insert
  after insert on jobs
  for each row
  execute function jobs_inserted();
