//! Time: the clocks that schedule delayed calls, and what is built on them
//! (`deferLater`, `LoopingCall`, `Deferred.addTimeout`), re-exported at the
//! crate root.

pub(crate) mod clock;
pub mod cooperator;
pub(crate) mod later;
pub(crate) mod looping;
mod per_runtime;
pub mod timeout;
