//! The particle store: structure-of-arrays columns with generational handles.
//!
//! Scheme (a slot map over dense columns):
//! - Live particles occupy the dense prefix `0..len` of every column, with no
//!   holes, so every hot loop is a straight pass over slices.
//! - A `Handle` is `(slot, generation)`. `slots[slot]` says where that
//!   particle's row is now (`dense`) and which generation owns the slot;
//!   `owner[dense]` points back to the slot. Moving rows (despawn's swap,
//!   cell-order sorting) only rewrites these two small arrays.
//! - Spawn appends a row and takes a slot from the free list: O(1).
//! - Despawn moves the last row into the hole and bumps the slot's generation,
//!   so every old copy of the handle is caught as stale: O(1).
//! - Sorting rows (every physics substep) rewrites `owner` only; the slots'
//!   row numbers are brought up to date on the next handle lookup, not
//!   after every sort — a million random writes per substep that the
//!   physics never reads.

use super::column::Column;
use crate::workers::WorkerPool;
use bytemuck::Pod;

/// A stable name for one particle. Stale handles are detected, never misread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Handle {
    pub slot: u32,
    pub generation: u32,
}

/// What can go wrong with a handle or a spawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the particle handle is stale: that particle was despawned")]
    Stale,
    #[error("the particle handle names a slot this store never had")]
    UnknownSlot,
    #[error("the particle store is full ({0} particles); raise particles.max in the config")]
    Full(usize),
}

/// Old handle → new handle after `ParticleStore::compact`.
#[derive(Clone, Debug, Default)]
pub struct Remap {
    map: Vec<Option<(u32, Handle)>>,
}

impl Remap {
    /// The particle's new handle, if the old one was live at compaction.
    pub fn get(&self, old: Handle) -> Option<Handle> {
        match self.map.get(old.slot as usize)? {
            Some((generation, new)) if *generation == old.generation => Some(*new),
            _ => None,
        }
    }
}

/// Everything needed to create one particle.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NewParticle {
    pub x: f32,
    pub y: f32,
    pub vx: f32,
    pub vy: f32,
    pub radius: f32,
    pub inv_mass: f32,
    pub kind: u8,
}

const FREE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Slot {
    dense: u32,
    generation: u32,
}

/// Read-only view of the live rows.
pub struct ParticleSlices<'a> {
    pub x: &'a [f32],
    pub y: &'a [f32],
    pub vx: &'a [f32],
    pub vy: &'a [f32],
    pub radius: &'a [f32],
    pub inv_mass: &'a [f32],
    pub age: &'a [f32],
    /// Contacts each particle had in the last physics pass.
    pub contacts: &'a [f32],
    pub kind: &'a [u8],
}

/// The float columns with their padding (see `Column::as_padded_slice`), for
/// vector kernels that read whole lanes past the last row.
pub struct PaddedSlices<'a> {
    pub x: &'a [f32],
    pub y: &'a [f32],
    pub vx: &'a [f32],
    pub vy: &'a [f32],
    pub radius: &'a [f32],
    pub inv_mass: &'a [f32],
    pub contacts: &'a [f32],
}

/// Mutable view of the live rows (values only: the row count cannot change).
pub struct ParticleSlicesMut<'a> {
    pub x: &'a mut [f32],
    pub y: &'a mut [f32],
    pub vx: &'a mut [f32],
    pub vy: &'a mut [f32],
    pub radius: &'a mut [f32],
    pub inv_mass: &'a mut [f32],
    pub age: &'a mut [f32],
    pub contacts: &'a mut [f32],
    pub kind: &'a mut [u8],
}

/// The columns of a store (or a scratch copy used while reordering).
#[derive(Clone, Default)]
struct Columns {
    x: Column<f32>,
    y: Column<f32>,
    vx: Column<f32>,
    vy: Column<f32>,
    radius: Column<f32>,
    inv_mass: Column<f32>,
    age: Column<f32>,
    contacts: Column<f32>,
    kind: Column<u8>,
    owner: Column<u32>,
}

/// How many columns a store has (`Columns`' fields).
const COLUMNS: usize = 10;

/// Applies `$f` to each column of `$c` with a shared set of arguments.
macro_rules! each_column {
    ($c:expr, |$col:ident| $body:expr) => {{
        {
            let $col = &mut $c.x;
            $body;
        }
        {
            let $col = &mut $c.y;
            $body;
        }
        {
            let $col = &mut $c.vx;
            $body;
        }
        {
            let $col = &mut $c.vy;
            $body;
        }
        {
            let $col = &mut $c.radius;
            $body;
        }
        {
            let $col = &mut $c.inv_mass;
            $body;
        }
        {
            let $col = &mut $c.age;
            $body;
        }
        {
            let $col = &mut $c.contacts;
            $body;
        }
        {
            let $col = &mut $c.kind;
            $body;
        }
        {
            let $col = &mut $c.owner;
            $body;
        }
    }};
}

/// Structure-of-arrays particle storage with generational handles.
#[derive(Default)]
pub struct ParticleStore {
    cols: Columns,
    /// Reused by `permute` so reordering allocates nothing in steady state.
    scratch: Columns,
    slots: Vec<Slot>,
    free: Vec<u32>,
    capacity_limit: usize,
    /// `slots[..].dense` is out of date after `permute`; `owner` is not.
    links_stale: bool,
}

impl ParticleStore {
    /// A store that holds at most `max` particles.
    pub fn with_limit(max: usize) -> Self {
        Self {
            capacity_limit: max,
            ..Default::default()
        }
    }

    pub fn limit(&self) -> usize {
        self.capacity_limit
    }

    /// Changes the most particles the store will hold; particles beyond a
    /// lowered limit stay until they despawn.
    pub fn set_limit(&mut self, max: usize) {
        self.capacity_limit = max;
    }

    pub fn len(&self) -> usize {
        self.cols.x.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves every column (and the reorder scratch) into the current
    /// column space, after the player picked another allocator strategy.
    pub fn rehome(&mut self) {
        each_column!(self.cols, |c| c.rehome());
        each_column!(self.scratch, |c| c.rehome());
    }

    /// The column space holding the columns (none while empty or on the heap).
    pub fn column_space(&self) -> Option<std::sync::Arc<crate::memory::ColumnSpace>> {
        self.cols.x.space().cloned()
    }

    /// Where the columns' lines live: the column space's strategy, or
    /// "heap" if the space was full ("empty" before the first particle).
    pub fn column_home(&self) -> &'static str {
        self.cols.x.home()
    }

    /// Bytes held by the columns, scratch and handle tables.
    pub fn reserved_bytes(&self) -> usize {
        fn cols(c: &Columns) -> usize {
            c.x.reserved_bytes()
                + c.y.reserved_bytes()
                + c.vx.reserved_bytes()
                + c.vy.reserved_bytes()
                + c.radius.reserved_bytes()
                + c.inv_mass.reserved_bytes()
                + c.age.reserved_bytes()
                + c.contacts.reserved_bytes()
                + c.kind.reserved_bytes()
                + c.owner.reserved_bytes()
        }
        cols(&self.cols)
            + cols(&self.scratch)
            + self.slots.capacity() * size_of::<Slot>()
            + self.free.capacity() * 4
    }

    pub fn reserve(&mut self, additional: usize) {
        each_column!(self.cols, |c| c.reserve(additional));
    }

    /// Adds a particle at the end of the dense rows.
    pub fn spawn(&mut self, p: NewParticle) -> Result<Handle, StoreError> {
        let dense = self.len();
        if dense >= self.capacity_limit {
            return Err(StoreError::Full(self.capacity_limit));
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot {
                    dense: FREE,
                    generation: 0,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let s = &mut self.slots[slot as usize];
        s.dense = dense as u32;
        let c = &mut self.cols;
        c.x.push(p.x);
        c.y.push(p.y);
        c.vx.push(p.vx);
        c.vy.push(p.vy);
        c.radius.push(p.radius);
        c.inv_mass.push(p.inv_mass);
        c.age.push(0.0);
        c.contacts.push(0.0);
        c.kind.push(p.kind);
        c.owner.push(slot);
        Ok(Handle {
            slot,
            generation: s.generation,
        })
    }

    /// The dense row of a live particle. O(1), except that the first lookup
    /// after rows were sorted brings every slot up to date.
    pub fn index_of(&mut self, h: Handle) -> Result<usize, StoreError> {
        self.relink();
        let s = self
            .slots
            .get(h.slot as usize)
            .ok_or(StoreError::UnknownSlot)?;
        if s.generation != h.generation || s.dense == FREE {
            return Err(StoreError::Stale);
        }
        Ok(s.dense as usize)
    }

    pub fn contains(&mut self, h: Handle) -> bool {
        self.index_of(h).is_ok()
    }

    /// The handle of the particle now in dense row `index`.
    pub fn handle_at(&self, index: usize) -> Handle {
        let slot = self.cols.owner.as_slice()[index];
        Handle {
            slot,
            generation: self.slots[slot as usize].generation,
        }
    }

    /// Removes a particle; its handle (and every copy) becomes stale.
    pub fn despawn(&mut self, h: Handle) -> Result<(), StoreError> {
        let dense = self.index_of(h)?;
        self.remove_row(dense);
        Ok(())
    }

    /// Removes the particle in dense row `dense`, moving the last row into it.
    fn remove_row(&mut self, dense: usize) {
        let slot = self.cols.owner.as_slice()[dense];
        each_column!(self.cols, |c| {
            c.swap_remove(dense);
        });
        if dense < self.len() {
            let moved = self.cols.owner.as_slice()[dense];
            self.slots[moved as usize].dense = dense as u32;
        }
        let s = &mut self.slots[slot as usize];
        s.dense = FREE;
        s.generation = s.generation.wrapping_add(1);
        self.free.push(slot);
    }

    /// Removes every particle for which `dead(row)` is true; returns how many.
    /// `dead` sees every row once, in row order, before any is removed.
    pub fn despawn_where(
        &mut self,
        mut dead: impl FnMut(&ParticleSlices<'_>, usize) -> bool,
    ) -> usize {
        // Decide first, on one view of the columns (taking the view per
        // row cost more than the test itself); then remove from the last
        // row down, so every row a removal moves is one already kept.
        let doomed: Vec<usize> = {
            let s = self.slices();
            (0..self.len()).filter(|&i| dead(&s, i)).collect()
        };
        for &i in doomed.iter().rev() {
            self.remove_row(i);
        }
        doomed.len()
    }

    /// How much of the store is dead weight, 0..1: slots no live particle
    /// owns, or column capacity no particle uses, whichever is larger.
    pub fn fragmentation(&self) -> f64 {
        let live = self.len() as f64;
        let slots = self.slots.len().max(1) as f64;
        let cap = self.cols.x.capacity().max(1) as f64;
        (1.0 - live / slots).max(1.0 - live / cap).max(0.0)
    }

    /// Defragments: every live particle keeps its row (the rows are dense
    /// and in grid-cell order already), the handle table is rebuilt so slot
    /// `i` names row `i`, and the columns and tables shrink to fit, giving
    /// their spare memory back. Every old handle becomes stale; the returned
    /// `Remap` turns a live particle's old handle into its new one.
    pub fn compact(&mut self) -> Remap {
        self.relink();
        let n = self.len();
        let next_generation = self
            .slots
            .iter()
            .map(|s| s.generation)
            .max()
            .unwrap_or(0)
            .wrapping_add(1);
        let mut map = vec![None; self.slots.len()];
        for (row, &slot) in self.cols.owner.as_slice().iter().enumerate() {
            let old = self.slots[slot as usize];
            map[slot as usize] = Some((
                old.generation,
                Handle {
                    slot: row as u32,
                    generation: next_generation,
                },
            ));
        }
        self.slots = (0..n)
            .map(|row| Slot {
                dense: row as u32,
                generation: next_generation,
            })
            .collect();
        self.free = Vec::new();
        for (row, owner) in self.cols.owner.as_mut_slice().iter_mut().enumerate() {
            *owner = row as u32;
        }
        each_column!(self.cols, |c| c.shrink_to_fit());
        each_column!(self.scratch, |c| {
            c.clear();
            c.shrink_to_fit()
        });
        debug_assert!(self.check_invariants().is_ok());
        Remap { map }
    }

    /// Removes every particle; all handles become stale.
    pub fn clear(&mut self) {
        for &slot in self.cols.owner.as_slice() {
            let s = &mut self.slots[slot as usize];
            s.dense = FREE;
            s.generation = s.generation.wrapping_add(1);
            self.free.push(slot);
        }
        each_column!(self.cols, |c| c.clear());
    }

    pub fn slices(&self) -> ParticleSlices<'_> {
        let c = &self.cols;
        ParticleSlices {
            x: c.x.as_slice(),
            y: c.y.as_slice(),
            vx: c.vx.as_slice(),
            vy: c.vy.as_slice(),
            radius: c.radius.as_slice(),
            inv_mass: c.inv_mass.as_slice(),
            age: c.age.as_slice(),
            contacts: c.contacts.as_slice(),
            kind: c.kind.as_slice(),
        }
    }

    pub fn padded_slices(&self) -> PaddedSlices<'_> {
        let c = &self.cols;
        PaddedSlices {
            x: c.x.as_padded_slice(),
            y: c.y.as_padded_slice(),
            vx: c.vx.as_padded_slice(),
            vy: c.vy.as_padded_slice(),
            radius: c.radius.as_padded_slice(),
            inv_mass: c.inv_mass.as_padded_slice(),
            contacts: c.contacts.as_padded_slice(),
        }
    }

    pub fn slices_mut(&mut self) -> ParticleSlicesMut<'_> {
        let c = &mut self.cols;
        ParticleSlicesMut {
            x: c.x.as_mut_slice(),
            y: c.y.as_mut_slice(),
            vx: c.vx.as_mut_slice(),
            vy: c.vy.as_mut_slice(),
            radius: c.radius.as_mut_slice(),
            inv_mass: c.inv_mass.as_mut_slice(),
            age: c.age.as_mut_slice(),
            contacts: c.contacts.as_mut_slice(),
            kind: c.kind.as_mut_slice(),
        }
    }

    /// Reorders the rows: new row `i` is old row `order[i]`. `order` must be a
    /// permutation of `0..len` (the counting sort in `physics::grid` makes one).
    /// Handles stay valid. With a pool, each column is gathered by its own
    /// tasks: one per column, or row pieces of each column when the pool has
    /// more than five workers (ten whole columns would leave the rest idle).
    pub fn permute(&mut self, order: &[u32], pool: Option<&WorkerPool>) {
        let n = self.len();
        assert_eq!(order.len(), n, "permute: order has the wrong length");
        // Checked once here (a vectorized max), so the gathers below need no
        // check per row.
        assert!(
            order.iter().copied().max().is_none_or(|m| (m as usize) < n),
            "permute: order names a row past the end"
        );
        each_column!(self.scratch, |c| c.resize_zeroed(n));
        let (src, dst) = (&self.cols, &mut self.scratch);
        // About two tasks per worker in all.
        let pieces = pool.map_or(1, |p| (2 * p.compute_workers()).div_ceil(COLUMNS));
        let piece = n.div_ceil(pieces).max(1);
        let mut jobs: Vec<Box<dyn FnOnce() + Send + '_>> = Vec::with_capacity(COLUMNS * pieces);
        macro_rules! gather_in_pieces {
            ($($field:ident),*) => {$(
                let src_col = src.$field.as_slice();
                for (d, o) in dst.$field.as_mut_slice().chunks_mut(piece).zip(order.chunks(piece)) {
                    // SAFETY: every value of `order` is below `n`, the length
                    // of every column (checked above).
                    jobs.push(Box::new(move || unsafe { gather(d, src_col, o) }));
                }
            )*};
        }
        gather_in_pieces!(x, y, vx, vy, radius, inv_mass, age, contacts, kind, owner);
        if let Some(pool) = pool {
            pool.scope(|s| {
                for job in jobs {
                    s.spawn(move |_| job());
                }
            });
        } else {
            for job in jobs {
                job();
            }
        }
        std::mem::swap(&mut self.cols, &mut self.scratch);
        self.links_stale = true;
        debug_assert!(self.check_invariants().is_ok());
    }

    /// Points every live slot at its row again, if rows moved since.
    fn relink(&mut self) {
        if std::mem::take(&mut self.links_stale) {
            for (dense, &slot) in self.cols.owner.as_slice().iter().enumerate() {
                self.slots[slot as usize].dense = dense as u32;
            }
        }
    }

    /// Verifies slot ↔ row links and the free list; used by tests.
    pub fn check_invariants(&self) -> Result<(), BrokenInvariant> {
        let n = self.len();
        let mut live = 0;
        let owner = self.cols.owner.as_slice();
        if self.links_stale
            && let Some(d) = owner.iter().position(|&slot| {
                self.slots
                    .get(slot as usize)
                    .is_none_or(|s| s.dense == FREE)
            })
        {
            return Err(BrokenInvariant::RowOfDeadSlot { row: d });
        }
        for (i, s) in self.slots.iter().enumerate() {
            if s.dense != FREE {
                live += 1;
                let d = s.dense as usize;
                if !self.links_stale && (d >= n || owner[d] as usize != i) {
                    return Err(BrokenInvariant::SlotOffRow { slot: i, row: d });
                }
            }
        }
        if live != n {
            return Err(BrokenInvariant::Count { live, rows: n });
        }
        if live + self.free.len() != self.slots.len() {
            return Err(BrokenInvariant::FreeList);
        }
        Ok(())
    }
}

/// What `ParticleStore::check_invariants` found wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokenInvariant {
    #[error("row {row} is owned by a slot that is not live")]
    RowOfDeadSlot { row: usize },
    #[error("slot {slot} points at row {row}, which it does not own")]
    SlotOffRow { slot: usize, row: usize },
    #[error("{live} live slots for {rows} rows")]
    Count { live: usize, rows: usize },
    #[error("free list and live slots do not add up")]
    FreeList,
}

/// `dst[i] = src[order[i]]`.
///
/// # Safety
/// Every value of `order` is below `src.len()`.
unsafe fn gather<T: Pod>(dst: &mut [T], src: &[T], order: &[u32]) {
    for (d, &o) in dst.iter_mut().zip(order) {
        debug_assert!((o as usize) < src.len());
        // SAFETY: `o < src.len()` by the caller's contract.
        *d = unsafe { *src.get_unchecked(o as usize) };
    }
}
