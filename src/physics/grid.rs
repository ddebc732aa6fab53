//! The uniform collision grid, built by counting sort.
//!
//! Each step the store is reordered so that particles of one cell are
//! contiguous and cells follow row-major order: the cells of one grid row
//! that a particle must search are then one contiguous range of rows in
//! memory, which the contact kernel reads a vector at a time.

use crate::particles::ParticleStore;
use crate::workers::WorkerPool;

/// Grid geometry plus the per-step tables (reused, never shrunk).
#[derive(Default)]
pub struct Grid {
    pub cell_size: f32,
    inv_cell: f32,
    pub cols: u32,
    pub rows: u32,
    /// `cell_start[c]..cell_start[c + 1]` are the rows of cell `c` after sorting.
    pub cell_start: Vec<u32>,
    /// Next free row of each cell while scattering.
    cursor: Vec<u32>,
    order: Vec<u32>,
    unsorted_cell: Vec<u32>,
}

/// Particles per parallel task in grid passes.
const GRAIN: usize = 8192;

impl Grid {
    /// Sets the geometry for a `width` × `height` box.
    pub fn configure(&mut self, width: f32, height: f32, cell_size: f32) {
        self.cell_size = cell_size;
        self.inv_cell = 1.0 / cell_size;
        self.cols = ((width / cell_size).ceil() as u32).max(1);
        self.rows = ((height / cell_size).ceil() as u32).max(1);
    }

    pub fn cell_count(&self) -> usize {
        (self.cols * self.rows) as usize
    }

    /// The cell of a point; points outside the box go to the nearest border
    /// cell (monotone, so neighbours stay neighbours).
    #[inline(always)]
    pub fn cell_coords(&self, x: f32, y: f32) -> (u32, u32) {
        cell_coords(self.inv_cell, self.cols, self.rows, x, y)
    }

    /// Sorts `store` by cell (stable, so the result depends only on the input
    /// order) and fills `cell_start`.
    pub fn rebuild(&mut self, store: &mut ParticleStore, pool: &WorkerPool) {
        let n = store.len();
        let cells = self.cell_count();
        let s = store.slices();
        self.unsorted_cell.resize(n, 0);
        let (inv, cols, rows) = (self.inv_cell, self.cols, self.rows);
        let (x, y) = (s.x, s.y);
        pool.for_each_chunk_mut(&mut self.unsorted_cell, GRAIN, |base, out| {
            let (x, y) = (&x[base..base + out.len()], &y[base..base + out.len()]);
            for ((c, &x), &y) in out.iter_mut().zip(x).zip(y) {
                let (cx, cy) = cell_coords(inv, cols, rows, x, y);
                *c = cy * cols + cx;
            }
        });
        // Counting sort: histogram, exclusive prefix sum, stable scatter.
        self.cell_start.clear();
        self.cell_start.resize(cells + 1, 0);
        for &c in &self.unsorted_cell {
            self.cell_start[c as usize + 1] += 1;
        }
        for c in 0..cells {
            self.cell_start[c + 1] += self.cell_start[c];
        }
        self.order.resize(n, 0);
        self.cursor.clear();
        self.cursor.extend_from_slice(&self.cell_start[..cells]);
        for (i, &c) in self.unsorted_cell.iter().enumerate() {
            let at = &mut self.cursor[c as usize];
            self.order[*at as usize] = i as u32;
            *at += 1;
        }
        store.permute(&self.order, (n >= 4 * GRAIN).then_some(pool));
    }

    /// The particle rows holding cells `c0..=c1` of grid row `row`: one
    /// contiguous range, since cells are sorted row-major.
    #[inline(always)]
    pub fn row_range(&self, row: u32, c0: u32, c1: u32) -> (usize, usize) {
        let base = (row * self.cols) as usize;
        (
            self.cell_start[base + c0 as usize] as usize,
            self.cell_start[base + c1 as usize + 1] as usize,
        )
    }
}

#[inline(always)]
fn cell_coords(inv_cell: f32, cols: u32, rows: u32, x: f32, y: f32) -> (u32, u32) {
    let cx = ((x * inv_cell) as i32).clamp(0, cols as i32 - 1) as u32;
    let cy = ((y * inv_cell) as i32).clamp(0, rows as i32 - 1) as u32;
    (cx, cy)
}
