// graphile-worker under the method of scripts/bench-supervisor.sh, for comparison.
//
//   node bench.mjs ADMIN_URL LATENCY_JOBS DRAIN_JOBS CONCURRENCY...
//
// 1. Dispatch latency: a worker (defaults as shipped) idles on a fresh database; one job
//    at a time is added with graphile_worker.add_job() from a separate connection; the
//    figure is the time from the start of that call (insert + commit) to the moment the
//    task function starts, 20 ms apart like the agentbus run. Worker and adder share this
//    process.
// 2. Drain: DRAIN_JOBS no-op jobs are queued, then a worker with the given concurrency is
//    started; the figure is jobs/s from its start until no job is left.
// Prints lines in the same form as the agentbus figures. Nothing is asserted.
import { run, runMigrations } from "graphile-worker";
import pg from "pg";

const [admin, nLatency, nDrain, ...concurrencies] = process.argv.slice(2);
if (!admin || !nLatency || !nDrain || concurrencies.length === 0) {
  console.error("usage: node bench.mjs ADMIN_URL LATENCY_JOBS DRAIN_JOBS CONCURRENCY...");
  process.exit(2);
}
const dbName = "agentbus_bench_graphile";
const url = admin.replace(/\/[^/]*$/, `/${dbName}`);
const logFactory = () => (level, message) => {
  if (level === "error") console.error(`graphile-worker: ${message}`);
};
import { Logger } from "graphile-worker";
const logger = new Logger(logFactory);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Dropping a scratch database (`with (force)`) ends connections a stopped worker's pool
// may still be closing; their "terminating connection due to administrator command"
// (57P01) is expected. Anything else is a real failure.
process.on("uncaughtException", (e) => {
  if (e && e.code === "57P01") return;
  console.error("bench-graphile:", e && e.message ? e.message : e);
  process.exit(1);
});

// A worker with graphile-worker's defaults (its own pool). Stopping waits for the runner
// to finish, so dropping the database afterwards kills no connection it still uses.
async function worker(concurrency, task) {
  const runner = await run({
    connectionString: url,
    concurrency,
    noHandleSignals: true,
    logger,
    taskList: { bench: task },
  });
  return {
    async stop() {
      await runner.stop();
      await runner.promise.catch(() => {});
      // Let its pool finish closing before the database is dropped.
      await sleep(200);
    },
  };
}

async function freshDb() {
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  await c.query(`drop database if exists ${dbName} with (force)`);
  await c.query(`create database ${dbName}`);
  await c.end();
  await runMigrations({ connectionString: url, logger });
}

async function dropDb() {
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  await c.query(`drop database if exists ${dbName} with (force)`);
  await c.end();
}

function pct(v, p) {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.round((s.length - 1) * p)];
}

async function latency(n) {
  await freshDb();
  let started = null;
  const runner = await worker(1, async () => {
    if (started) started(performance.now());
  });
  await sleep(1500);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const fromStart = [];
  const fromCommit = [];
  for (let i = 0; i < n; i++) {
    const ran = new Promise((r) => (started = r));
    const t0 = performance.now();
    await client.query("select graphile_worker.add_job('bench', json_build_object('i', $1::int))", [i]);
    const t1 = performance.now();
    const at = await Promise.race([ran, sleep(30000).then(() => null)]);
    if (at === null) throw new Error(`job ${i} never started`);
    fromStart.push(at - t0);
    fromCommit.push(Math.max(0, at - t1));
    await sleep(20);
  }
  await client.end();
  await runner.stop();
  for (const [what, v] of [
    ["add_job return", fromCommit],
    ["add_job start (insert + commit included)", fromStart],
  ]) {
    console.log(
      `graphile-worker dispatch latency, ${what} -> task started (${v.length} single jobs, worker idle): ` +
        `p50 ${pct(v, 0.5).toFixed(2)} ms, p95 ${pct(v, 0.95).toFixed(2)} ms, p99 ${pct(v, 0.99).toFixed(2)} ms, max ${pct(v, 1).toFixed(2)} ms`,
    );
  }
}

async function drain(n, concurrency) {
  await freshDb();
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query(
    "select graphile_worker.add_jobs(array_agg(row('bench', json_build_object('i', g), null, null, null, null, null, null)::graphile_worker.job_spec)) from generate_series(1, $1::int) g",
    [n],
  );
  let done = 0;
  const t0 = performance.now();
  const runner = await worker(concurrency, async () => {
    done += 1;
  });
  // A task function returning is not the job leaving the queue (completions are
  // batched): wait for the table to be empty.
  for (;;) {
    const { rows } = await c.query("select count(*)::int as n from graphile_worker._private_jobs");
    if (rows[0].n === 0) break;
    if (performance.now() - t0 > 1800_000) throw new Error(`only ${done} of ${n} jobs ran in 30 min`);
    await sleep(5);
  }
  const elapsed = (performance.now() - t0) / 1000;
  await runner.stop();
  await c.end();
  console.log(
    `graphile-worker drain (no-op task): ${n} jobs, concurrency ${concurrency}: ${elapsed.toFixed(1)} s, ${Math.round(n / elapsed)} jobs/s`,
  );
}

try {
  await latency(Number(nLatency));
  for (const conc of concurrencies) await drain(Number(nDrain), Number(conc));
} finally {
  await dropDb();
}
