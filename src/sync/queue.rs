//! [`DeferredQueue`]: an event-driven queue whose `get` returns a Deferred
//! (Twisted's `DeferredQueue`).
//!
//! ```
//! use tokio_deferred::DeferredQueue;
//!
//! let queue = DeferredQueue::new(None, None); // unbounded
//! let got = queue.get().unwrap(); // nothing yet: a pending Deferred
//! queue.put("hello").unwrap(); // handed straight to the waiting get
//! assert_eq!(got.try_take().unwrap().unwrap(), "hello");
//!
//! queue.put("buffered").unwrap(); // nobody waiting: buffered
//! assert_eq!(queue.get().unwrap().try_take().unwrap().unwrap(), "buffered");
//! ```
//!
//! # State, locking, cancellation
//!
//! The queue holds either buffered values (`pending`) or waiting `get`s
//! (`waiting`, a FIFO of Resolvers), never both. One mutex guards them and
//! is never held while user code runs: [`put`](DeferredQueue::put) pops the
//! oldest waiter under the lock, releases it, then fires the waiter, whose
//! callbacks run synchronously before `put` returns (as in Twisted).
//!
//! Cancelling a pending `get` removes it from the waiters and fails it with
//! [`CancelledError`], so a later `put` goes to the
//! next live waiter (or is buffered); nothing is lost. Cancelling a `get`
//! that already has its value does nothing. If a `put` in another thread
//! popped the waiter just before it was cancelled, the `put` gets its value
//! back from the refused delivery and gives it to the next waiter or the
//! buffer.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use crate::error::{CancelledError, QueueOverflow, QueueUnderflow};
use crate::loom::{Mutex, MutexGuard};
use crate::{Deferred, Resolver};

pub(crate) mod stream;

struct QueueState<T: Send + 'static> {
    pending: VecDeque<T>,
    waiting: BTreeMap<u64, Resolver<T>>,
    next_id: u64,
}

struct QueueInner<T: Send + 'static> {
    state: Mutex<QueueState<T>>,
    size: Option<usize>,
    backlog: Option<usize>,
}

impl<T: Send + 'static> QueueInner<T> {
    fn lock(&self) -> MutexGuard<'_, QueueState<T>> {
        self.state.lock()
    }
}

/// A FIFO queue for Deferred-based code (Twisted's `DeferredQueue`):
/// [`put`](Self::put) hands a value to the oldest waiting
/// [`get`](Self::get), or buffers it; `get` returns a [`Deferred`] that
/// fires with the next value.
///
/// Cloning gives another handle on the same queue; it is `Send + Sync`, for
/// many producers and many consumers across threads.
///
/// ```
/// use tokio_deferred::DeferredQueue;
///
/// let queue = DeferredQueue::new(Some(1), Some(1)); // 1 buffered value, 1 waiting get
/// queue.put(1).unwrap();
/// let refused = queue.put(2).unwrap_err(); // full: the value comes back
/// assert_eq!(refused.into_inner(), 2);
/// assert_eq!(queue.get().unwrap().try_take().unwrap().unwrap(), 1);
/// let _waiting = queue.get().unwrap();
/// assert!(queue.get().is_err()); // the backlog of waiting gets is full
/// ```
pub struct DeferredQueue<T: Send + 'static> {
    inner: Arc<QueueInner<T>>,
}

impl<T: Send + 'static> DeferredQueue<T> {
    /// A queue that buffers at most `size` values (`None`: unbounded) and
    /// accepts at most `backlog` waiting `get`s (`None`: unbounded).
    pub fn new(size: Option<usize>, backlog: Option<usize>) -> Self {
        DeferredQueue {
            inner: Arc::new(QueueInner {
                state: Mutex::new(QueueState {
                    pending: VecDeque::new(),
                    waiting: BTreeMap::new(),
                    next_id: 0,
                }),
                size,
                backlog,
            }),
        }
    }

    /// The buffer limit given to [`new`](Self::new).
    pub fn size(&self) -> Option<usize> {
        self.inner.size
    }

    /// The backlog limit given to [`new`](Self::new).
    pub fn backlog(&self) -> Option<usize> {
        self.inner.backlog
    }

    /// How many values are buffered (Twisted's `len(pending)`).
    pub fn pending(&self) -> usize {
        self.inner.lock().pending.len()
    }

    /// How many `get`s are waiting (Twisted's `len(waiting)`).
    pub fn waiting(&self) -> usize {
        self.inner.lock().waiting.len()
    }

    /// Gives `value` to the oldest waiting `get` (whose callbacks run before
    /// this returns), even when `size` is 0; with no waiter, buffers it.
    ///
    /// # Errors
    ///
    /// [`QueueOverflow`], holding `value`, when nobody is waiting and `size`
    /// values are already buffered.
    #[inline]
    pub fn put(&self, value: T) -> Result<(), QueueOverflow<T>> {
        let mut value = value;
        let mut st = self.inner.lock();
        loop {
            if let Some((_, resolver)) = st.waiting.pop_first() {
                drop(st);
                let refused = resolver.callback(value);
                drop(resolver);
                match refused {
                    Ok(()) => return Ok(()),
                    Err(refused) => {
                        // Cancelled in another thread after we popped it.
                        value = refused.into_inner();
                        st = self.inner.lock();
                        continue;
                    }
                }
            }
            return match self.inner.size {
                Some(size) if st.pending.len() >= size => Err(QueueOverflow::new(value, size)),
                _ => {
                    st.pending.push_back(value);
                    Ok(())
                }
            };
        }
    }

    /// Gives back a value that was taken out of the queue but not used (a
    /// dropped [`QueueStream`](stream::QueueStream)'s): to the oldest
    /// waiting `get`, else to the front of the buffer, whatever `size` says.
    pub(crate) fn put_back(&self, value: T) {
        let mut value = value;
        let mut st = self.inner.lock();
        while let Some((_, resolver)) = st.waiting.pop_first() {
            drop(st);
            match resolver.callback(value) {
                Ok(()) => return,
                Err(refused) => value = refused.into_inner(),
            }
            st = self.inner.lock();
        }
        st.pending.push_front(value);
    }

    /// A Deferred for the next value: already fired if a value is buffered,
    /// else fired by a later [`put`](Self::put), in the order the `get`s
    /// were made.
    ///
    /// Cancelling the pending Deferred leaves the queue (it fails with
    /// [`CancelledError`]); a value is never lost to a
    /// cancelled `get`. A pending Deferred that is dropped without being
    /// cancelled keeps its place and swallows one value: cancel it, or use
    /// [`cancel_on_drop`](Deferred::cancel_on_drop) in async code.
    ///
    /// # Errors
    ///
    /// [`QueueUnderflow`] when nothing is buffered and `backlog` gets are
    /// already waiting.
    #[track_caller]
    #[inline]
    pub fn get(&self) -> Result<Deferred<T>, QueueUnderflow> {
        let mut st = self.inner.lock();
        if let Some(value) = st.pending.pop_front() {
            drop(st);
            return Ok(crate::succeed(value));
        }
        if let Some(backlog) = self.inner.backlog {
            if st.waiting.len() >= backlog {
                return Err(QueueUnderflow { backlog });
            }
        }
        let id = st.next_id;
        st.next_id += 1;
        let queue = Arc::downgrade(&self.inner);
        let (d, resolver) = Deferred::with_canceller(move |r: &Resolver<T>| {
            let Some(queue) = queue.upgrade() else { return };
            let removed = queue.lock().waiting.remove(&id);
            if let Some(removed) = removed {
                // Fail it before the removed resolver is dropped.
                let _ = r.errback(CancelledError::new());
                drop(removed);
            }
        });
        st.waiting.insert(id, resolver);
        Ok(d)
    }
}

impl<T: Send + 'static> Drop for QueueInner<T> {
    /// The last handle went with `get`s waiting: they never fire.
    fn drop(&mut self) {
        let st = self.state.get_mut();
        for (_, resolver) in std::mem::take(&mut st.waiting) {
            resolver.release_as("tokio_deferred::DeferredQueue::get");
        }
    }
}

impl<T: Send + 'static> Clone for DeferredQueue<T> {
    fn clone(&self) -> Self {
        DeferredQueue {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Send + 'static> Default for DeferredQueue<T> {
    /// An unbounded queue.
    fn default() -> Self {
        DeferredQueue::new(None, None)
    }
}

impl<T: Send + 'static> fmt::Debug for DeferredQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.lock();
        f.debug_struct("DeferredQueue")
            .field("pending", &st.pending.len())
            .field("waiting", &st.waiting.len())
            .field("size", &self.inner.size)
            .field("backlog", &self.inner.backlog)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// See `permits::tests`: a put that reaches a waiter cancelled after it
    /// was popped gets its value back and gives it to the next waiter.
    #[test]
    fn refused_delivery_goes_to_the_next_waiter_or_the_buffer() {
        let queue = DeferredQueue::new(Some(1), None);
        let cancelled = queue.get().unwrap();
        let next = queue.get().unwrap();
        let (id, resolver) = queue.inner.lock().waiting.pop_first().unwrap();
        cancelled.cancel();
        assert!(
            cancelled
                .try_take()
                .unwrap()
                .unwrap_err()
                .is::<CancelledError>()
        );
        queue.inner.lock().waiting.insert(id, resolver);
        queue.put(1).unwrap();
        assert_eq!(next.try_take().unwrap().unwrap(), 1);

        let (id, resolver) = {
            let late = queue.get().unwrap();
            let popped = queue.inner.lock().waiting.pop_first().unwrap();
            late.cancel();
            popped
        };
        queue.inner.lock().waiting.insert(id, resolver);
        queue.put(2).unwrap(); // nobody left: buffered
        assert_eq!(queue.pending(), 1);
    }
}
