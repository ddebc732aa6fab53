//! The debug overlay's windows (F3 or the button at the top right): Frame,
//! Memory, Hotspots, Leaks, Workers, Bottlenecks, Chain and Settings. They
//! only draw what `OverlayState`, the memory snapshot and the pool metrics
//! already hold: everything is sampled once per frame, never per
//! allocation.

use super::data::{self, History, SortBy};
use super::{FrameHistory, WorkerStats};
use crate::game::chain::ChainRecorder;
use crate::game::memory::MemorySystem;
use crate::game::{GameConfig, PlayerState, Sandbox, SetupError};
use crate::memory::column_space::Strategy;
use crate::memory::{Component, SITES};
use crate::workers::Capability;
use bevy::prelude::*;
use bevy_egui::egui;
use egui_plot::{HLine, Legend, Line, Plot, VLine};
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// The colours the plots use (the screenshot test looks for them).
pub const FRAME_COLOR: egui::Color32 = egui::Color32::from_rgb(255, 170, 60);
pub const PHYSICS_COLOR: egui::Color32 = egui::Color32::from_rgb(60, 220, 120);

/// A live figure above its budget.
const OVER_BUDGET_COLOR: egui::Color32 = egui::Color32::from_rgb(255, 120, 90);

const COMPONENT_COLORS: [egui::Color32; Component::COUNT] = [
    egui::Color32::from_rgb(60, 220, 120),
    egui::Color32::from_rgb(90, 160, 255),
    egui::Color32::from_rgb(200, 120, 255),
    egui::Color32::from_rgb(255, 210, 80),
    egui::Color32::from_rgb(255, 130, 90),
    egui::Color32::from_rgb(150, 150, 150),
];

fn capability_color(c: Capability) -> egui::Color32 {
    match c {
        Capability::Management => egui::Color32::from_rgb(255, 210, 80),
        Capability::Physics => egui::Color32::from_rgb(60, 220, 120),
        Capability::Rendering => egui::Color32::from_rgb(90, 160, 255),
        Capability::Blockchain => egui::Color32::from_rgb(200, 120, 255),
    }
}

/// Wall time of each system set, frame by frame.
#[derive(Resource, Default)]
pub struct SetClock {
    marks: [Option<Instant>; 5],
    /// Management, Physics, Rendering, Blockchain of the last frame, ms.
    pub last_ms: [f64; 4],
    pub frames: VecDeque<[f64; 4]>,
}

pub const SET_NAMES: [&str; 4] = ["management", "physics", "rendering", "blockchain"];

/// Marks a boundary between system sets (`I` = 0 before Management, 4
/// after Blockchain).
pub fn clock_mark<const I: usize>(mut clock: ResMut<SetClock>) {
    clock.marks[I] = Some(Instant::now());
    if I == 4 {
        let m = clock.marks;
        let mut ms = [0.0; 4];
        for (k, out) in ms.iter_mut().enumerate() {
            if let (Some(a), Some(b)) = (m[k], m[k + 1]) {
                *out = b.saturating_duration_since(a).as_secs_f64() * 1e3;
            }
        }
        clock.push(ms);
    }
}

impl SetClock {
    /// A frame's time per set (Management, Physics, Rendering, Blockchain).
    pub fn push(&mut self, ms: [f64; 4]) {
        self.last_ms = ms;
        if self.frames.len() == 120 {
            self.frames.pop_front();
        }
        self.frames.push_back(ms);
    }
}

/// What the overlay remembers between frames.
#[derive(Resource)]
pub struct OverlayState {
    pub born: Instant,
    /// Live bytes per component, last 60 seconds.
    pub memory: History<[i64; Component::COUNT]>,
    pub sort: SortBy,
    pub selected: Option<String>,
    pub mark: Option<(u64, HashMap<String, i64>)>,
    pub draft: Option<Draft>,
    pub last_error: Option<String>,
    /// Time spent sampling and drawing the overlay: total ms, passes; and
    /// the frame the first of those passes ran in.
    pub cost: (f64, u64),
    pub cost_from_frame: u64,
    pub column_maps: ColumnMaps,
}

/// The particle columns' maps as last sampled.
#[derive(Default)]
pub struct ColumnMaps {
    taken: Option<Instant>,
    strategy: Option<Strategy>,
    maps: Vec<crate::memory::column_space::SpaceMap>,
}

impl Default for OverlayState {
    fn default() -> Self {
        Self {
            born: Instant::now(),
            memory: History::new(60.0),
            sort: SortBy::Bytes,
            selected: None,
            mark: None,
            draft: None,
            last_error: None,
            cost: (0.0, 0),
            cost_from_frame: 0,
            column_maps: ColumnMaps::default(),
        }
    }
}

/// Settings being edited, applied with the button.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Draft {
    pub particles_max: usize,
    pub pool_buffers: usize,
    pub pool_buffer_kib: usize,
    pub workers: usize,
    /// Where the particle columns are placed.
    pub strategy: Strategy,
}

fn mib(bytes: i64) -> f64 {
    bytes as f64 / 1048576.0
}

/// Once per frame: the memory history.
pub fn sample_overlay(mut state: ResMut<OverlayState>, memory: Res<MemorySystem>) {
    let _tag = crate::memory::enter(crate::memory::Component::Overlay);
    state.sample(&memory);
}

impl OverlayState {
    /// The memory history's next sample, if one is due.
    pub fn sample(&mut self, memory: &MemorySystem) {
        let started = Instant::now();
        let t = self.born.elapsed().as_secs_f64();
        // Ten samples a second are plenty for a 60-second graph.
        if self
            .memory
            .samples
            .back()
            .is_some_and(|(last, _)| t - last < 0.1)
        {
            return;
        }
        let mut live = [0i64; Component::COUNT];
        for (k, row) in memory
            .snapshot
            .components
            .iter()
            .enumerate()
            .take(Component::COUNT)
        {
            live[k] = row.totals.live();
        }
        self.memory.push(t, live);
        self.cost.0 += started.elapsed().as_secs_f64() * 1e3;
    }
}

/// Points per plotted line: about one per two pixels of a window's plot.
const PLOT_POINTS: usize = 150;

fn plot(id: &str) -> Plot<'_> {
    Plot::new(id)
        .height(120.0)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        // Small and opaque: the legend sits over the newest samples.
        .legend(
            Legend::default()
                .text_style(egui::TextStyle::Small)
                .background_alpha(1.0),
        )
}

pub fn frame_window(
    ctx: &egui::Context,
    sandbox: &Sandbox,
    config: &GameConfig,
    history: &FrameHistory,
    kinds_line: impl FnOnce(&mut egui::Ui),
) {
    egui::Window::new("Frame")
        .default_pos([8.0, 36.0])
        .default_width(300.0)
        .show(ctx, |ui| {
            let step = sandbox.last_step;
            ui.label(format!(
                "FPS {:.0}   particles {} / {}",
                history.fps(),
                sandbox.store.len(),
                sandbox.store.limit()
            ));
            kinds_line(ui);
            ui.label(format!(
                "physics {:.2} ms: integrate {:.2} · grid {:.2} · collide {:.2} · {} contacts",
                step.total_ms, step.integrate_ms, step.grid_ms, step.collide_ms, step.contacts
            ));
            ui.label(format!(
                "{} substeps × {} passes, {} workers",
                config.0.physics.substeps,
                config.0.physics.iterations,
                sandbox.pool.compute_workers()
            ));
            let series = |pick: fn(&(f64, f64)) -> f64| -> Vec<[f64; 2]> {
                let all: Vec<[f64; 2]> = history
                    .samples
                    .iter()
                    .enumerate()
                    .map(|(i, s)| [i as f64, pick(s)])
                    .collect();
                data::decimate(&all, PLOT_POINTS)
            };
            plot("frame_times")
                .include_y(0.0)
                .include_y(20.0)
                .y_axis_label("ms")
                .show(ui, |p| {
                    p.hline(HLine::new("60 FPS", 1000.0 / 60.0).color(egui::Color32::DARK_GRAY));
                    p.line(
                        Line::new("frame", series(|s| s.0))
                            .color(FRAME_COLOR)
                            .width(2.0),
                    );
                    p.line(
                        Line::new("physics", series(|s| s.1))
                            .color(PHYSICS_COLOR)
                            .width(2.0),
                    );
                });
        });
}

/// The particle columns' region as each strategy places the same requests
/// (the live one holds the bytes; the others are shadows), drawn up to the
/// highest block any of them placed.
fn column_space_maps(ui: &mut egui::Ui, sandbox: &Sandbox, cache: &mut ColumnMaps) {
    let Some(space) = sandbox.store.column_space() else {
        ui.label(
            egui::RichText::new("particle columns: on the heap (their region is full)").small(),
        );
        return;
    };
    // Columns change size rarely; walking three allocators' free lists
    // twice a second is plenty.
    let stale = cache.taken.is_none_or(|t| t.elapsed().as_secs_f32() > 0.5)
        || cache.strategy != Some(space.strategy());
    if stale {
        cache.maps = space.maps();
        cache.taken = Some(Instant::now());
        cache.strategy = Some(space.strategy());
    }
    let maps = &cache.maps;
    let shown = maps
        .iter()
        .map(|m| m.high_water())
        .max()
        .unwrap_or(0)
        .max(1 << 20) as f64
        * 1.1;
    ui.label(
        egui::RichText::new(format!(
            "particle columns, first {:.1} MiB of a {} MiB region:",
            shown / 1048576.0,
            space.capacity() >> 20
        ))
        .small(),
    );
    for m in maps {
        let s = m.stats;
        ui.label(
            egui::RichText::new(format!(
                "{}{}: {} blocks, {:.1} MiB, {} holes, external {:.0}%, internal {:.0}%{}",
                m.strategy.name(),
                if m.real { " (live)" } else { " (shadow)" },
                s.live_blocks,
                s.allocated as f64 / 1048576.0,
                s.free_blocks,
                s.external_fragmentation() * 100.0,
                s.internal_fragmentation() * 100.0,
                if m.refused > 0 {
                    format!(", refused {}", m.refused)
                } else {
                    String::new()
                }
            ))
            .small(),
        );
        let runs: Vec<_> = m
            .used_runs()
            .into_iter()
            .map(|(a, b)| {
                (
                    (a as f64 / shown).min(1.0),
                    (b as f64 / shown).min(1.0),
                    true,
                )
            })
            .collect();
        strip(ui, m.strategy.name(), &runs);
    }
}

/// A strip of used (filled) and free (outlined) blocks.
fn strip(ui: &mut egui::Ui, label: &str, used: &[(f64, f64, bool)]) {
    ui.horizontal(|ui| {
        ui.label(egui::RichText::new(label).small());
        let (rect, _) = ui.allocate_exact_size(
            egui::vec2(ui.available_width().max(120.0), 12.0),
            egui::Sense::hover(),
        );
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 0.0, egui::Color32::from_gray(35));
        for &(a, b, on) in used {
            let r = egui::Rect::from_min_max(
                egui::pos2(rect.left() + a as f32 * rect.width(), rect.top()),
                egui::pos2(rect.left() + b as f32 * rect.width(), rect.bottom()),
            );
            if on {
                painter.rect_filled(r.shrink(0.5), 0.0, egui::Color32::from_rgb(90, 160, 255));
            }
        }
    });
}

pub fn memory_window(
    ctx: &egui::Context,
    state: &mut OverlayState,
    memory: &MemorySystem,
    sandbox: &Sandbox,
    player: &mut PlayerState,
) {
    let snap = &memory.snapshot;
    egui::Window::new("Memory")
        .default_pos([318.0, 36.0])
        .default_width(400.0)
        .show(ctx, |ui| {
            ui.label(format!(
                "resident {:.1} (anonymous {:.1} · code and shared {:.1}) · tracked {:.1} · untracked {:.1} · pools mapped {:.1} (MiB)",
                mib(snap.resident_bytes as i64),
                mib(snap.resident_bytes as i64 - snap.shared_bytes as i64),
                mib(snap.shared_bytes as i64),
                mib(snap.tracked_bytes),
                mib(snap.untracked_bytes),
                mib(snap.pool_reserved_bytes)
            ))
            .on_hover_text(
                "resident: what the kernel counts for the process; anonymous is heaps, \
                 stacks and private maps, code and shared is the program, its libraries, \
                 mapped files and buffers shared with the display · tracked: the game's \
                 heap and pool buffers in use, by component below (spare capacity \
                 included, touched or not) · untracked: resident minus tracked",
            );
            let stacked = data::stacked(&state.memory);
            plot("memory_stack")
                .y_axis_label("MiB")
                .include_y(0.0)
                .show(ui, |p| {
                    // Top of the stack first, so each lower fill shows below it.
                    for c in (0..Component::COUNT).rev() {
                        p.line(
                            Line::new(
                                Component::ALL[c].name(),
                                data::decimate(&stacked[c], PLOT_POINTS),
                            )
                            .color(COMPONENT_COLORS[c])
                            .fill(0.0),
                        );
                    }
                    for pool in &snap.pools {
                        for e in &pool.events {
                            let color = match e.kind {
                                crate::memory::pool::PoolEventKind::Grew => {
                                    egui::Color32::LIGHT_GREEN
                                }
                                crate::memory::pool::PoolEventKind::Shrank => {
                                    egui::Color32::LIGHT_RED
                                }
                            };
                            p.vline(VLine::new(format!("{:?}", e.kind), e.at_s).color(color));
                        }
                    }
                });
            ui.label(
                egui::RichText::new("MiB per component (live = heap + pool buffers in use)")
                    .small(),
            );
            egui::Grid::new("components").striped(true).show(ui, |ui| {
                for h in [
                    "component",
                    "live",
                    "reserved",
                    "budget",
                    "allocs/s",
                    "frees/s",
                ] {
                    ui.label(egui::RichText::new(h).strong());
                }
                ui.end_row();
                for (k, row) in snap.components.iter().enumerate() {
                    ui.colored_label(COMPONENT_COLORS[k % Component::COUNT], row.component);
                    let live = egui::RichText::new(format!("{:.2}", mib(row.totals.live())));
                    if data::over_budget(row.totals.live(), row.totals.budget) {
                        // Budgets follow demand once per epoch, so a
                        // component can be over for a moment; say so.
                        ui.label(live.color(OVER_BUDGET_COLOR)).on_hover_text(
                            "over its budget: the budget follows demand at the next epoch",
                        );
                    } else {
                        ui.label(live);
                    }
                    ui.label(format!("{:.2}", mib(row.totals.reserved)));
                    ui.label(format!("{:.1}", mib(row.totals.budget as i64)));
                    ui.label(format!("{:.0}", row.allocs_per_s));
                    ui.label(format!("{:.0}", row.frees_per_s));
                    ui.end_row();
                }
            });
            for pool in &snap.pools {
                ui.label(format!(
                    "pool {}: {} in use, {} free, {} × {} KiB; {} grows, {} shrinks",
                    pool.name,
                    pool.in_use,
                    pool.free,
                    pool.buffers,
                    pool.buffer_bytes >> 10,
                    pool.grows,
                    pool.shrinks
                ));
                let n = pool.buffers.max(1) as f64;
                let used: Vec<_> = (0..pool.buffers)
                    .map(|i| (i as f64 / n, (i + 1) as f64 / n, i < pool.in_use))
                    .collect();
                strip(ui, "pool buffers", &used);
            }
            let store = &sandbox.store;
            let frag = store.fragmentation();
            // Wrapped: at millions of particles the line would widen the
            // window over the Hotspots window beside it.
            ui.horizontal_wrapped(|ui| {
                ui.label(format!(
                    "store: {} live, {:.1} MiB, {:.0}% dead, {} compactions",
                    store.len(),
                    mib(store.reserved_bytes() as i64),
                    frag * 100.0,
                    memory.compactions
                ));
                if ui.button("Compact now").clicked() {
                    player.compact_requested = true;
                }
            });
            strip(ui, "particle store", &[(0.0, 1.0 - frag, true)]);
            column_space_maps(ui, sandbox, &mut state.column_maps);
            // The job caches' pages: only the used stretch is worth a look
            // (the region is reserved address space, mapped as touched).
            let map = sandbox.pool.cache_page_map();
            if let Some(last) = map.iter().rposition(|&u| u) {
                let shown = (last + 1).max(16).min(map.len());
                let n = shown as f64;
                let used: Vec<_> = map[..shown]
                    .iter()
                    .enumerate()
                    .map(|(i, &u)| (i as f64 / n, (i + 1) as f64 / n, u))
                    .collect();
                strip(ui, "job-cache pages", &used);
            }
            if !snap.caches.is_empty() {
                ui.label(data::job_cache_line(&snap.caches));
            }
        });
}

pub fn hotspots_window(ctx: &egui::Context, state: &mut OverlayState, memory: &MemorySystem) {
    egui::Window::new("Hotspots")
        .default_pos([728.0, 36.0])
        .default_width(340.0)
        .show(ctx, |ui| {
            ui.horizontal(|ui| {
                ui.label("sort by");
                ui.radio_value(&mut state.sort, SortBy::Bytes, "bytes");
                ui.radio_value(&mut state.sort, SortBy::Count, "count");
                ui.radio_value(&mut state.sort, SortBy::Live, "live");
            });
            let mut sites = memory.snapshot.hotspots_by_bytes.clone();
            for h in &memory.snapshot.hotspots_by_count {
                if !sites.iter().any(|s| s.site == h.site) {
                    sites.push(h.clone());
                }
            }
            let ranked = data::rank(sites, state.sort);
            egui::Grid::new("hotspots").striped(true).show(ui, |ui| {
                for h in ["call site", "total MiB", "count", "live MiB"] {
                    ui.label(egui::RichText::new(h).strong());
                }
                ui.end_row();
                for h in ranked.iter().take(10) {
                    let chosen = state.selected.as_deref() == Some(h.site.as_str());
                    if ui.selectable_label(chosen, &h.site).clicked() {
                        state.selected = Some(h.site.clone());
                    }
                    ui.label(format!("{:.1}", mib(h.stats.total_bytes as i64)));
                    ui.label(h.stats.total_count.to_string());
                    ui.label(format!("{:.2}", mib(h.stats.live_bytes)));
                    ui.end_row();
                }
            });
            if let Some(site) = &state.selected {
                let points: Vec<[f64; 2]> = SITES
                    .history_of(site)
                    .into_iter()
                    .map(|(e, b)| [e as f64, mib(b)])
                    .collect();
                ui.label(format!("{site}: live MiB per epoch"));
                plot("site_history").include_y(0.0).show(ui, |p| {
                    p.line(Line::new("live", points).color(PHYSICS_COLOR));
                });
            }
        });
}

pub fn leaks_window(ctx: &egui::Context, state: &mut OverlayState, memory: &MemorySystem) {
    egui::Window::new("Leaks")
        .default_pos([728.0, 215.0])
        .default_width(340.0)
        .show(ctx, |ui| {
            if memory.leaks.is_empty() {
                ui.label("no call site has grown epoch after epoch");
            }
            for l in &memory.leaks {
                ui.colored_label(
                    egui::Color32::from_rgb(255, 120, 90),
                    format!(
                        "{}: {:.2} MiB live, +{:.1} KiB per epoch since epoch {}",
                        l.site,
                        mib(l.live_bytes),
                        l.bytes_per_epoch / 1024.0,
                        l.since_epoch
                    ),
                );
            }
            ui.horizontal(|ui| {
                if ui.button("Mark epoch").clicked() {
                    state.mark = Some((SITES.epoch(), SITES.live_by_site()));
                }
                if let Some((epoch, _)) = &state.mark {
                    ui.label(format!("marked at epoch {epoch}; now {}", SITES.epoch()));
                }
            });
            if let Some((_, mark)) = &state.mark {
                let grown = data::since_mark(mark, &SITES.live_by_site());
                if grown.is_empty() {
                    ui.label("nothing changed since the mark");
                }
                for (site, d) in grown.iter().take(8) {
                    ui.label(format!("{site}: {:+.2} MiB since the mark", mib(*d)));
                }
            }
        });
}

/// Height of the workers' bars before they scroll: four rows.
const WORKER_BARS_HEIGHT: f32 = 86.0;

/// A worker's row in the timeline: 14 px up to four workers, thinner past
/// that (down to 3 px) so the timeline stays under ~60 px.
pub fn timeline_row_height(workers: usize) -> f32 {
    (56.0 / workers.max(1) as f32).clamp(3.0, 14.0)
}

/// One utilization bar and counters line per worker.
fn worker_bars(ui: &mut egui::Ui, stats: &WorkerStats) {
    for w in &stats.rates {
        ui.horizontal(|ui| {
            ui.add(
                egui::ProgressBar::new(w.utilization as f32)
                    .desired_width(110.0)
                    .text(format!("{} {:.0}%", w.name, w.utilization * 100.0)),
            );
            // Cut to the window's width (the whole line on hover; queue and
            // failures first): in a row it would not wrap, and one long
            // figure widened the window for good, over the Memory window
            // beside it.
            ui.add(
                egui::Label::new(
                    egui::RichText::new(format!(
                        "q {} · {} failed · p99 {:.0} µs · {:.0}/s · {:.0} stolen",
                        w.queue_depth, w.failed, w.latency_p99_us, w.tasks_per_s, w.stolen_per_s
                    ))
                    .small(),
                )
                .truncate(),
            );
        });
    }
}

pub fn workers_window(
    ctx: &egui::Context,
    sandbox: &Sandbox,
    stats: &WorkerStats,
    history: &FrameHistory,
) {
    egui::Window::new("Workers")
        .default_pos([8.0, 300.0])
        .default_width(300.0)
        .show(ctx, |ui| {
            // On a many-core machine the bars scroll and the timeline's rows
            // get thinner, so the window keeps its size (with 16 workers it
            // grew taller than the screen and egui moved it over the Frame
            // window).
            egui::ScrollArea::vertical()
                .id_salt("worker_bars")
                .max_height(WORKER_BARS_HEIGHT)
                .show(ui, |ui| worker_bars(ui, stats));
            // The timeline of the last three frames: one row per worker.
            let span_ms: f64 = history.samples.iter().rev().take(3).map(|s| s.0).sum();
            let now = sandbox.pool.now_ns();
            let since = now.saturating_sub((span_ms.max(1.0) * 1e6) as u64);
            let tasks = sandbox.pool.recent_spans(since);
            let rows = stats.rates.len().max(1);
            ui.label(format!(
                "last 3 frames ({span_ms:.1} ms), coloured by kind of work"
            ));
            let row = timeline_row_height(rows);
            let width = ui.available_width().max(200.0);
            let (rect, _) =
                ui.allocate_exact_size(egui::vec2(width, row * rows as f32), egui::Sense::hover());
            let painter = ui.painter_at(rect);
            painter.rect_filled(rect, 0.0, egui::Color32::from_gray(30));
            let gap = (row / 14.0).min(1.0);
            for (worker, capability, x0, x1) in data::timeline_bars(&tasks, since, now, width) {
                if worker >= rows {
                    continue;
                }
                let y = rect.top() + worker as f32 * row;
                let r = egui::Rect::from_min_max(
                    egui::pos2(rect.left() + x0, y + gap),
                    egui::pos2(rect.left() + x1, y + row - gap),
                );
                painter.rect_filled(r, 0.0, capability_color(capability));
            }
            ui.horizontal(|ui| {
                for c in Capability::ALL {
                    ui.colored_label(capability_color(c), c.name());
                }
            });
        });
}

pub fn bottlenecks_window(ctx: &egui::Context, clock: &SetClock, sandbox: &Sandbox) {
    egui::Window::new("Bottlenecks")
        .pivot(egui::Align2::LEFT_BOTTOM)
        .default_pos([8.0, 712.0])
        .default_width(300.0)
        .show(ctx, |ui| {
            let stages: Vec<(&str, f64)> = SET_NAMES.iter().copied().zip(clock.last_ms).collect();
            let step = sandbox.last_step;
            let phases = [
                ("integration", step.integrate_ms),
                ("the grid sort", step.grid_ms),
                ("contact resolution", step.collide_ms),
            ];
            let pick = data::bottleneck(&stages, &phases);
            let max = stages.iter().map(|s| s.1).fold(0.0, f64::max).max(1e-9);
            for (i, (name, ms)) in stages.iter().enumerate() {
                let slowest = pick.as_ref().is_some_and(|(k, _)| *k == i);
                ui.horizontal(|ui| {
                    let text = egui::RichText::new(format!("{name:<11} {ms:>7.2} ms"));
                    ui.label(if slowest {
                        text.color(egui::Color32::from_rgb(255, 120, 90)).strong()
                    } else {
                        text
                    });
                    ui.add(egui::ProgressBar::new((ms / max) as f32).desired_width(140.0));
                });
            }
            if let Some((_, hint)) = pick {
                ui.label(hint);
            }
        });
}

/// The recorder's status: where events go, how many are where, the last
/// transaction and the last error.
pub fn chain_window(ctx: &egui::Context, chain: Option<&ChainRecorder>) {
    egui::Window::new("Chain")
        .default_pos([1000.0, 345.0])
        .default_width(260.0)
        .show(ctx, |ui| {
            let Some(chain) = chain else {
                ui.label("backend: off");
                return;
            };
            if chain.is_off() {
                ui.label("backend: off");
                ui.label(
                    egui::RichText::new(
                        "game events are not recorded; start with --chain embedded (or rpc) to record them",
                    )
                    .small(),
                );
                return;
            }
            let s = chain.snapshot();
            ui.label(format!("backend: {}", s.backend));
            if !s.location.is_empty() {
                ui.label(egui::RichText::new(&s.location).small());
            }
            if let Some(session) = chain.session() {
                ui.label(format!("session {session}"));
            }
            if let Some(c) = &s.contract {
                ui.label(
                    egui::RichText::new(format!("contract {c}"))
                        .monospace()
                        .small(),
                );
            }
            egui::Grid::new("chain_counts")
                .striped(true)
                .show(ui, |ui| {
                    for (name, v) in [
                        ("recorded", s.recorded),
                        ("pending", s.pending),
                        ("sent", s.sent),
                        ("confirmed", s.confirmed),
                        ("batches", s.batches),
                    ] {
                        ui.label(name);
                        ui.label(v.to_string());
                        ui.end_row();
                    }
                    ui.label("gas / event");
                    ui.label(format!("{:.0}", s.gas_per_event));
                    ui.end_row();
                    // Only while the journal refuses writes, or if it cost events.
                    for (name, v) in [("held in memory", s.held), ("lost", s.lost)] {
                        if v > 0 {
                            ui.label(name);
                            ui.label(
                                egui::RichText::new(v.to_string())
                                    .color(egui::Color32::from_rgb(255, 110, 90)),
                            );
                            ui.end_row();
                        }
                    }
                });
            match &s.last_tx {
                Some(tx) => ui.label(
                    egui::RichText::new(format!("last tx {tx}"))
                        .monospace()
                        .small(),
                ),
                None => ui.label("no transaction yet"),
            };
            match &s.last_error {
                Some(e) => {
                    ui.label(egui::RichText::new(e).color(egui::Color32::from_rgb(255, 110, 90)))
                }
                None => {
                    ui.label(egui::RichText::new("no errors").color(egui::Color32::from_gray(160)))
                }
            };
        });
}

pub fn settings_window(
    ctx: &egui::Context,
    state: &mut OverlayState,
    sandbox: &mut Sandbox,
    memory: &mut MemorySystem,
    config: &mut GameConfig,
) {
    egui::Window::new("Settings")
        .default_pos([728.0, 345.0])
        .default_width(260.0)
        .show(ctx, |ui| {
            let current = Draft {
                particles_max: sandbox.store.limit(),
                pool_buffers: config.0.memory.pool_buffers,
                pool_buffer_kib: config.0.memory.pool_buffer_kib,
                workers: sandbox.pool.compute_workers(),
                strategy: config.0.memory.column_strategy,
            };
            let draft = state.draft.get_or_insert(current);
            egui::Grid::new("settings").show(ui, |ui| {
                ui.label("particle budget");
                ui.add(egui::DragValue::new(&mut draft.particles_max).range(1_000..=5_000_000).speed(1000));
                ui.end_row();
                ui.label("pool buffers");
                ui.add(egui::DragValue::new(&mut draft.pool_buffers).range(1..=512));
                ui.end_row();
                ui.label("pool buffer KiB");
                ui.add(egui::DragValue::new(&mut draft.pool_buffer_kib).range(64..=16384));
                ui.end_row();
                ui.label("compute workers");
                ui.add(egui::DragValue::new(&mut draft.workers).range(1..=64));
                ui.end_row();
                ui.label("allocator strategy");
                egui::ComboBox::from_id_salt("column_strategy")
                    .selected_text(draft.strategy.name())
                    .show_ui(ui, |ui| {
                        for s in Strategy::ALL {
                            ui.selectable_value(&mut draft.strategy, s, s.name());
                        }
                    });
                ui.end_row();
            });
            ui.label(
                egui::RichText::new(
                    "the strategy places the particle columns; the slab serves the job system, the buffer pool the renderer",
                )
                .small(),
            );
            let draft = *draft;
            ui.horizontal(|ui| {
                if ui.add_enabled(draft != current, egui::Button::new("Apply")).clicked() {
                    state.last_error = apply(draft, current, sandbox, memory, config)
                        .err()
                        .map(|e| e.to_string());
                    state.draft = None;
                }
                if ui.button("Revert").clicked() {
                    state.draft = None;
                }
            });
            if let Some(e) = &state.last_error {
                ui.colored_label(egui::Color32::from_rgb(255, 120, 90), e);
            }
        });
}

/// Applies edited settings live. On a bad value, or a pool or thread the
/// system refuses, nothing changes: everything new is made before anything
/// is replaced.
pub fn apply(
    draft: Draft,
    current: Draft,
    sandbox: &mut Sandbox,
    memory: &mut MemorySystem,
    config: &mut GameConfig,
) -> Result<(), SetupError> {
    let mut next = config.0.clone();
    next.memory.pool_buffers = draft.pool_buffers;
    next.memory.pool_buffer_kib = draft.pool_buffer_kib;
    next.particles.max = draft.particles_max;
    next.particles.initial = next.particles.initial.min(draft.particles_max);
    if draft.workers != current.workers {
        next.physics.threads = draft.workers;
    }
    next.validate()?;
    let pool = (draft.pool_buffers != current.pool_buffers
        || draft.pool_buffer_kib != current.pool_buffer_kib)
        .then(|| MemorySystem::instance_pool_for(&next.memory))
        .transpose()?;
    let workers = (draft.workers != current.workers)
        .then(|| Sandbox::worker_pool(draft.workers))
        .transpose()?;
    // Last: it makes the new column space current.
    if draft.strategy != current.strategy {
        next.memory.column_strategy = draft.strategy;
        crate::memory::column_space::switch(draft.strategy, next.memory.column_space_mib << 20)?;
        sandbox.store.rehome();
    }
    if let Some(pool) = pool {
        memory.set_pool(pool);
    }
    if let Some(workers) = workers {
        sandbox.set_workers(workers);
    }
    sandbox.store.set_limit(draft.particles_max);
    config.0 = next;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::Config;

    fn world() -> (Sandbox, MemorySystem, GameConfig) {
        let mut config = Config::default();
        config.particles.initial = 1000;
        let sandbox = Sandbox::new(&config).unwrap();
        let memory = MemorySystem::new(&config.memory).unwrap();
        (sandbox, memory, GameConfig(config))
    }

    #[test]
    fn settings_apply_live_and_bad_ones_change_nothing() {
        let (mut sandbox, mut memory, mut config) = world();
        let current = Draft {
            particles_max: sandbox.store.limit(),
            pool_buffers: 20,
            pool_buffer_kib: 1024,
            workers: sandbox.pool.compute_workers(),
            strategy: Strategy::FirstFit,
        };
        let draft = Draft {
            particles_max: 50_000,
            pool_buffers: 5,
            pool_buffer_kib: 256,
            workers: 1,
            strategy: Strategy::Buddy,
        };
        let before: Vec<f32> = sandbox.store.slices().x.to_vec();
        apply(draft, current, &mut sandbox, &mut memory, &mut config).unwrap();
        assert_eq!(sandbox.store.limit(), 50_000);
        assert_eq!(sandbox.pool.compute_workers(), 1);
        let pool = memory.instance_pool.stats();
        assert_eq!((pool.buffers, pool.buffer_bytes), (5, 256 << 10));
        assert_eq!(config.0.memory.pool_buffers, 5);
        // The columns moved to a buddy-placed space, values intact.
        assert_eq!(sandbox.store.column_home(), "buddy");
        assert_eq!(sandbox.store.slices().x, &before[..]);
        assert_eq!(config.0.memory.column_strategy, Strategy::Buddy);
        // The physics still steps on the new pool.
        sandbox.step(1.0 / 60.0);
        let bad = Draft {
            pool_buffer_kib: 1,
            ..draft
        };
        let e = apply(bad, draft, &mut sandbox, &mut memory, &mut config).unwrap_err();
        assert!(matches!(e, SetupError::Config(_)), "{e}");
        assert!(e.to_string().contains("pool_buffer_kib"), "{e}");
        assert_eq!(memory.instance_pool.stats().buffer_bytes, 256 << 10);
        assert_eq!(config.0.memory.pool_buffer_kib, 256);
        assert_eq!(config.0.physics.threads, 1);
        // A pool change with a worker count the pool refuses (none): the
        // pool is not replaced either.
        let refused = Draft {
            pool_buffers: 7,
            workers: 0,
            ..draft
        };
        let e = apply(refused, draft, &mut sandbox, &mut memory, &mut config).unwrap_err();
        assert!(matches!(e, SetupError::Workers { workers: 0, .. }), "{e}");
        assert_eq!(memory.instance_pool.stats().buffers, 5);
        assert_eq!(sandbox.pool.compute_workers(), 1);
        assert_eq!(config.0.memory.pool_buffers, 5);
    }

    #[test]
    fn the_timeline_keeps_its_height_with_many_workers() {
        // Up to four workers: full 14 px rows, as before.
        assert_eq!(timeline_row_height(1), 14.0);
        assert_eq!(timeline_row_height(4), 14.0);
        // Sixteen compute and two io workers: thinner rows, about as tall
        // in all as four workers' rows.
        let h = timeline_row_height(18) * 18.0;
        assert!((50.0..=60.0).contains(&h), "{h}");
        // Never thinner than 3 px.
        assert_eq!(timeline_row_height(200), 3.0);
    }
}
