//! Waiting for a SQLite database's write-ahead log to change, so that a follower costs
//! nothing while the database is idle and sees a transaction as soon as it lands: inotify on
//! the database's directory, for writes to the log and for the log's name being created,
//! deleted or renamed over. Where inotify cannot be had (its limits reached, a system without
//! it) the wait is a plain sleep and the caller polls, as it would without this.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

/// What a wait found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// The log was written to (or may have been: the watch overflowed, or there is none).
    pub written: bool,
    /// The file at the log's path was created, deleted or renamed over: open it again.
    pub replaced: bool,
}

/// What a wait reports when it cannot know: the log may have been written.
const MAYBE_WRITTEN: Change = Change { written: true, replaced: false };

/// A watch on one log.
pub struct LogWatch {
    inotify: Option<Inotify>,
    name: OsString,
}

impl LogWatch {
    /// Watch the log at `wal` (its directory must exist). Never fails: without inotify,
    /// [`LogWatch::wait`] sleeps and reports a possible change.
    pub fn new(wal: &Path) -> LogWatch {
        let name = wal.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        let dir = wal.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok().filter(|i| {
            let mask = AddWatchFlags::IN_MODIFY
                | AddWatchFlags::IN_CREATE
                | AddWatchFlags::IN_DELETE
                | AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_MOVED_FROM
                | AddWatchFlags::IN_DELETE_SELF
                | AddWatchFlags::IN_MOVE_SELF;
            i.add_watch(dir, mask).is_ok()
        });
        LogWatch { inotify, name }
    }

    /// Whether changes are notified (otherwise every wait is a sleep).
    pub fn notified(&self) -> bool {
        self.inotify.is_some()
    }

    /// Wait up to `timeout` for the log to change; returns at once when a change is pending.
    /// Without inotify: sleeps `timeout` and reports the log as possibly written.
    pub fn wait(&mut self, timeout: Duration) -> Change {
        let Some(i) = &self.inotify else {
            std::thread::sleep(timeout);
            return MAYBE_WRITTEN;
        };
        let ms = PollTimeout::try_from(timeout.as_millis().min(60_000) as u32).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(i.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, ms) {
            Ok(0) => Change::default(),
            // Interrupted by a signal (a stop, usually): the caller looks again.
            Err(nix::errno::Errno::EINTR) => Change::default(),
            Ok(_) => self.drain(),
            Err(_) => {
                std::thread::sleep(timeout);
                MAYBE_WRITTEN
            }
        }
    }

    /// Take the changes pending now, without waiting.
    pub fn drain(&mut self) -> Change {
        let Some(i) = &self.inotify else { return MAYBE_WRITTEN };
        let mut change = Change::default();
        loop {
            match i.read_events() {
                Ok(events) if !events.is_empty() => {
                    for e in events {
                        // An overflowed queue, or the directory itself gone or moved: anything
                        // may have happened, the next read finds out.
                        let all = e.mask.intersects(
                            AddWatchFlags::IN_Q_OVERFLOW | AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF,
                        );
                        let ours = e.name.as_deref() == Some(self.name.as_os_str());
                        change.written |= all || ours;
                        change.replaced |= all || (ours && !e.mask.contains(AddWatchFlags::IN_MODIFY));
                    }
                }
                // EAGAIN: nothing more pending.
                _ => return change,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn writes_and_replacements_of_the_log_wake_the_wait_and_other_files_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("app.db-wal");
        std::fs::write(&wal, b"x").unwrap();
        let mut w = LogWatch::new(&wal);
        assert!(w.notified(), "inotify is available on the test machine");
        assert_eq!(w.wait(Duration::from_millis(20)), Change::default());
        std::fs::write(dir.path().join("other"), b"y").unwrap();
        assert_eq!(w.wait(Duration::from_millis(20)), Change::default(), "another file");
        std::fs::OpenOptions::new().append(true).open(&wal).unwrap().write_all(b"more").unwrap();
        let t = std::time::Instant::now();
        assert_eq!(w.wait(Duration::from_secs(5)), Change { written: true, replaced: false });
        assert!(t.elapsed() < Duration::from_secs(1));
        std::fs::remove_file(&wal).unwrap();
        assert!(w.wait(Duration::from_secs(5)).replaced);
        std::fs::write(&wal, b"new").unwrap();
        assert!(w.wait(Duration::from_secs(5)).replaced);
        assert_eq!(w.drain(), Change::default(), "everything was taken");
    }
}
