//! Progress and cancellation of one long computation, shared between the code that computes and
//! whoever watches it: a job's heartbeat (which copies it into the job's row, `GET /v1/jobs/{id}`)
//! or a progress bar on the terminal (`ia-rct estimate`).
//!
//! The computation names its stage and how many steps it has, advances as it goes, and calls
//! [`Progress::check`] often (at least every 100 ms of work); once someone has called
//! [`Progress::cancel`], `check` returns [`Cancelled`] and the computation returns early with
//! nothing half-written. Everything here is atomics and one short lock, so a watcher polling it
//! never slows the computation down.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// The computation was cancelled before it finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// The progress of one computation; see the module documentation.
#[derive(Debug)]
pub struct Progress {
    stage: Mutex<Stage>,
    done: AtomicU64,
    total: AtomicU64,
    cancelled: AtomicBool,
    started: Instant,
}

#[derive(Debug)]
struct Stage {
    name: String,
    started: Instant,
}

/// What a watcher reads: the stage, how far it is, and how long it has taken.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Snapshot {
    /// The stage now running (`read`, `estimate`, …).
    pub stage: String,
    /// Steps of this stage done.
    pub done: u64,
    /// Steps of this stage in all (0 while unknown).
    pub total: u64,
    /// Seconds since the computation started.
    pub elapsed_seconds: f64,
    /// Seconds left in this stage at the rate so far (none until a step is done).
    pub remaining_seconds: Option<f64>,
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Progress {
    /// A computation that starts now, in stage `start`.
    pub fn new() -> Progress {
        let now = Instant::now();
        Progress {
            stage: Mutex::new(Stage {
                name: "start".into(),
                started: now,
            }),
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            cancelled: AtomicBool::new(false),
            started: now,
        }
    }

    /// Enters stage `name` of `total` steps, with none done.
    pub fn stage(&self, name: &str, total: u64) {
        let mut stage = self.stage.lock().unwrap_or_else(|e| e.into_inner());
        stage.name = name.to_owned();
        stage.started = Instant::now();
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }

    /// Marks `steps` more steps of the stage as done.
    pub fn advance(&self, steps: u64) {
        self.done.fetch_add(steps, Ordering::Relaxed);
    }

    /// Asks the computation to stop.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }

    /// Whether [`Progress::cancel`] has been called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// `Err(Cancelled)` once the computation has been asked to stop.
    ///
    /// # Errors
    /// [`Cancelled`].
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }

    /// Where the computation is now.
    pub fn snapshot(&self) -> Snapshot {
        let (name, stage_started) = {
            let stage = self.stage.lock().unwrap_or_else(|e| e.into_inner());
            (stage.name.clone(), stage.started)
        };
        let done = self.done.load(Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed);
        let in_stage = stage_started.elapsed().as_secs_f64();
        let remaining_seconds =
            (done > 0 && total >= done).then(|| in_stage / done as f64 * (total - done) as f64);
        Snapshot {
            stage: name,
            done,
            total,
            elapsed_seconds: self.started.elapsed().as_secs_f64(),
            remaining_seconds,
        }
    }

    /// How long since the computation started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_steps_and_cancellation() {
        let p = Progress::new();
        assert_eq!(p.snapshot().stage, "start");
        p.stage("estimate", 4);
        p.advance(1);
        let s = p.snapshot();
        assert_eq!((s.stage.as_str(), s.done, s.total), ("estimate", 1, 4));
        assert!(s.remaining_seconds.is_some_and(|r| r >= 0.0));
        p.stage("write", 0);
        let s = p.snapshot();
        assert_eq!((s.done, s.total, s.remaining_seconds), (0, 0, None));
        assert_eq!(p.check(), Ok(()));
        p.cancel();
        assert!(p.is_cancelled());
        assert_eq!(p.check(), Err(Cancelled));
    }
}
