-- 0015: the proactive lane can be paused like the memory lane (the operator's "pause lane"
-- override): while `agentbus pause-lane proactive` holds, no idea or opportunity is filed
-- and no opportunity is converted into a job, for every writer. Work already converted
-- runs on. `agentbus resume-lane proactive` lifts it.

alter table lane_controls drop constraint lane_controls_lane_check;
alter table lane_controls add constraint lane_controls_lane_check
  check (lane in ('memory', 'proactive'));

create function enforce_proactive_lane_open()
returns trigger
language plpgsql
as $$
declare
  why text;
begin
  select paused_reason into why
    from lane_controls
   where namespace = new.namespace and lane = 'proactive' and paused;
  if found then
    raise exception 'the proactive lane of namespace % is paused (%): no new ideas, opportunities or conversions until agentbus resume-lane proactive',
      new.namespace, why using errcode = 'AB001';
  end if;
  return new;
end;
$$;

-- Named to fire before the budget triggers (triggers fire in name order): a paused lane
-- records no budget refusals either.
create trigger ideas_0_lane_open
before insert on ideas
for each row
execute function enforce_proactive_lane_open();

create trigger opportunities_0_lane_open
before insert on opportunities
for each row
execute function enforce_proactive_lane_open();

create trigger opportunities_0_conversion_lane_open
before update of status on opportunities
for each row
when (new.status = 'converted_to_job' and old.status is distinct from new.status)
execute function enforce_proactive_lane_open();
