//! The small tokio runtime behind the synchronous [`crate::Backend`] calls of the remote
//! backends (REST, SFTP, Azure, GCS): two worker threads drive the sockets, and any number of
//! threads may block on it at once.

use std::future::Future;

/// A runtime that runs futures to completion from any thread.
pub(crate) struct Bridge {
    runtime: tokio::runtime::Runtime,
}

impl Bridge {
    /// A runtime whose threads are named `lifeboat-NAME`.
    pub(crate) fn new(name: &str) -> std::result::Result<Self, String> {
        Self::build(name, false)
    }

    /// Like [`Bridge::new`], with SIGPIPE blocked on the runtime's threads: a write to a pipe
    /// whose reader died (an `ssh` child) then fails with `EPIPE` instead of killing the
    /// process (the CLI restores SIGPIPE's default action for `lifeboat … | head`). Run every
    /// future that writes to such a pipe on these threads (`tokio::spawn`).
    pub(crate) fn new_without_sigpipe(name: &str) -> std::result::Result<Self, String> {
        Self::build(name, true)
    }

    fn build(name: &str, block_sigpipe: bool) -> std::result::Result<Self, String> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(2).thread_name(format!("lifeboat-{name}")).enable_all();
        if block_sigpipe {
            builder.on_thread_start(block_sigpipe_here);
        }
        let runtime = builder.build().map_err(|e| format!("cannot start the I/O runtime: {e}"))?;
        Ok(Bridge { runtime })
    }

    /// Runs a future to completion, from any thread (also from inside another tokio runtime,
    /// where it blocks a helper thread instead).
    pub(crate) fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        if tokio::runtime::Handle::try_current().is_err() {
            return self.runtime.block_on(fut);
        }
        std::thread::scope(|s| match s.spawn(|| self.runtime.block_on(fut)).join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    }
}

/// Blocks SIGPIPE for the calling thread.
fn block_sigpipe_here() {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGPIPE);
    // Only fails for an invalid `how`, which this is not.
    let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
}
