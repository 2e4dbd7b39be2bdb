//! An `Arc` whose value is built in its allocation, with no atomic
//! read-modify-write.
//!
//! `Arc::new(value)` builds the value on the stack and copies it after
//! `malloc`: 16-byte loads over the narrower stores that built it, which
//! the store buffer cannot forward (a stall). `Arc::new_cyclic` builds in
//! place but then raises the strong count with a locked `fetch_add`, which
//! waits for every one of those stores to drain. Allocating first
//! (`Arc::new_uninit`, counts already 1) and writing the value through the
//! only pointer to it does neither (BENCHMARKS.md, round 12).

#![allow(unsafe_code)]

use std::mem::MaybeUninit;
use std::sync::Arc;

/// `Arc::new(build())`, with the value written straight into the
/// allocation.
#[inline(always)]
pub(crate) fn arc_in_place<T>(build: impl FnOnce() -> T) -> Arc<T> {
    let uninit: Arc<MaybeUninit<T>> = Arc::new_uninit();
    let slot = Arc::as_ptr(&uninit).cast_mut();
    // SAFETY: `uninit` was just allocated and is the only handle on it (no
    // clone, no `Weak`), so nothing else reads or writes the value while it
    // is written through `slot`, which points to it and is valid and
    // aligned for a `MaybeUninit<T>`. If `build` panics, `uninit` is
    // dropped still uninitialised, which frees the block without dropping a
    // `T`.
    unsafe { (*slot).write(build()) };
    // SAFETY: the value was initialised just above.
    unsafe { uninit.assume_init() }
}

#[cfg(test)]
mod tests {
    use super::arc_in_place;
    use std::sync::Arc;

    #[test]
    fn builds_the_value_with_counts_of_one() {
        let a = arc_in_place(|| vec![1u8, 2, 3]);
        assert_eq!(*a, [1, 2, 3]);
        assert_eq!(Arc::strong_count(&a), 1);
        assert_eq!(Arc::weak_count(&a), 0);
        let b = a.clone();
        drop(a);
        assert_eq!(*b, [1, 2, 3]);
    }

    #[test]
    fn a_panicking_build_leaks_nothing_and_drops_nothing() {
        struct Loud;
        impl Drop for Loud {
            fn drop(&mut self) {
                panic!("an unbuilt value was dropped");
            }
        }
        let r = std::panic::catch_unwind(|| arc_in_place::<Loud>(|| panic!("in build")));
        assert!(r.is_err());
    }
}
