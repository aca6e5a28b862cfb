//! Progress as a stream of typed events. Operations call an [`Observer`]; the CLI draws
//! progress bars and start/end lines from the events, a daemon publishes them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

/// Something that happened during an operation.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A long step of one source began (`backup`, `restore test`, `drill`).
    Started {
        /// The step.
        step: &'static str,
        /// Source name (or the snapshot's paths for plain backups).
        source: String,
        /// Source kind.
        kind: String,
        /// A few words on what happens (`restoring snapshot 1a2b3c4d into a scratch target`).
        detail: String,
    },
    /// That step ended.
    Finished {
        /// The step.
        step: &'static str,
        /// Source name.
        source: String,
        /// Whether it succeeded.
        ok: bool,
        /// How long it took.
        seconds: f64,
        /// A few words on the outcome.
        detail: String,
    },
    /// The size of the work, once known (e.g. after a walk of the backed-up files).
    Totals {
        /// Files (0 when unknown).
        files: u64,
        /// Bytes.
        bytes: u64,
    },
    /// Work done so far in the current step.
    Progress {
        /// Files done.
        files: u64,
        /// Bytes done (read, restored, checked).
        bytes: u64,
        /// Bytes of new data stored (backups).
        bytes_new: u64,
    },
    /// Information worth a line (not a problem): e.g. reading without a lock.
    Notice {
        /// The message (one line).
        message: String,
    },
    /// Something the operator should know that does not stop the operation.
    Warning {
        /// The message (one line).
        message: String,
    },
}

/// Receives events; must be cheap (it is called from worker threads).
pub type Observer = dyn Fn(&Event) + Send + Sync;

/// An observer that ignores everything.
pub fn ignore() -> Arc<Observer> {
    Arc::new(|_: &Event| {})
}

/// Runs `tick` every `every` on a thread until stopped (or dropped); stopping wakes it at once,
/// so an operation never waits for a sleeping progress thread.
pub struct Ticker {
    stop: Option<std::sync::mpsc::Sender<()>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    /// Start ticking.
    pub fn start(every: Duration, mut tick: impl FnMut() + Send + 'static) -> Ticker {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let handle = std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                tick();
            }
        });
        Ticker { stop: Some(stop), handle: Some(handle) }
    }

    /// Reports the engine's counters as [`Event::Progress`] every 150 ms until stopped.
    pub fn counters(counters: Arc<lifeboat_repository::archiver::Progress>, observer: Arc<Observer>) -> Ticker {
        Ticker::start(Duration::from_millis(150), move || {
            observer(&Event::Progress {
                files: counters.files.load(Ordering::Relaxed),
                bytes: counters.bytes.load(Ordering::Relaxed),
                bytes_new: counters.bytes_new.load(Ordering::Relaxed),
            })
        })
    }

    /// Stop and wait for the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shutdown();
    }
}
