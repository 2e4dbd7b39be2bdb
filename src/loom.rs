//! The crate's synchronisation primitives, in one place (tokio's
//! `crate::loom` pattern): every module that locks uses [`Mutex`] from
//! here, never `std::sync::Mutex` directly, and under
//! `--cfg tokio_deferred_loom` the mutex and the atomics are loom's
//! models, so that `tests/loom.rs` explores the interleavings of the code
//! that uses them.
//!
//! [`Mutex`] is `std::sync::Mutex` without poisoning (`std/mutex.rs`). The
//! crate runs no user code (callbacks, cancellers, wakers, drops of user
//! values) while it holds one of its locks, so a panic cannot leave the
//! guarded state half-updated by user code; poisoning would only turn a
//! consistent state into a panic of the library.
//!
//! `Arc`/`Weak` stay std's: loom's `Arc` cannot be coerced to
//! `Arc<dyn Core>` on stable, and the state machine's races are in the
//! mutex and the atomics beside it. Process-wide statics (the debug side
//! table, the timer registry) outlive any one loom model, so they use the
//! std adapter, [`std::Mutex`], under loom too.

pub(crate) mod std;

#[cfg(tokio_deferred_loom)]
mod mocked;

#[cfg(not(tokio_deferred_loom))]
pub(crate) use self::std::{AtomicBool, AtomicU32, Mutex, MutexGuard};

#[cfg(tokio_deferred_loom)]
pub(crate) use self::mocked::{AtomicBool, AtomicU32, Mutex, MutexGuard};
