//! The scripted player behind `--autoplay`: every few frames it picks a tool
//! (a spawn burst, an attract or repel drag, an explosion) and uses it for a
//! while, with choices drawn from its own seeded generator so a run is
//! repeatable.

use super::rng::Rng;
use super::sandbox::ToolCommand;
use crate::particles::Kind;

#[derive(Clone, Debug)]
enum Action {
    Idle,
    Spawn { x: f32, y: f32, dx: f32, kind: Kind },
    Attract { x: f32, y: f32, repel: bool },
}

#[derive(Clone, Debug)]
pub struct Autoplay {
    rng: Rng,
    action: Action,
    frames_left: u32,
    width: f32,
    height: f32,
    brush_per_frame: usize,
}

impl Autoplay {
    pub fn new(seed: u64, width: f32, height: f32, brush_per_frame: usize) -> Self {
        Self {
            rng: Rng::new(seed ^ 0xA070_91A7),
            action: Action::Idle,
            frames_left: 5,
            width,
            height,
            brush_per_frame,
        }
    }

    /// The tool uses for the next frame. With `room == false` (the box holds
    /// enough particles) it stops spawning and only stirs and blows up.
    pub fn next_frame(&mut self, room: bool, out: &mut Vec<ToolCommand>) {
        if self.frames_left == 0 {
            self.choose(out);
        }
        if !room && matches!(self.action, Action::Spawn { .. }) {
            self.action = Action::Idle;
        }
        self.frames_left = self.frames_left.saturating_sub(1);
        match &mut self.action {
            Action::Idle => {}
            Action::Spawn { x, y, dx, kind } => {
                *x = (*x + *dx).clamp(0.05 * self.width, 0.95 * self.width);
                out.push(ToolCommand::Spawn {
                    x: *x,
                    y: *y,
                    kind: *kind,
                    count: self.brush_per_frame,
                });
            }
            Action::Attract { x, y, repel } => out.push(ToolCommand::Attract {
                x: *x,
                y: *y,
                repel: *repel,
            }),
        }
    }

    fn choose(&mut self, out: &mut Vec<ToolCommand>) {
        let (w, h) = (self.width, self.height);
        let r = &mut self.rng;
        let roll = r.below(10);
        self.action = match roll {
            0..=3 => {
                self.frames_left = 10 + r.below(20) as u32;
                Action::Spawn {
                    x: r.range(0.1, 0.9) * w,
                    y: r.range(0.6, 0.9) * h,
                    dx: r.range(-4.0, 4.0),
                    kind: Kind::ALL[r.below(4) as usize],
                }
            }
            4..=5 => {
                self.frames_left = 20 + r.below(30) as u32;
                Action::Attract {
                    x: r.range(0.2, 0.8) * w,
                    y: r.range(0.3, 0.8) * h,
                    repel: roll == 5,
                }
            }
            6..=8 => {
                out.push(ToolCommand::Explode {
                    x: r.range(0.1, 0.9) * w,
                    y: r.range(0.05, 0.5) * h,
                });
                self.frames_left = 10 + r.below(20) as u32;
                Action::Idle
            }
            _ => {
                self.frames_left = 5 + r.below(15) as u32;
                Action::Idle
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autoplay_is_repeatable_and_uses_every_tool() {
        let run = |seed| {
            let mut a = Autoplay::new(seed, 1280.0, 720.0, 100);
            let mut all = Vec::new();
            for _ in 0..600 {
                a.next_frame(true, &mut all);
            }
            all
        };
        let a = run(3);
        assert_eq!(a, run(3));
        assert_ne!(a, run(4));
        assert!(a.iter().any(|c| matches!(c, ToolCommand::Spawn { .. })));
        assert!(a.iter().any(|c| matches!(c, ToolCommand::Attract { .. })));
        assert!(a.iter().any(|c| matches!(c, ToolCommand::Explode { .. })));
        let mut full = Autoplay::new(3, 1280.0, 720.0, 100);
        let mut cmds = Vec::new();
        for _ in 0..600 {
            full.next_frame(false, &mut cmds);
        }
        assert!(!cmds.iter().any(|c| matches!(c, ToolCommand::Spawn { .. })));
        assert!(
            cmds.iter()
                .any(|c| matches!(c, ToolCommand::Explode { .. }))
        );
    }
}
