//! A decorator retrying transient errors with exponential backoff and jitter.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use crate::{Backend, BackendError, FileType, Result};

/// How often and how patiently [`RetryBackend`] retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts per operation, including the first (0 counts as 1).
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each further retry.
    pub base_delay: Duration,
    /// Upper bound of a single delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, 100 ms base delay, at most 10 s between attempts.
    fn default() -> Self {
        Self { max_attempts: 5, base_delay: Duration::from_millis(100), max_delay: Duration::from_secs(10) }
    }
}

impl RetryPolicy {
    /// A policy with `max_attempts` attempts and no delay (for tests).
    pub fn immediate(max_attempts: u32) -> Self {
        Self { max_attempts, base_delay: Duration::ZERO, max_delay: Duration::ZERO }
    }

    /// The nominal delay before retry number `retry` (1-based):
    /// `base_delay * 2^(retry-1)`, capped at `max_delay`, without jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32 << retry.saturating_sub(1).min(31);
        self.base_delay.checked_mul(factor).unwrap_or(self.max_delay).min(self.max_delay)
    }

    /// The delay actually slept before retry number `retry`: a random duration
    /// between half and all of [`RetryPolicy::backoff`] ("equal jitter").
    pub fn delay_with_jitter(&self, retry: u32) -> Duration {
        let nominal = self.backoff(retry);
        let half = nominal / 2;
        let spread = (nominal - half).as_nanos() as u64;
        if spread == 0 {
            return nominal;
        }
        let random = RandomState::new().build_hasher().finish();
        half + Duration::from_nanos(random % (spread + 1))
    }
}

/// Callback told about each retry: the error, the number of the attempt that
/// failed (1-based) and the delay before the next one.
type RetryNotify = Box<dyn Fn(&BackendError, u32, Duration) + Send + Sync>;

/// Wraps a backend and retries operations failing with a retryable error
/// ([`BackendError::is_retryable`]); other errors are returned at once.
///
/// Every operation is safe to repeat: `save` is atomic and replaces, reads have
/// no effect. A retried `remove` that finds the object gone treats that as
/// success (the failed attempt may have removed it).
pub struct RetryBackend<B> {
    inner: B,
    policy: RetryPolicy,
    notify: Option<RetryNotify>,
}

impl<B: Backend> RetryBackend<B> {
    /// Wraps `inner` with `policy`.
    pub fn new(inner: B, policy: RetryPolicy) -> Self {
        Self { inner, policy, notify: None }
    }

    /// Calls `notify(error, failed_attempt, delay)` before each retry, e.g. to
    /// log a warning.
    pub fn with_notify(mut self, notify: impl Fn(&BackendError, u32, Duration) + Send + Sync + 'static) -> Self {
        self.notify = Some(Box::new(notify));
        self
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The policy in use.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Runs `op` until it succeeds, fails permanently or attempts run out.
    /// `op` receives the 1-based attempt number.
    fn run<T>(&self, mut op: impl FnMut(u32) -> Result<T>) -> Result<T> {
        let max = self.policy.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            match op(attempt) {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && attempt < max => {
                    self.pause(&e, attempt);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Report a retryable failure of attempt `attempt` and wait before the next.
    fn pause(&self, e: &crate::BackendError, attempt: u32) {
        let delay = self.policy.delay_with_jitter(attempt);
        if let Some(notify) = &self.notify {
            notify(e, attempt, delay);
        }
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
    }
}

impl<B: fmt::Debug> fmt::Debug for RetryBackend<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBackend")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .field("notify", &self.notify.is_some())
            .finish()
    }
}

impl<B: Backend> Backend for RetryBackend<B> {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn appender(&self, ft: FileType, name: &str) -> Result<Option<Box<dyn crate::Appender>>> {
        self.inner.appender(ft, name)
    }

    fn create(&self) -> Result<()> {
        self.run(|_| self.inner.create())
    }

    fn has_config(&self) -> Result<bool> {
        self.run(|_| self.inner.has_config())
    }

    fn save(&self, ft: FileType, name: &str, data: &[u8]) -> Result<()> {
        self.run(|_| self.inner.save(ft, name, data))
    }

    fn save_releasing(
        &self,
        ft: FileType,
        name: &str,
        data: Vec<u8>,
        release: &mut dyn FnMut(Vec<u8>),
    ) -> std::result::Result<(), crate::Unsaved> {
        // Retried while the buffer is still here (a failure after its release cannot be).
        let max = self.policy.max_attempts.max(1);
        let mut attempt = 1;
        let mut data = data;
        loop {
            match self.inner.save_releasing(ft, name, data, release) {
                Ok(()) => return Ok(()),
                Err(failed) => match *failed {
                    (e, Some(back)) if e.is_retryable() && attempt < max => {
                        self.pause(&e, attempt);
                        data = back;
                        attempt += 1;
                    }
                    other => return Err(Box::new(other)),
                },
            }
        }
    }

    fn load(&self, ft: FileType, name: &str) -> Result<Vec<u8>> {
        self.run(|_| self.inner.load(ft, name))
    }

    fn load_range(&self, ft: FileType, name: &str, offset: u64, length: u32) -> Result<Vec<u8>> {
        self.run(|_| self.inner.load_range(ft, name, offset, length))
    }

    fn size(&self, ft: FileType, name: &str) -> Result<u64> {
        self.run(|_| self.inner.size(ft, name))
    }

    fn list(&self, ft: FileType) -> Result<Vec<(String, u64)>> {
        self.run(|_| self.inner.list(ft))
    }

    fn list_prefix(&self, ft: FileType, prefix: &str) -> Result<Vec<(String, u64)>> {
        self.run(|_| self.inner.list_prefix(ft, prefix))
    }

    fn remove(&self, ft: FileType, name: &str) -> Result<()> {
        self.run(|attempt| match self.inner.remove(ft, name) {
            Err(e) if attempt > 1 && e.is_not_found() => Ok(()),
            other => other,
        })
    }

    fn remove_many(&self, ft: FileType, names: &[String]) -> Result<()> {
        // Missing objects are ignored, so retrying the whole batch is safe.
        self.run(|_| self.inner.remove_many(ft, names))
    }

    fn simulate_interrupted_save(&self, ft: FileType, name: &str, data: &[u8]) -> Result<()> {
        self.inner.simulate_interrupted_save(ft, name, data)
    }
    fn list_temporary(&self) -> Result<Vec<crate::TemporaryFile>> {
        self.inner.list_temporary()
    }

    fn remove_temporary(&self, name: &str) -> Result<()> {
        self.inner.remove_temporary(name)
    }

    fn readable_by_others(&self, ft: FileType) -> Result<Vec<(String, u32)>> {
        self.inner.readable_by_others(ft)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(4), Duration::from_millis(800));
        assert_eq!(p.backoff(20), Duration::from_secs(10));
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(10));
        for retry in 1..10 {
            let d = p.delay_with_jitter(retry);
            assert!(d >= p.backoff(retry) / 2 && d <= p.backoff(retry), "{d:?}");
        }
        assert_eq!(RetryPolicy::immediate(3).delay_with_jitter(2), Duration::ZERO);
    }
}
