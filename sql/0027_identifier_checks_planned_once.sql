-- 0027: the identifier checks are prepared once per session instead of once per statement.
-- PostgreSQL prepares a table's check constraints again for every statement that writes
-- it, and a SQL-language function in a check is inlined each time, which parses its body
-- again: agentbus_is_name is in four checks of jobs and agentbus_is_key in two, so every
-- claim, close and enqueue parsed those bodies six times for jobs alone (perf of a loop of
-- closes: 5.4 % of the server's time in expression_planner, where the inlining happens).
-- As PL/pgSQL functions they are called, not inlined, and PL/pgSQL keeps what it prepared
-- for the session (the same loop: a close about 6 % cheaper). Same rules, same answers:
-- STRICT returns null for a null value, as the comparison did, so a check on a column left
-- empty still passes; the body names nothing but the `~` operator, which resolves with the
-- empty search_path a restore runs under (see 0021).

create or replace function agentbus_is_name(p text)
returns boolean
language plpgsql
immutable strict
parallel safe
as $$
begin
  return p ~ '^[a-z0-9][a-z0-9_.:-]{0,63}$';
end;
$$;

create or replace function agentbus_is_key(p text)
returns boolean
language plpgsql
immutable strict
parallel safe
as $$
begin
  return p ~ '^[A-Za-z0-9][A-Za-z0-9_.:/@+=-]{0,199}$';
end;
$$;
