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
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(format!("lifeboat-{name}"))
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the I/O runtime: {e}"))?;
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
