//! One value per Tokio runtime, kept in a process-wide registry: the timer
//! driver of `defer_later` and the default `Cooperator` of each runtime.
//!
//! [`PerRuntime::get_or_make`] finds the value of a runtime or makes it.
//! Whoever made it starts, on that runtime, a task that owns a guard whose
//! drop calls [`PerRuntime::remove`]: the runtime drops its tasks when it
//! shuts down (even tasks that never ran), so the entry goes with it. The
//! task is spawned after the registry's lock is released, because on a
//! runtime that is already shutting down `spawn` drops the future, and so
//! runs the guard's drop, at once.

use tokio::runtime::Id;

use crate::loom::std::Mutex;

/// A registry of one `V` per runtime (see the module docs). Process-wide,
/// so it always uses the std mutex adapter, even under loom.
pub(crate) struct PerRuntime<V> {
    entries: Mutex<Vec<(Id, V)>>,
}

impl<V: Clone> PerRuntime<V> {
    pub(crate) const fn new() -> Self {
        PerRuntime {
            entries: Mutex::new(Vec::new()),
        }
    }

    /// The value of runtime `id`, if it has one.
    pub(crate) fn get(&self, id: Id) -> Option<V> {
        let entries = self.entries.lock();
        entries
            .iter()
            .find(|(rt, _)| *rt == id)
            .map(|(_, v)| v.clone())
    }

    /// The value of runtime `id`, made by `make` if it has none; `true`
    /// when this call made it (the caller then starts the task that
    /// removes it at shutdown, with no lock held).
    pub(crate) fn get_or_make(&self, id: Id, make: impl FnOnce() -> V) -> (V, bool) {
        let mut entries = self.entries.lock();
        if let Some((_, v)) = entries.iter().find(|(rt, _)| *rt == id) {
            return (v.clone(), false);
        }
        let v = make();
        entries.push((id, v.clone()));
        (v, true)
    }

    /// Removes the entry of runtime `id` if `is_it` recognises it as the
    /// guard's own value (a value made again after a removal is not taken
    /// out by an older guard); whether it was there.
    pub(crate) fn remove(&self, id: Id, is_it: impl Fn(&V) -> bool) -> bool {
        let mut entries = self.entries.lock();
        let before = entries.len();
        entries.retain(|(rt, v)| !(*rt == id && is_it(v)));
        before != entries.len()
    }
}
