//! The egui layer: a one-line status bar, the help window (H) and the debug
//! overlay (F3, or the button at the top right): windows for the frame,
//! memory, hotspots, leaks, workers, bottlenecks, the chain and live
//! settings (`windows`), fed by data sampled once per frame (`data`). The
//! egui pass runs at the overlay's own rate (`pass`); in between, the last
//! pass's triangles are drawn again from the GPU (`replay`).

pub mod data;
pub mod pass;
pub mod replay;
pub mod windows;

use crate::game::{GameConfig, GameSet, PlayerState, Sandbox, input::UiCapturesInput};
use crate::particles::Kind;
use bevy::prelude::*;
use bevy_egui::{EguiContexts, EguiPrimaryContextPass, egui};
use std::collections::VecDeque;
use windows::{OverlayState, SetClock, clock_mark};

/// The last frames' timings, oldest first.
#[derive(Resource, Debug, Default)]
pub struct FrameHistory {
    /// (frame time, physics step time) in ms.
    pub samples: VecDeque<(f64, f64)>,
}

impl FrameHistory {
    pub const LEN: usize = 300;

    pub fn push(&mut self, frame_ms: f64, step_ms: f64) {
        if self.samples.len() == Self::LEN {
            self.samples.pop_front();
        }
        self.samples.push_back((frame_ms, step_ms));
    }

    /// Frames per second over the last second or so of samples.
    pub fn fps(&self) -> f64 {
        let recent: Vec<f64> = self.samples.iter().rev().take(60).map(|s| s.0).collect();
        let total: f64 = recent.iter().sum();
        if total > 0.0 {
            recent.len() as f64 * 1000.0 / total
        } else {
            0.0
        }
    }
}

/// The worker pool's rates over the last half second.
#[derive(Resource, Default)]
pub struct WorkerStats {
    last: Option<crate::workers::PoolMetrics>,
    pub rates: Vec<crate::workers::WorkerRates>,
}

impl WorkerStats {
    /// Seconds between two snapshots the rates are taken over.
    const WINDOW_NS: u64 = 500_000_000;

    pub fn sample(&mut self, now: crate::workers::PoolMetrics) {
        match &self.last {
            // Another pool (the settings replaced the workers): start over
            // from it, its workers listed at once with no rates yet.
            Some(last) if last.pool != now.pool => {
                self.rates = now.since(&now);
                self.last = Some(now);
            }
            Some(last) if now.at_ns.saturating_sub(last.at_ns) < Self::WINDOW_NS => {}
            Some(last) => {
                self.rates = now.since(last);
                self.last = Some(now);
            }
            None => self.last = Some(now),
        }
    }
}

pub struct OverlayPlugin;

impl Plugin for OverlayPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<FrameHistory>()
            .init_resource::<WorkerStats>()
            .init_resource::<OverlayState>()
            .init_resource::<SetClock>()
            .add_systems(Update, clock_mark::<0>.before(GameSet::Management))
            .add_systems(
                Update,
                clock_mark::<1>
                    .after(GameSet::Management)
                    .before(GameSet::Physics),
            )
            .add_systems(
                Update,
                clock_mark::<2>
                    .after(GameSet::Physics)
                    .before(GameSet::Rendering),
            )
            .add_systems(
                Update,
                clock_mark::<3>
                    .after(GameSet::Rendering)
                    .before(GameSet::Blockchain),
            )
            .add_systems(Update, clock_mark::<4>.after(GameSet::Blockchain))
            .add_systems(
                Last,
                (
                    sample_frame,
                    windows::sample_overlay,
                    report_frames_on_exit.in_set(crate::game::ExitSet),
                ),
            )
            .init_resource::<pass::PassRate>()
            .init_resource::<replay::KeptTriangles>()
            .add_systems(
                PostUpdate,
                (
                    pass::egui_pass.in_set(bevy_egui::EguiPostUpdateSet::EndPass),
                    pass::keep_triangles
                        .after(bevy_egui::EguiPostUpdateSet::ProcessOutput)
                        .before(bevy_egui::EguiPostUpdateSet::PostProcessOutput),
                ),
            )
            .add_systems(EguiPrimaryContextPass, draw_ui);
        if let Some(render_app) = app.get_sub_app_mut(bevy::render::RenderApp) {
            render_app
                .init_resource::<replay::KeptGpu>()
                .add_systems(bevy::render::ExtractSchedule, replay::extract_kept);
        }
    }
}

fn sample_frame(
    time: Res<Time<Real>>,
    sandbox: Res<Sandbox>,
    mut history: ResMut<FrameHistory>,
    mut workers: ResMut<WorkerStats>,
) {
    let _tag = crate::memory::enter(crate::memory::Component::Overlay);
    history.push(time.delta_secs_f64() * 1000.0, sandbox.last_step.total_ms);
    workers.sample(sandbox.pool.metrics());
}

/// On exit, the frame times of the last frames (up to `FrameHistory::LEN`),
/// skipping the first 20 (start-up): what a `--frames N` run measured.
fn report_frames_on_exit(mut exits: MessageReader<AppExit>, history: Res<FrameHistory>) {
    if exits.read().next().is_none() {
        return;
    }
    let frames: Vec<f64> = history.samples.iter().skip(20).map(|s| s.0).collect();
    if frames.is_empty() {
        return;
    }
    let p = crate::game::headless::Percentiles::of(&frames);
    info!(
        "frames: {} measured, frame time mean {:.2} ms, p50 {:.2} ms",
        frames.len(),
        p.mean,
        p.p50
    );
    // What each kind of thread cost the whole run: two runs of the same seed
    // differ here by what one of them did more (the overlay, say).
    let cpu: Vec<String> = crate::workers::cpu::thread_cpu_by_group()
        .iter()
        .map(|(group, s)| format!("{group} {s:.2}"))
        .collect();
    info!("CPU seconds by thread: {}", cpu.join(", "));
}

const CONTROLS: [(&str, &str); 11] = [
    ("Left drag", "spawn brush"),
    ("Right drag", "attract"),
    ("Shift + right drag", "repel"),
    ("Space", "explosion at the cursor"),
    ("1 2 3 4", "sand, water, spark, heavy"),
    ("P", "pause"),
    ("R", "reset"),
    ("C", "compact the particle store"),
    ("H", "this help"),
    ("F3", "debug overlay"),
    ("Esc", "quit"),
];

fn kind_color(kinds: &crate::particles::KindTable, k: Kind) -> egui::Color32 {
    let c = kinds.get(k).color;
    egui::Color32::from_rgb(
        (c[0] * 255.0) as u8,
        (c[1] * 255.0) as u8,
        (c[2] * 255.0) as u8,
    )
}

/// The overlay's look: no window shadows (without a GPU, under lavapipe,
/// every blurred shadow pixel is blended in software, and they add nothing
/// to reading).
pub fn style(ctx: &egui::Context) {
    ctx.all_styles_mut(|s| {
        s.visuals.window_shadow = egui::epaint::Shadow::NONE;
        s.visuals.popup_shadow = egui::epaint::Shadow::NONE;
    });
}

/// What the overlay's windows read, and change (the settings, the epoch
/// mark, a compaction asked for).
pub struct OverlayData<'a> {
    pub player: &'a mut PlayerState,
    pub sandbox: &'a mut Sandbox,
    pub config: &'a mut GameConfig,
    pub history: &'a FrameHistory,
    pub workers: &'a WorkerStats,
    pub memory: &'a mut crate::game::memory::MemorySystem,
    pub state: &'a mut OverlayState,
    pub clock: &'a SetClock,
    pub chain: Option<&'a crate::game::chain::ChainRecorder>,
}

/// Every window of the open overlay (F3), in one egui pass.
pub fn draw_windows(ctx: &egui::Context, d: OverlayData<'_>) {
    let kinds = d.sandbox.kinds;
    let sandbox = &mut *d.sandbox;
    windows::frame_window(ctx, sandbox, d.config, d.history, |ui| {
        let by_kind = sandbox.count_by_kind();
        ui.horizontal(|ui| {
            for k in Kind::ALL {
                ui.label(
                    egui::RichText::new(format!("{k} {}", by_kind[k as usize]))
                        .color(kind_color(&kinds, k)),
                );
            }
        });
    });
    windows::memory_window(ctx, d.state, d.memory, sandbox, d.player);
    windows::hotspots_window(ctx, d.state, d.memory);
    windows::leaks_window(ctx, d.state, d.memory);
    windows::workers_window(ctx, sandbox, d.workers, d.history);
    windows::bottlenecks_window(ctx, d.clock, sandbox);
    windows::chain_window(ctx, d.chain);
    windows::settings_window(ctx, d.state, sandbox, d.memory, d.config);
}

/// The status band's text after the kind's name. A full box (as many
/// particles as can rest in it) is said, since the brush then adds no
/// more.
fn status_line(particles: usize, paused: bool, full: bool) -> String {
    format!(
        "{particles} particles{}{}   H help · F3 debug",
        if full { " · box full" } else { "" },
        if paused { " · PAUSED" } else { "" }
    )
}

#[allow(clippy::too_many_arguments)]
fn draw_ui(
    mut contexts: EguiContexts,
    mut player: ResMut<PlayerState>,
    mut sandbox: ResMut<Sandbox>,
    mut config: ResMut<GameConfig>,
    history: Res<FrameHistory>,
    worker_stats: Res<WorkerStats>,
    mut memory: ResMut<crate::game::memory::MemorySystem>,
    mut state: ResMut<OverlayState>,
    clock: Res<SetClock>,
    mut captures: ResMut<UiCapturesInput>,
    chain: Option<Res<crate::game::chain::ChainRecorder>>,
    rate: Res<pass::PassRate>,
    mut styled: Local<bool>,
) -> Result {
    let ctx = contexts.ctx_mut()?;
    if !*styled {
        style(ctx);
        *styled = true;
    }
    let kinds = sandbox.kinds;

    egui::Area::new(egui::Id::new("status"))
        .anchor(egui::Align2::LEFT_TOP, [6.0, 4.0])
        .interactable(false)
        .show(ctx, |ui| {
            // A dark band behind the text: over a bright pile the bare
            // letters were hard to read.
            let band = egui::Frame::new()
                .fill(egui::Color32::from_black_alpha(170))
                .corner_radius(4.0)
                .inner_margin(egui::Margin::symmetric(6, 2));
            band.show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.label(
                        egui::RichText::new(player.kind.name())
                            .color(kind_color(&kinds, player.kind))
                            .strong(),
                    );
                    ui.label(
                        egui::RichText::new(status_line(
                            sandbox.store.len(),
                            player.paused,
                            sandbox.is_full(),
                        ))
                        .color(egui::Color32::from_gray(200)),
                    );
                });
            });
        });

    if player.show_help {
        let mut open = true;
        egui::Window::new("Controls")
            .open(&mut open)
            .resizable(false)
            .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
            .show(ctx, |ui| {
                egui::Grid::new("controls").striped(true).show(ui, |ui| {
                    for (key, what) in CONTROLS {
                        ui.label(egui::RichText::new(key).strong());
                        ui.label(what);
                        ui.end_row();
                    }
                });
            });
        player.show_help = open;
    }

    // The overlay button, with a badge while a leak is suspected.
    egui::Area::new(egui::Id::new("overlay_button"))
        .anchor(egui::Align2::RIGHT_TOP, [-8.0, 6.0])
        .show(ctx, |ui| {
            let label = match data::leak_badge(&memory.leaks) {
                Some(badge) => format!("Debug (F3) · ⚠ {badge}"),
                None => "Debug (F3)".to_string(),
            };
            if ui.button(label).clicked() {
                player.show_overlay = !player.show_overlay;
            }
        });

    if player.show_overlay {
        let started = std::time::Instant::now();
        draw_windows(
            ctx,
            OverlayData {
                player: &mut player,
                sandbox: &mut sandbox,
                config: &mut config,
                history: &history,
                workers: &worker_stats,
                memory: &mut memory,
                state: &mut state,
                clock: &clock,
                chain: chain.as_deref(),
            },
        );
        // The cost of the passes after start-up (which runs one every
        // frame), reported once per frame over the frames they served.
        if rate.frames > 60 {
            state.cost.0 += started.elapsed().as_secs_f64() * 1e3;
            state.cost.1 += 1;
            if state.cost.1 == 1 {
                state.cost_from_frame = rate.frames;
            }
            if state.cost.1 == 30 {
                let frames = (rate.frames - state.cost_from_frame + 1) as f64;
                let frame_ms: f64 = history
                    .samples
                    .iter()
                    .rev()
                    .take(frames as usize)
                    .map(|s| s.0)
                    .sum::<f64>()
                    / frames;
                info!(
                    "overlay: {:.3} ms per pass to sample and draw, 30 passes in {} frames: {:.3} ms per frame; frame {:.2} ms ({} particles)",
                    state.cost.0 / 30.0,
                    frames,
                    state.cost.0 / frames,
                    frame_ms,
                    sandbox.store.len()
                );
            }
        }
    }

    captures.pointer = ctx.egui_wants_pointer_input() || ctx.is_pointer_over_egui();
    captures.keyboard = ctx.egui_wants_keyboard_input();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_says_paused_and_a_full_box() {
        assert_eq!(
            status_line(1200, false, false),
            "1200 particles   H help · F3 debug"
        );
        assert_eq!(
            status_line(5, true, true),
            "5 particles · box full · PAUSED   H help · F3 debug"
        );
    }

    #[test]
    fn history_is_bounded_and_fps_follows_frame_time() {
        let mut h = FrameHistory::default();
        for _ in 0..1000 {
            h.push(20.0, 5.0);
        }
        assert_eq!(h.samples.len(), FrameHistory::LEN);
        assert!((h.fps() - 50.0).abs() < 1e-9);
    }

    #[test]
    fn worker_rates_come_from_snapshots_half_a_second_apart() {
        use crate::workers::{Capability, TaskSpec, WorkerPool};
        let busy_for_550_ms = |pool: &WorkerPool| {
            pool.spawn(TaskSpec::new("busy", Capability::Physics), || {
                std::thread::sleep(std::time::Duration::from_millis(550))
            })
        };
        let busiest = |stats: &WorkerStats| {
            stats
                .rates
                .iter()
                .map(|r| r.utilization)
                .fold(0.0, f64::max)
        };
        let pool = WorkerPool::new(2, 1).unwrap();
        let mut stats = WorkerStats::default();
        stats.sample(pool.metrics());
        assert!(stats.rates.is_empty());
        let busy = busy_for_550_ms(&pool);
        stats.sample(pool.metrics());
        assert!(stats.rates.is_empty(), "rates before the window is over");
        busy.join().unwrap();
        // The worker counts the task's busy time before it hands the result
        // over, so it is in the metrics as soon as `join` returns.
        let busy_ns: u64 = pool.metrics().workers.iter().map(|w| w.busy_ns).sum();
        assert!(busy_ns >= 500_000_000, "busy {busy_ns} ns after join");
        stats.sample(pool.metrics());
        assert_eq!(stats.rates.len(), 3);
        assert!(busiest(&stats) > 0.5, "{:?}", stats.rates);

        // The settings replace the pool (three compute workers now): its
        // workers are listed at the next sample, with no rates yet, and its
        // rates come half a second later. (The new pool's clock starts at
        // zero, behind the old one's: taken for the same pool, the rates
        // froze for as long as the old pool had run.)
        let new = WorkerPool::new(3, 1).unwrap();
        stats.sample(new.metrics());
        assert_eq!(stats.rates.len(), 4, "{:?}", stats.rates);
        assert_eq!(busiest(&stats), 0.0);
        busy_for_550_ms(&new).join().unwrap();
        stats.sample(new.metrics());
        assert!(busiest(&stats) > 0.5, "{:?}", stats.rates);
    }
}
