-- 0021: a logical backup must restore. pg_restore runs with an empty search_path, so a
-- function used in a check constraint that calls another function by its bare name fails
-- there ("function agentbus_is_name(text) does not exist", found by the restore drill of
-- tests/it/db/backup.rs). agentbus_are_names is the only such function: it now carries
-- the schema it was created in.
alter function agentbus_are_names(text[]) set search_path from current;
