//! Where a [`LocalDeferred`](crate::LocalDeferred)'s entries live: an
//! arena of 16-byte words in a list of chunks, the first of
//! [`INLINE_CHUNK`] words inside the state's own allocation, then heap
//! chunks of [`FIRST_HEAP_CHUNK`] words, each next one twice the last.
//!
//! A chunk never moves (the state is never moved out of its `Rc`, and a
//! heap chunk is freed only when the state is dropped), so a callback may
//! add to the chain while it runs: the run loop re-reads a chunk's length
//! after every entry. An entry is counted in its chunk's `used` only once
//! it is written, so a walker never sees a half-built one.

// LocalDeferred's arena: raw allocation and pointers into it, each use
// argued in a `SAFETY` comment.
#![allow(unsafe_code)]

use std::alloc::{self, Layout};
use std::cell::UnsafeCell;
use std::mem;
use std::ptr;
use std::rc::Rc;

use super::header::{Header, Op, Word, words_of};
use super::state::Inner;

/// A chunk's first word: the next chunk, and how much of this one is in
/// use (the rest of the chunk holds entries).
#[repr(C)]
pub(super) struct Chunk {
    pub(super) next: *mut Word,
    /// Words in use, this one included.
    pub(super) used: u32,
    /// Words in the chunk, this one included.
    pub(super) cap: u32,
}

/// The first chunk's size in words (192 bytes), inside the state's own
/// allocation: room for the source and two or three small callbacks, so a
/// Deferred with a short chain (or none) is one allocation.
pub(super) const INLINE_CHUNK: usize = 12;

/// The first chunk on the heap (512 bytes); each next one doubles.
const FIRST_HEAP_CHUNK: usize = 32;

/// The largest chunk, in words (4 GiB).
const MAX_CHUNK: usize = 1 << 28;

impl Inner {
    /// Makes room for an `E` at the end of the arena and has `fill` write
    /// it there field by field (no `E` is built elsewhere and copied in).
    ///
    /// # Safety
    ///
    /// `fill` must initialise every field of the `E` it is given, starting
    /// with a `Header` made by `Header::of::<E, _>`.
    #[inline(always)]
    pub(super) unsafe fn push_with<E>(&self, fill: impl FnOnce(*mut E)) -> *mut Word {
        let words = const { words_of::<E>() };
        let mut tail = self.tail.get();
        // SAFETY: `tail` is null or the last chunk, whose header says how
        // much of it is in use; a new chunk is linked before use.
        unsafe {
            if tail.is_null() || {
                let c = &*tail.cast::<Chunk>();
                c.used as usize + words as usize > c.cap as usize
            } {
                tail = self.grow(words);
            }
            let c = tail.cast::<Chunk>();
            let used = (*c).used;
            let e = tail.add(used as usize);
            fill(e.cast::<E>());
            // Counted in use only once written, so a walker never sees a
            // half-built entry (`fill` runs no user code, but stays safe).
            (*c).used = used + words;
            self.last.set(e);
            e
        }
    }

    /// Links a new chunk with room for `words` (twice the last one).
    #[cold]
    fn grow(&self, words: u32) -> *mut Word {
        let tail = self.tail.get();
        let cap = if tail.is_null() {
            FIRST_HEAP_CHUNK
        } else {
            // SAFETY: `tail` is a chunk.
            unsafe { ((*tail.cast::<Chunk>()).cap as usize * 2).max(FIRST_HEAP_CHUNK) }
        }
        // Chunks stop doubling at 4 GiB; an entry (at most 1 GiB) always
        // fits one, and every count fits a `u32`.
        .min(MAX_CHUNK)
        .max(words as usize + 1);
        let layout = chunk_layout(cap);
        // SAFETY: `layout` is not zero-sized.
        let chunk = unsafe { alloc::alloc(layout) }.cast::<Word>();
        if chunk.is_null() {
            alloc::handle_alloc_error(layout);
        }
        // SAFETY: `chunk` is a fresh block of `cap` words; `tail`, if any,
        // is the last chunk.
        unsafe {
            chunk.cast::<Chunk>().write(Chunk {
                next: ptr::null_mut(),
                used: 1,
                cap: cap as u32,
            });
            if tail.is_null() {
                self.head.set(chunk);
            } else {
                (*tail.cast::<Chunk>()).next = chunk;
            }
        }
        self.tail.set(chunk);
        chunk
    }
}

fn chunk_layout(cap: usize) -> Layout {
    // `cap` words of 16 bytes: at most `u32::MAX` words, well within
    // `isize::MAX` on 64-bit targets; `Layout` checks it on others.
    Layout::array::<Word>(cap).unwrap_or_else(|_| alloc::handle_alloc_error(Layout::new::<Word>()))
}

impl Inner {
    /// Makes the inline chunk the arena's first (and last) chunk. Called
    /// once, on a new state in its `Rc`, before anything is pushed.
    pub(super) fn init_arena(this: &Rc<Inner>) {
        // SAFETY: `Rc::as_ptr` points to the live state; the field's
        // address is taken without making a reference. The chunk is
        // written only through pointers derived from this one, which
        // `UnsafeCell` allows while shared references to the state exist.
        let first =
            unsafe { UnsafeCell::raw_get(&raw const (*Rc::as_ptr(this)).inline) }.cast::<Word>();
        // SAFETY: `first` is `INLINE_CHUNK` words, aligned, unused so far.
        unsafe {
            first.cast::<Chunk>().write(Chunk {
                next: ptr::null_mut(),
                used: 1,
                cap: INLINE_CHUNK as u32,
            })
        };
        this.head.set(first);
        this.tail.set(first);
    }

    /// Points `prev` into the inline chunk through `&mut self`, for the
    /// state's `Drop`: pointers into the inline chunk were derived from the
    /// `Rc`'s pointer, and while `drop` holds the unique borrow of the
    /// state they must be re-derived from it (Stacked Borrows forbids using
    /// the old ones while that borrow is protected).
    pub(super) fn rebase_for_drop(&mut self) {
        let old = self.head.get();
        let inline = self.inline.get_mut().as_mut_ptr().cast::<Word>();
        let p = self.prev.get();
        let off = p.addr().wrapping_sub(old.addr());
        if off < INLINE_CHUNK * mem::size_of::<Word>() {
            self.prev.set(inline.wrapping_byte_add(off));
        }
    }

    /// Drops the entries still holding something and frees the heap
    /// chunks, for the state's `Drop` (after [`rebase_for_drop`]).
    ///
    /// [`rebase_for_drop`]: Inner::rebase_for_drop
    pub(super) fn drop_arena(&mut self) {
        // The entries before `prev` have run: each gave up its link and
        // had its output taken by the next one, so only `prev` (the current
        // result) and the entries after it hold anything to drop.
        let prev = self.prev.get();
        let mut live = false;
        let mut chunk = self.inline.get_mut().as_mut_ptr().cast::<Word>();
        let inline = chunk;
        while !chunk.is_null() {
            // SAFETY: `chunk` is a chunk of this arena: its entries, each
            // starting with a `Header` and `words` long, fill it to `used`;
            // each is dropped once, then a heap chunk is freed with the
            // layout it was allocated with (the inline one goes with the
            // state). Nothing else refers to the arena.
            unsafe {
                let Chunk { next, used, cap } = chunk.cast::<Chunk>().read();
                let mut at = 1;
                while at < used as usize {
                    let e = chunk.add(at);
                    let h = &*e.cast::<Header>();
                    let (ops, words) = (h.ops, h.words);
                    at += words as usize;
                    live |= e == prev;
                    if live {
                        ops(e, Op::Drop);
                    }
                }
                if chunk != inline {
                    alloc::dealloc(chunk.cast(), chunk_layout(cap as usize));
                }
                chunk = next;
            }
        }
    }
}
