//! The std side of [`crate::loom`]: what the crate uses in a normal build.

mod mutex;

pub(crate) use self::mutex::{Mutex, MutexGuard};
#[cfg_attr(tokio_deferred_loom, allow(unused_imports))]
pub(crate) use ::std::sync::atomic::{AtomicBool, AtomicU32};
