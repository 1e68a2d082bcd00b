-- 0014: identifiers are identifiers. Names (namespaces, agent ids, order names, lease
-- owners, supervisor ids) are 1-64 of a-z 0-9 _ . : -, starting with a letter or digit;
-- keys (flow and correlation keys) 1-200 of A-Z a-z 0-9 _ . : / @ + = -, starting with a
-- letter or digit. Names reach argv, file names and prompts: with these rules none can
-- carry a shell metacharacter, a space or a control character, whoever writes the row
-- (agentbus checks the same rules first, with a clearer message).
--
-- Existing rows are checked first: if any value breaks the rules the migration stops and
-- lists them (table, column, value), and changes nothing; rename them, then migrate again.

create function agentbus_is_name(p text)
returns boolean
language sql
immutable
parallel safe
as $$ select p ~ '^[a-z0-9][a-z0-9_.:-]{0,63}$' $$;

create function agentbus_is_key(p text)
returns boolean
language sql
immutable
parallel safe
as $$ select p ~ '^[A-Za-z0-9][A-Za-z0-9_.:/@+=-]{0,199}$' $$;

do $$
declare
  checks text[][] := array[
    -- table, column, rule
    ['jobs', 'namespace', 'name'], ['jobs', 'target_agent', 'name'],
    ['jobs', 'source_agent', 'name'], ['jobs', 'lease_owner', 'name'],
    ['jobs', 'flow_key', 'key'], ['jobs', 'correlation_key', 'key'],
    ['job_attempts', 'dispatcher_id', 'name'],
    ['job_history', 'namespace', 'name'],
    ['agents', 'namespace', 'name'], ['agents', 'agent_id', 'name'],
    ['events', 'namespace', 'name'], ['events', 'source_agent', 'name'],
    ['standing_orders', 'namespace', 'name'], ['standing_orders', 'agent_id', 'name'],
    ['standing_orders', 'order_name', 'name'],
    ['standing_order_runs', 'namespace', 'name'], ['standing_order_runs', 'agent_id', 'name'],
    ['standing_order_runs', 'order_name', 'name'],
    ['dispatcher_heartbeats', 'namespace', 'name'], ['dispatcher_heartbeats', 'dispatcher_id', 'name'],
    ['ideas', 'namespace', 'name'], ['ideas', 'source_agent', 'name'],
    ['opportunities', 'namespace', 'name'], ['opportunities', 'source_agent', 'name'],
    ['memory_candidates', 'namespace', 'name'], ['memory_candidates', 'source_agent', 'name'],
    ['memories', 'namespace', 'name'],
    ['proactive_budgets', 'namespace', 'name'], ['proactive_budgets', 'agent_id', 'name'],
    ['proactive_budget_refusals', 'namespace', 'name'], ['proactive_budget_refusals', 'agent_id', 'name'],
    ['memory_curators', 'namespace', 'name'], ['memory_curators', 'agent_id', 'name'],
    ['approval_gates', 'namespace', 'name'], ['approval_gates', 'agent_id', 'name'],
    ['lane_controls', 'namespace', 'name']];
  i int;
  bad text;
  found text[] := '{}';
begin
  for i in 1 .. array_length(checks, 1) loop
    execute format(
      'select string_agg(distinct format(''%s.%s = %%L'', v), '', '') from (
         select %I as v from %I where %I is not null and not agentbus_is_%s(%I) limit 20) x',
      checks[i][1], checks[i][2], checks[i][2], checks[i][1], checks[i][2], checks[i][3], checks[i][2])
      into bad;
    if bad is not null then
      found := found || bad;
    end if;
  end loop;
  if cardinality(found) > 0 then
    raise exception 'rows with identifiers agentbus no longer accepts: %', array_to_string(found, '; ')
      using errcode = '23514',
            hint = 'names: 1-64 of a-z 0-9 _ . : - (starting with a letter or digit); keys: 1-200 of A-Z a-z 0-9 _ . : / @ + = -. Rename or purge these rows, then run agentbus migrate again.';
  end if;

  for i in 1 .. array_length(checks, 1) loop
    execute format('alter table %I add constraint %I check (agentbus_is_%s(%I))',
                   checks[i][1], checks[i][1] || '_' || checks[i][2] || '_is_' || checks[i][3],
                   checks[i][3], checks[i][2]);
  end loop;
end;
$$;

create function agentbus_are_names(p text[])
returns boolean
language sql
immutable
parallel safe
as $$ select coalesce(bool_and(agentbus_is_name(n)), true) from unnest(p) n $$;

alter table agentbus_logins add constraint agentbus_logins_names_are_names check (
  agentbus_are_names(namespaces) and (agent_id is null or agentbus_is_name(agent_id)));

-- A refusal of the CLI (the guardrails of 0012), recorded in the namespace it concerned
-- (the job's, when the command named one by id or prefix) as the owner: the login may
-- have no right to that namespace. The login is the session's, which the caller cannot
-- fake; the claimed identity is free text, kept in the payload and in source_agent only
-- when it is a name.
create function record_guardrail_refusal(p_namespace text, p_job text, p_claimed text,
                                                    p_command text, p_reason text)
returns bigint
language sql
security definer
set search_path from current
as $$
  insert into events (namespace, topic, source_agent, source_job_id, payload, login)
  select coalesce(j.namespace, case when agentbus_is_name(p_namespace) then p_namespace else 'default' end),
         'guardrail.refused',
         case when agentbus_is_name(p_claimed) then p_claimed end,
         j.id,
         jsonb_build_object('rule', 'database', 'command', left(p_command, 100),
                            'claimed_actor', left(p_claimed, 200), 'login', session_user::text,
                            'namespace', left(p_namespace, 200), 'reason', left(p_reason, 1000)),
         session_user
    from (select 1) one
    left join lateral (
      select id, namespace from jobs
       where p_job ~ '^[0-9a-f-]{8,36}$' and id::text like p_job || '%'
       limit 1) j on true
  returning id
$$;
