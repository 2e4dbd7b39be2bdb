//! The chain runner: the object-safe face of a Deferred's state ([`Core`])
//! and the loop that moves between Deferreds.
//!
//! Only one thread runs a Deferred's chain at a time: the holder of the
//! *runner token*. Whoever changes the state so that the chain can go on
//! (fire, add a callback, unpause, deliver a chained result) takes the token
//! if it is free and runs the chain; if it is taken, the holder will see the
//! change. [`run_chain`] moves between Deferreds with an explicit loop and
//! stack, never by recursion, so chains of any depth run in constant stack
//! (Twisted's `_runCallbacks` is iterative for the same reason).

use std::any::Any;
use std::sync::Arc;
use std::task::{Poll, Waker};

use crate::deferred::link::LinkBox;
use crate::deferred::state::Snapshot;

/// Why [`Core::run_links`] stopped.
pub(crate) enum Stop {
    /// The token was released (finished, paused or waiting).
    Released,
    /// The token was released; go on with this Deferred. `None`: we hold
    /// its token. `Some(holder)`: it waited on the Deferred just run, whose
    /// result is in `holder`; its `run_links` takes the holder, its token
    /// and its links in one lock section.
    Switch(Arc<dyn Core>, Option<LinkBox>),
    /// Keep the first Deferred's token; run the second one first (as for
    /// `Switch`), then come back to the first.
    Nested(Arc<dyn Core>, Arc<dyn Core>, Option<LinkBox>),
}

/// The object-safe face of a Deferred's shared state.
pub(crate) trait Core: Send + Sync + 'static {
    /// Appends a link; `true` when the caller took the runner token and must
    /// call [`run_chain`].
    fn add_link(&self, link: LinkBox) -> bool;
    /// `add_link` for a chain that adopts this Deferred (its handle was
    /// taken, so nobody else will consume its result): also marks it
    /// consumer-less, and reports now a failure at rest that can never reach
    /// the link (the Deferred is paused and nobody can unpause it any more),
    /// as dropping the handle would. One lock section for both.
    fn adopt_link(&self, link: LinkBox) -> bool;
    /// Runs links while it can. The caller holds the runner token.
    /// `check_pause`: stop at once if paused (Twisted checks when it starts
    /// or switches to a Deferred, not when a nested call returns to it).
    ///
    /// With `resumed`, a Deferred this one waited on delivered into that
    /// holder and the caller does not hold the token: the holder becomes
    /// the result, and the run goes on from the same lock section if it can
    /// take the token; if another run holds it or this Deferred is paused,
    /// the holder is left at rest (one lock per level of a nested chain).
    fn run_links(self: Arc<Self>, check_pause: bool, resumed: Option<LinkBox>) -> Stop;
    /// If this Deferred has a final result, moves it into `link`'s output and
    /// gives the link back; otherwise appends a continuation that will hand
    /// the link back to `outer` and returns `None`.
    fn steal_or_chain(&self, link: LinkBox, outer: Arc<dyn Core>) -> Option<LinkBox>;
    /// `steal_or_chain` for a link that is its own continuation (a
    /// [`ContinueSlot`](crate::deferred::link::ContinueSlot)): if this Deferred has a final result, moves it into
    /// `cont`'s output and gives it back; otherwise queues `cont` itself.
    fn continue_with(&self, cont: LinkBox) -> Option<LinkBox>;
    /// One step of cancellation; returns the chained Deferred to forward the
    /// cancellation to, if any.
    fn cancel_one(self: Arc<Self>) -> Option<Arc<dyn Core>>;
    fn pause(&self);
    /// `true` when the caller took the runner token.
    fn unpause(&self) -> bool;
    /// Takes the final result through `sink` if there is one, else
    /// registers `waker`.
    fn poll_take(&self, waker: Option<&Waker>, sink: &mut dyn FnMut(&mut dyn Any)) -> Poll<()>;
    /// The handle (the consumer of the result) went away.
    fn release_consumer(&self);
    fn snapshot(&self) -> Snapshot;
    /// For the typed fast paths: a `Deferred<T>` whose state is an
    /// `Inner<T>` takes its result without the erased sink.
    fn as_any(&self) -> &dyn Any;
}

/// Runs chains from `start`, whose runner token the caller holds, until
/// every Deferred reached is finished, paused or waiting. Iterative: an
/// explicit stack replaces Twisted's recursion through nested Deferreds.
pub(crate) fn run_chain(start: Arc<dyn Core>) {
    drive(start.run_links(true, None));
}

/// `run_chain` after its first Deferred's run stopped with `stop`.
pub(crate) fn drive(mut stop: Stop) {
    let mut stack: Vec<Arc<dyn Core>> = Vec::new();
    loop {
        stop = match stop {
            // A Deferred we come back to after a nested one (chain_deferred's
            // target) goes on without a pause check, as Twisted's nested
            // `d.callback()` returns into a loop that does not re-check
            // `paused`.
            Stop::Released => match stack.pop() {
                Some(next) => next.run_links(false, None),
                None => return,
            },
            Stop::Switch(next, resumed) => next.run_links(true, resumed),
            Stop::Nested(me, next, resumed) => {
                stack.push(me);
                next.run_links(true, resumed)
            }
        };
    }
}

/// Cancels a Deferred, forwarding iteratively down chained Deferreds.
pub(crate) fn cancel_core(mut core: Arc<dyn Core>) {
    // Brent's cycle detection: Deferreds waiting on each other (a callback
    // returned a Deferred that waits, in the end, on the first) would make
    // the walk endless; it stops instead, in time linear in the walk.
    let addr = |c: &Arc<dyn Core>| Arc::as_ptr(c).cast::<()>();
    let (mut mark, mut power, mut steps) = (addr(&core), 1usize, 0usize);
    while let Some(next) = core.cancel_one() {
        core = next;
        if addr(&core) == mark {
            return;
        }
        steps += 1;
        if steps == power {
            (mark, power, steps) = (addr(&core), power * 2, 0);
        }
    }
}
