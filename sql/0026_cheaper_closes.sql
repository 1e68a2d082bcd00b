-- 0026: a close that wakes no one costs less. Every job that succeeds runs two triggers that
-- look for work it releases: the jobs that depend on it (resolve_job_dependents) and the
-- jobs blocked on it (unblock_waiters). Almost every job has neither, yet the second ran
-- an UPDATE of jobs each time (planned and started over every index of the table), and
-- the freed-slot trigger was called for every close only to return at once when the
-- closing session announces the slot itself (0025). Now each function first asks one
-- index whether there is anything to do, and the freed-slot trigger's WHEN skips the
-- closes the session announces. Behaviour is unchanged: the first look sees what the
-- statement after it would have seen (the same snapshot rules, read committed); the
-- figures are in the README's "Performance" section.

create or replace function resolve_job_dependents()
returns trigger
language plpgsql
security definer
set search_path from current
as $$
declare
  dependent uuid;
begin
  -- Nothing depends on this job (the usual case): one look at job_dependencies_depends_on_idx.
  if not exists (select 1 from job_dependencies d where d.depends_on_job_id = new.id) then
    return null;
  end if;
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
  elsif new.status in ('dead', 'cancelled') then
    update jobs j
    set status = 'blocked',
        blocked_reason = format('dependency %s ended %s', new.id, new.status)
    from job_dependencies d
    where d.depends_on_job_id = new.id
      and j.id = d.job_id
      and j.status = 'waiting';
  end if;
  return null;
end;
$$;

create or replace function unblock_waiters()
returns trigger
language plpgsql
security definer
set search_path from current
as $$
declare
  prior_reason text;
begin
  if not (new.status = 'succeeded'
          or (old.status = 'awaiting_approval' and new.status in ('queued', 'waiting'))) then
    return null;
  end if;
  -- No job is blocked on this one (the usual case): one look at jobs_blocked_on_idx.
  if not exists (select 1 from jobs w where w.blocked_on_job_id = new.id and w.status = 'blocked') then
    return null;
  end if;
  prior_reason := current_setting('agentbus.reason', true);
  perform set_config('agentbus.reason',
                     format('unblocked: %s %s', new.id,
                            case when new.status = 'succeeded' then 'succeeded' else 'was approved' end),
                     true);
  update jobs
     set status = 'queued', blocked_reason = null, blocked_on_job_id = null, run_after = now()
   where blocked_on_job_id = new.id and status = 'blocked';
  perform set_config('agentbus.reason', coalesce(prior_reason, ''), true);
  return null;
end;
$$;

-- The function still checks the setting (a caller of an older release sets none).
drop trigger jobs_notify_slot_freed on jobs;
create trigger jobs_notify_slot_freed
  after update of status on jobs
  for each row
  when (old.status in ('leased', 'running')
        and new.status not in ('leased', 'running')
        and current_setting('agentbus.slot_notice', true) is distinct from new.id::text)
  execute function notify_job_slot_freed();
