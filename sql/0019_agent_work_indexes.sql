-- 0019: two indexes for "an agent's open work" and "an agent's latest finished work",
-- which the vault's agent pages (and any per-agent listing) read. Without them each is a
-- scan of every job of the namespace (242 ms at 100,000 jobs); with them a few index
-- probes per agent (3 ms). Plain `create index` takes a write lock on jobs while it
-- builds: about a second per million jobs on a small machine, once.

create index if not exists jobs_open_by_agent_idx
  on jobs (namespace, target_agent, created_at)
  where status not in ('succeeded', 'dead', 'cancelled');

create index if not exists jobs_finished_by_agent_idx
  on jobs (namespace, target_agent, completed_at desc)
  where completed_at is not null;
