//! The one job mechanism for every long computation: analysis runs now; randomization inference,
//! power and interim looks next (docs/analysis-runs.md §3).
//!
//! Jobs are rows in the database ([`crate::storage::jobs`]). A bounded pool of workers (by default
//! one per core) claims them one at a time under a lease, which each worker renews with its
//! progress every [`JobConfig::heartbeat`]. The computation reports into a
//! [`Progress`] and checks its cancel flag at least every 100 ms; the heartbeat sets the flag when
//! `DELETE /v1/jobs/{id}` has asked for it (on this instance at once, through [`Jobs::cancel_local`],
//! and from another instance through the row), or when the worker has lost its claim.
//!
//! A worker that dies (a crash, SIGKILL, a lost machine) stops renewing; once its lease expires
//! another worker, on this instance or another sharing the database, claims the job and runs it
//! again. Every computation is a deterministic function of what its job names, so the second run
//! gives the same result. A service that stops cleanly gives its running jobs back to the queue.
//! Every start, cancellation and completion is audited with the state change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::analysis::{self, AnalysisError};
use crate::progress::{Progress, Snapshot};
use crate::storage::jobs::{
    JobError, JobKind, JobOutcome, JobProgress, JobRecord, JobState, Lease, RunResult,
};
use crate::storage::{NewAuditEntry, Store, StoreError};

/// How the worker pool runs.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// Workers (jobs run at once on this instance); 0 runs none (an API-only instance).
    pub workers: usize,
    /// How long a claim holds without renewal; after it, another worker may take the job.
    pub lease: Duration,
    /// How often a running job's worker renews its lease and writes its progress.
    pub heartbeat: Duration,
    /// How often an idle worker looks for work queued by another instance (work queued here
    /// wakes it at once).
    pub poll: Duration,
    /// A job started this many times without finishing fails instead of starting again.
    pub max_attempts: u32,
    /// Fault injection for the crash and cancellation tests: every job first pauses this long
    /// (checking its cancel flag every 10 ms), logging a warning when the pause starts. Never set
    /// in production; the command line sets it from `IA_RCT_FAULT_PAUSE_IN_JOB_MS` only when
    /// built with the `fault-injection` feature (which only the tests enable).
    pub pause: Option<Duration>,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_millis(250),
            poll: Duration::from_secs(1),
            max_attempts: 3,
            pause: None,
        }
    }
}

/// The worker pool of one service instance, and what it knows of the jobs it runs.
pub struct Jobs {
    store: Arc<dyn Store>,
    config: JobConfig,
    /// This instance's name in leases and the audit log: `host:pid:random`.
    owner: String,
    wake: Notify,
    running: Mutex<HashMap<i64, Arc<Progress>>>,
    stop: watch::Sender<bool>,
    workers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("owner", &self.owner)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Jobs {
    /// Starts `config.workers` workers on `store` (inside a Tokio runtime).
    pub fn start(store: Arc<dyn Store>, config: JobConfig) -> Arc<Jobs> {
        let (stop, _) = watch::channel(false);
        let jobs = Arc::new(Jobs {
            store,
            owner: instance_name(),
            wake: Notify::new(),
            running: Mutex::new(HashMap::new()),
            stop,
            workers: Mutex::new(Vec::new()),
            config,
        });
        let handles: Vec<_> = (0..jobs.config.workers)
            .map(|_| tokio::spawn(Arc::clone(&jobs).work()))
            .collect();
        *jobs.workers.lock().unwrap_or_else(|e| e.into_inner()) = handles;
        jobs
    }

    /// This instance's worker name.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Tells an idle worker that a job was queued.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The live progress of a job this instance is running.
    pub fn local_progress(&self, id: i64) -> Option<Snapshot> {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .map(|p| p.snapshot())
    }

    /// Sets the cancel flag of a job this instance is running (the row says so too, for other
    /// instances); whether it runs here.
    pub fn cancel_local(&self, id: i64) -> bool {
        match self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            Some(p) => {
                p.cancel();
                true
            }
            None => false,
        }
    }

    /// Stops claiming, gives the running jobs back to the queue (their computations stop at
    /// their next check) and waits for the workers.
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        for p in self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            p.cancel();
        }
        let handles = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        for h in handles {
            let _ = h.await;
        }
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    async fn work(self: Arc<Self>) {
        let mut stop = self.stop.subscribe();
        while !self.stopping() {
            let now = crate::storage::now();
            let now_ms = now.timestamp_millis();
            let lease = Lease {
                owner: self.owner.clone(),
                until_ms: now_ms + millis(self.config.lease),
            };
            let audit = self.audit("job start");
            match self
                .store
                .claim_job(&lease, now, now_ms, self.config.max_attempts, &audit)
                .await
            {
                Ok(Some(job)) if job.state == JobState::Running => self.run(job, lease).await,
                Ok(Some(job)) => {
                    tracing::warn!(job = job.id, "job interrupted too often; failed");
                }
                Ok(None) => {
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(self.config.poll) => {}
                        _ = stop.changed() => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim a job; trying again");
                    tokio::select! {
                        () = tokio::time::sleep(self.config.poll) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
    }

    /// An audit entry of a worker's action.
    fn audit(&self, route: &str) -> NewAuditEntry {
        let mut entry = NewAuditEntry::now("JOB", route, "/v1/jobs");
        entry.operator = Some(format!("worker:{}", self.owner));
        entry
    }

    async fn run(&self, job: JobRecord, mut lease: Lease) {
        let id = job.id;
        let progress = Arc::new(Progress::new());
        if job.cancel_requested {
            progress.cancel();
        }
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::clone(&progress));
        tracing::info!(
            job = id,
            kind = job.kind.as_str(),
            attempt = job.attempts,
            "job started"
        );
        let compute = self.compute(&job, Arc::clone(&progress));
        tokio::pin!(compute);
        let mut tick = tokio::time::interval(self.config.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut lost = false;
        let mut cancel_requested = job.cancel_requested;
        let mut cancelled_at: Option<std::time::Instant> = None;
        let result = loop {
            tokio::select! {
                result = &mut compute => break result,
                _ = tick.tick() => {
                    if self.stopping() {
                        progress.cancel();
                    }
                    // A computation checks its flag every 100 ms, but a database read does not:
                    // one that has not stopped half a second after the cancel is dropped (a
                    // blocking estimation still stops at its next check, and its result is
                    // discarded), so the job ends within a second.
                    if progress.is_cancelled() {
                        let at = *cancelled_at.get_or_insert_with(std::time::Instant::now);
                        if at.elapsed() >= Duration::from_millis(500) {
                            break Err(AnalysisError::Cancelled);
                        }
                    }
                    lease.until_ms = crate::storage::now().timestamp_millis() + millis(self.config.lease);
                    let snapshot = JobProgress::from(&progress.snapshot());
                    match self.store.heartbeat_job(id, &lease, &snapshot).await {
                        Ok(Some(cancel)) => {
                            if cancel {
                                cancel_requested = true;
                                progress.cancel();
                            }
                        }
                        Ok(None) => {
                            tracing::warn!(job = id, "lost the claim on a job; stopping it");
                            lost = true;
                            progress.cancel();
                        }
                        Err(e) => tracing::warn!(job = id, error = %e, "cannot renew a job's lease"),
                    }
                }
            }
        };
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        if lost {
            return;
        }
        let outcome = match result {
            Ok(done) => JobOutcome::Done(done),
            Err(AnalysisError::Cancelled)
                if cancel_requested || progress.is_cancelled() && !self.stopping() =>
            {
                JobOutcome::Cancelled
            }
            Err(AnalysisError::Cancelled) => {
                // The service is stopping: the job goes back to the queue for the next start.
                match self.store.release_job(id, &lease.owner).await {
                    Ok(_) => tracing::info!(job = id, "job given back to the queue"),
                    Err(e) => {
                        tracing::warn!(job = id, error = %e, "cannot give a job back; its lease will expire")
                    }
                }
                return;
            }
            Err(AnalysisError::Conflict(message)) | Err(AnalysisError::Invalid { message, .. }) => {
                JobOutcome::Failed(JobError {
                    code: "conflict".into(),
                    message,
                })
            }
            Err(e @ (AnalysisError::Internal(_) | AnalysisError::Store(_))) => {
                tracing::error!(job = id, error = %e, "job failed");
                JobOutcome::Failed(JobError {
                    code: "internal".into(),
                    message: e.to_string(),
                })
            }
        };
        let state = outcome.state();
        let audit = self.audit("job finish");
        let elapsed = Some(progress.elapsed().as_secs_f64());
        // A few tries: a database that is briefly unavailable must not lose a finished result
        // (if it stays away, the lease expires and the job runs again, to the same result).
        for attempt in 0..5u64 {
            match self
                .store
                .finish_job(id, &lease.owner, &outcome, elapsed, &audit)
                .await
            {
                Ok(Some(_)) => {
                    tracing::info!(job = id, state = state.as_str(), "job finished");
                    return;
                }
                Ok(None) => {
                    tracing::warn!(job = id, "lost the claim on a job before storing its end");
                    return;
                }
                Err(StoreError::Unavailable(e)) => {
                    tracing::warn!(job = id, error = %e, "cannot store a job's end; trying again");
                    tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
                }
                Err(e) => {
                    tracing::error!(job = id, error = %e, "cannot store a job's end");
                    return;
                }
            }
        }
    }

    /// Runs one job's computation: the stored result for an analysis run.
    async fn compute(
        &self,
        job: &JobRecord,
        progress: Arc<Progress>,
    ) -> Result<Option<RunResult>, AnalysisError> {
        if let Some(pause) = self.config.pause {
            tracing::warn!(
                job = job.id,
                pause_ms = pause.as_millis() as u64,
                "fault injection: pausing inside a job"
            );
            progress.stage("pause (fault injection)", 0);
            let until = std::time::Instant::now() + pause;
            while std::time::Instant::now() < until {
                progress.check().map_err(|_| AnalysisError::Cancelled)?;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        match job.kind {
            JobKind::Analysis => {
                let run = job.subject["run"].as_i64().ok_or_else(|| {
                    AnalysisError::Internal(format!("job {}: no run in {}", job.id, job.subject))
                })?;
                let trial = job
                    .trial
                    .as_deref()
                    .ok_or_else(|| AnalysisError::Internal(format!("job {}: no trial", job.id)))?;
                let record = self.store.get_analysis(trial, run).await?;
                let (json, sha256) =
                    analysis::compute(self.store.as_ref(), &record, progress).await?;
                Ok(Some(RunResult { run, json, sha256 }))
            }
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `host:pid:random`: unique per process, readable in the audit log.
fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    let mut bytes = [0u8; 4];
    if getrandom::fill(&mut bytes).is_err() {
        bytes = [0; 4];
    }
    format!("{host}:{}:{}", std::process::id(), hex::encode(bytes))
}
