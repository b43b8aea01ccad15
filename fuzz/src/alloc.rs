//! A global allocator that counts live heap bytes per thread, so a harness can bound what a
//! core keeps whatever it is fed (a table that grows with every new address shows up here).
//! Per thread, so that the harness's tests, which run in parallel, each see their own; a
//! harness allocates and frees on one thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// Bytes allocated minus bytes freed on this thread (wrapping: what one thread frees of
    /// another's would make it negative).
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

/// The system allocator, counting. Install with `#[global_allocator]`.
pub struct Counting;

fn count(delta: isize) {
    // `try_with`: nothing to count while the thread's locals are being torn down.
    let _ = LIVE.try_with(|l| l.set(l.get().wrapping_add(delta)));
}

// SAFETY: every call forwards to `System` with the same arguments; the counter only observes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is `System`'s.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Heap bytes this thread has live (0 when [`Counting`] is not the global allocator).
pub fn live() -> isize {
    LIVE.try_with(Cell::get).unwrap_or(0)
}

/// Whether [`Counting`] is the global allocator (it counted an allocation).
pub fn installed() -> bool {
    let before = live();
    let probe = std::hint::black_box(Box::new(0u64));
    let counted = live() != before;
    drop(probe);
    counted
}
