//! The egui layer: a one-line status bar, the help window (H) and the debug
//! overlay (F3: FPS, particle counts, physics phases, a frame-time plot,
//! the workers' utilisation and latency).
//! Data is sampled once per frame into `FrameHistory`; drawing reads it.

use crate::game::{GameConfig, PlayerState, Sandbox, input::UiCapturesInput};
use crate::particles::Kind;
use bevy::prelude::*;
use bevy_egui::{EguiContexts, EguiPrimaryContextPass, egui};
use egui_plot::{HLine, Legend, Line, Plot};
use std::collections::VecDeque;

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
            .add_systems(Last, sample_frame)
            .add_systems(EguiPrimaryContextPass, draw_ui);
    }
}

fn sample_frame(
    time: Res<Time<Real>>,
    sandbox: Res<Sandbox>,
    mut history: ResMut<FrameHistory>,
    mut workers: ResMut<WorkerStats>,
) {
    history.push(time.delta_secs_f64() * 1000.0, sandbox.last_step.total_ms);
    workers.sample(sandbox.pool.metrics());
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

#[allow(clippy::too_many_arguments)]
fn draw_ui(
    mut contexts: EguiContexts,
    mut player: ResMut<PlayerState>,
    sandbox: Res<Sandbox>,
    config: Res<GameConfig>,
    history: Res<FrameHistory>,
    worker_stats: Res<WorkerStats>,
    memory: Res<crate::game::memory::MemorySystem>,
    mut captures: ResMut<UiCapturesInput>,
) -> Result {
    let ctx = contexts.ctx_mut()?;
    let kinds = &sandbox.kinds;

    egui::Area::new(egui::Id::new("status"))
        .anchor(egui::Align2::LEFT_TOP, [8.0, 6.0])
        .interactable(false)
        .show(ctx, |ui| {
            ui.horizontal(|ui| {
                ui.label(
                    egui::RichText::new(player.kind.name())
                        .color(kind_color(kinds, player.kind))
                        .strong(),
                );
                ui.label(
                    egui::RichText::new(format!(
                        "{} particles{}   H help · F3 debug",
                        sandbox.store.len(),
                        if player.paused { " · PAUSED" } else { "" }
                    ))
                    .color(egui::Color32::from_gray(200)),
                );
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

    if player.show_overlay {
        let mut open = true;
        egui::Window::new("Debug")
            .open(&mut open)
            .default_pos([10.0, 40.0])
            .default_width(320.0)
            .show(ctx, |ui| {
                let step = sandbox.last_step;
                ui.label(format!(
                    "FPS {:.0}   particles {} / {}",
                    history.fps(),
                    sandbox.store.len(),
                    sandbox.store.limit()
                ));
                let by_kind = sandbox.count_by_kind();
                ui.horizontal(|ui| {
                    for k in Kind::ALL {
                        ui.label(
                            egui::RichText::new(format!("{k} {}", by_kind[k as usize]))
                                .color(kind_color(kinds, k)),
                        );
                    }
                });
                ui.label(format!(
                    "physics {:.2} ms: integrate {:.2} · grid {:.2} · collide {:.2} · {} contacts",
                    step.total_ms, step.integrate_ms, step.grid_ms, step.collide_ms, step.contacts
                ));
                ui.label(format!(
                    "{} substeps × {} passes, {} threads",
                    config.0.physics.substeps,
                    config.0.physics.iterations,
                    sandbox.pool.compute_workers()
                ));
                for w in &worker_stats.rates {
                    ui.horizontal(|ui| {
                        ui.add(
                            egui::ProgressBar::new(w.utilization as f32)
                                .desired_width(120.0)
                                .text(format!("{} {:.0}%", w.name, w.utilization * 100.0)),
                        );
                        ui.label(format!(
                            "{:.0} tasks/s · {:.0} stolen/s · queue {} · start p99 {:.0} µs",
                            w.tasks_per_s, w.stolen_per_s, w.queue_depth, w.latency_p99_us
                        ));
                    });
                }
                memory_section(ui, &memory);
                let series = |pick: fn(&(f64, f64)) -> f64| -> Vec<[f64; 2]> {
                    history
                        .samples
                        .iter()
                        .enumerate()
                        .map(|(i, s)| [i as f64, pick(s)])
                        .collect()
                };
                let (frame, physics) = (series(|s| s.0), series(|s| s.1));
                Plot::new("frame_times")
                    .height(130.0)
                    .include_y(0.0)
                    .include_y(20.0)
                    .allow_drag(false)
                    .allow_zoom(false)
                    .allow_scroll(false)
                    .y_axis_label("ms")
                    .legend(Legend::default())
                    .show(ui, |plot| {
                        plot.hline(
                            HLine::new("60 FPS", 1000.0 / 60.0).color(egui::Color32::DARK_GRAY),
                        );
                        plot.line(Line::new("frame", frame));
                        plot.line(Line::new("physics", physics));
                    });
            });
        player.show_overlay = open;
    }

    captures.pointer = ctx.egui_wants_pointer_input() || ctx.is_pointer_over_egui();
    captures.keyboard = ctx.egui_wants_keyboard_input();
    Ok(())
}

fn mib(bytes: i64) -> f64 {
    bytes as f64 / 1048576.0
}

/// Memory in one glance: per component, the pool, resident vs tracked,
/// the top call sites and any leak warning.
fn memory_section(ui: &mut egui::Ui, memory: &crate::game::memory::MemorySystem) {
    let snap = &memory.snapshot;
    egui::CollapsingHeader::new("Memory")
        .default_open(true)
        .show(ui, |ui| {
            ui.label(format!(
                "resident {:.1} MiB · tracked {:.1} MiB · untracked {:.1} MiB · store compactions {}",
                mib(snap.resident_bytes as i64),
                mib(snap.tracked_bytes),
                mib(snap.untracked_bytes),
                memory.compactions
            ));
            let parts: Vec<String> = snap
                .components
                .iter()
                .filter(|c| c.totals.live() != 0 || c.totals.reserved != 0)
                .map(|c| format!("{} {:.1}", c.component, mib(c.totals.live())))
                .collect();
            ui.label(format!("live MiB: {}", parts.join(" · ")));
            for p in &snap.pools {
                ui.label(format!(
                    "pool {}: {} in use / {} buffers ({:.0} MiB mapped), {} grows, {} shrinks",
                    p.name,
                    p.in_use,
                    p.buffers,
                    mib(p.mapped_bytes as i64),
                    p.grows,
                    p.shrinks
                ));
            }
            if !snap.caches.is_empty() {
                let rates: Vec<String> = snap
                    .caches
                    .iter()
                    .enumerate()
                    .map(|(w, c)| format!("#{w} {:.1}%", c.hit_rate() * 100.0))
                    .collect();
                ui.label(format!("job caches, hit rate per worker: {}", rates.join(" · ")));
            }
            for h in snap.hotspots_by_bytes.iter().take(3) {
                ui.label(format!(
                    "{} · {:.1} MiB live · {} allocations",
                    h.site,
                    mib(h.stats.live_bytes),
                    h.stats.total_count
                ));
            }
            for leak in &snap.leaks {
                ui.colored_label(
                    egui::Color32::from_rgb(255, 120, 90),
                    format!(
                        "leak? {}: {:.1} MiB, +{:.0} KiB/epoch",
                        leak.site,
                        mib(leak.live_bytes),
                        leak.bytes_per_epoch / 1024.0
                    ),
                );
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let pool = crate::workers::WorkerPool::new(2, 1).unwrap();
        let mut stats = WorkerStats::default();
        stats.sample(pool.metrics());
        assert!(stats.rates.is_empty());
        let busy = pool.spawn(
            crate::workers::TaskSpec::new("busy", crate::workers::Capability::Physics),
            || std::thread::sleep(std::time::Duration::from_millis(550)),
        );
        stats.sample(pool.metrics());
        assert!(stats.rates.is_empty(), "rates before the window is over");
        busy.join().unwrap();
        stats.sample(pool.metrics());
        assert_eq!(stats.rates.len(), 3);
        let busiest = stats
            .rates
            .iter()
            .map(|r| r.utilization)
            .fold(0.0, f64::max);
        assert!(busiest > 0.5, "{:?}", stats.rates);
    }
}
