-- 0006_memory_retrieval: the three-bucket retrieval as one SQL function, so the
-- supervisor reads a job's memories in the same statement as the rest of its prompt (one
-- round trip per wake-up) and `agentbus retrieve-memories` runs exactly the same query.
--
-- Buckets: 1, the exact context (the agent itself, the project, person or service);
-- 2, lessons, mistakes, playbooks and constraints (global, the agent's, the service's);
-- 3, global decisions, preferences and constraints. At most 4 per bucket and p_limit in
-- all, each memory once, only active and unexpired memories, never another agent's
-- private ones. With p_for_injection, nothing when the namespace's memory lane is paused
-- or its injection is off.
create function retrieve_memories(
  p_namespace text, p_agent text, p_project text, p_person text, p_service text,
  p_limit int, p_for_injection boolean
) returns table (bucket int, memory jsonb)
language sql
stable
as $$
  with visible as (
    select m.* from active_memories_v m
     where m.namespace = p_namespace
       and (m.visibility = 'shared' or m.owner_agent = p_agent)
       and not (p_for_injection and exists (
             select 1 from lane_controls lc
              where lc.namespace = p_namespace and lc.lane = 'memory' and (lc.paused or not lc.inject)))
  ),
  exact as (
    select 1 as bucket, v.* from visible v
     where (v.scope = 'agent' and v.subject_key = p_agent)
        or (v.scope = 'project' and v.subject_key = p_project)
        or (v.scope = 'person' and v.subject_key = p_person)
        or (v.scope = 'service' and v.subject_key = p_service)
     order by v.confidence_score desc, v.created_at desc limit 4
  ),
  lessons as (
    select 2 as bucket, v.* from visible v
     where v.kind in ('lesson', 'mistake', 'playbook', 'constraint')
       and (v.scope = 'global'
            or (v.scope = 'agent' and v.subject_key = p_agent)
            or (v.scope = 'service' and v.subject_key = p_service))
       and v.id not in (select id from exact)
     order by v.confidence_score desc, v.created_at desc limit 4
  ),
  guidance as (
    select 3 as bucket, v.* from visible v
     where v.scope = 'global' and v.kind in ('decision', 'preference', 'constraint')
       and v.id not in (select id from exact) and v.id not in (select id from lessons)
     order by v.confidence_score desc, v.created_at desc limit 4
  ),
  picked as (
    select * from exact union all select * from lessons union all select * from guidance
  )
  select p.bucket, to_jsonb(p.*) - 'bucket'
    from picked p
   order by p.bucket, p.confidence_score desc, p.created_at desc
   limit p_limit
$$;
