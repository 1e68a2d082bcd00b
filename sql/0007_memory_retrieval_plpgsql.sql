-- 0007_memory_retrieval_plpgsql: retrieve_memories as PL/pgSQL. The SQL version (0006)
-- was planned again on every call, which cost every wake-up about 2 ms
-- (scripts/bench-supervisor.sh); PL/pgSQL keeps its plan for the session, and a namespace
-- without active memories (or with injection off) returns before planning anything.
-- Same arguments, same rows.
create or replace function retrieve_memories(
  p_namespace text, p_agent text, p_project text, p_person text, p_service text,
  p_limit int, p_for_injection boolean
) returns table (bucket int, memory jsonb)
language plpgsql
stable
as $$
begin
  if p_for_injection and exists (
       select 1 from lane_controls lc
        where lc.namespace = p_namespace and lc.lane = 'memory' and (lc.paused or not lc.inject)) then
    return;
  end if;
  if not exists (select 1 from memories m
                  where m.namespace = p_namespace and m.status = 'active') then
    return;
  end if;
  return query
  with visible as (
    select m.* from active_memories_v m
     where m.namespace = p_namespace
       and (m.visibility = 'shared' or m.owner_agent = p_agent)
  ),
  exact as (
    select 1 as b, v.* from visible v
     where (v.scope = 'agent' and v.subject_key = p_agent)
        or (v.scope = 'project' and v.subject_key = p_project)
        or (v.scope = 'person' and v.subject_key = p_person)
        or (v.scope = 'service' and v.subject_key = p_service)
     order by v.confidence_score desc, v.created_at desc limit 4
  ),
  lessons as (
    select 2 as b, v.* from visible v
     where v.kind in ('lesson', 'mistake', 'playbook', 'constraint')
       and (v.scope = 'global'
            or (v.scope = 'agent' and v.subject_key = p_agent)
            or (v.scope = 'service' and v.subject_key = p_service))
       and v.id not in (select e.id from exact e)
     order by v.confidence_score desc, v.created_at desc limit 4
  ),
  guidance as (
    select 3 as b, v.* from visible v
     where v.scope = 'global' and v.kind in ('decision', 'preference', 'constraint')
       and v.id not in (select e.id from exact e) and v.id not in (select l.id from lessons l)
     order by v.confidence_score desc, v.created_at desc limit 4
  ),
  picked as (
    select * from exact union all select * from lessons union all select * from guidance
  )
  select p.b, to_jsonb(p.*) - 'b'
    from picked p
   order by p.b, p.confidence_score desc, p.created_at desc
   limit p_limit;
end;
$$;
