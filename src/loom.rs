//! Synchronisation primitives, swapped for loom's models under
//! `--cfg tokio_deferred_loom` (like tokio's `crate::loom`). `Arc`/`Weak`
//! stay std's: loom's `Arc` cannot be coerced to `Arc<dyn Core>` on stable;
//! the state machine's races are in the mutex and the resolver counter.

#[cfg(tokio_deferred_loom)]
pub(crate) use loom::sync::atomic::{AtomicU8, AtomicU16, AtomicU32};
#[cfg(tokio_deferred_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

#[cfg(not(tokio_deferred_loom))]
pub(crate) use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32};
// The crate's own lock (`src/spin.rs`): loom models the state machine with
// its own mutex in its place.
#[cfg(not(tokio_deferred_loom))]
pub(crate) use crate::spin::{Mutex, MutexGuard};
