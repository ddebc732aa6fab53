//! Model-based tests: the store against a `HashMap<Handle, value>` model.

use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

fn particle(tag: f32) -> NewParticle {
    NewParticle {
        x: tag,
        y: -tag,
        vx: tag * 2.0,
        vy: 0.5,
        radius: 1.0,
        inv_mass: 1.0,
        kind: (tag as u32 % 4) as u8,
    }
}

#[derive(Clone, Debug)]
enum Op {
    Spawn,
    /// Despawn the live handle picked by this number.
    Despawn(usize),
    /// Despawn a handle that was already despawned (picked by this number).
    DespawnStale(usize),
    /// Reverse the row order (a permutation, like the cell sort).
    Reverse,
    /// Kill every row whose tag is divisible by this number.
    KillWhere(u8),
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Spawn),
        3 => any::<usize>().prop_map(Op::Despawn),
        1 => any::<usize>().prop_map(Op::DespawnStale),
        1 => Just(Op::Reverse),
        1 => (2u8..7).prop_map(Op::KillWhere),
        1 => Just(Op::Clear),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 1..300)) {
        let limit = 120;
        let mut store = ParticleStore::with_limit(limit);
        let mut model: HashMap<Handle, f32> = HashMap::new();
        let mut order: Vec<Handle> = Vec::new(); // live handles, in spawn order
        let mut dead: Vec<Handle> = Vec::new();
        let mut next_tag = 0.0f32;
        for op in ops {
            match op {
                Op::Spawn => {
                    let r = store.spawn(particle(next_tag));
                    if model.len() >= limit {
                        prop_assert_eq!(r, Err(StoreError::Full(limit)));
                    } else {
                        let h = r.unwrap();
                        prop_assert!(!model.contains_key(&h));
                        model.insert(h, next_tag);
                        order.push(h);
                    }
                    next_tag += 1.0;
                }
                Op::Despawn(pick) if !order.is_empty() => {
                    let h = order.remove(pick % order.len());
                    prop_assert_eq!(store.despawn(h), Ok(()));
                    model.remove(&h);
                    dead.push(h);
                }
                Op::DespawnStale(pick) if !dead.is_empty() => {
                    let h = dead[pick % dead.len()];
                    prop_assert_eq!(store.despawn(h), Err(StoreError::Stale));
                }
                Op::Reverse => {
                    let rev: Vec<u32> = (0..store.len() as u32).rev().collect();
                    store.permute(&rev, None);
                }
                Op::KillWhere(m) => {
                    let killed = store.despawn_where(|s, i| (s.x[i] as u32).is_multiple_of(m as u32));
                    let before = model.len();
                    model.retain(|_, tag| !(*tag as u32).is_multiple_of(m as u32));
                    prop_assert_eq!(killed, before - model.len());
                    order.retain(|h| {
                        let live = model.contains_key(h);
                        if !live { dead.push(*h); }
                        live
                    });
                }
                Op::Clear => {
                    store.clear();
                    dead.append(&mut order);
                    model.clear();
                }
                _ => {}
            }
            prop_assert_eq!(store.len(), model.len());
            prop_assert!(store.check_invariants().is_ok(), "{:?}", store.check_invariants());
            let rows: Vec<(usize, f32, Handle)> = model
                .iter()
                .map(|(h, tag)| (store.index_of(*h).unwrap(), *tag, *h))
                .collect();
            let s = store.slices();
            for (i, tag, h) in &rows {
                let i = *i;
                prop_assert_eq!(s.x[i], *tag);
                prop_assert_eq!(s.vx[i], *tag * 2.0);
                prop_assert_eq!(s.kind[i], (*tag as u32 % 4) as u8);
                prop_assert_eq!(store.handle_at(i), *h);
            }
            for h in &dead {
                prop_assert!(!store.contains(*h));
            }
        }
    }
}

#[test]
fn unknown_slot_is_an_error_not_a_panic() {
    let mut store = ParticleStore::with_limit(4);
    let h = Handle {
        slot: 99,
        generation: 0,
    };
    assert_eq!(store.index_of(h), Err(StoreError::UnknownSlot));
}

#[test]
fn parallel_permute_matches_sequential() {
    // 2 workers gather whole columns; 8 and 16 gather each column in 2 and
    // 4 row pieces.
    for workers in [2, 8, 16] {
        let mut a = ParticleStore::with_limit(10_000);
        let mut b = ParticleStore::with_limit(10_000);
        let mut handles = Vec::new();
        // A prime count: the row pieces come out uneven.
        for i in 0..5003 {
            handles.push(a.spawn(particle(i as f32)).unwrap());
            b.spawn(particle(i as f32)).unwrap();
        }
        // A scrambling permutation: multiply by a unit modulo n.
        let order: Vec<u32> = (0..5003u32).map(|i| (i * 7919) % 5003).collect();
        let pool = crate::workers::WorkerPool::new(workers, 0).unwrap();
        a.permute(&order, Some(&pool));
        b.permute(&order, None);
        let (sa, sb) = (a.slices(), b.slices());
        assert_eq!(sa.x, sb.x, "{workers} workers");
        assert_eq!(sa.y, sb.y, "{workers} workers");
        assert_eq!(sa.vx, sb.vx, "{workers} workers");
        assert_eq!(sa.vy, sb.vy, "{workers} workers");
        assert_eq!(sa.radius, sb.radius, "{workers} workers");
        assert_eq!(sa.inv_mass, sb.inv_mass, "{workers} workers");
        assert_eq!(sa.age, sb.age, "{workers} workers");
        assert_eq!(sa.contacts, sb.contacts, "{workers} workers");
        assert_eq!(sa.kind, sb.kind, "{workers} workers");
        // Row i came from row order[i]: the particle spawned i-th sits at
        // the row whose order entry is i.
        for (row, &from) in order.iter().enumerate() {
            assert_eq!(sa.x[row], from as f32, "{workers} workers, row {row}");
        }
        for h in handles {
            let i = a.index_of(h).unwrap();
            assert_eq!(a.slices().x[i], h.slot as f32);
        }
        a.check_invariants().unwrap();
    }
}

#[test]
fn a_permutation_naming_a_row_past_the_end_is_refused() {
    let mut store = ParticleStore::with_limit(100);
    for i in 0..10 {
        store.spawn(particle(i as f32)).unwrap();
    }
    let mut order: Vec<u32> = (0..10).collect();
    order[3] = 10;
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.permute(&order, None);
    }));
    let message = refused.expect_err("permute must refuse row 10 of 10");
    let text = message.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(text.contains("past the end"), "{text}");
    // Nothing was moved.
    let x: Vec<f32> = (0..10).map(|i| i as f32).collect();
    assert_eq!(store.slices().x, &x[..]);
}

#[test]
fn compaction_remaps_live_handles_and_returns_memory() {
    let mut store = ParticleStore::with_limit(100_000);
    let handles: Vec<_> = (0..50_000)
        .map(|i| store.spawn(particle(i as f32)).unwrap())
        .collect();
    for h in handles.iter().skip(1).step_by(10).take(4000) {
        store.despawn(*h).unwrap();
    }
    for h in &handles[10_000..] {
        let _ = store.despawn(*h);
    }
    let before = store.reserved_bytes();
    assert!(store.fragmentation() > 0.7, "{}", store.fragmentation());
    let xs: Vec<f32> = store.slices().x.to_vec();
    let remap = store.compact();
    store.check_invariants().unwrap();
    assert_eq!(store.slices().x, &xs[..], "rows keep their order");
    assert!(store.fragmentation() < 0.05, "{}", store.fragmentation());
    assert!(
        store.reserved_bytes() < before / 3,
        "{} → {}",
        before,
        store.reserved_bytes()
    );
    let mut live = 0;
    for h in &handles {
        let was = remap.get(*h);
        // Every old handle is stale now; the live ones map to a handle that
        // finds the same particle.
        assert!(!store.contains(*h) || remap.get(*h) == Some(*h));
        if let Some(new) = was {
            live += 1;
            let i = store.index_of(new).unwrap();
            assert_eq!(
                store.slices().x[i],
                handles.iter().position(|x| x == h).unwrap() as f32
            );
        }
    }
    assert_eq!(live, store.len());
    // A new spawn gets a fresh slot and works as before.
    let h = store.spawn(particle(-1.0)).unwrap();
    let i = store.index_of(h).unwrap();
    assert_eq!(store.slices().x[i], -1.0);
}

#[test]
fn handles_survive_removals_between_sorts_before_any_lookup() {
    // Rows sorted (links left stale), rows removed while stale, sorted
    // again, then looked up: every live handle still finds its particle.
    let mut store = ParticleStore::with_limit(100);
    let handles: Vec<Handle> = (0..60)
        .map(|i| store.spawn(particle(i as f32)).unwrap())
        .collect();
    let reverse = |n: usize| (0..n as u32).rev().collect::<Vec<u32>>();
    store.permute(&reverse(store.len()), None);
    let killed = store.despawn_where(|s, i| (s.x[i] as u32).is_multiple_of(3));
    assert_eq!(killed, 20);
    let n = store.len();
    let shuffled: Vec<u32> = (0..n as u32).map(|i| (i * 7) % n as u32).collect();
    store.permute(&shuffled, None);
    store.check_invariants().unwrap();
    for (tag, h) in handles.iter().enumerate() {
        if tag % 3 == 0 {
            assert!(!store.contains(*h), "particle {tag} was removed");
        } else {
            let i = store.index_of(*h).unwrap();
            assert_eq!(store.slices().x[i], tag as f32);
        }
    }
    store.check_invariants().unwrap();
    // And a despawn by handle right after a sort.
    store.permute(&reverse(store.len()), None);
    store.despawn(handles[1]).unwrap();
    assert!(!store.contains(handles[1]));
    let i = store.index_of(handles[2]).unwrap();
    assert_eq!(store.slices().x[i], 2.0);
}
