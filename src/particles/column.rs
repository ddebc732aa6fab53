//! `Column<T>`: one dense, 64-byte aligned array of plain values.
//!
//! A column's storage is a run of cache lines (`memory::LineBuf`) in the
//! memory system's column space, placed by the strategy the player picks
//! (first-fit, best-fit or buddy; the heap only if the space is full). The
//! lines are viewed as a slice of `T` through `bytemuck`, which checks the
//! cast (`T` must be `Pod` and its size must divide 64). Growth doubles,
//! like a `Vec`.
//!
//! Columns report their memory to the memory system: every change of
//! capacity goes to the call-site table (`memory::SITES`, as one site, the
//! particle columns), and the bytes are charged to whichever component grew
//! them (`memory::ledger`).

use crate::memory::{LineBuf, SITES};
use std::marker::PhantomData;
use std::panic::Location;

use bytemuck::Pod;

/// Bytes in one cache line.
pub const LINE_BYTES: usize = crate::memory::column_space::LINE;

/// A dense array of `T` whose first element sits on a 64-byte boundary.
///
/// The column always holds at least one spare cache line past its length, so
/// `as_padded_slice` lets vector kernels read a few lanes past the end
/// without a scalar tail loop (those lanes hold stale values; mask them).
pub struct Column<T: Pod> {
    lines: LineBuf,
    len: usize,
    site: &'static Location<'static>,
    _values: PhantomData<T>,
}

impl<T: Pod> Default for Column<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Pod> Clone for Column<T> {
    fn clone(&self) -> Self {
        let c = Self {
            lines: self.lines.clone(),
            len: self.len,
            site: self.site,
            _values: PhantomData,
        };
        c.note(0);
        c
    }
}

impl<T: Pod> Drop for Column<T> {
    fn drop(&mut self) {
        if self.lines.lines() > 0 {
            SITES.record_free(self.site, self.reserved_bytes());
        }
    }
}

impl<T: Pod> Column<T> {
    const PER_LINE: usize = {
        assert!(size_of::<T>() > 0 && LINE_BYTES.is_multiple_of(size_of::<T>()));
        LINE_BYTES / size_of::<T>()
    };

    #[track_caller]
    pub fn new() -> Self {
        Self {
            lines: LineBuf::new(),
            len: 0,
            site: Location::caller(),
            _values: PhantomData,
        }
    }

    /// Tells the site table about a capacity change from `old_lines`.
    #[inline]
    fn note(&self, old_lines: usize) {
        let new_lines = self.lines.lines();
        if new_lines == old_lines {
            return;
        }
        let (old, new) = (old_lines * LINE_BYTES, new_lines * LINE_BYTES);
        match (old, new) {
            (0, _) => SITES.record_alloc(self.site, new),
            (_, 0) => SITES.record_free(self.site, old),
            _ => SITES.record_resize(self.site, old, new),
        }
    }

    /// Re-allocates to `lines` lines, keeping every element.
    fn relocate(&mut self, lines: usize) {
        let old = self.lines.lines();
        self.lines.realloc(lines, old);
        self.note(old);
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Elements the column holds without growing.
    pub fn capacity(&self) -> usize {
        self.lines.lines() * Self::PER_LINE
    }

    /// Bytes reserved by the column (whole cache lines).
    pub fn reserved_bytes(&self) -> usize {
        self.lines.lines() * LINE_BYTES
    }

    /// Where the lines live: the column space's strategy, or "heap".
    pub fn home(&self) -> &'static str {
        self.lines.home()
    }

    /// The column space the lines are in (none while empty or on the heap).
    pub fn space(&self) -> Option<&std::sync::Arc<crate::memory::ColumnSpace>> {
        self.lines.space()
    }

    pub fn as_slice(&self) -> &[T] {
        &self.as_padded_slice()[..self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [T] {
        let len = self.len;
        &mut bytemuck::cast_slice_mut::<u8, T>(self.lines.bytes_mut())[..len]
    }

    /// The live elements followed by at least one cache line of padding.
    pub fn as_padded_slice(&self) -> &[T] {
        bytemuck::cast_slice::<u8, T>(self.lines.bytes())
    }

    /// Lines needed to hold `len` elements plus the spare line.
    fn lines_for(len: usize) -> usize {
        len.div_ceil(Self::PER_LINE) + 1
    }

    /// Reserves room for `additional` more elements.
    pub fn reserve(&mut self, additional: usize) {
        let lines = Self::lines_for(self.len + additional);
        if lines > self.lines.lines() {
            self.relocate(lines.max(2 * self.lines.lines()));
        }
    }

    /// Sets the length to `len`; new elements are zero.
    pub fn resize_zeroed(&mut self, len: usize) {
        let lines = Self::lines_for(len);
        if lines > self.lines.lines() {
            self.relocate(lines);
        }
        if len > self.len {
            let old = self.len;
            self.len = len;
            self.as_mut_slice()[old..].fill(T::zeroed());
        } else {
            self.len = len;
        }
    }

    pub fn push(&mut self, value: T) {
        let i = self.len;
        let lines = Self::lines_for(i + 1);
        if self.lines.lines() < lines {
            self.relocate(lines.max(2 * self.lines.lines()));
        }
        self.len += 1;
        self.as_mut_slice()[i] = value;
    }

    /// Moves the last element into `index` and shortens by one (O(1)).
    pub fn swap_remove(&mut self, index: usize) -> T {
        let s = self.as_mut_slice();
        let value = s[index];
        let last = s.len() - 1;
        s[index] = s[last];
        self.len -= 1;
        value
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Releases memory beyond what `len` needs.
    pub fn shrink_to_fit(&mut self) {
        let lines = if self.len == 0 {
            0
        } else {
            Self::lines_for(self.len)
        };
        if lines < self.lines.lines() {
            self.relocate(lines);
        }
    }

    /// Moves the lines into the current column space (after the player
    /// picked another strategy), keeping capacity and values.
    pub fn rehome(&mut self) {
        let lines = self.lines.lines();
        if lines > 0 {
            self.lines.realloc(lines, lines);
        }
    }
}

impl<T: Pod + std::fmt::Debug> std::fmt::Debug for Column<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_cache_line_aligned_and_keep_values() {
        let mut a: Column<f32> = Column::new();
        let mut b: Column<u8> = Column::new();
        for i in 0..1000 {
            a.push(i as f32);
            b.push((i % 251) as u8);
        }
        assert_eq!(a.as_slice().as_ptr() as usize % 64, 0);
        assert!(a.as_padded_slice().len() >= a.len() + 16);
        assert!(b.as_padded_slice().len() >= b.len() + 64);
        assert_eq!(b.as_slice().as_ptr() as usize % 64, 0);
        assert_eq!(a.len(), 1000);
        assert_eq!(a.as_slice()[999], 999.0);
        assert_eq!(b.as_slice()[260], (260 % 251) as u8);
        assert_eq!(a.swap_remove(0), 0.0);
        assert_eq!(a.as_slice()[0], 999.0);
        assert_eq!(a.len(), 999);
        a.resize_zeroed(1200);
        assert_eq!(a.as_slice()[1100], 0.0);
        a.resize_zeroed(10);
        a.shrink_to_fit();
        assert!(a.capacity() >= 10 && a.capacity() <= 64);
    }
}
