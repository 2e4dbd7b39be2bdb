//! Synchronisation primitives that hand out Deferreds (Twisted's
//! `DeferredLock`, `DeferredSemaphore`, `DeferredQueue` and
//! `DeferredFilesystemLock`), re-exported at the crate root.

pub(crate) mod fslock;
pub(crate) mod lock;
pub(crate) mod permits;
pub(crate) mod queue;
pub(crate) mod semaphore;
