//! The loom side of [`crate::loom`]: loom's models behind the API of the
//! std adapter, for `--cfg tokio_deferred_loom` (`scripts/loom.sh`).

pub(crate) use loom::sync::MutexGuard;
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32};

/// loom's mutex with the std adapter's API. A model thread that panics
/// fails the model, so there is no poisoning to recover from here.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

impl<T> Mutex<T> {
    #[inline]
    pub(crate) fn new(value: T) -> Mutex<T> {
        Mutex(loom::sync::Mutex::new(value))
    }

    #[inline]
    #[track_caller]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap()
    }

    #[inline]
    #[track_caller]
    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.0.get_mut().unwrap()
    }

    #[inline]
    #[track_caller]
    pub(crate) fn into_inner(self) -> T {
        self.0.into_inner().unwrap()
    }
}
