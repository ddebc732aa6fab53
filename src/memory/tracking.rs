//! `TrackingAlloc`: a global allocator wrapper that attributes every heap
//! byte to the component the allocating thread is working for
//! (`ledger::enter`). The component is written in a small header in front
//! of the block, so a block freed by another thread, or under another tag,
//! is still subtracted from the component that allocated it.
//!
//! Install it in a binary:
//! `#[global_allocator] static A: TrackingAlloc<std::alloc::System> = TrackingAlloc(std::alloc::System);`

use super::ledger::{LEDGER, current};
use std::alloc::{GlobalAlloc, Layout};

pub struct TrackingAlloc<A>(pub A);

/// Header bytes in front of a block of this alignment: room for the tag,
/// and a multiple of the alignment so the block stays aligned.
#[inline]
fn header(align: usize) -> usize {
    align.max(16)
}

#[inline]
fn outer(layout: Layout) -> Option<Layout> {
    let h = header(layout.align());
    Layout::from_size_align(layout.size().checked_add(h)?, layout.align()).ok()
}

/// Writes the tag in front of the user block of `raw` and counts it.
///
/// # Safety
/// `raw` is a non-null block of `outer(layout)` from the inner allocator.
#[inline]
unsafe fn tag(raw: *mut u8, layout: Layout) -> *mut u8 {
    let tag = current() as u8;
    // SAFETY: the header lies inside the inner block; the user block starts
    // `header` bytes in and is aligned (the header is a multiple of the
    // alignment, the inner block is aligned).
    unsafe {
        let user = raw.add(header(layout.align()));
        user.sub(1).write(tag);
        LEDGER.heap_alloc(tag, layout.size());
        user
    }
}

// SAFETY: every block handed out is `header` bytes into a block of the inner
// allocator obtained with `outer(layout)`, which has the same alignment and
// `header` more bytes; dealloc and realloc undo exactly that.
unsafe impl<A: GlobalAlloc> GlobalAlloc for TrackingAlloc<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(outer) = outer(layout) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `outer` has a non-zero size (it includes the header).
        let raw = unsafe { self.0.alloc(outer) };
        if raw.is_null() {
            return raw;
        }
        // SAFETY: `raw` is a non-null block of `outer(layout)`.
        unsafe { tag(raw, layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc`/`realloc` with this layout, so the
        // tag byte and the inner block are where they were put.
        unsafe {
            let tag = ptr.sub(1).read();
            LEDGER.heap_free(tag, layout.size());
            let outer = outer(layout).expect("a layout that was allocated");
            self.0.dealloc(ptr.sub(header(layout.align())), outer);
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let Some(outer) = outer(layout) else {
            return std::ptr::null_mut();
        };
        // SAFETY: as in `alloc`.
        let raw = unsafe { self.0.alloc_zeroed(outer) };
        if raw.is_null() {
            return raw;
        }
        // SAFETY: `raw` is a non-null block of `outer(layout)`.
        unsafe { tag(raw, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let h = header(layout.align());
        let (Some(old_outer), Some(new_total)) = (outer(layout), new_size.checked_add(h)) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `ptr` came from this allocator with `layout`; the inner
        // block is `old_outer` at `ptr - h`; the header (and its tag) moves
        // with the block because realloc keeps the leading bytes.
        unsafe {
            let tag = ptr.sub(1).read();
            let raw = self.0.realloc(ptr.sub(h), old_outer, new_total);
            if raw.is_null() {
                return raw;
            }
            LEDGER.heap_resize(tag, layout.size(), new_size);
            raw.add(h)
        }
    }
}
