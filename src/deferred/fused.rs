//! `futures`' [`FusedFuture`] for [`Deferred`]: `futures::select!` takes a
//! Deferred as it is, with no `.fuse()`.
//!
//! ```
//! use futures::future::FusedFuture;
//! use tokio_deferred::Deferred;
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() {
//!     let (mut d, resolver) = Deferred::<u8>::new();
//!     resolver.callback(1).unwrap();
//!     assert!(!d.is_terminated());
//!     assert_eq!((&mut d).await.unwrap(), 1);
//!     assert!(d.is_terminated()); // its result was taken: select! skips it
//! }
//! ```

use std::sync::atomic::Ordering;

use futures::future::FusedFuture;

use super::{Deferred, Repr};

impl<T: Send + 'static> FusedFuture for Deferred<T> {
    /// Whether this handle's result was taken (by `.await`, a poll that
    /// returned it, or [`try_take`](Deferred::try_take)): polling again
    /// would only give a [`ResultTakenError`](crate::ResultTakenError).
    fn is_terminated(&self) -> bool {
        match &self.repr {
            Repr::Shared {
                core: Some(_),
                taken,
            } => taken.load(Ordering::Relaxed),
            Repr::Ready(ready) => {
                ready.with(|result, _| result.is_none(), |core| core.snapshot().taken)
            }
            Repr::Shared { core: None, .. } | Repr::Gone => true,
        }
    }
}
