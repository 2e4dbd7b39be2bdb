//! Waiting on many Deferreds at once: [`DeferredList`], [`gather_results`]
//! (and [`gather2`], [`gather3`] for mixed types) and [`race`].
//!
//! ```
//! use tokio_deferred::{gather_results, race, Deferred, DeferredList, FirstError};
//!
//! let (a, ra) = Deferred::<u32>::new();
//! let (b, rb) = Deferred::<u32>::new();
//! let sum = gather_results([a, b]).add_callback(|v| Ok(v.iter().sum::<u32>()));
//! rb.callback(2).unwrap(); // any order: the values come back in input order
//! ra.callback(1).unwrap();
//! assert_eq!(sum.try_take().unwrap().unwrap(), 3);
//!
//! // Every outcome, failures included, in input order (Twisted's DeferredList):
//! let (a, ra) = Deferred::<u32>::new();
//! let (b, rb) = Deferred::<u32>::new();
//! let all = DeferredList::new([a, b]).consume_errors().all();
//! ra.errback(tokio_deferred::Failure::msg("down")).unwrap();
//! rb.callback(7).unwrap();
//! let outcomes = all.try_take().unwrap().unwrap();
//! assert!(outcomes[0].is_err());
//! assert_eq!(*outcomes[1].as_ref().unwrap(), 7);
//!
//! // The first success wins and the others are cancelled:
//! let (slow, _keep) = Deferred::<&str>::new();
//! let (fast, r) = Deferred::<&str>::new();
//! let winner = race([slow, fast]);
//! r.callback("fast").unwrap();
//! assert_eq!(winner.try_take().unwrap().unwrap(), (1, "fast"));
//! # let _ = FirstError::unwrap_failure;
//! ```
//!
//! # How it works
//!
//! Everything here is push-based, like Twisted: each input gets one
//! [`add_both`](Deferred::add_both) callback that records its result in a
//! state shared by all inputs (one mutex for the whole list, never held
//! while user code runs), counts it, and fires the output Deferred when the
//! outcome is decided. Nothing polls. Inputs that have already fired are
//! recorded at once, during construction, so a list of fired Deferreds
//! returns an already-fired Deferred.
//!
//! # Where each input's result goes (Twisted's `consumeErrors`)
//!
//! In Twisted the list's callback sits in the middle of each input's chain:
//! it records the result, then passes it on unchanged, so a failure keeps
//! going down the input's own chain (and is logged as unhandled if nothing
//! there handles it) unless `consumeErrors=True`. In Rust the list *takes*
//! the input Deferreds, so nobody can add callbacks after the list's; the
//! rest of each input's chain belongs to the list. It is kept that way:
//!
//! * without [`consume_errors`](DeferredList::consume_errors) (Twisted's
//!   default, for [`DeferredList`] and [`gather_results`]), a failed input's
//!   failure goes on down its own chain, where nothing handles it, so it is
//!   reported once as an unhandled error (a `tracing` event with target
//!   `tokio_deferred::unhandled`), even though the list also delivers it;
//! * with `consume_errors`, the list consumes the failure: nothing is
//!   reported, and the failure reaches you only through the list's result.
//!   This is what you want in almost every case.
//!
//! A successful value is moved into the list's result (Twisted passes it on
//! down the input's chain as well; in Rust the value can only be in one
//! place). [`race`] always consumes, as Twisted's does. To see an input's
//! result before the list does, add callbacks to it before passing it in:
//! the list sees each result at that point of the input's chain.
//!
//! # Cancellation
//!
//! Cancelling the output Deferred (while it has not fired) cancels every
//! input. The output then fires from the inputs' results as usual (for
//! example a [`DeferredList::all`] gets a list of
//! [`CancelledError`](crate::CancelledError) failures, a [`race`] a
//! [`FailureGroup`]); if the inputs did not fire the output, it fails with
//! `CancelledError`. An input whose canceller panics fails with that panic;
//! the other inputs are still cancelled. Once the output has fired,
//! cancelling it does nothing.

use std::fmt;
use std::marker::PhantomData;
use std::mem;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{FailureGroup, FirstError, ResultTakenError};
use crate::{CancelHandle, Deferred, Failure, Resolver};

/// What the shared state decides after an input's result.
enum Decision<O> {
    /// Not decided yet.
    Wait,
    /// Fire the output with this result.
    Fire(Result<O, Failure>),
    /// Fire the output, after cancelling every input but this one (race).
    Win(Result<O, Failure>, usize),
}

/// How a combinator turns the inputs' results into its output.
trait Policy: Send + 'static {
    type Input: Send + 'static;
    type Output: Send + 'static;
    /// The output for an empty list of inputs.
    fn on_empty(self) -> Result<Self::Output, Failure>;
    /// Records input `index`'s result; `last` when every input has now
    /// reported.
    fn on_result(
        &mut self,
        index: usize,
        result: Result<Self::Input, Failure>,
        last: bool,
    ) -> Decision<Self::Output>;
}

struct State<P: Policy> {
    /// `None` once the output has fired: later results are ignored.
    policy: Option<P>,
    remaining: usize,
    resolver: Option<Resolver<P::Output>>,
}

/// The state shared by the callbacks of every input and the output's
/// canceller.
struct Shared<P: Policy> {
    state: Mutex<State<P>>,
    /// One (weak) cancel handle per input, in input order.
    inputs: Vec<CancelHandle>,
}

impl<P: Policy> Shared<P> {
    fn lock(&self) -> MutexGuard<'_, State<P>> {
        // No user code runs under this lock; recover rather than panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cancel_inputs(&self, except: Option<usize>) {
        for (i, handle) in self.inputs.iter().enumerate() {
            if Some(i) != except {
                // `cancel` never panics: a panicking canceller fails its
                // own input, and the loop goes on to the next one.
                handle.cancel();
            }
        }
    }

    /// The callback added to input `index`. Returns what goes on down the
    /// rest of that input's chain.
    fn record(
        &self,
        index: usize,
        result: Result<P::Input, Failure>,
        consume: bool,
    ) -> Result<(), Failure> {
        let rest = match &result {
            Err(f) if !consume => Err(f.clone()),
            _ => Ok(()),
        };
        let mut st = self.lock();
        st.remaining = st.remaining.saturating_sub(1);
        let last = st.remaining == 0;
        let Some(policy) = st.policy.as_mut() else {
            // Already fired: drop the late result outside the lock (its
            // destructor is user code).
            drop(st);
            drop(result);
            return rest;
        };
        let (out, winner) = match policy.on_result(index, result, last) {
            Decision::Wait => return rest,
            Decision::Fire(out) => (out, None),
            Decision::Win(out, index) => (out, Some(index)),
        };
        let policy = st.policy.take();
        let resolver = st.resolver.take();
        drop(st);
        drop(policy);
        if let Some(winner) = winner {
            self.cancel_inputs(Some(winner));
        }
        if let Some(resolver) = resolver {
            // Cannot be fired already: the resolver is taken exactly once,
            // and the output's canceller never fires it itself. The only
            // exception is a cancel of the output racing with this line in
            // another thread; then the cancellation stands and `out` is
            // dropped.
            let _ = resolver.resolve(out);
        }
        rest
    }
}

/// The push-based engine under every combinator here.
#[track_caller]
fn collect<P: Policy>(
    inputs: Vec<Deferred<P::Input>>,
    policy: P,
    consume: bool,
) -> Deferred<P::Output> {
    if inputs.is_empty() {
        return match policy.on_empty() {
            Ok(v) => crate::succeed(v),
            Err(f) => crate::fail(f),
        };
    }
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            policy: Some(policy),
            remaining: inputs.len(),
            resolver: None,
        }),
        inputs: inputs.iter().map(Deferred::cancel_handle).collect(),
    });
    let weak = Arc::downgrade(&shared);
    let (output, resolver) = Deferred::with_canceller(move |_: &Resolver<P::Output>| {
        if let Some(shared) = weak.upgrade() {
            shared.cancel_inputs(None);
        }
    });
    shared.lock().resolver = Some(resolver);
    for (index, input) in inputs.into_iter().enumerate() {
        let shared = shared.clone();
        // The rest of the input's chain is dropped here: a failure passed
        // on (not consumed) is then reported as unhandled, like Twisted's
        // failure going on down an input's chain that nobody handles.
        drop(input.add_both(move |r| shared.record(index, r, consume)));
    }
    output
}

/// Waits on several Deferreds of the same type: Twisted's `DeferredList`.
///
/// Build it with [`new`](Self::new), set options, then choose what it fires
/// with:
///
/// * [`all`](Self::all): every outcome, `Vec<Result<T, Failure>>` in input
///   order, once all inputs have fired (Twisted's default
///   `[(success, result), ...]`);
/// * [`first_success`](Self::first_success): the first value and its index,
///   `(T, usize)` (Twisted's `fireOnOneCallback`).
///
/// Options: [`fire_on_one_errback`](Self::fire_on_one_errback) (fail with
/// [`FirstError`] on the first failure) and
/// [`consume_errors`](Self::consume_errors) (see the [module
/// docs](crate::list) for what this means when Rust owns the inputs).
///
/// ```
/// use tokio_deferred::{fail, succeed, DeferredList, Failure};
///
/// let d = DeferredList::new([succeed(1), fail(Failure::msg("two")), succeed(3)])
///     .consume_errors()
///     .all();
/// let outcomes = d.try_take().unwrap().unwrap();
/// assert_eq!(outcomes.len(), 3);
/// assert_eq!(*outcomes[0].as_ref().unwrap(), 1);
/// assert_eq!(outcomes[1].as_ref().unwrap_err().to_string(), "two");
/// ```
///
/// An empty list fires at once: [`all`](Self::all) with `vec![]`.
/// [`first_success`](Self::first_success) on an empty list fails at once with
/// an empty [`FailureGroup`] (Twisted's never fires; in Rust a Deferred that
/// can never fire would hang every `.await`, and "no input succeeded" is
/// true, as with JavaScript's `Promise.any([])`).
#[must_use = "a DeferredList does nothing until all() or first_success() is called"]
pub struct DeferredList<T> {
    inputs: Vec<Deferred<T>>,
    fire_on_one_errback: bool,
    consume_errors: bool,
}

impl<T: Send + 'static> DeferredList<T> {
    /// A list over `deferreds` (any iterator), with Twisted's default
    /// options: wait for all, do not consume errors.
    pub fn new<I>(deferreds: I) -> Self
    where
        I: IntoIterator<Item = Deferred<T>>,
    {
        DeferredList {
            inputs: deferreds.into_iter().collect(),
            fire_on_one_errback: false,
            consume_errors: false,
        }
    }

    /// Fail as soon as one input fails, with a [`FirstError`] holding its
    /// index and failure (Twisted's `fireOnOneErrback=True`). Later results
    /// are ignored (but still consumed if
    /// [`consume_errors`](Self::consume_errors) is set).
    pub fn fire_on_one_errback(mut self) -> Self {
        self.fire_on_one_errback = true;
        self
    }

    /// Consume the inputs' failures: they are delivered only through the
    /// list's result and never reported as unhandled (Twisted's
    /// `consumeErrors=True`).
    pub fn consume_errors(mut self) -> Self {
        self.consume_errors = true;
        self
    }

    /// The number of inputs.
    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    /// Whether there are no inputs.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Fires with every input's outcome in input order once all have fired
    /// (or, with [`fire_on_one_errback`](Self::fire_on_one_errback), fails
    /// with [`FirstError`] at the first failure).
    ///
    /// ```
    /// use tokio_deferred::{Deferred, DeferredList, FirstError, Failure};
    ///
    /// let (a, ra) = Deferred::<u8>::new();
    /// let (b, rb) = Deferred::<u8>::new();
    /// let d = DeferredList::new([a, b]).fire_on_one_errback().consume_errors().all();
    /// ra.callback(1).unwrap();
    /// rb.errback(Failure::msg("b broke")).unwrap();
    /// let failure = d.try_take().unwrap().unwrap_err();
    /// assert_eq!(failure.downcast_ref::<FirstError>().unwrap().index, 1);
    /// ```
    #[track_caller]
    pub fn all(self) -> Deferred<Vec<Result<T, Failure>>> {
        let policy = AllPolicy {
            slots: self.inputs.iter().map(|_| None).collect(),
            fire_on_one_errback: self.fire_on_one_errback,
        };
        collect(self.inputs, policy, self.consume_errors)
    }

    /// Fires with the first value and its index, `(value, index)` (Twisted's
    /// `fireOnOneCallback=True`). The other inputs are *not* cancelled (use
    /// [`race`] for that).
    ///
    /// If every input fails, it fails with a [`FailureGroup`] of their
    /// failures in input order (Twisted fires with the list of failures,
    /// which cannot be told apart from success: twisted#4919). With
    /// [`fire_on_one_errback`](Self::fire_on_one_errback) it fails with
    /// [`FirstError`] at the first failure instead. An empty list fails at
    /// once with an empty `FailureGroup`.
    ///
    /// ```
    /// use tokio_deferred::{Deferred, DeferredList};
    ///
    /// let (a, _ra) = Deferred::<&str>::new();
    /// let (b, rb) = Deferred::<&str>::new();
    /// let d = DeferredList::new([a, b]).first_success();
    /// rb.callback("b").unwrap();
    /// assert_eq!(d.try_take().unwrap().unwrap(), ("b", 1));
    /// ```
    #[track_caller]
    pub fn first_success(self) -> Deferred<(T, usize)> {
        let policy = FirstSuccessPolicy {
            failures: self.inputs.iter().map(|_| None).collect(),
            fire_on_one_errback: self.fire_on_one_errback,
            _marker: PhantomData,
        };
        collect(self.inputs, policy, self.consume_errors)
    }
}

impl<T> fmt::Debug for DeferredList<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferredList")
            .field("inputs", &self.inputs.len())
            .field("fire_on_one_errback", &self.fire_on_one_errback)
            .field("consume_errors", &self.consume_errors)
            .finish()
    }
}

/// Options for [`gather_results`]: which failure to report and whether to
/// consume the inputs' failures.
///
/// ```
/// use tokio_deferred::{fail, succeed, Failure, Gather, FirstError};
///
/// // The input's own failure instead of a FirstError (Twisted #4627):
/// let d = Gather::new([succeed(1), fail(Failure::msg("boom"))])
///     .original_failure()
///     .consume_errors()
///     .into_deferred();
/// let failure = d.try_take().unwrap().unwrap_err();
/// assert!(!failure.is::<FirstError>());
/// assert_eq!(failure.to_string(), "boom");
/// ```
#[must_use = "a Gather does nothing until into_deferred() is called"]
pub struct Gather<T> {
    inputs: Vec<Deferred<T>>,
    consume_errors: bool,
    original_failure: bool,
}

impl<T: Send + 'static> Gather<T> {
    /// Gathers `deferreds` with Twisted's defaults: fail with
    /// [`FirstError`], do not consume errors.
    pub fn new<I>(deferreds: I) -> Self
    where
        I: IntoIterator<Item = Deferred<T>>,
    {
        Gather {
            inputs: deferreds.into_iter().collect(),
            consume_errors: false,
            original_failure: false,
        }
    }

    /// Consume the inputs' failures (Twisted's `consumeErrors=True`): see
    /// [`DeferredList::consume_errors`].
    pub fn consume_errors(mut self) -> Self {
        self.consume_errors = true;
        self
    }

    /// Fail with the first failing input's own failure, not a
    /// [`FirstError`] wrapping it (what Twisted users do by hand with
    /// `subFailure`, twisted#4627). The index is then lost.
    pub fn original_failure(mut self) -> Self {
        self.original_failure = true;
        self
    }

    /// The gathering Deferred: see [`gather_results`].
    #[track_caller]
    pub fn into_deferred(self) -> Deferred<Vec<T>> {
        let policy = GatherPolicy {
            values: self.inputs.iter().map(|_| None).collect(),
            original_failure: self.original_failure,
        };
        collect(self.inputs, policy, self.consume_errors)
    }
}

impl<T> fmt::Debug for Gather<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gather")
            .field("inputs", &self.inputs.len())
            .field("consume_errors", &self.consume_errors)
            .field("original_failure", &self.original_failure)
            .finish()
    }
}

/// The values of all `deferreds`, in input order, once all have succeeded
/// (Twisted's `gatherResults`).
///
/// At the first failure it fails with a [`FirstError`] (index and the
/// input's failure); the other inputs are not cancelled and their results
/// are ignored. Failures are not consumed (Twisted's default, see the
/// [module docs](crate::list)); use [`Gather`] to consume them or to get the
/// input's own failure instead of a `FirstError`. An empty input gives
/// `vec![]` at once. Cancelling the result cancels every input.
///
/// ```
/// use tokio_deferred::{gather_results, succeed};
///
/// let d = gather_results(vec![succeed(1), succeed(2)]);
/// assert_eq!(d.try_take().unwrap().unwrap(), [1, 2]);
/// let d = gather_results(Vec::<tokio_deferred::Deferred<u8>>::new());
/// assert!(d.try_take().unwrap().unwrap().is_empty());
/// ```
#[track_caller]
pub fn gather_results<T, I>(deferreds: I) -> Deferred<Vec<T>>
where
    T: Send + 'static,
    I: IntoIterator<Item = Deferred<T>>,
{
    Gather::new(deferreds).into_deferred()
}

/// One value of a mixed-type gather.
enum Slot<A, B, C> {
    A(A),
    B(B),
    C(C),
}

fn slot_mismatch() -> Failure {
    Failure::new(ResultTakenError {})
}

/// Gathers two Deferreds of different types into a pair: like
/// [`gather_results`] (first failure → [`FirstError`] with index 0 or 1,
/// failures not consumed, cancelling cancels both).
///
/// ```
/// use tokio_deferred::{gather2, succeed};
///
/// let d = gather2(succeed(1u8), succeed("one"));
/// assert_eq!(d.try_take().unwrap().unwrap(), (1, "one"));
/// ```
#[track_caller]
pub fn gather2<A, B>(a: Deferred<A>, b: Deferred<B>) -> Deferred<(A, B)>
where
    A: Send + 'static,
    B: Send + 'static,
{
    let inputs = vec![
        a.add_callback(|v| Ok(Slot::<A, B, ()>::A(v))),
        b.add_callback(|v| Ok(Slot::B(v))),
    ];
    gather_results(inputs).add_callback(|values| {
        let mut it = values.into_iter();
        match (it.next(), it.next()) {
            (Some(Slot::A(a)), Some(Slot::B(b))) => Ok((a, b)),
            _ => Err(slot_mismatch()),
        }
    })
}

/// Gathers three Deferreds of different types into a triple: see
/// [`gather2`].
///
/// ```
/// use tokio_deferred::{gather3, succeed};
///
/// let d = gather3(succeed(1u8), succeed("one"), succeed(1.0f64));
/// assert_eq!(d.try_take().unwrap().unwrap(), (1, "one", 1.0));
/// ```
#[track_caller]
pub fn gather3<A, B, C>(a: Deferred<A>, b: Deferred<B>, c: Deferred<C>) -> Deferred<(A, B, C)>
where
    A: Send + 'static,
    B: Send + 'static,
    C: Send + 'static,
{
    let inputs = vec![
        a.add_callback(|v| Ok(Slot::<A, B, C>::A(v))),
        b.add_callback(|v| Ok(Slot::B(v))),
        c.add_callback(|v| Ok(Slot::C(v))),
    ];
    gather_results(inputs).add_callback(|values| {
        let mut it = values.into_iter();
        match (it.next(), it.next(), it.next()) {
            (Some(Slot::A(a)), Some(Slot::B(b)), Some(Slot::C(c))) => Ok((a, b, c)),
            _ => Err(slot_mismatch()),
        }
    })
}

/// The first input to succeed, with its index; every other input is then
/// cancelled (Twisted's `race`).
///
/// * If every input fails, it fails with a [`FailureGroup`] holding their
///   failures in input order.
/// * Cancelling the race cancels every input; since they then fail with
///   [`CancelledError`](crate::CancelledError), the race fails with a
///   `FailureGroup` of those (as in Twisted), unless an input's canceller
///   makes it succeed, which then wins.
/// * Every input's result is consumed: losers' results and failures go
///   nowhere and are never reported as unhandled.
/// * An empty input fails at once with an empty `FailureGroup` (Twisted's
///   `race([])` never fires; in Rust that would hang every `.await`; this
///   matches JavaScript's `Promise.any([])`).
///
/// ```
/// use tokio_deferred::{race, CancelledError, Deferred};
///
/// let (a, _ra) = Deferred::<u8>::new();
/// let a = a.add_errback(|f| { assert!(f.is::<CancelledError>()); Err(f) });
/// let (b, rb) = Deferred::<u8>::new();
/// let d = race([a, b]);
/// rb.callback(2).unwrap(); // b wins; a is cancelled
/// assert_eq!(d.try_take().unwrap().unwrap(), (1, 2));
/// ```
#[track_caller]
pub fn race<T, I>(deferreds: I) -> Deferred<(usize, T)>
where
    T: Send + 'static,
    I: IntoIterator<Item = Deferred<T>>,
{
    let inputs: Vec<Deferred<T>> = deferreds.into_iter().collect();
    let policy = RacePolicy {
        failures: inputs.iter().map(|_| None).collect(),
        _marker: PhantomData,
    };
    collect(inputs, policy, true)
}

// --- Policies ---------------------------------------------------------------

fn store<V>(slots: &mut [Option<V>], index: usize, value: V) {
    if let Some(slot) = slots.get_mut(index) {
        *slot = Some(value);
    }
}

fn failure_group(failures: &mut Vec<Option<Failure>>) -> Failure {
    Failure::new(FailureGroup::new(
        mem::take(failures).into_iter().flatten().collect(),
    ))
}

struct AllPolicy<T> {
    slots: Vec<Option<Result<T, Failure>>>,
    fire_on_one_errback: bool,
}

impl<T: Send + 'static> Policy for AllPolicy<T> {
    type Input = T;
    type Output = Vec<Result<T, Failure>>;

    fn on_empty(self) -> Result<Self::Output, Failure> {
        Ok(Vec::new())
    }

    fn on_result(
        &mut self,
        index: usize,
        result: Result<T, Failure>,
        last: bool,
    ) -> Decision<Self::Output> {
        if let (Err(f), true) = (&result, self.fire_on_one_errback) {
            let first = FirstError::new(index, f.clone());
            store(&mut self.slots, index, result);
            return Decision::Fire(Err(Failure::new(first)));
        }
        store(&mut self.slots, index, result);
        if !last {
            return Decision::Wait;
        }
        let all = mem::take(&mut self.slots)
            .into_iter()
            .map(|slot| slot.unwrap_or_else(|| Err(Failure::new(ResultTakenError {}))))
            .collect();
        Decision::Fire(Ok(all))
    }
}

struct FirstSuccessPolicy<T> {
    failures: Vec<Option<Failure>>,
    fire_on_one_errback: bool,
    _marker: PhantomData<fn(T)>,
}

impl<T: Send + 'static> Policy for FirstSuccessPolicy<T> {
    type Input = T;
    type Output = (T, usize);

    fn on_empty(mut self) -> Result<Self::Output, Failure> {
        Err(failure_group(&mut self.failures))
    }

    fn on_result(
        &mut self,
        index: usize,
        result: Result<T, Failure>,
        last: bool,
    ) -> Decision<Self::Output> {
        match result {
            Ok(v) => Decision::Fire(Ok((v, index))),
            Err(f) if self.fire_on_one_errback => {
                Decision::Fire(Err(Failure::new(FirstError::new(index, f))))
            }
            Err(f) => {
                store(&mut self.failures, index, f);
                if last {
                    Decision::Fire(Err(failure_group(&mut self.failures)))
                } else {
                    Decision::Wait
                }
            }
        }
    }
}

struct GatherPolicy<T> {
    values: Vec<Option<T>>,
    original_failure: bool,
}

impl<T: Send + 'static> Policy for GatherPolicy<T> {
    type Input = T;
    type Output = Vec<T>;

    fn on_empty(self) -> Result<Self::Output, Failure> {
        Ok(Vec::new())
    }

    fn on_result(
        &mut self,
        index: usize,
        result: Result<T, Failure>,
        last: bool,
    ) -> Decision<Self::Output> {
        match result {
            Ok(v) => {
                store(&mut self.values, index, v);
                if !last {
                    return Decision::Wait;
                }
                let values = mem::take(&mut self.values)
                    .into_iter()
                    .collect::<Option<Vec<T>>>();
                Decision::Fire(values.ok_or_else(|| Failure::new(ResultTakenError {})))
            }
            Err(f) if self.original_failure => Decision::Fire(Err(f)),
            Err(f) => Decision::Fire(Err(Failure::new(FirstError::new(index, f)))),
        }
    }
}

struct RacePolicy<T> {
    failures: Vec<Option<Failure>>,
    _marker: PhantomData<fn(T)>,
}

impl<T: Send + 'static> Policy for RacePolicy<T> {
    type Input = T;
    type Output = (usize, T);

    fn on_empty(mut self) -> Result<Self::Output, Failure> {
        Err(failure_group(&mut self.failures))
    }

    fn on_result(
        &mut self,
        index: usize,
        result: Result<T, Failure>,
        last: bool,
    ) -> Decision<Self::Output> {
        match result {
            Ok(v) => Decision::Win(Ok((index, v)), index),
            Err(f) => {
                store(&mut self.failures, index, f);
                if last {
                    Decision::Fire(Err(failure_group(&mut self.failures)))
                } else {
                    Decision::Wait
                }
            }
        }
    }
}
