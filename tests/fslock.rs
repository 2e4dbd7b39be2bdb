//! DeferredFilesystemLock: Twisted's DeferredFilesystemLockTests, with two
//! independent handles contending for one path, on ManualClock.

use std::path::PathBuf;
use std::time::Duration;

use tokio_deferred::{
    AlreadyTryingToLockError, CancelledError, DeferredFilesystemLock, ManualClock, TimeoutError,
};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// A fresh directory for one test, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "tokio-deferred-fslock-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn lock_path(&self) -> PathBuf {
        self.0.join("lock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pair(dir: &TempDir, clock: &ManualClock) -> (DeferredFilesystemLock, DeferredFilesystemLock) {
    (
        DeferredFilesystemLock::with_clock(dir.lock_path(), clock.clone()),
        DeferredFilesystemLock::with_clock(dir.lock_path(), clock.clone()),
    )
}

// Twisted: test_defer.py DeferredFilesystemLockTests.test_waitUntilLockedWithNoLock
#[test]
fn an_unheld_lock_is_taken_at_once() {
    let dir = TempDir::new("unheld");
    let clock = ManualClock::new();
    let lock = DeferredFilesystemLock::with_clock(dir.lock_path(), clock.clone());
    let d = lock.defer_until_locked(None);
    assert!(d.try_take().unwrap().is_ok());
    assert!(lock.is_locked());
    assert!(clock.pending_calls().is_empty());
}

// Twisted: test_defer.py DeferredFilesystemLockTests.test_waitUntilLockedWithTimeoutLocked
#[test]
fn a_lock_held_past_the_timeout_fails_with_timeout_error() {
    let dir = TempDir::new("timeout");
    let clock = ManualClock::new();
    let (holder, waiter) = pair(&dir, &clock);
    assert!(holder.lock().unwrap());
    let d = waiter.defer_until_locked(Some(secs(5.5)));
    clock.pump(&[secs(1.0); 10]);
    let f = d.try_take().unwrap().unwrap_err();
    assert_eq!(f.downcast_ref::<TimeoutError>().unwrap().timeout, secs(5.5));
    assert!(!waiter.is_locked());
    assert!(clock.pending_calls().is_empty(), "polling stopped");
}

// Twisted: test_defer.py DeferredFilesystemLockTests.test_waitUntilLockedWithTimeoutUnlocked
#[test]
fn a_lock_released_before_the_timeout_is_taken() {
    let dir = TempDir::new("released");
    let clock = ManualClock::new();
    let (holder, waiter) = pair(&dir, &clock);
    assert!(holder.lock().unwrap());
    let h = std::sync::Arc::new(holder);
    let h2 = h.clone();
    clock.call_later(secs(1.0), move || h2.unlock().unwrap());
    let d = waiter.defer_until_locked(Some(secs(10.0)));
    clock.pump(&[secs(1.0); 10]);
    assert!(d.try_take().unwrap().is_ok());
    assert!(waiter.is_locked());
    assert!(!h.is_locked());
    assert!(!h.lock().unwrap(), "the other handle now holds it");
    assert!(
        clock.pending_calls().is_empty(),
        "the timeout was cancelled"
    );
}

// Twisted: test_defer.py DeferredFilesystemLockTests.test_concurrentUsage
#[test]
fn a_second_attempt_while_one_is_in_progress_is_refused() {
    let dir = TempDir::new("concurrent");
    let clock = ManualClock::new();
    let (holder, waiter) = pair(&dir, &clock);
    assert!(holder.lock().unwrap());
    let first = waiter.defer_until_locked(None);
    let second = waiter.defer_until_locked(None);
    assert!(
        second
            .try_take()
            .unwrap()
            .unwrap_err()
            .is::<AlreadyTryingToLockError>()
    );
    holder.unlock().unwrap();
    clock.advance(secs(1.0));
    assert!(first.try_take().unwrap().is_ok());
}

// Twisted: test_defer.py DeferredFilesystemLockTests.test_multipleUsages
#[test]
fn a_new_attempt_after_the_first_finished_works() {
    let dir = TempDir::new("multiple");
    let clock = ManualClock::new();
    let (holder, waiter) = pair(&dir, &clock);
    assert!(holder.lock().unwrap());
    let first = waiter.defer_until_locked(None);
    holder.unlock().unwrap();
    clock.advance(secs(1.0));
    assert!(first.try_take().unwrap().is_ok());
    waiter.unlock().unwrap();
    let again = waiter.defer_until_locked(None);
    assert!(again.try_take().unwrap().is_ok());
}

// Twisted: test_defer.py DeferredFilesystemLockTests.test_cancelDeferUntilLocked
#[test]
fn cancel_stops_polling_and_fails_with_cancelled_error() {
    let dir = TempDir::new("cancel");
    let clock = ManualClock::new();
    let (holder, waiter) = pair(&dir, &clock);
    assert!(holder.lock().unwrap());
    let d = waiter.defer_until_locked(None);
    assert_eq!(clock.pending_calls().len(), 1, "a retry is scheduled");
    let retry = clock.pending_calls().remove(0);
    d.cancel();
    assert!(!retry.active());
    assert!(clock.pending_calls().is_empty());
    assert!(d.try_take().unwrap().unwrap_err().is::<CancelledError>());
    // The handle can try again afterwards.
    holder.unlock().unwrap();
    assert!(waiter.defer_until_locked(None).try_take().unwrap().is_ok());
}

// Twisted: test_defer.py DeferredFilesystemLockTests.test_cancelDeferUntilLockedWithTimeout
#[test]
fn cancel_with_a_timeout_cancels_the_timeout_too() {
    let dir = TempDir::new("cancel-timeout");
    let clock = ManualClock::new();
    let (holder, waiter) = pair(&dir, &clock);
    assert!(holder.lock().unwrap());
    let d = waiter.defer_until_locked(Some(secs(1.0)));
    let calls = clock.pending_calls();
    assert_eq!(calls.len(), 2, "a retry and a timeout");
    d.cancel();
    assert!(calls.iter().all(|c| !c.active()));
    assert!(clock.pending_calls().is_empty());
    assert!(d.try_take().unwrap().unwrap_err().is::<CancelledError>());
}

#[test]
fn dropping_a_handle_releases_the_lock() {
    let dir = TempDir::new("drop");
    let clock = ManualClock::new();
    let (holder, waiter) = pair(&dir, &clock);
    assert!(holder.lock().unwrap());
    assert!(!waiter.lock().unwrap());
    drop(holder);
    assert!(waiter.lock().unwrap());
}

#[test]
fn unlocking_a_lock_not_held_is_an_error() {
    let dir = TempDir::new("unlock-unheld");
    let lock = DeferredFilesystemLock::with_clock(dir.lock_path(), ManualClock::new());
    let err = lock.unlock().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
    assert!(lock.lock().unwrap());
    assert!(
        lock.lock().unwrap(),
        "locking twice through one handle is fine"
    );
    lock.unlock().unwrap();
    assert!(!lock.is_locked());
}

#[test]
fn an_io_error_fails_the_attempt() {
    let dir = TempDir::new("io-error");
    let lock = DeferredFilesystemLock::with_clock(
        dir.0.join("missing-dir").join("lock"),
        ManualClock::new(),
    );
    assert!(lock.lock().is_err());
    let d = lock.defer_until_locked(Some(secs(1.0)));
    assert!(d.try_take().unwrap().unwrap_err().is::<std::io::Error>());
}

#[test]
fn custom_interval_polls_faster() {
    let dir = TempDir::new("interval");
    let clock = ManualClock::new();
    let holder = DeferredFilesystemLock::with_clock(dir.lock_path(), clock.clone());
    let waiter =
        DeferredFilesystemLock::with_clock(dir.lock_path(), clock.clone()).with_interval(secs(0.1));
    assert!(holder.lock().unwrap());
    let d = waiter.defer_until_locked(None);
    holder.unlock().unwrap();
    clock.advance(secs(0.1));
    assert!(d.try_take().unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn waits_on_the_paused_tokio_clock_by_default() {
    let dir = TempDir::new("tokio");
    let holder = DeferredFilesystemLock::new(dir.lock_path());
    let waiter = DeferredFilesystemLock::new(dir.lock_path());
    assert!(holder.lock().unwrap());
    let d = waiter.defer_until_locked(Some(secs(30.0)));
    tokio::spawn(async move {
        tokio::time::sleep(secs(3.0)).await;
        drop(holder);
    });
    d.await.unwrap();
    assert!(waiter.is_locked());
}

const CHILD_ENV: &str = "TOKIO_DEFERRED_FSLOCK_CHILD";

/// Run only as the child process of
/// `another_process_holding_the_lock_blocks_until_it_exits`: takes the lock
/// on the path in `CHILD_ENV`, says `LOCKED`, and holds it until stdin
/// closes.
#[test]
#[ignore = "helper: run as a child process by another test"]
fn fslock_child_process_helper() {
    use std::io::{Read, Write};
    let path = std::env::var(CHILD_ENV).expect("run by the parent test");
    let lock = DeferredFilesystemLock::with_clock(path, ManualClock::new());
    assert!(lock.lock().unwrap());
    println!("LOCKED");
    std::io::stdout().flush().unwrap();
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    // Dropping `lock` releases it; so would the process exiting.
}

#[test]
fn another_process_holding_the_lock_blocks_until_it_exits() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = TempDir::new("process");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "fslock_child_process_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.lock_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.contains("LOCKED"))),
        "the child took the lock"
    );

    let clock = ManualClock::new();
    let lock = DeferredFilesystemLock::with_clock(dir.lock_path(), clock.clone());
    assert!(!lock.lock().unwrap(), "held by the other process");
    let d = lock.defer_until_locked(Some(secs(60.0)));
    clock.advance(secs(1.0));
    assert!(d.try_take().is_none());

    drop(child.stdin.take()); // the child releases the lock and exits
    assert!(child.wait().unwrap().success());
    clock.advance(secs(1.0));
    assert!(d.try_take().unwrap().is_ok());
    assert!(lock.is_locked());
}
