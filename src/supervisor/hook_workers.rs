//! The hook workers and the admission recorder.
//!
//! A claimed job (still `leased`) goes to a pool of worker threads that each send one
//! wake-up at a time (kept-alive connections of the shared HTTP client). The pool grows
//! when every worker is busy, up to `--max-in-flight`, and its threads stay: no thread is
//! started per job. A run the gateway admitted goes to one recorder thread, which writes
//! every admission waiting for it in one transaction (`record_hook_admissions`: the job
//! marked running with its wake record, and the woken agents' back-off cleared), then
//! frees their slots. The recorder starts with the
//! supervisor; both end when it closes them after its last job.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::log::Level;
use super::metrics::Outcome;
use super::outcome::wake_failed;
use super::plan::HookJob;
use super::shared::{Shared, Slot};
use crate::error::{Error, Result};
use crate::ledger::agents::{self, WakeFailure};
use crate::ledger::jobs::{self, Admission, AttemptFacts, Job};
use crate::supervisor::hook::{HookOutcome, WakeRequest};

/// A hook run gets its timeout plus this long before its lease runs out.
const HOOK_LEASE_MARGIN_SECONDS: u32 = 120;

/// At most this many admissions in one recorder transaction.
const RECORD_BATCH: usize = 256;

/// The workers and the recorder of one supervisor run (started by `run` before the
/// loop, closed after its last job); the main loop and the listener each hold a handle.
#[derive(Clone)]
pub(super) struct HookWorkers {
    state: Arc<State>,
}

struct State {
    /// `None` once closed: the workers' `recv` then ends.
    work: Mutex<Option<Sender<HookJob>>>,
    queue: Mutex<Receiver<HookJob>>,
    /// Jobs sent and not yet taken by a worker.
    queued: AtomicUsize,
    /// Workers waiting for a job.
    idle: AtomicUsize,
    threads: AtomicUsize,
    /// `None` once closed: the recorder then ends.
    recorder: Mutex<Option<Sender<Admitted>>>,
}

/// A run the gateway admitted, waiting to be recorded.
struct Admitted {
    admission: Admission,
    job: Job,
    slot: Slot,
}

impl HookWorkers {
    /// Starts the recorder; workers start as jobs arrive. Failing to start the recorder
    /// is fatal, like the listener's and the heartbeat's threads.
    pub fn start(shared: &Arc<Shared>) -> Result<HookWorkers> {
        let (work, queue) = mpsc::channel();
        let (recorder, admitted) = mpsc::channel();
        let worker = Arc::clone(shared);
        std::thread::Builder::new()
            .name("hook-recorder".into())
            .spawn(move || write_admissions(&worker, &admitted))
            .map_err(|e| Error::failure(format!("cannot start the hook recorder: {e}")))?;
        Ok(HookWorkers {
            state: Arc::new(State {
                work: Mutex::new(Some(work)),
                queue: Mutex::new(queue),
                queued: AtomicUsize::new(0),
                idle: AtomicUsize::new(0),
                threads: AtomicUsize::new(0),
                recorder: Mutex::new(Some(recorder)),
            }),
        })
    }

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
    pub fn submit(&self, shared: &Arc<Shared>, job: HookJob) {
        let pool = &self.state;
        pool.queued.fetch_add(1, Ordering::SeqCst);
        let sent = pool
            .work
            .lock()
            .ok()
            .and_then(|work| work.as_ref().map(|tx| tx.send(job).is_ok()))
            .unwrap_or(false);
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
    loop {
        pool.idle.fetch_add(1, Ordering::SeqCst);
        let next = pool.queue.lock().ok().and_then(|rx| rx.recv().ok());
        pool.idle.fetch_sub(1, Ordering::SeqCst);
        let Some(job) = next else { break };
        pool.queued.fetch_sub(1, Ordering::SeqCst);
        wake_hook(pool, shared, job);
    }
    pool.threads.fetch_sub(1, Ordering::SeqCst);
}

fn wake_hook(pool: &State, shared: &Arc<Shared>, hook_job: HookJob) {
    let HookJob {
        job,
        fence,
        target,
        text,
        wake,
        slot,
    } = hook_job;
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
    let sent = Instant::now();
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
            let admission = Admission {
                job_id: job.id,
                lease_token: job.lease_token,
                attempt: job.attempt_count,
                hook_status: i32::from(status),
                run_id,
                lease_seconds: f64::from(lease),
                wake,
                sent,
            };
            let admitted = Admitted {
                admission,
                job,
                slot,
            };
            // Without a recorder (closed) it is dropped with its slot; the run keeps the
            // claim's lease.
            if let Ok(recorder) = pool.recorder.lock() {
                if let Some(tx) = recorder.as_ref() {
                    let _ = tx.send(admitted);
                }
            }
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
                wake: Some(wake),
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
                wake: Some(wake),
                ..Default::default()
            },
        ),
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
        let (admissions, woken): (Vec<Admission>, Vec<(Job, Slot)>) = batch
            .into_iter()
            .map(|a| (a.admission, (a.job, a.slot)))
            .unzip();
        let recorded = shared.pool.get().and_then(|mut c| {
            c.session().transaction(|tx| {
                let found = jobs::record_hook_admissions(tx, &shared.caller("wake"), &admissions)?;
                let mut agents_woken: Vec<&str> = woken
                    .iter()
                    .zip(&found)
                    .filter(|(_, found)| **found)
                    .map(|((job, _), _)| job.target_agent.as_str())
                    .collect();
                agents_woken.sort_unstable();
                agents_woken.dedup();
                agents::record_wake_successes(tx, &shared.cfg.namespace, &agents_woken)
            })
        });
        if let Err(e) = recorded {
            shared.note_error("recording the hooks' runIds", &e);
        }
        for (a, (job, slot)) in admissions.iter().zip(woken) {
            shared.metrics.count(Outcome::Woken, &job.target_agent);
            shared.log(
                Level::Info,
                "agent woken by hook",
                &[
                    ("job", &job.id),
                    ("agent", &job.target_agent),
                    ("attempt", &job.attempt_count),
                    ("status", &a.hook_status),
                    ("run_id", &a.run_id.as_deref().unwrap_or("-")),
                ],
            );
            drop(slot);
        }
    }
}
