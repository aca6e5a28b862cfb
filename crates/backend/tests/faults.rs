//! Retry and fault-injection decorators.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use lifeboat_backend::{
    conformance, Backend, BackendError, Fault, FaultyBackend, FileType, LocalBackend, RetryBackend, RetryPolicy,
};

fn retryable_faults() -> Vec<Fault> {
    // Every rule fires once; at most two in a row hit the same operation kind,
    // well within 5 attempts.
    let mut faults = Vec::new();
    for nth in [1, 2, 4, 7, 11, 20, 35, 60] {
        faults.push(Fault::FailSave { ft: None, nth, retryable: true });
        faults.push(Fault::FailLoad { ft: None, nth, retryable: true });
    }
    for ft in FileType::ALL {
        faults.push(Fault::FailSave { ft: Some(ft), nth: 2, retryable: true });
        faults.push(Fault::FailLoad { ft: Some(ft), nth: 1, retryable: true });
    }
    faults
}

#[test]
fn retry_over_faulty_local_conforms() {
    let root = tempfile::tempdir().expect("tempdir");
    let base = root.path().to_path_buf();
    let n = AtomicUsize::new(0);
    let injected = Arc::new(AtomicUsize::new(0));
    let seen = injected.clone();
    let make = move || {
        let dir = base.join(format!("repo{}", n.fetch_add(1, Ordering::SeqCst)));
        let faulty = FaultyBackend::new(LocalBackend::new(dir), retryable_faults());
        let seen = seen.clone();
        let retry = RetryBackend::new(faulty, RetryPolicy::immediate(5)).with_notify(move |e, _, _| {
            assert!(e.is_retryable());
            seen.fetch_add(1, Ordering::SeqCst);
        });
        Box::new(retry) as Box<dyn Backend>
    };
    conformance::run_all(&make);
    assert!(injected.load(Ordering::SeqCst) > 50, "faults were injected and retried");
}

#[test]
fn faulty_without_retry_fails() {
    let root = tempfile::tempdir().expect("tempdir");
    let b = FaultyBackend::new(
        LocalBackend::new(root.path()),
        vec![Fault::FailSave { ft: Some(FileType::Index), nth: 2, retryable: true }],
    );
    b.create().expect("create");
    b.save(FileType::Index, "aa", b"1").expect("first save");
    b.save(FileType::Pack, "aaaa", b"1").expect("other type does not count");
    let e = b.save(FileType::Index, "bb", b"2").expect_err("second index save");
    assert!(matches!(e, BackendError::Injected { retryable: true, .. }), "{e}");
    assert!(e.is_retryable());
    assert!(b.load(FileType::Index, "bb").expect_err("not saved").is_not_found());
    b.save(FileType::Index, "cc", b"3").expect("third save");
    assert_eq!(b.save_attempts(), 4);
    assert_eq!(b.injected_faults(), 1);
}

#[test]
fn retry_recovers_and_counts_attempts() {
    let root = tempfile::tempdir().expect("tempdir");
    let faulty = Arc::new(FaultyBackend::new(
        LocalBackend::new(root.path()),
        vec![
            Fault::FailLoad { ft: Some(FileType::Snapshot), nth: 1, retryable: true },
            Fault::FailLoad { ft: Some(FileType::Snapshot), nth: 2, retryable: true },
        ],
    ));
    let retries = Arc::new(AtomicU32::new(0));
    let counter = retries.clone();
    let b = RetryBackend::new(faulty.clone(), RetryPolicy::immediate(5)).with_notify(move |_, attempt, _| {
        counter.fetch_add(1, Ordering::SeqCst);
        assert!(attempt < 5);
    });
    b.create().expect("create");
    b.save(FileType::Snapshot, "s1", b"snap").expect("save");
    assert_eq!(b.load(FileType::Snapshot, "s1").expect("load"), b"snap");
    assert_eq!(faulty.load_attempts(), 3);
    assert_eq!(retries.load(Ordering::SeqCst), 2);
}

#[test]
fn non_retryable_fault_is_not_retried() {
    let root = tempfile::tempdir().expect("tempdir");
    let faulty = Arc::new(FaultyBackend::new(
        LocalBackend::new(root.path()),
        Fault::parse_list("fail-save:pack:1,fail-load:pack:1:permanent").expect("spec"),
    ));
    let b = RetryBackend::new(faulty.clone(), RetryPolicy::immediate(5));
    b.create().expect("create");
    let e = b.save(FileType::Pack, "abcd", b"data").expect_err("permanent fault");
    assert!(!e.is_retryable());
    assert_eq!(faulty.save_attempts(), 1, "a permanent error must not be retried");
    b.save(FileType::Pack, "abcd", b"data").expect("next save");
    let e = b.load(FileType::Pack, "abcd").expect_err("permanent fault");
    assert!(matches!(e, BackendError::Injected { retryable: false, .. }));
    assert_eq!(faulty.load_attempts(), 1);
    // Real permanent errors (not found) are not retried either.
    let e = b.load(FileType::Pack, "ffff").expect_err("missing");
    assert!(e.is_not_found());
    assert_eq!(faulty.load_attempts(), 2);
}

#[test]
fn retries_are_bounded() {
    let root = tempfile::tempdir().expect("tempdir");
    let faults = (1..=10).map(|nth| Fault::FailSave { ft: None, nth, retryable: true }).collect();
    let faulty = Arc::new(FaultyBackend::new(LocalBackend::new(root.path()), faults));
    let b = RetryBackend::new(faulty.clone(), RetryPolicy::immediate(3));
    b.create().expect("create");
    let e = b.save(FileType::Key, "k", b"key").expect_err("still failing");
    assert!(e.is_retryable());
    assert_eq!(faulty.save_attempts(), 3);
}

#[test]
fn retried_remove_tolerates_not_found() {
    // A remove whose first attempt failed transiently (possibly after deleting)
    // must not report not-found on the retry: simulate with a backend that
    // deletes and then fails.
    struct DeleteThenFail {
        inner: LocalBackend,
        failed: AtomicU32,
    }
    impl Backend for DeleteThenFail {
        fn location(&self) -> String {
            self.inner.location()
        }
        fn create(&self) -> lifeboat_backend::Result<()> {
            self.inner.create()
        }
        fn has_config(&self) -> lifeboat_backend::Result<bool> {
            self.inner.has_config()
        }
        fn save(&self, ft: FileType, name: &str, data: &[u8]) -> lifeboat_backend::Result<()> {
            self.inner.save(ft, name, data)
        }
        fn load(&self, ft: FileType, name: &str) -> lifeboat_backend::Result<Vec<u8>> {
            self.inner.load(ft, name)
        }
        fn load_range(&self, ft: FileType, name: &str, offset: u64, length: u32) -> lifeboat_backend::Result<Vec<u8>> {
            self.inner.load_range(ft, name, offset, length)
        }
        fn size(&self, ft: FileType, name: &str) -> lifeboat_backend::Result<u64> {
            self.inner.size(ft, name)
        }
        fn list(&self, ft: FileType) -> lifeboat_backend::Result<Vec<(String, u64)>> {
            self.inner.list(ft)
        }
        fn remove(&self, ft: FileType, name: &str) -> lifeboat_backend::Result<()> {
            self.inner.remove(ft, name)?;
            if self.failed.fetch_add(1, Ordering::SeqCst) == 0 {
                let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "lost reply");
                let ctx =
                    lifeboat_backend::ErrorContext::new(self.location(), lifeboat_backend::Op::Remove, Some(ft), name);
                return Err(BackendError::from_io(ctx, io));
            }
            Ok(())
        }
    }
    let root = tempfile::tempdir().expect("tempdir");
    let inner = DeleteThenFail { inner: LocalBackend::new(root.path()), failed: AtomicU32::new(0) };
    let b = RetryBackend::new(inner, RetryPolicy::immediate(3));
    b.create().expect("create");
    b.save(FileType::Lock, "l1", b"lock").expect("save");
    b.remove(FileType::Lock, "l1").expect("remove retried");
    assert!(b.remove(FileType::Lock, "l1").expect_err("gone").is_not_found());
}

#[test]
fn corrupt_load_flips_one_byte() {
    let root = tempfile::tempdir().expect("tempdir");
    let b =
        FaultyBackend::new(LocalBackend::new(root.path()), Fault::parse_list("corrupt-load:index:2").expect("spec"));
    b.create().expect("create");
    let data: Vec<u8> = (0..100).collect();
    b.save(FileType::Index, "i1", &data).expect("save");
    assert_eq!(b.load(FileType::Index, "i1").expect("load 1"), data);
    let bad = b.load(FileType::Index, "i1").expect("load 2");
    let diffs = bad.iter().zip(&data).filter(|(a, b)| a != b).count();
    assert_eq!(diffs, 1);
    assert_eq!(bad.len(), data.len());
    assert_eq!(b.load(FileType::Index, "i1").expect("load 3"), data);
    // load_range counts as a load too.
    let b = FaultyBackend::new(LocalBackend::new(root.path()), Fault::parse_list("corrupt-load:any:1").expect("spec"));
    let part = b.load_range(FileType::Index, "i1", 10, 4).expect("range");
    assert_ne!(part, &data[10..14]);
    assert_eq!(b.injected_faults(), 1);
}

/// Environment variable telling [`kill_on_save_child`] it runs as the child.
const CHILD_DIR_ENV: &str = "LIFEBOAT_BACKEND_TEST_KILL_CHILD_DIR";

/// Child half of [`kill_on_save_crashes_and_leaves_no_visible_object`]: does
/// nothing unless started by it.
#[test]
fn kill_on_save_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let faults = Fault::parse_list("kill-on-save:index:2").expect("spec");
    let b = FaultyBackend::new(LocalBackend::new(dir), faults);
    b.save(FileType::Index, "first", b"complete index").expect("first save");
    let _ = b.save(FileType::Index, "second", &[7u8; 1000]);
    // Not reached: the process is killed during the second save.
    std::process::exit(3);
}

#[cfg(unix)]
#[test]
fn kill_on_save_crashes_and_leaves_no_visible_object() {
    use std::os::unix::process::ExitStatusExt;

    let root = tempfile::tempdir().expect("tempdir");
    let b = LocalBackend::new(root.path());
    b.create().expect("create");
    let exe = std::env::current_exe().expect("current_exe");
    let status = std::process::Command::new(exe)
        .args(["--exact", "kill_on_save_child", "--test-threads=1", "--nocapture"])
        .env(CHILD_DIR_ENV, root.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run child");
    assert_eq!(status.signal(), Some(9), "child should be SIGKILLed: {status:?}");

    assert_eq!(b.list(FileType::Index).expect("list"), vec![("first".to_owned(), 14)]);
    assert!(b.load(FileType::Index, "second").expect_err("absent").is_not_found());
    let temps: Vec<u64> = std::fs::read_dir(root.path().join("index"))
        .expect("read_dir")
        .map(|e| e.expect("entry"))
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .map(|e| e.metadata().expect("metadata").len())
        .collect();
    assert_eq!(temps, vec![500], "half of the object is left in a temp file");
}

#[test]
fn a_save_releasing_its_buffer_is_retried_while_it_holds_it_and_releases_it_once() {
    let root = tempfile::tempdir().expect("tempdir");
    let faulty = Arc::new(FaultyBackend::new(
        LocalBackend::new(root.path()),
        vec![
            Fault::FailSave { ft: Some(FileType::Pack), nth: 1, retryable: true },
            Fault::FailSave { ft: Some(FileType::Pack), nth: 2, retryable: true },
        ],
    ));
    let b = RetryBackend::new(faulty.clone(), RetryPolicy::immediate(5));
    b.create().expect("create");
    let mut released = Vec::new();
    b.save_releasing(FileType::Pack, "abcd", b"pack bytes".to_vec(), &mut |buf| released.push(buf))
        .map_err(|f| f.0)
        .expect("saved on the third attempt");
    assert_eq!(faulty.save_attempts(), 3);
    assert_eq!(released, vec![b"pack bytes".to_vec()], "the buffer comes back once, whole");
    assert_eq!(b.load(FileType::Pack, "abcd").expect("load"), b"pack bytes");
    // A permanent failure hands the buffer back with the error, unreleased.
    let faulty = Arc::new(FaultyBackend::new(
        LocalBackend::new(root.path()),
        vec![Fault::FailSave { ft: Some(FileType::Pack), nth: 1, retryable: false }],
    ));
    let b = RetryBackend::new(faulty, RetryPolicy::immediate(5));
    let mut released = 0;
    let failed = b
        .save_releasing(FileType::Pack, "ef01", b"other".to_vec(), &mut |_| released += 1)
        .expect_err("permanent fault");
    assert_eq!((released, failed.1.as_deref()), (0, Some(&b"other"[..])));
}
