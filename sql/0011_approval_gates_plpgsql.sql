-- 0011: the approval-gate trigger of 0009, written out in PL/pgSQL.
--
-- 0009 called a LANGUAGE sql function from the trigger; PostgreSQL plans such a function's
-- body again on every call, and every agentbus command is a fresh session, so each insert
-- into jobs paid for it: about 2.3 ms per enqueue against 0.8-1.3 ms now (first insert of
-- a fresh session on the 2-CPU development VM, median of 21). The rules are unchanged:
-- T1 holds every job, T2 the agent's outbound subjects, then the agent's approval_gates
-- by name; standing-order runs are not gated.

create or replace function enforce_approval_gates()
returns trigger
language plpgsql
as $$
declare
  tier text;
  outbound text[];
  gate text;
begin
  if new.job_type = 'scheduled' or new.status not in ('queued', 'waiting', 'awaiting_approval') then
    return new;
  end if;
  select a.approval_tier, a.outbound_subjects into tier, outbound
    from agents a
   where a.namespace = new.namespace and a.agent_id = new.target_agent;
  if tier = 'T1' then
    gate := 'tier T1';
  elsif tier = 'T2' and new.subject = any (outbound) then
    gate := 'tier T2 (outbound subject)';
  else
    select 'gate ' || g.gate_name into gate
      from approval_gates g
     where g.namespace = new.namespace and g.agent_id = new.target_agent
       and (g.subject_like is null or new.subject like g.subject_like)
       and (g.payload_field is null
            or (jsonb_typeof(new.payload -> g.payload_field) = 'number'
                and (new.payload ->> g.payload_field)::numeric >= g.at_least))
     order by g.gate_name
     limit 1;
  end if;
  if gate is not null then
    new.status := 'awaiting_approval';
    new.requires_approval := true;
    new.approval_gate := gate;
  end if;
  return new;
end;
$$;

-- Its only caller was the trigger above.
drop function approval_gate_for(text, text, text, jsonb);
