//! The hook workers and the admission recorder.
//!
//! A job marked running goes to a pool of worker threads that each send one wake-up at a
//! time (kept-alive connections of the shared HTTP client). The pool grows when every
//! worker is busy, up to `--max-in-flight`, and its threads stay: no thread is started
//! per job. A run the gateway admitted goes to one recorder thread, which writes every
//! admission waiting for it in one transaction (`record_hook_admissions`), then frees
//! their slots. Both end when the supervisor closes them after its last job.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use super::log::Level;
use super::metrics::Outcome;
use super::outcome::wake_failed;
use super::plan::{Ready, WakePlan};
use super::shared::{Shared, Slot};
use crate::ledger::agents::{self, WakeFailure};
use crate::ledger::jobs::{self, Admission, AttemptFacts, Job};
use crate::supervisor::hook::{HookOutcome, WakeRequest};

/// A hook run gets its timeout plus this long before its lease runs out.
const HOOK_LEASE_MARGIN_SECONDS: u32 = 120;

/// At most this many admissions in one recorder transaction.
const RECORD_BATCH: usize = 256;

/// The workers and the recorder of one supervisor run (made by `run`, closed after its
/// last job).
#[derive(Default)]
pub(super) struct HookWorkers {
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    work: Mutex<Option<Sender<Ready>>>,
    queue: Arc<Mutex<Option<Receiver<Ready>>>>,
    /// Jobs sent and not yet taken by a worker.
    queued: AtomicUsize,
    /// Workers waiting for a job.
    idle: AtomicUsize,
    threads: AtomicUsize,
    recorder: Mutex<Option<Sender<Admitted>>>,
}

/// A run the gateway admitted, waiting to be recorded.
struct Admitted {
    job: Job,
    status: u16,
    run_id: Option<String>,
    lease_seconds: f64,
    clears_backoff: bool,
    slot: Slot,
}

impl HookWorkers {
    /// Ends the workers and the recorder once they are idle (after the last job).
    pub fn close(&self) {
        if let Ok(mut work) = self.state.work.lock() {
            work.take();
        }
        if let Ok(mut recorder) = self.state.recorder.lock() {
            recorder.take();
        }
    }

    /// Queues a job for a hook worker, starting one when none is free.
    pub fn submit(&self, shared: &Arc<Shared>, ready: Ready) {
        submit(&self.state, shared, ready);
    }
}

fn submit(pool: &Arc<State>, shared: &Arc<Shared>, ready: Ready) {
    let sent = match pool.work.lock() {
        Ok(mut work) => {
            let tx = work.get_or_insert_with(|| {
                let (tx, rx) = mpsc::channel();
                if let Ok(mut queue) = pool.queue.lock() {
                    *queue = Some(rx);
                }
                tx
            });
            pool.queued.fetch_add(1, Ordering::SeqCst);
            tx.send(ready).is_ok()
        }
        Err(_) => false,
    };
    if !sent {
        // Dropped with its slot; the lease recovers the job.
        pool.queued.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    let busy = pool.idle.load(Ordering::SeqCst) < pool.queued.load(Ordering::SeqCst);
    if busy && pool.threads.load(Ordering::SeqCst) < shared.cfg.max_in_flight {
        start_worker(pool, shared);
    }
}

fn start_worker(pool: &Arc<State>, shared: &Arc<Shared>) {
    let worker = Arc::clone(shared);
    let state = Arc::clone(pool);
    let n = pool.threads.fetch_add(1, Ordering::SeqCst);
    let spawned = std::thread::Builder::new()
        .name(format!("hook-{n}"))
        .spawn(move || work(&state, &worker));
    if let Err(e) = spawned {
        pool.threads.fetch_sub(1, Ordering::SeqCst);
        // The jobs already queued wait for a running worker.
        shared.log(Level::Error, "cannot start a hook worker", &[("error", &e)]);
    }
}

fn work(pool: &State, shared: &Arc<Shared>) {
    let queue = Arc::clone(&pool.queue);
    loop {
        pool.idle.fetch_add(1, Ordering::SeqCst);
        let next = queue
            .lock()
            .ok()
            .and_then(|q| q.as_ref().and_then(|rx| rx.recv().ok()));
        pool.idle.fetch_sub(1, Ordering::SeqCst);
        let Some(ready) = next else { break };
        pool.queued.fetch_sub(1, Ordering::SeqCst);
        wake_hook(pool, shared, ready);
    }
    pool.threads.fetch_sub(1, Ordering::SeqCst);
}

fn wake_hook(pool: &State, shared: &Arc<Shared>, ready: Ready) {
    let Ready {
        job,
        fence,
        plan,
        text,
        clears_backoff,
        slot,
        ..
    } = ready;
    let WakePlan::Hook(target) = plan else {
        return;
    };
    // The lease must outlive the request, or another supervisor could claim the job while
    // this one still waits for the gateway's answer.
    let request = shared.cfg.hook_request_timeout.as_secs_f64();
    if f64::from(shared.cfg.lease_seconds) <= request {
        let needed = i32::try_from(request.ceil() as i64 + 30).unwrap_or(i32::MAX);
        let renewed = shared.pool.get().and_then(|mut c| {
            crate::db::transaction(&mut c, |tx| {
                jobs::renew_lease(tx, job.id, fence, &shared.caller("wake"), needed)
            })
        });
        if let Err(e) = renewed {
            shared.note_error("extending the lease for the hook request", &e);
            return;
        }
    }
    let name = format!(
        "agentbus: {}",
        job.subject.chars().take(80).collect::<String>()
    );
    let outcome = shared.hook.wake(
        &target,
        &WakeRequest {
            job_id: job.id,
            attempt: job.attempt_count,
            name: &name,
            message: &text,
        },
    );
    match outcome {
        HookOutcome::Admitted { status, run_id } => {
            let lease = target
                .timeout_seconds
                .saturating_add(HOOK_LEASE_MARGIN_SECONDS);
            record(
                pool,
                shared,
                Admitted {
                    job,
                    status,
                    run_id,
                    lease_seconds: f64::from(lease),
                    clears_backoff,
                    slot,
                },
            );
        }
        HookOutcome::Rejected { status, detail } => wake_failed(
            shared,
            &job,
            fence,
            &format!("hook refused the wake-up: {detail}"),
            WakeFailure::Rejected,
            true,
            AttemptFacts {
                hook_status: Some(i32::from(status)),
                ..Default::default()
            },
        ),
        HookOutcome::Retryable {
            status,
            detail,
            may_have_run,
        } => wake_failed(
            shared,
            &job,
            fence,
            &format!("hook wake-up failed: {detail}"),
            WakeFailure::Transient,
            !may_have_run,
            AttemptFacts {
                hook_status: status.map(i32::from),
                ..Default::default()
            },
        ),
    }
}

/// Hands an admission to the recorder (started on first use).
fn record(pool: &State, shared: &Arc<Shared>, admitted: Admitted) {
    let Ok(mut recorder) = pool.recorder.lock() else {
        return;
    };
    if recorder.is_none() {
        let (tx, rx) = mpsc::channel();
        let worker = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("hook-recorder".into())
            .spawn(move || write_admissions(&worker, &rx));
        match spawned {
            Ok(_) => *recorder = Some(tx),
            Err(e) => {
                shared.log(
                    Level::Error,
                    "cannot start the hook recorder; the run's lease is the claim's",
                    &[("job", &admitted.job.id), ("error", &e)],
                );
                return;
            }
        }
    }
    if let Some(tx) = recorder.as_ref() {
        let _ = tx.send(admitted);
    }
}

/// The recorder: every admission waiting, one transaction, then their slots are freed.
fn write_admissions(shared: &Shared, rx: &Receiver<Admitted>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < RECORD_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let admissions: Vec<Admission> = batch
            .iter()
            .map(|a| Admission {
                job_id: a.job.id,
                lease_token: a.job.lease_token,
                attempt: a.job.attempt_count,
                hook_status: i32::from(a.status),
                run_id: a.run_id.clone(),
                lease_seconds: a.lease_seconds,
            })
            .collect();
        let recorded = shared.pool.get().and_then(|mut c| {
            crate::db::transaction(&mut c, |tx| {
                let found = jobs::record_hook_admissions(tx, &admissions)?;
                let mut cleared: Vec<(&str, &str)> = Vec::new();
                for (a, found) in batch.iter().zip(&found) {
                    let agent = (a.job.namespace.as_str(), a.job.target_agent.as_str());
                    if *found && a.clears_backoff && !cleared.contains(&agent) {
                        agents::record_wake_success(tx, agent.0, agent.1)?;
                        cleared.push(agent);
                    }
                }
                Ok(())
            })
        });
        if let Err(e) = recorded {
            shared.note_error("recording the hooks' runIds", &e);
        }
        for a in batch {
            shared.metrics.count(Outcome::Woken, &a.job.target_agent);
            shared.log(
                Level::Info,
                "agent woken by hook",
                &[
                    ("job", &a.job.id),
                    ("agent", &a.job.target_agent),
                    ("attempt", &a.job.attempt_count),
                    ("status", &a.status),
                    ("run_id", &a.run_id.as_deref().unwrap_or("-")),
                ],
            );
            drop(a.slot);
        }
    }
}
