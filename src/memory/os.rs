//! Memory straight from the OS: anonymous private mappings, for the pool's
//! buffers and the slab caches' pages, so that giving memory back is
//! immediate and exact (no allocator keeps it).

use std::ptr::NonNull;

/// Maps `bytes` of zeroed, readable and writable memory; `None` if refused.
pub fn map(bytes: usize) -> Option<NonNull<u8>> {
    // SAFETY: an anonymous private mapping with no address hint; the result
    // is checked before use.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        None
    } else {
        NonNull::new(p as *mut u8)
    }
}

/// Returns a mapping to the OS.
///
/// # Safety
/// `p` came from `map(bytes)`, is unmapped once, and nothing points into it
/// any more.
pub unsafe fn unmap(p: NonNull<u8>, bytes: usize) {
    // SAFETY: the caller's contract.
    unsafe { libc::munmap(p.as_ptr() as *mut libc::c_void, bytes) };
}
