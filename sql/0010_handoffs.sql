-- 0010: hand-offs declared by the fleet, enforced when a job is written.
--
-- A job enqueued from inside agent X's run (its parent is a job of X) for another agent
-- that X's fleet file does not list in `handoffs` is refused, for every writer: the check
-- is a trigger, raising SQLSTATE AB003 (agentbus exits 77, "not permitted"). Agents that
-- no fleet declared (agents.fleet is null) hand work to anyone; an agent may always queue
-- follow-up work for itself. Jobs without a parent (an operator's, a conversion, a
-- standing order) are not hand-offs.

-- Why a hand-off from the parent's agent to p_target is refused, or null.
create function handoff_refusal(p_namespace text, p_parent uuid, p_target text)
returns text
language sql
stable
as $$
  select format('%s may hand work only to %s, not to %s (handoffs in its agent.toml)',
                p.target_agent,
                coalesce(nullif(array_to_string(a.handoffs, ', '), ''), 'no one'),
                p_target)
    from jobs p
    join agents a on a.namespace = p.namespace and a.agent_id = p.target_agent
   where p.id = p_parent
     and p.namespace = p_namespace
     and a.fleet is not null
     and p_target <> p.target_agent
     and not (p_target = any (a.handoffs))
$$;

create function enforce_handoffs()
returns trigger
language plpgsql
as $$
declare
  why text;
begin
  if new.parent_job_id is not null then
    why := handoff_refusal(new.namespace, new.parent_job_id, new.target_agent);
    if why is not null then
      raise exception 'hand-off refused: %', why using errcode = 'AB003';
    end if;
  end if;
  return new;
end;
$$;

create trigger jobs_handoffs
before insert on jobs
for each row
execute function enforce_handoffs();
