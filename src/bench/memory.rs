//! `particle-forge bench memory`: the memory system against its peers, in
//! one process, on the same patterns.
//!
//! - same-size churn (64-byte blocks, 1,000 live, freed in a scrambled
//!   order), on 1 and 2 threads: our slab (through the worker-local cache)
//!   against the `slab` crate, the system malloc and mimalloc;
//! - cross-thread frees: one thread allocates, another frees;
//! - replay of an allocation trace recorded from the game (autoplay: spark
//!   bursts from explosions, sparks expiring), one 48-byte block per particle;
//! - the buddy allocator against `buddy_system_allocator` on mixed sizes;
//! - fragmentation of a first-fit arena before and after compaction;
//! - the buffer pool giving idle memory back within its decay period.

use super::{progress, round, side_by_side};
use crate::memory::{
    Arena, BlockAllocator, Buddy, BufferPool, CacheBlock, Component, FirstFit, PoolConfig,
    SlabCache, Urgency, ledger::resident,
};
use serde::Serialize;
use std::alloc::{GlobalAlloc, Layout, System};
use std::time::{Duration, Instant};

#[derive(Serialize, Debug)]
pub struct MemoryReport {
    pub slab_vs_slab_crate: f64,
    pub slab_vs_system_malloc: f64,
    pub slab_vs_mimalloc: f64,
    pub slab_2_threads_vs_system_malloc: f64,
    pub slab_2_threads_vs_mimalloc: f64,
    pub cross_thread_vs_system_malloc: f64,
    pub cross_thread_vs_mimalloc: f64,
    pub trace_vs_system_malloc: f64,
    pub trace_vs_mimalloc: f64,
    pub buddy_vs_buddy_system_allocator: f64,
    pub fragmentation_before_defrag: f64,
    pub fragmentation_after_defrag: f64,
    pub trace_peak_rss_mb: f64,
    pub trace_events: usize,
    pub pool_decay_s: f64,
    pub pool_returned_after_s: f64,
    pub pool_rss_drop_mb: f64,
    pub churn_ns_per_pair: Vec<(String, f64)>,
    pub quick: bool,
}

const SIZE: usize = 64;
const LIVE: usize = 1000;

/// A fixed scrambled order of `0..n` (multiply by a unit modulo n).
fn scrambled(n: usize) -> Vec<usize> {
    (0..n).map(|i| (i * 7919) % n).collect()
}

/// The operations a contender offers: allocate one block, free one.
trait Churn {
    type Block;
    fn alloc(&mut self) -> Self::Block;
    fn free(&mut self, b: Self::Block);
    fn touch(b: &mut Self::Block, v: u64);
    fn read(b: &Self::Block) -> u64;
}

struct Ours(crate::memory::LocalCache);
impl Churn for Ours {
    type Block = CacheBlock;
    #[inline]
    fn alloc(&mut self) -> CacheBlock {
        self.0.alloc(SIZE).expect("slab cache")
    }
    #[inline]
    fn free(&mut self, b: CacheBlock) {
        self.0.free(b).expect("slab cache");
    }
    #[inline]
    fn touch(b: &mut CacheBlock, v: u64) {
        b.as_mut_slice()[..8].copy_from_slice(&v.to_le_bytes());
    }
    #[inline]
    fn read(b: &CacheBlock) -> u64 {
        u64::from_le_bytes(b.as_slice()[..8].try_into().unwrap())
    }
}

struct SlabCrate(slab::Slab<[u8; SIZE]>);
impl Churn for SlabCrate {
    type Block = (usize, u64);
    #[inline]
    fn alloc(&mut self) -> (usize, u64) {
        (self.0.insert([0; SIZE]), 0)
    }
    #[inline]
    fn free(&mut self, b: (usize, u64)) {
        std::hint::black_box(self.0.remove(b.0));
    }
    #[inline]
    fn touch(b: &mut (usize, u64), v: u64) {
        b.1 = v;
    }
    #[inline]
    fn read(b: &(usize, u64)) -> u64 {
        b.1
    }
}

/// A `GlobalAlloc` used directly (system malloc, mimalloc).
struct Raw<A: GlobalAlloc>(A);
const LAYOUT: Layout = match Layout::from_size_align(SIZE, 8) {
    Ok(l) => l,
    Err(_) => panic!("layout"),
};
/// A block from a `Raw` allocator, owned by whoever holds it.
struct RawBlock(*mut u8);
// SAFETY: the block is owned by the holder alone; both peers' allocators
// accept frees from any thread.
unsafe impl Send for RawBlock {}

impl<A: GlobalAlloc> Churn for Raw<A> {
    type Block = RawBlock;
    #[inline]
    fn alloc(&mut self) -> RawBlock {
        // SAFETY: a valid non-zero layout; freed with the same one.
        let p = unsafe { self.0.alloc(LAYOUT) };
        assert!(!p.is_null());
        RawBlock(p)
    }
    #[inline]
    fn free(&mut self, b: RawBlock) {
        // SAFETY: `b` came from `alloc` with LAYOUT and is freed once.
        unsafe { self.0.dealloc(b.0, LAYOUT) }
    }
    #[inline]
    fn touch(b: &mut RawBlock, v: u64) {
        // SAFETY: a live 64-byte block, 8-aligned.
        unsafe { (b.0 as *mut u64).write(v) }
    }
    #[inline]
    fn read(b: &RawBlock) -> u64 {
        // SAFETY: as above.
        unsafe { (b.0 as *const u64).read() }
    }
}

/// `rounds` rounds of: allocate LIVE blocks, write each, free them in a
/// scrambled order. Returns a checksum.
fn churn<C: Churn>(c: &mut C, rounds: usize, order: &[usize]) -> u64 {
    let mut live: Vec<Option<C::Block>> = (0..LIVE).map(|_| None).collect();
    let mut sum = 0u64;
    for r in 0..rounds {
        for (k, slot) in live.iter_mut().enumerate() {
            let mut b = c.alloc();
            C::touch(&mut b, (r * LIVE + k) as u64);
            *slot = Some(b);
        }
        for &k in order {
            let b = live[k].take().expect("live");
            sum = sum.wrapping_add(C::read(&b));
            c.free(b);
        }
    }
    sum
}

fn churn_1_thread(quick: bool, out: &mut Vec<(String, f64)>) -> (f64, f64, f64) {
    let rounds = if quick { 200 } else { 1000 };
    let reps = if quick { 5 } else { 11 };
    let order = scrambled(LIVE);
    let cache = SlabCache::new(16 << 20, 1).expect("slab cache");
    let mut ours = Ours(cache.local(0));
    let mut slab = SlabCrate(slab::Slab::with_capacity(LIVE));
    let mut sys = Raw(System);
    let mut mi = Raw(mimalloc::MiMalloc);
    let expect = churn(&mut sys, rounds, &order);
    assert_eq!(churn(&mut ours, rounds, &order), expect);
    let per = |t: f64| t * 1e9 / (rounds * LIVE) as f64;
    let (a, b) = side_by_side(
        reps,
        || {
            std::hint::black_box(churn(&mut ours, rounds, &order));
        },
        || {
            std::hint::black_box(churn(&mut slab, rounds, &order));
        },
    );
    let (a2, c) = side_by_side(
        reps,
        || {
            std::hint::black_box(churn(&mut ours, rounds, &order));
        },
        || {
            std::hint::black_box(churn(&mut sys, rounds, &order));
        },
    );
    let (a3, d) = side_by_side(
        reps,
        || {
            std::hint::black_box(churn(&mut ours, rounds, &order));
        },
        || {
            std::hint::black_box(churn(&mut mi, rounds, &order));
        },
    );
    out.push((
        "ours (slab + worker cache)".into(),
        round(per((a + a2 + a3) / 3.0), 2),
    ));
    out.push(("slab crate".into(), round(per(b), 2)));
    out.push(("system malloc".into(), round(per(c), 2)));
    out.push(("mimalloc".into(), round(per(d), 2)));
    (b / a, c / a2, d / a3)
}

/// The same churn on two threads at once; wall time of both. Each of our
/// workers keeps its cache across runs, as a worker does.
fn churn_2_threads(quick: bool) -> (f64, f64) {
    let rounds = if quick { 600 } else { 2000 };
    let reps = if quick { 3 } else { 7 };
    let order = scrambled(LIVE);
    let cache = SlabCache::new(32 << 20, 2).expect("slab cache");
    fn on_two<C: Churn + Send>(pair: [C; 2], rounds: usize, order: &[usize]) -> [C; 2] {
        std::thread::scope(|s| {
            let hs = pair.map(|mut c| {
                s.spawn(move || {
                    std::hint::black_box(churn(&mut c, rounds, order));
                    c
                })
            });
            hs.map(|h| h.join().unwrap())
        })
    }
    let mut ours = Some([Ours(cache.local(0)), Ours(cache.local(1))]);
    let mut run_ours = || ours = Some(on_two(ours.take().unwrap(), rounds, &order));
    let (a, b) = side_by_side(reps, &mut run_ours, || {
        on_two([Raw(System), Raw(System)], rounds, &order);
    });
    let (a2, c) = side_by_side(reps, &mut run_ours, || {
        on_two(
            [Raw(mimalloc::MiMalloc), Raw(mimalloc::MiMalloc)],
            rounds,
            &order,
        );
    });
    (b / a, c / a2)
}

/// One thread allocates batches, the other frees them.
fn cross_thread(quick: bool) -> (f64, f64) {
    let batches = if quick { 200 } else { 1000 };
    let reps = if quick { 3 } else { 7 };
    const BATCH: usize = 256;
    fn run<C: Churn + Send>(mut producer: C, mut consumer: C, batches: usize) -> (C, C)
    where
        C::Block: Send,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<C::Block>>(4);
        std::thread::scope(|s| {
            let p = s.spawn(move || {
                for i in 0..batches {
                    let batch: Vec<C::Block> = (0..BATCH)
                        .map(|k| {
                            let mut b = producer.alloc();
                            C::touch(&mut b, (i * BATCH + k) as u64);
                            b
                        })
                        .collect();
                    tx.send(batch).unwrap();
                }
                producer
            });
            let c = s.spawn(move || {
                for batch in rx {
                    for b in batch {
                        std::hint::black_box(C::read(&b));
                        consumer.free(b);
                    }
                }
                consumer
            });
            (p.join().unwrap(), c.join().unwrap())
        })
    }
    let cache = SlabCache::new(64 << 20, 2).expect("slab cache");
    let mut ours = Some((Ours(cache.local(0)), Ours(cache.local(1))));
    let (a, b) = side_by_side(
        reps,
        || {
            let (p, c) = ours.take().unwrap();
            ours = Some(run(p, c, batches));
        },
        || {
            run(Raw(System), Raw(System), batches);
        },
    );
    let (a2, c) = side_by_side(
        reps,
        || {
            let (p, c) = ours.take().unwrap();
            ours = Some(run(p, c, batches));
        },
        || {
            run(Raw(mimalloc::MiMalloc), Raw(mimalloc::MiMalloc), batches);
        },
    );
    (b / a, c / a2)
}

/// Per frame: particles spawned and despawned, recorded from the game.
fn record_trace(frames: u64) -> Vec<(u32, u32)> {
    let config = crate::game::Config {
        particles: crate::game::config::ParticlesConfig {
            initial: 20_000,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut app = crate::game::headless::build_app(config, true).expect("headless app");
    let mut last = (0u64, 0u64);
    let mut trace = Vec::new();
    for _ in 0..frames {
        app.update();
        let c = app.world().resource::<crate::game::Sandbox>().counts;
        trace.push(((c.spawned - last.0) as u32, (c.despawned - last.1) as u32));
        last = (c.spawned, c.despawned);
    }
    trace
}

/// Replays the trace: each spawn allocates a 48-byte block, each despawn
/// frees the oldest (particles die in the order they were born).
fn replay<C: Churn>(c: &mut C, trace: &[(u32, u32)], rss: &mut u64) -> u64 {
    let mut live: std::collections::VecDeque<C::Block> = std::collections::VecDeque::new();
    let mut sum = 0;
    for (f, &(spawned, despawned)) in trace.iter().enumerate() {
        for k in 0..spawned {
            let mut b = c.alloc();
            C::touch(&mut b, (f as u64) << 32 | u64::from(k));
            live.push_back(b);
        }
        for _ in 0..despawned {
            if let Some(b) = live.pop_front() {
                sum ^= C::read(&b);
                c.free(b);
            }
        }
        if f % 16 == 0 {
            *rss = (*rss).max(resident().total);
        }
    }
    while let Some(b) = live.pop_front() {
        c.free(b);
    }
    sum
}

fn buddy_vs_peer(quick: bool) -> f64 {
    const REGION: usize = 16 << 20;
    let ops = if quick { 100_000 } else { 400_000 };
    let reps = if quick { 3 } else { 7 };
    // Sizes and the choice of which block to free, fixed for both.
    let mut rng = crate::game::rng::Rng::new(99);
    let plan: Vec<(usize, usize)> = (0..ops)
        .map(|_| {
            (
                16 << (rng.unit() * 8.0) as usize,
                (rng.unit() * 1e9) as usize,
            )
        })
        .collect();
    let mut ours = Buddy::new(REGION);
    let run_ours = |b: &mut Buddy| {
        let mut live = Vec::with_capacity(1024);
        for &(size, pick) in &plan {
            if live.len() < 512 {
                live.push(b.alloc(size, 16).expect("buddy"));
            } else {
                let id = live.swap_remove(pick % live.len());
                b.free(id).expect("buddy");
            }
        }
        for id in live {
            b.free(id).expect("buddy");
        }
    };
    // The peer manages a region we allocate for it.
    let layout = Layout::from_size_align(REGION, 4096).unwrap();
    // SAFETY: non-zero layout; freed at the end of this function.
    let region = unsafe { std::alloc::alloc(layout) };
    let mut heap = buddy_system_allocator::Heap::<32>::new();
    // SAFETY: the region is ours, unused, and outlives the heap's use.
    unsafe { heap.init(region as usize, REGION) };
    let run_peer = |h: &mut buddy_system_allocator::Heap<32>| {
        let mut live: Vec<(std::ptr::NonNull<u8>, Layout)> = Vec::with_capacity(1024);
        for &(size, pick) in &plan {
            if live.len() < 512 {
                let l = Layout::from_size_align(size, 16).unwrap();
                live.push((h.alloc(l).expect("peer buddy"), l));
            } else {
                let (p, l) = live.swap_remove(pick % live.len());
                h.dealloc(p, l);
            }
        }
        for (p, l) in live {
            h.dealloc(p, l);
        }
    };
    let (a, b) = side_by_side(reps, || run_ours(&mut ours), || run_peer(&mut heap));
    // SAFETY: allocated above with `layout`; the heap is gone.
    unsafe { std::alloc::dealloc(region, layout) };
    b / a
}

fn fragmentation() -> (f64, f64) {
    let mut arena = Arena::new(FirstFit::new(4 << 20));
    let mut rng = crate::game::rng::Rng::new(7);
    let mut ids = Vec::new();
    while let Ok(id) = arena.alloc(16 + (rng.unit() * 4000.0) as usize, 16) {
        ids.push(id);
        if arena.stats().total_free < (400 << 10) {
            break;
        }
    }
    for (k, id) in ids.iter().enumerate() {
        if k % 2 == 1 {
            arena.free(*id).expect("live");
        }
    }
    let before = arena.stats().external_fragmentation();
    arena.compact();
    (before, arena.stats().external_fragmentation())
}

/// Seconds until a pool that grew and went idle is back at its floor, and
/// the resident memory that came back.
fn pool_decay() -> (f64, f64, f64) {
    let decay = Duration::from_millis(300);
    let pool = BufferPool::new(
        "bench",
        Component::Game,
        PoolConfig {
            buffer_bytes: 1 << 20,
            initial_buffers: 4,
            budget_bytes: 128 << 20,
            reserve_buffers: 2,
            decay,
        },
    )
    .expect("pool");
    let mut held: Vec<_> = (0..64)
        .map(|_| pool.acquire(Urgency::Normal).expect("pool"))
        .collect();
    for b in &mut held {
        b.get_mut().expect("unique").fill(1);
    }
    let rss_full = resident().total;
    drop(held);
    let idle = Instant::now();
    while pool.stats().buffers > 4 && idle.elapsed() < Duration::from_secs(5) {
        pool.maintain();
        std::thread::sleep(Duration::from_millis(10));
    }
    let back = idle.elapsed().as_secs_f64();
    let rss_after = resident().total;
    (
        decay.as_secs_f64(),
        back,
        rss_full.saturating_sub(rss_after) as f64 / (1 << 20) as f64,
    )
}

pub fn run(quick: bool) -> MemoryReport {
    let mut per = Vec::new();
    progress("same-size churn, 1 thread");
    let (vs_slab, vs_sys, vs_mi) = churn_1_thread(quick, &mut per);
    progress("same-size churn, 2 threads");
    let (vs_sys2, vs_mi2) = churn_2_threads(quick);
    progress("cross-thread frees");
    let (x_sys, x_mi) = cross_thread(quick);
    progress("recording a game allocation trace (autoplay)");
    let trace = record_trace(if quick { 240 } else { 900 });
    let events: usize = trace.iter().map(|t| (t.0 + t.1) as usize).sum();
    progress(&format!("replaying {events} allocation events"));
    let cache = SlabCache::new(64 << 20, 1).expect("slab cache");
    let mut ours = Ours(cache.local(0));
    let mut peak = resident().total;
    let mut ignore = 0;
    let reps = if quick { 3 } else { 7 };
    let (t_a, t_b) = side_by_side(
        reps,
        || _ = std::hint::black_box(replay(&mut ours, &trace, &mut peak)),
        || _ = std::hint::black_box(replay(&mut Raw(System), &trace, &mut ignore)),
    );
    let (t_a2, t_c) = side_by_side(
        reps,
        || _ = std::hint::black_box(replay(&mut ours, &trace, &mut peak)),
        || _ = std::hint::black_box(replay(&mut Raw(mimalloc::MiMalloc), &trace, &mut ignore)),
    );
    progress("buddy against buddy_system_allocator");
    let buddy = buddy_vs_peer(quick);
    progress("fragmentation and compaction");
    let (frag_before, frag_after) = fragmentation();
    progress("buffer pool decay");
    let (decay, back, rss_drop) = pool_decay();
    MemoryReport {
        slab_vs_slab_crate: round(vs_slab, 3),
        slab_vs_system_malloc: round(vs_sys, 3),
        slab_vs_mimalloc: round(vs_mi, 3),
        slab_2_threads_vs_system_malloc: round(vs_sys2, 3),
        slab_2_threads_vs_mimalloc: round(vs_mi2, 3),
        cross_thread_vs_system_malloc: round(x_sys, 3),
        cross_thread_vs_mimalloc: round(x_mi, 3),
        trace_vs_system_malloc: round(t_b / t_a, 3),
        trace_vs_mimalloc: round(t_c / t_a2, 3),
        buddy_vs_buddy_system_allocator: round(buddy, 3),
        fragmentation_before_defrag: round(frag_before, 4),
        fragmentation_after_defrag: round(frag_after, 4),
        trace_peak_rss_mb: round(peak as f64 / (1 << 20) as f64, 1),
        trace_events: events,
        pool_decay_s: decay,
        pool_returned_after_s: round(back, 3),
        pool_rss_drop_mb: round(rss_drop, 1),
        churn_ns_per_pair: per,
        quick,
    }
}

impl MemoryReport {
    pub fn describe(&self) -> String {
        let mut s = format!("memory bench{}\n", if self.quick { " (quick)" } else { "" });
        s.push_str("  same-size churn, 64 B blocks, ns per alloc+free pair (1 thread):\n");
        for (name, ns) in &self.churn_ns_per_pair {
            s.push_str(&format!("    {name:<28} {ns:>7.2}\n"));
        }
        s.push_str(&format!(
            "  speedups (peer time ÷ ours): slab crate ×{:.2}, system malloc ×{:.2}, mimalloc ×{:.2}\n",
            self.slab_vs_slab_crate, self.slab_vs_system_malloc, self.slab_vs_mimalloc
        ));
        s.push_str(&format!(
            "  2 threads: system malloc ×{:.2}, mimalloc ×{:.2}; cross-thread frees: system malloc ×{:.2}, mimalloc ×{:.2}\n",
            self.slab_2_threads_vs_system_malloc,
            self.slab_2_threads_vs_mimalloc,
            self.cross_thread_vs_system_malloc,
            self.cross_thread_vs_mimalloc
        ));
        s.push_str(&format!(
            "  game trace ({} events): system malloc ×{:.2}, mimalloc ×{:.2}; peak RSS {:.1} MB\n",
            self.trace_events,
            self.trace_vs_system_malloc,
            self.trace_vs_mimalloc,
            self.trace_peak_rss_mb
        ));
        s.push_str(&format!(
            "  buddy vs buddy_system_allocator ×{:.2}\n  first-fit external fragmentation: {:.3} before compaction, {:.3} after\n  pool: idle buffers back to the OS after {:.2} s (decay {:.2} s), resident memory down {:.1} MB",
            self.buddy_vs_buddy_system_allocator,
            self.fragmentation_before_defrag,
            self.fragmentation_after_defrag,
            self.pool_returned_after_s,
            self.pool_decay_s,
            self.pool_rss_drop_mb
        ));
        s
    }
}
