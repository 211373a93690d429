//! A progress bar on stderr for the long commands (`ia-rct estimate`, `ia-rct demo`), drawn from
//! [`Snapshot`]s: those of a [`Progress`] in this process ([`watch`]), or any other source of
//! snapshots, such as a job's progress polled over HTTP ([`Bar::update`]). Nothing is drawn when
//! stderr is not a terminal, so logs, pipes and tests see no control characters.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::progress::{Progress, Snapshot};

/// How often [`watch`] draws.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// The stage whose steps are bytes (shown as MB): the reading of statistics files.
pub const BYTES_STAGE: &str = "read";

/// A bar on stderr, or nothing when stderr is not a terminal.
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    /// A bar on stderr if stderr is a terminal; otherwise one that draws nothing.
    pub fn start() -> Bar {
        if std::io::stderr().is_terminal() {
            Bar::drawn(ProgressDrawTarget::stderr())
        } else {
            Bar::hidden()
        }
    }

    /// A bar that draws nothing.
    pub fn hidden() -> Bar {
        Bar { bar: None }
    }

    fn drawn(target: ProgressDrawTarget) -> Bar {
        let bar = ProgressBar::with_draw_target(Some(1), target);
        // The template has no fallible parts; were it refused, the default style stays.
        if let Ok(style) = ProgressStyle::with_template("{bar:30.cyan/blue} {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        Bar { bar: Some(bar) }
    }

    /// Whether the bar draws anything.
    pub fn is_drawn(&self) -> bool {
        self.bar.is_some()
    }

    /// Shows `snapshot`.
    pub fn update(&self, snapshot: &Snapshot) {
        let Some(bar) = &self.bar else {
            return;
        };
        let (position, length) = position(snapshot);
        bar.set_length(length);
        bar.set_position(position);
        bar.set_message(describe(snapshot));
    }

    /// Prints `line` on stderr above the bar (or just prints it when no bar is drawn).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Removes the bar from the terminal.
    pub fn finish(self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The bar's position and length for a snapshot (a stage of unknown length shows empty).
fn position(s: &Snapshot) -> (u64, u64) {
    if s.total == 0 {
        (0, 1)
    } else {
        (s.done.min(s.total), s.total)
    }
}

/// The text after the bar: the stage, how far it is and the time left, e.g.
/// `read 120.5/485.3 MB, 2 s left` or `estimate 3/4, 1 s left`.
pub fn describe(s: &Snapshot) -> String {
    let amount = if s.stage == BYTES_STAGE {
        let mb = |b: u64| b as f64 / 1e6;
        if s.total > 0 {
            format!("{:.1}/{:.1} MB", mb(s.done), mb(s.total))
        } else {
            format!("{:.1} MB", mb(s.done))
        }
    } else if s.total > 0 {
        format!("{}/{}", s.done, s.total)
    } else {
        format!("{}", s.done)
    };
    match s.remaining_seconds {
        Some(left) if left.is_finite() && left >= 0.5 => {
            format!("{} {amount}, {:.0} s left", s.stage, left)
        }
        _ => format!("{} {amount}", s.stage),
    }
}

/// A bar drawn from a [`Progress`] on a thread of its own until [`Watch::finish`].
pub struct Watch {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<Bar>>,
}

/// Draws `progress` on `bar` every [`INTERVAL`] until the returned handle is finished (or
/// dropped). With a bar that draws nothing, no thread is started.
pub fn watch(progress: Arc<Progress>, bar: Bar) -> Watch {
    if !bar.is_drawn() {
        return Watch {
            stop: None,
            thread: None,
        };
    }
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        loop {
            bar.update(&progress.snapshot());
            match stopped.recv_timeout(INTERVAL) {
                Err(RecvTimeoutError::Timeout) => continue,
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return bar,
            }
        }
    });
    Watch {
        stop: Some(stop),
        thread: Some(thread),
    }
}

impl Watch {
    /// Stops drawing and removes the bar.
    pub fn finish(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take()
            && let Ok(bar) = thread.join()
        {
            bar.finish();
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(stage: &str, done: u64, total: u64, left: Option<f64>) -> Snapshot {
        Snapshot {
            stage: stage.into(),
            done,
            total,
            elapsed_seconds: 1.0,
            remaining_seconds: left,
        }
    }

    #[test]
    fn describes_bytes_steps_and_time_left() {
        assert_eq!(
            describe(&snapshot("read", 120_500_000, 485_300_000, Some(2.2))),
            "read 120.5/485.3 MB, 2 s left"
        );
        assert_eq!(
            describe(&snapshot("read", 1_000_000, 0, None)),
            "read 1.0 MB"
        );
        assert_eq!(
            describe(&snapshot("estimate", 3, 4, Some(0.1))),
            "estimate 3/4"
        );
        assert_eq!(
            describe(&snapshot("estimate", 1, 4, Some(30.4))),
            "estimate 1/4, 30 s left"
        );
        assert_eq!(describe(&snapshot("start", 0, 0, None)), "start 0");
        assert_eq!(describe(&snapshot("x", 1, 2, Some(f64::INFINITY))), "x 1/2");
    }

    #[test]
    fn positions_stay_within_the_bar() {
        assert_eq!(position(&snapshot("read", 5, 0, None)), (0, 1));
        assert_eq!(position(&snapshot("read", 5, 10, None)), (5, 10));
        assert_eq!(position(&snapshot("read", 15, 10, None)), (10, 10));
    }

    #[test]
    fn a_hidden_bar_starts_no_thread_and_a_drawn_one_stops() {
        let progress = Arc::new(Progress::new());
        let w = watch(progress.clone(), Bar::hidden());
        assert!(w.thread.is_none());
        w.finish();
        // A bar drawn to a hidden target: the thread polls, then stops when finished or dropped.
        let w = watch(progress.clone(), Bar::drawn(ProgressDrawTarget::hidden()));
        progress.stage("estimate", 2);
        progress.advance(1);
        std::thread::sleep(INTERVAL * 2);
        w.finish();
        let w = watch(progress, Bar::drawn(ProgressDrawTarget::hidden()));
        drop(w);
    }

    #[test]
    fn a_bar_shows_the_snapshot() {
        let bar = Bar::drawn(ProgressDrawTarget::hidden());
        bar.update(&snapshot("estimate", 3, 4, None));
        let inner = bar.bar.as_ref().expect("drawn");
        assert_eq!((inner.position(), inner.length()), (3, Some(4)));
        assert_eq!(inner.message(), "estimate 3/4");
        bar.finish();
    }
}
