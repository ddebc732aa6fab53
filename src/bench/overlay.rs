//! The open debug overlay's cost on the frame: its egui passes (every
//! window laid out, then tessellated, as bevy_egui does on a pass frame,
//! then packed into one vertex and one index list, as the render world
//! does before the upload) and, between passes, the replay of the last
//! pass's triangles (`overlay::replay`), against the physics step of the
//! same frames — 200,000 particles on the game's workers, in one process.
//! No rasteriser runs: this is the overlay's CPU on the frame's path, what
//! a machine with a GPU pays (under lavapipe the overlay's pixels are drawn
//! on the CPU too, and that cost is the software rasteriser's, not the
//! overlay's). Not in it: encoding the draws in the render world (~50
//! draw calls a frame, either way).
//!
//! The peer is the same overlay laid out and packed every frame, as
//! bevy_egui runs it by default. Each frame runs one pass, so both are
//! timed on the same passes: ours counts a pass on the frames the game's
//! rule (`overlay::pass::runs_pass`) picks, at the frame rate the step
//! gives, and the replay on the others.

use super::{progress, quantile, round};
use crate::game::chain::ChainRecorder;
use crate::game::memory::MemorySystem;
use crate::game::{Config, GameConfig, PlayerState, Sandbox};
use crate::overlay::replay::{self, KeptTriangles};
use crate::overlay::windows::{OverlayState, SetClock};
use crate::overlay::{FrameHistory, OverlayData, WorkerStats, draw_windows, pass, style};
use bevy_egui::egui;
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Debug, Serialize)]
pub struct OverlayReport {
    pub particles: usize,
    pub frames: usize,
    pub workers: usize,
    /// The physics step, ms (p50): the frame's work without the overlay.
    pub step_ms_p50: f64,
    /// One pass: layout of every window and tessellation, ms (p50).
    pub pass_ms_p50: f64,
    /// Packing a pass's triangles for the upload, ms (p50).
    pub pack_ms_p50: f64,
    /// Handing bevy_egui the replay of the last pass's triangles on a frame
    /// without a pass, ms (p50).
    pub replay_ms_p50: f64,
    /// Passes a second at this frame rate, with the overlay left alone.
    pub passes_per_s: f64,
    /// What the open overlay adds to a frame, ms (mean over the frames).
    pub overlay_ms_per_frame: f64,
    pub every_frame_ms_per_frame: f64,
    /// The overlay's cost ÷ the frame without it: the rise in frame time.
    pub frame_rise: f64,
    pub every_frame_rise: f64,
    /// Laid out every frame ÷ ours (higher is better).
    pub vs_every_frame: f64,
    /// Vertices of a pass's triangles.
    pub vertices: usize,
}

impl OverlayReport {
    pub fn describe(&self) -> String {
        format!(
            "overlay at {} particles, {} workers, {} frames: step p50 {:.2} ms; a pass {:.3} ms ({} vertices, packed in {:.3} ms), a replay {:.4} ms\n\
             ours: {:.1} passes/s, {:.3} ms a frame = {:.2}% of the frame\n\
             laid out every frame: {:.3} ms a frame = {:.2}% ({:.1}x ours)",
            self.particles,
            self.workers,
            self.frames,
            self.step_ms_p50,
            self.pass_ms_p50,
            self.vertices,
            self.pack_ms_p50,
            self.replay_ms_p50,
            self.passes_per_s,
            self.overlay_ms_per_frame,
            self.frame_rise * 100.0,
            self.every_frame_ms_per_frame,
            self.every_frame_rise * 100.0,
            self.vs_every_frame,
        )
    }
}

/// The game's state as the overlay sees it, built without Bevy.
struct Game {
    player: PlayerState,
    sandbox: Sandbox,
    config: GameConfig,
    history: FrameHistory,
    workers: WorkerStats,
    memory: MemorySystem,
    state: OverlayState,
    clock: SetClock,
    chain: Option<ChainRecorder>,
}

impl Game {
    fn new(particles: usize) -> anyhow::Result<Self> {
        let mut config = Config::default();
        config.particles.initial = particles;
        config.physics.threads = 0;
        let sandbox = Sandbox::new(&config)?;
        let memory = MemorySystem::new(&config.memory)?;
        Ok(Self {
            player: PlayerState {
                show_overlay: true,
                ..Default::default()
            },
            sandbox,
            config: GameConfig(config),
            history: FrameHistory::default(),
            workers: WorkerStats::default(),
            memory,
            state: OverlayState::default(),
            clock: SetClock::default(),
            // The Chain window then says recording is off: one window of
            // eight, and the smallest.
            chain: None,
        })
    }

    /// One frame without the overlay: the step, and what the game samples
    /// every frame whether the overlay is open or not. Returns the step's
    /// ms.
    fn frame(&mut self, frame_ms: f64) -> f64 {
        let t = Instant::now();
        self.sandbox.step(1.0 / 60.0);
        let step_ms = t.elapsed().as_secs_f64() * 1e3;
        self.memory.sample(&self.sandbox);
        self.history.push(frame_ms, step_ms);
        self.workers.sample(self.sandbox.pool.metrics());
        self.state.sample(&self.memory);
        self.clock.push([0.0, step_ms, 0.0, 0.0]);
        step_ms
    }

    /// One egui pass of every window, tessellated: its triangles.
    fn pass(&mut self, ctx: &egui::Context, t: f64) -> Vec<egui::ClippedPrimitive> {
        let input = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(
                egui::Pos2::ZERO,
                egui::vec2(1280.0, 720.0),
            )),
            time: Some(t),
            ..Default::default()
        };
        ctx.begin_pass(input);
        draw_windows(
            ctx,
            OverlayData {
                player: &mut self.player,
                sandbox: &mut self.sandbox,
                config: &mut self.config,
                history: &self.history,
                workers: &self.workers,
                memory: &mut self.memory,
                state: &mut self.state,
                clock: &self.clock,
                chain: self.chain.as_ref(),
            },
        );
        let out = ctx.end_pass();
        ctx.tessellate(out.shapes, out.pixels_per_point)
    }
}

/// 300 frames at 200,000 particles (90 with `quick`, ~4 s), after 30
/// that let the windows settle.
pub fn run(quick: bool) -> anyhow::Result<OverlayReport> {
    let particles = 200_000;
    let frames = if quick { 90 } else { 300 };
    progress(&format!("overlay: {particles} particles, {frames} frames"));
    let mut game = Game::new(particles)?;
    let ctx = egui::Context::default();
    style(&ctx);
    let born = Instant::now();
    // Windows settle their sizes over the first passes (the game runs a
    // pass every frame for its first 30 too).
    let mut frame_ms = 16.7;
    for _ in 0..30 {
        game.frame(frame_ms);
        let t = Instant::now();
        game.pass(&ctx, born.elapsed().as_secs_f64());
        frame_ms = t.elapsed().as_secs_f64() * 1e3 + game.sandbox.last_step.total_ms;
    }
    let (mut steps, mut passes, mut packs, mut replays) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut packed_vertices, mut packed_indices) = (Vec::new(), Vec::new());
    let screen = egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(1280.0, 720.0));
    let (mut ours, mut every) = (0.0, 0.0);
    let mut since_pass = Duration::MAX;
    let mut ran = 0usize;
    let mut vertices = 0;
    let mut virtual_s = 0.0;
    for f in 0..frames {
        let step_ms = game.frame(frame_ms);
        let t = Instant::now();
        let triangles = game.pass(&ctx, born.elapsed().as_secs_f64());
        let pass_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        std::hint::black_box(replay::pack(
            &triangles,
            &mut packed_vertices,
            &mut packed_indices,
        ));
        let pack_ms = t.elapsed().as_secs_f64() * 1e3;
        vertices = packed_vertices.len();
        let t = Instant::now();
        drop(std::hint::black_box(KeptTriangles::replay(screen)));
        let replay_ms = t.elapsed().as_secs_f64() * 1e3;
        // The game's rule, as it runs in the game: a frame after the last
        // one (whose time it knows) since the last pass's decision.
        let last_frame = Duration::from_secs_f64(frame_ms / 1e3);
        since_pass = since_pass.saturating_add(last_frame);
        let due = pass::runs_pass(1_000 + f as u64, true, false, since_pass, last_frame);
        let cost = if due {
            ran += 1;
            since_pass = Duration::ZERO;
            pass_ms + pack_ms
        } else {
            replay_ms
        };
        frame_ms = step_ms + cost;
        virtual_s += frame_ms / 1e3;
        ours += cost;
        every += pass_ms + pack_ms;
        steps.push(step_ms);
        passes.push(pass_ms);
        packs.push(pack_ms);
        replays.push(replay_ms);
        if (f + 1) % 30 == 0 {
            progress(&format!("overlay: frame {} of {frames}", f + 1));
        }
    }
    let n = frames as f64;
    let step = quantile(&mut steps, 0.5);
    let (ours, every) = (ours / n, every / n);
    Ok(OverlayReport {
        particles,
        frames,
        workers: game.sandbox.pool.compute_workers(),
        step_ms_p50: round(step, 3),
        pass_ms_p50: round(quantile(&mut passes, 0.5), 3),
        pack_ms_p50: round(quantile(&mut packs, 0.5), 4),
        replay_ms_p50: round(quantile(&mut replays, 0.5), 4),
        passes_per_s: round(ran as f64 / virtual_s, 2),
        overlay_ms_per_frame: round(ours, 4),
        every_frame_ms_per_frame: round(every, 4),
        frame_rise: round(ours / step, 5),
        every_frame_rise: round(every / step, 5),
        vs_every_frame: round(every / ours, 3),
        vertices,
    })
}
