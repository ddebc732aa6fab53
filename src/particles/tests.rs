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
            let s = store.slices();
            for (h, tag) in &model {
                let i = store.index_of(*h).unwrap();
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
    let store = ParticleStore::with_limit(4);
    let h = Handle {
        slot: 99,
        generation: 0,
    };
    assert_eq!(store.index_of(h), Err(StoreError::UnknownSlot));
}

#[test]
fn parallel_permute_matches_sequential() {
    let mut a = ParticleStore::with_limit(10_000);
    let mut b = ParticleStore::with_limit(10_000);
    let mut handles = Vec::new();
    for i in 0..5000 {
        handles.push(a.spawn(particle(i as f32)).unwrap());
        b.spawn(particle(i as f32)).unwrap();
    }
    // A scrambling permutation: multiply by a unit modulo n.
    let order: Vec<u32> = (0..5000u32).map(|i| (i * 7919) % 5000).collect();
    let pool = crate::workers::WorkerPool::new(2, 0).unwrap();
    a.permute(&order, Some(&pool));
    b.permute(&order, None);
    assert_eq!(a.slices().x, b.slices().x);
    assert_eq!(a.slices().kind, b.slices().kind);
    for h in handles {
        let i = a.index_of(h).unwrap();
        assert_eq!(a.slices().x[i], h.slot as f32);
    }
    a.check_invariants().unwrap();
}
