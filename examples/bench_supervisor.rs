//! Benchmark of agentbus-supervisor (run by scripts/bench-supervisor.sh, release build).
//!
//! 1. Dispatch latency: with the supervisor idle, one job at a time is inserted; the figure
//!    is the time from the start of the enqueue (insert + commit) to the moment a fake
//!    OpenClaw gateway on 127.0.0.1 receives the wake-up request.
//! 2. Drain rate, hook mode: N jobs over A agents are queued, then a supervisor is
//!    started against a fake gateway that answers 200 and completes each job through the
//!    library (as an agent runtime holding its connection would: eight agents, each with
//!    a `db::Session` closing with `jobs::complete_on_session`, so the close is prepared
//!    once per connection and is one round trip); the figure is jobs/s
//!    from start to the last success, then what each job cost the machine (CPU of every
//!    process, WAL written and flushed) and the row versions it wrote, by table.
//! 3. Drain rate, exec mode: the same with `--exec 'agentbus complete-job ...'`, i.e. a
//!    process per job that connects and closes its job.
//!
//! What-if runs: with `BENCH_WHAT_IF=file.sql` the file is run in every scratch database
//! right after its migrations (e.g. scripts/bench-what-if/strip-secondary.sql, which drops
//! guards to measure what they cost); a line naming it is printed first. Such a run
//! measures a schema agentbus does not ship.
//!
//! Usage: bench_supervisor ADMIN_URL SUPERVISOR_BIN AGENTBUS_BIN [latency_jobs] [drain_jobs[,drain_jobs...]] [agents] [concurrency]
//!
//! With several drain sizes, hook mode runs at each; exec mode (a process per job) at the
//! first only.

// A benchmark prints its figures.
#![allow(clippy::print_stdout)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentbus::db::{self, DbConfig, SessionSettings};
use agentbus::ledger::jobs::{self, Caller, CompleteParams, Fence};

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> AnyResult<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        return Err("usage: bench_supervisor ADMIN_URL SUPERVISOR_BIN AGENTBUS_BIN [latency_jobs] [drain_jobs] [agents] [concurrency]".into());
    }
    let (admin, supervisor, agentbus) = (&args[1], &args[2], &args[3]);
    let n_latency: usize = args.get(4).map_or(Ok(300), |s| s.parse())?;
    let sizes: Vec<i32> = match args.get(5) {
        Some(list) => list.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => vec![10_000],
    };
    let n_drain = *sizes.first().ok_or("no drain size")?;
    let agents: i32 = args.get(6).map_or(Ok(10), |s| s.parse())?;
    let concurrency: i32 = args.get(7).map_or(Ok(1), |s| s.parse())?;
    if let Some(file) = what_if() {
        println!("what-if: {file} run in every scratch database after its migrations (not the schema agentbus ships)");
    }

    // --- dispatch latency -------------------------------------------------------------
    let url = fresh_db(admin, agentbus, "agentbus_bench_latency")?;
    let fake = Fake::start(&url, true)?;
    let mut sup = spawn(
        supervisor,
        &url,
        &["--hook-url", &fake.url, "--default-concurrency", "1000"],
    )?;
    std::thread::sleep(Duration::from_millis(1500));
    let mut client = connect(&url)?;
    let mut latencies = Vec::with_capacity(n_latency);
    let mut from_start = Vec::with_capacity(n_latency);
    for i in 0..n_latency {
        let start = Instant::now();
        // One round trip, the statement parsed with it (Parse, Bind, Execute, Sync in one
        // write), as node-postgres sends graphile-worker's add_job below; `execute` would
        // first prepare the statement in a round trip of its own.
        client.query_typed(
            "insert into jobs (target_agent, job_type, subject) values ($1, 'bench', 'latency')",
            &[(&format!("agent-{}", i % 10), postgres::types::Type::TEXT)],
        )?;
        // The commit is acknowledged here; the NOTIFY may reach the supervisor a hair
        // earlier, so a negative difference counts as zero.
        let committed = Instant::now();
        let at = fake.wait_for(i + 1, Duration::from_secs(30))?;
        latencies.push(at.saturating_duration_since(committed).as_secs_f64() * 1000.0);
        from_start.push(at.duration_since(start).as_secs_f64() * 1000.0);
        // Let the supervisor go idle again.
        std::thread::sleep(Duration::from_millis(20));
    }
    stop(&mut sup);
    drop(fake);
    for (what, mut v) in [
        ("enqueue commit", latencies),
        ("enqueue start (insert + commit included)", from_start),
    ] {
        v.sort_by(f64::total_cmp);
        let pct = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "dispatch latency, {what} -> hook request received ({} single jobs, supervisor idle): p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            v.len(),
            pct(0.5),
            pct(0.95),
            pct(0.99),
            pct(1.0)
        );
    }

    // --- drain, hook mode --------------------------------------------------------------
    let conc = concurrency.to_string();
    for &n_drain in &sizes {
        let url = fresh_db(admin, agentbus, "agentbus_bench_hook")?;
        let fake = Fake::start(&url, true)?;
        bulk(&url, n_drain, agents)?;
        let before = Costs::read(admin)?;
        let started = Instant::now();
        let mut sup = spawn(
            supervisor,
            &url,
            &["--hook-url", &fake.url, "--default-concurrency", &conc],
        )?;
        let elapsed = wait_all_succeeded(&url, n_drain, started)?;
        let mut spent = Costs::read(admin)?.since(&before);
        stop(&mut sup);
        // The agents disconnect; a backend reports its WAL counters when it exits, or
        // when idle only after seconds: read them once every backend of the drain ended.
        drop(fake);
        let writes = writes_per_job(&url, n_drain);
        spent.wal_from(&Costs::read(admin)?.since(&before));
        println!(
            "drain, hook mode (fake gateway completes each job via the library): {n_drain} jobs over {agents} agents, max_concurrency {concurrency}: {:.1} s, {:.0} jobs/s",
            elapsed,
            f64::from(n_drain) / elapsed
        );
        spent.print(n_drain);
        match writes {
            Ok(line) => println!("drain, hook mode, row writes per job: {line}"),
            Err(e) => println!("drain, hook mode, row writes per job: not read ({e})"),
        }
    }

    // --- drain, exec mode --------------------------------------------------------------
    let url = fresh_db(admin, agentbus, "agentbus_bench_exec")?;
    bulk(&url, n_drain, agents)?;
    let exec = format!("{agentbus} complete-job {{job_id}} --lease-token {{lease_token}}");
    let started = Instant::now();
    let mut sup = spawn(
        supervisor,
        &url,
        &["--exec", &exec, "--default-concurrency", &conc],
    )?;
    let elapsed = wait_all_succeeded(&url, n_drain, started)?;
    stop(&mut sup);
    println!(
        "drain, exec mode (one `agentbus complete-job` process per job): {n_drain} jobs over {agents} agents, max_concurrency {concurrency}: {:.1} s, {:.0} jobs/s",
        elapsed,
        f64::from(n_drain) / elapsed
    );
    for name in [
        "agentbus_bench_latency",
        "agentbus_bench_hook",
        "agentbus_bench_exec",
    ] {
        connect(admin)?.batch_execute(&format!("drop database if exists {name} with (force)"))?;
    }
    Ok(())
}

/// What a drain cost the machine: CPU time of every process (from /proc/stat, in clock
/// ticks) and the server's WAL (pg_stat_wal: records, bytes, flushes to disk). A drain
/// on a small machine is bound by these, so they are the figures to compare when the
/// jobs/s of two runs differ by less than the machine's noise.
struct Costs {
    /// When it was read; after `since`, how long the window was.
    at: Instant,
    seconds: f64,
    busy_ticks: u64,
    steal_ticks: u64,
    all_ticks: u64,
    wal_records: i64,
    wal_bytes: f64,
    wal_syncs: i64,
}

impl Costs {
    fn read(admin: &str) -> AnyResult<Costs> {
        let stat = std::fs::read_to_string("/proc/stat")?;
        let ticks: Vec<u64> = stat
            .lines()
            .next()
            .ok_or("empty /proc/stat")?
            .split_whitespace()
            .skip(1)
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        // user nice system idle iowait irq softirq steal ...; time the hypervisor gave to
        // another guest (steal) is neither this machine's work nor idle.
        let at = |i: usize| ticks.get(i).copied().unwrap_or(0);
        let busy = at(0) + at(1) + at(2) + at(5) + at(6);
        let row = connect(admin)?.query_one(
            "select wal_records, wal_bytes::float8, wal_sync from pg_stat_wal",
            &[],
        )?;
        Ok(Costs {
            at: Instant::now(),
            seconds: 0.0,
            busy_ticks: busy,
            steal_ticks: at(7),
            all_ticks: busy + at(3) + at(4) + at(7),
            wal_records: row.get(0),
            wal_bytes: row.get(1),
            wal_syncs: row.get(2),
        })
    }

    fn since(&self, before: &Costs) -> Costs {
        Costs {
            at: self.at,
            seconds: self.at.duration_since(before.at).as_secs_f64(),
            busy_ticks: self.busy_ticks.saturating_sub(before.busy_ticks),
            steal_ticks: self.steal_ticks.saturating_sub(before.steal_ticks),
            all_ticks: self.all_ticks.saturating_sub(before.all_ticks),
            wal_records: self.wal_records - before.wal_records,
            wal_bytes: self.wal_bytes - before.wal_bytes,
            wal_syncs: self.wal_syncs - before.wal_syncs,
        }
    }

    /// Takes the WAL figures of `later` (the same window, read once the drain's backends
    /// reported), keeping this window's CPU and length.
    fn wal_from(&mut self, later: &Costs) {
        self.wal_records = later.wal_records;
        self.wal_bytes = later.wal_bytes;
        self.wal_syncs = later.wal_syncs;
    }

    fn print(&self, jobs: i32) {
        // Linux counts /proc/stat in USER_HZ, 100 per second on every architecture it runs.
        let cpu_ms = self.busy_ticks as f64 * 10.0;
        let jobs = f64::from(jobs);
        println!(
            "drain, hook mode, cost per job: CPU {:.2} ms (whole machine, every process; {:.0} % busy, {:.0} % stolen by the hypervisor), WAL {:.1} records, {:.0} bytes; WAL flushes {:.0}/s",
            cpu_ms / jobs,
            100.0 * self.busy_ticks as f64 / self.all_ticks.max(1) as f64,
            100.0 * self.steal_ticks as f64 / self.all_ticks.max(1) as f64,
            self.wal_records as f64 / jobs,
            self.wal_bytes / jobs,
            self.wal_syncs as f64 / self.seconds.max(0.001),
        );
    }
}

/// The row versions a drain wrote per job, by table (pg_stat_user_tables of the drain's
/// own database: inserted, updated of which HOT, deleted), the tables it wrote most first.
/// Every version of a row that is not HOT is also an entry in each of the table's indexes
/// whose predicate it meets. Read after the supervisor stopped and a pause, so every
/// backend has flushed its counters (an idle backend does within a second).
fn writes_per_job(url: &str, jobs: i32) -> AnyResult<String> {
    std::thread::sleep(Duration::from_millis(1500));
    let rows = connect(url)?.query(
        "select relname::text, n_tup_ins::float8, n_tup_upd::float8, n_tup_hot_upd::float8,
                n_tup_del::float8
         from pg_stat_user_tables
         where n_tup_ins + n_tup_upd + n_tup_del > 0
         order by n_tup_ins + n_tup_upd + n_tup_del desc, relname",
        &[],
    )?;
    let per = |v: f64| v / f64::from(jobs.max(1));
    let parts: Vec<String> = rows
        .iter()
        .map(|r| {
            let (name, ins, upd, hot, del): (String, f64, f64, f64, f64) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
            format!(
                "{name} {:.2} inserted, {:.2} updated ({:.2} HOT), {:.2} deleted",
                per(ins),
                per(upd),
                per(hot),
                per(del)
            )
        })
        .collect();
    Ok(parts.join("; "))
}

/// The bench's connection settings (its agents' too).
fn settings() -> SessionSettings {
    SessionSettings {
        application_name: "agentbus-bench".into(),
        statement_timeout: None,
        lock_timeout: None,
        synchronous_commit: true,
        lease_token: None,
        idle_in_transaction_timeout: db::CLI_IDLE_IN_TRANSACTION_TIMEOUT,
    }
}

fn connect(url: &str) -> AnyResult<postgres::Client> {
    Ok(db::connect(&DbConfig::parse(url)?, &settings())?)
}

/// The what-if file (`BENCH_WHAT_IF`; empty or unset: none).
fn what_if() -> Option<String> {
    std::env::var("BENCH_WHAT_IF")
        .ok()
        .filter(|f| !f.is_empty())
}

fn fresh_db(admin: &str, agentbus: &str, name: &str) -> AnyResult<String> {
    let mut c = connect(admin)?;
    c.batch_execute(&format!("drop database if exists {name} with (force)"))?;
    c.batch_execute(&format!("create database {name}"))?;
    let url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => return Err("admin URL must be postgresql://.../db".into()),
    };
    let ok = Command::new(agentbus)
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .stdout(Stdio::null())
        .status()?;
    if !ok.success() {
        return Err("agentbus migrate failed".into());
    }
    if let Some(file) = what_if() {
        let sql =
            std::fs::read_to_string(&file).map_err(|e| format!("BENCH_WHAT_IF {file}: {e}"))?;
        connect(&url)?.batch_execute(&sql)?;
    }
    Ok(url)
}

fn bulk(url: &str, n: i32, agents: i32) -> AnyResult<()> {
    connect(url)?.execute(
        "insert into jobs (target_agent, job_type, subject)
         select 'agent-' || (g % $2), 'bench', 'drain ' || g from generate_series(1, $1) g",
        &[&n, &agents],
    )?;
    Ok(())
}

fn spawn(bin: &str, url: &str, args: &[&str]) -> AnyResult<Child> {
    Ok(Command::new(bin)
        .args(args)
        .args(["--log-level", "warn", "--supervisor-id", &supervisor_id()])
        .env("DATABASE_URL", url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()?)
}

/// The benchmark's supervisors' id: `$BENCH_SUPERVISOR_ID` (scripts/bench-supervisor.sh
/// gives each run its own, and stops whatever still carries it when the run ends, even
/// when it was interrupted), else one of this process's own.
fn supervisor_id() -> String {
    std::env::var("BENCH_SUPERVISOR_ID").unwrap_or_else(|_| format!("bench-{}", std::process::id()))
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// Waits until `n` jobs succeeded; returns the seconds from `started` to the last close,
/// read from the jobs' own `completed_at` (the database clock, taken at `started` too), so
/// the figure does not depend on how often this polls. Each poll asks only whether any job
/// is still open (a look at the small index of open jobs): a count over the whole table
/// every 200 ms took 5-6 % of the CPU from what is measured.
fn wait_all_succeeded(url: &str, n: i32, started: Instant) -> AnyResult<f64> {
    let mut c = connect(url)?;
    let at_start: f64 = c
        .query_one(
            "select extract(epoch from clock_timestamp())::float8 - $1::float8",
            &[&started.elapsed().as_secs_f64()],
        )?
        .get(0);
    loop {
        let open: bool = c
            .query_one(
                "select exists (select 1 from jobs
                                where status not in ('succeeded', 'dead', 'cancelled'))",
                &[],
            )?
            .get(0);
        if !open {
            let row = c.query_one(
                "select count(*), extract(epoch from max(completed_at))::float8
                   from jobs where status = 'succeeded'",
                &[],
            )?;
            let done: i64 = row.get(0);
            if done < i64::from(n) {
                return Err(format!("only {done} of {n} jobs succeeded").into());
            }
            let last: Option<f64> = row.get(1);
            return Ok(last.map_or(started.elapsed().as_secs_f64(), |l| l - at_start));
        }
        if started.elapsed() > Duration::from_secs(1800) {
            return Err(format!("jobs still open after 30 min ({n} enqueued)").into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A fake OpenClaw gateway: records when each request arrived; answers 200 with a runId;
/// hands (job, token) to a pool of "agents" that complete the job through the library.
struct Fake {
    url: String,
    arrivals: Arc<Mutex<Vec<Instant>>>,
    /// Set when the phase ends: the agents then close their connections and end (held
    /// open, a run of several phases would pile them up against `max_connections`).
    done: Arc<AtomicBool>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
    }
}

impl Fake {
    fn start(db_url: &str, complete: bool) -> AnyResult<Fake> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}/hooks/agent", listener.local_addr()?);
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<(uuid::Uuid, uuid::Uuid)>();
        let rx = Arc::new(Mutex::new(rx));
        let done = Arc::new(AtomicBool::new(false));
        if complete {
            for _ in 0..8 {
                let rx = Arc::clone(&rx);
                let done = Arc::clone(&done);
                // Each agent holds its connection, as an agent runtime embedding the
                // library would: the close is prepared once per connection.
                let mut session = db::Session::connect(&DbConfig::parse(db_url)?, &settings())?;
                std::thread::spawn(move || loop {
                    let next = rx
                        .lock()
                        .map_err(|_| ())
                        .and_then(|r| r.recv_timeout(Duration::from_millis(100)).map_err(|_| ()));
                    let Ok((job, token)) = next else {
                        if done.load(Ordering::SeqCst) {
                            // Dropping the session closes the connection.
                            return;
                        }
                        continue;
                    };
                    let fence = Fence {
                        lease_token: Some(token),
                        attempt: None,
                        force: false,
                    };
                    let caller = Caller {
                        actor: "bench-agent".into(),
                        command: "complete-job".into(),
                    };
                    let _ = jobs::complete_on_session(
                        &mut session,
                        job,
                        fence,
                        &caller,
                        &CompleteParams::default(),
                    );
                });
            }
        }
        let log = Arc::clone(&arrivals);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = Arc::clone(&log);
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &log, &tx);
                });
            }
        });
        Ok(Fake {
            url,
            arrivals,
            done,
        })
    }

    fn wait_for(&self, n: usize, within: Duration) -> AnyResult<Instant> {
        let until = Instant::now() + within;
        loop {
            if let Some(at) = self
                .arrivals
                .lock()
                .ok()
                .and_then(|a| a.get(n - 1).copied())
            {
                return Ok(at);
            }
            if Instant::now() > until {
                return Err(format!("request {n} never arrived").into());
            }
            // Sleep, not spin: on a small machine a spinning waiter steals the CPU the
            // supervisor and PostgreSQL need (arrival times are taken by the server thread).
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

fn serve(
    stream: std::net::TcpStream,
    log: &Mutex<Vec<Instant>>,
    tx: &mpsc::Sender<(uuid::Uuid, uuid::Uuid)>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let at = Instant::now();
        let mut length = 0;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            if h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        if let Ok(mut l) = log.lock() {
            l.push(at);
        }
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let message = doc["message"].as_str().unwrap_or("");
        let marker = |name: &str| {
            message
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .and_then(|v| uuid::Uuid::parse_str(v.trim()).ok())
        };
        let reply = r#"{"ok":true,"runId":"bench"}"#;
        // One write: a response in several segments meets Nagle and delayed ACKs.
        let response = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}", reply.len());
        stream.write_all(response.as_bytes())?;
        stream.flush()?;
        if let (Some(job), Some(token)) =
            (marker("AGENTBUS_JOB_ID"), marker("AGENTBUS_LEASE_TOKEN"))
        {
            let _ = tx.send((job, token));
        }
    }
}
