//! [`QueueStream`]: a [`DeferredQueue`] consumer as a `futures` [`Stream`].
//!
//! ```
//! use futures::StreamExt;
//! use tokio_deferred::DeferredQueue;
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() {
//!     let queue = DeferredQueue::new(None, None);
//!     let mut jobs = queue.stream();
//!     queue.put("first").unwrap();
//!     queue.put("second").unwrap();
//!     assert_eq!(jobs.next().await.unwrap().unwrap(), "first");
//!     assert_eq!(jobs.next().await.unwrap().unwrap(), "second");
//! }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use futures::stream::FusedStream;

use super::DeferredQueue;
use crate::{Deferred, Failure};

impl<T: Send + 'static> DeferredQueue<T> {
    /// A [`Stream`] of this queue's values, in FIFO order: each item is one
    /// [`get`](Self::get), made when the stream is polled for it. The stream
    /// never ends (a queue has no end); each item is `Ok(value)`, or
    /// `Err(failure)` with [`QueueUnderflow`](crate::QueueUnderflow) when
    /// `backlog` other `get`s are already waiting. So it is also a
    /// `TryStream`: `while let Some(job) = jobs.try_next().await? { .. }`.
    ///
    /// # Cancellation
    ///
    /// Dropping the stream cancels its waiting `get`, which leaves the
    /// queue. A value already handed to that `get` and not yet returned by
    /// the stream is never lost: it goes back to the queue, to the oldest
    /// waiting `get` or else to the front of the buffer (even past `size`,
    /// since the queue had accepted it). Dropping a `next()` future keeps
    /// the `get`: the next poll of the stream returns its value.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use tokio_deferred::DeferredQueue;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let queue = DeferredQueue::<u32>::new(None, None);
    ///     let producer = queue.clone();
    ///     tokio::spawn(async move {
    ///         for job in 1..=3 {
    ///             producer.put(job).unwrap();
    ///             tokio::task::yield_now().await;
    ///         }
    ///     });
    ///     let jobs: Vec<u32> = queue.stream().take(3).map(Result::unwrap).collect().await;
    ///     assert_eq!(jobs, [1, 2, 3]);
    /// }
    /// ```
    pub fn stream(&self) -> QueueStream<T> {
        QueueStream {
            queue: self.clone(),
            pending: None,
        }
    }
}

/// A [`DeferredQueue`] consumer as a [`Stream`]; made by
/// [`DeferredQueue::stream`].
#[must_use = "streams do nothing unless polled"]
pub struct QueueStream<T: Send + 'static> {
    queue: DeferredQueue<T>,
    /// The `get` waiting for the next item.
    pending: Option<Deferred<T>>,
}

impl<T: Send + 'static> Stream for QueueStream<T> {
    type Item = Result<T, Failure>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let get = match &mut this.pending {
            Some(get) => get,
            None => match this.queue.get() {
                Ok(get) => this.pending.insert(get),
                Err(underflow) => return Poll::Ready(Some(Err(Failure::new(underflow)))),
            },
        };
        match Pin::new(get).poll(cx) {
            Poll::Ready(result) => {
                this.pending = None;
                Poll::Ready(Some(result))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: Send + 'static> FusedStream for QueueStream<T> {
    /// Never: a queue has no end.
    fn is_terminated(&self) -> bool {
        false
    }
}

impl<T: Send + 'static> Drop for QueueStream<T> {
    fn drop(&mut self) {
        if let Some(get) = self.pending.take() {
            get.cancel();
            // Delivered before the cancel: the value goes back.
            if let Some(Ok(value)) = get.try_take() {
                self.queue.put_back(value);
            }
        }
    }
}

impl<T: Send + 'static> fmt::Debug for QueueStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueStream")
            .field("queue", &self.queue)
            .field("waiting", &self.pending.is_some())
            .finish()
    }
}
