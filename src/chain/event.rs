//! The game's notable events and their packed binary form.
//!
//! An event is a kind byte, the frame and a few integer fields, each integer
//! a LEB128 varint (small numbers take one byte). On chain a batch is
//! `[count: u16 big-endian][event]...` with each frame stored as the
//! distance from the previous event's frame, so a batch of explosions costs
//! a handful of calldata bytes per event. The journal stores single events
//! with absolute frames.

use serde::Serialize;

/// One notable moment of a game session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GameEvent {
    /// The frame it happened in.
    pub frame: u64,
    pub body: EventBody,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    /// A session began: its seed and a hash of the effective config.
    SessionStart { seed: u64, config_hash: u64 },
    /// An explosion at world position (x, y) that pushed `hit` particles.
    Explosion { x: u32, y: u32, hit: u64 },
    /// A new record of `metric`.
    Milestone { metric: Metric, value: u64 },
    /// The session ended after `frames` frames with this score.
    SessionEnd { frames: u64, score: u64 },
}

/// What a milestone counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Most particles alive at once.
    Particles,
    /// Most particle contacts resolved in one step.
    Collisions,
}

/// A packed event or batch did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed event data: {0}")]
pub struct DecodeError(pub &'static str);

/// Most events one batch can carry (its count is a u16).
pub const MAX_BATCH_EVENTS: usize = u16::MAX as usize;

impl EventBody {
    fn tag(&self) -> u8 {
        match self {
            EventBody::SessionStart { .. } => 1,
            EventBody::Explosion { .. } => 2,
            EventBody::Milestone { .. } => 3,
            EventBody::SessionEnd { .. } => 4,
        }
    }

    /// The kind's name, as `chain history` prints it.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::SessionStart { .. } => "session_start",
            EventBody::Explosion { .. } => "explosion",
            EventBody::Milestone { .. } => "milestone",
            EventBody::SessionEnd { .. } => "session_end",
        }
    }
}

impl GameEvent {
    pub fn new(frame: u64, body: EventBody) -> Self {
        Self { frame, body }
    }

    /// Appends the event with `frame` written as `frame - base`.
    fn pack_after(&self, base: u64, out: &mut Vec<u8>) {
        out.push(self.body.tag());
        put_varint(out, self.frame.saturating_sub(base));
        match self.body {
            EventBody::SessionStart { seed, config_hash } => {
                put_varint(out, seed);
                put_varint(out, config_hash);
            }
            EventBody::Explosion { x, y, hit } => {
                put_varint(out, x as u64);
                put_varint(out, y as u64);
                put_varint(out, hit);
            }
            EventBody::Milestone { metric, value } => {
                out.push(match metric {
                    Metric::Particles => 1,
                    Metric::Collisions => 2,
                });
                put_varint(out, value);
            }
            EventBody::SessionEnd { frames, score } => {
                put_varint(out, frames);
                put_varint(out, score);
            }
        }
    }

    fn unpack_after(base: u64, input: &mut &[u8]) -> Result<Self, DecodeError> {
        let tag = take_byte(input)?;
        let frame = base
            .checked_add(take_varint(input)?)
            .ok_or(DecodeError("frame overflows"))?;
        let body = match tag {
            1 => EventBody::SessionStart {
                seed: take_varint(input)?,
                config_hash: take_varint(input)?,
            },
            2 => EventBody::Explosion {
                x: take_u32(input)?,
                y: take_u32(input)?,
                hit: take_varint(input)?,
            },
            3 => EventBody::Milestone {
                metric: match take_byte(input)? {
                    1 => Metric::Particles,
                    2 => Metric::Collisions,
                    _ => return Err(DecodeError("unknown milestone metric")),
                },
                value: take_varint(input)?,
            },
            4 => EventBody::SessionEnd {
                frames: take_varint(input)?,
                score: take_varint(input)?,
            },
            _ => return Err(DecodeError("unknown event kind")),
        };
        Ok(Self { frame, body })
    }

    /// The event alone, frame absolute (the journal's form).
    pub fn pack(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        self.pack_after(0, &mut out);
        out
    }

    /// Reads an event written by [`GameEvent::pack`]; nothing may follow it.
    pub fn unpack(mut bytes: &[u8]) -> Result<Self, DecodeError> {
        let event = Self::unpack_after(0, &mut bytes)?;
        if !bytes.is_empty() {
            return Err(DecodeError("bytes after the event"));
        }
        Ok(event)
    }
}

/// Packs events (in frame order, at most [`MAX_BATCH_EVENTS`]) into the
/// calldata form `recordBatch` takes.
pub fn pack_batch<'a>(events: impl IntoIterator<Item = &'a GameEvent>) -> Vec<u8> {
    let mut out = vec![0, 0];
    let mut count = 0usize;
    let mut base = 0;
    for event in events {
        event.pack_after(base, &mut out);
        base = event.frame.max(base);
        count += 1;
    }
    assert!(
        count <= MAX_BATCH_EVENTS,
        "a batch holds at most 65535 events"
    );
    out[..2].copy_from_slice(&(count as u16).to_be_bytes());
    out
}

/// Reads a batch written by [`pack_batch`].
pub fn unpack_batch(mut bytes: &[u8]) -> Result<Vec<GameEvent>, DecodeError> {
    if bytes.len() < 2 {
        return Err(DecodeError("batch shorter than its count"));
    }
    let count = u16::from_be_bytes([bytes[0], bytes[1]]) as usize;
    bytes = &bytes[2..];
    let mut events = Vec::with_capacity(count);
    let mut base = 0;
    for _ in 0..count {
        let event = GameEvent::unpack_after(base, &mut bytes)?;
        base = event.frame;
        events.push(event);
    }
    if !bytes.is_empty() {
        return Err(DecodeError("bytes after the last event"));
    }
    Ok(events)
}

/// LEB128: seven bits a byte, low bits first, high bit set on all but the last.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn take_varint(input: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = take_byte(input)?;
        let bits = (b & 0x7f) as u64;
        if shift == 63 && bits > 1 {
            return Err(DecodeError("varint overflows 64 bits"));
        }
        v |= bits << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(DecodeError("varint longer than 10 bytes"))
}

fn take_u32(input: &mut &[u8]) -> Result<u32, DecodeError> {
    u32::try_from(take_varint(input)?).map_err(|_| DecodeError("coordinate above u32"))
}

fn take_byte(input: &mut &[u8]) -> Result<u8, DecodeError> {
    let (&b, rest) = input
        .split_first()
        .ok_or(DecodeError("data ends mid-event"))?;
    *input = rest;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body() -> impl Strategy<Value = EventBody> {
        prop_oneof![
            (any::<u64>(), any::<u64>())
                .prop_map(|(seed, config_hash)| EventBody::SessionStart { seed, config_hash }),
            (any::<u32>(), any::<u32>(), any::<u64>())
                .prop_map(|(x, y, hit)| EventBody::Explosion { x, y, hit }),
            (any::<bool>(), any::<u64>()).prop_map(|(p, value)| EventBody::Milestone {
                metric: if p {
                    Metric::Particles
                } else {
                    Metric::Collisions
                },
                value
            }),
            (any::<u64>(), any::<u64>())
                .prop_map(|(frames, score)| EventBody::SessionEnd { frames, score }),
        ]
    }

    proptest! {
        #[test]
        fn batches_round_trip(mut items in prop::collection::vec((0u64..1 << 40, body()), 0..200)) {
            items.sort_by_key(|(f, _)| *f);
            let events: Vec<_> = items.into_iter().map(|(f, b)| GameEvent::new(f, b)).collect();
            let packed = pack_batch(&events);
            prop_assert_eq!(unpack_batch(&packed).unwrap(), events.clone());
            for e in &events {
                prop_assert_eq!(&GameEvent::unpack(&e.pack()).unwrap(), e);
            }
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = unpack_batch(&bytes);
            let _ = GameEvent::unpack(&bytes);
        }
    }

    #[test]
    fn explosions_pack_into_a_few_bytes() {
        let events: Vec<_> = (0..500)
            .map(|i| {
                GameEvent::new(
                    10_000 + i * 7,
                    EventBody::Explosion {
                        x: 640,
                        y: 360,
                        hit: 90,
                    },
                )
            })
            .collect();
        let packed = pack_batch(&events);
        // kind 1 + frame delta 1 + x 2 + y 2 + hit 1, after the first.
        assert!(packed.len() <= 2 + 500 * 7 + 2, "{} bytes", packed.len());
    }

    #[test]
    fn truncated_and_trailing_data_are_errors() {
        let packed = pack_batch(&[GameEvent::new(
            3,
            EventBody::SessionEnd {
                frames: 300,
                score: 7,
            },
        )]);
        assert!(unpack_batch(&packed[..packed.len() - 1]).is_err());
        let mut longer = packed.clone();
        longer.push(0);
        assert!(unpack_batch(&longer).is_err());
        assert!(unpack_batch(&[0]).is_err());
        assert_eq!(
            take_varint(&mut &[0xff; 11][..]),
            Err(DecodeError("varint overflows 64 bits"))
        );
    }
}
