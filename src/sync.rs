//! Synchronisation primitives that hand out Deferreds (Twisted's
//! `DeferredLock`, `DeferredSemaphore`, `DeferredQueue` and
//! `DeferredFilesystemLock`, the last with the `fs` feature), re-exported
//! at the crate root.

#[cfg(feature = "fs")]
pub(crate) mod fslock;
pub(crate) mod lock;
pub(crate) mod permits;
pub(crate) mod queue;
pub(crate) mod semaphore;
