//! The egui pass, run by the game instead of by bevy_egui, at the overlay's
//! own rate: every frame while the UI is in use (a drag under way, a text
//! field wanting the keyboard, a click, key or scroll waiting) or the
//! overlay is closed (the status line costs nothing); otherwise about
//! `IDLE_PASSES_PER_S` times a second, and in between the last pass's
//! triangles are drawn again from the GPU (`replay`). egui's layout and
//! tessellation — the overlay's CPU cost — are so paid per tenth of a
//! second rather than per frame: a machine that runs the game at 60 or 144
//! frames a second pays what one at 20 pays. Input that arrives between
//! passes waits in `EguiInput` for the next one (bevy_egui appends to it
//! until a pass takes it).

use super::replay::KeptTriangles;
use crate::game::{PlayerState, input::UiCapturesInput};
use bevy::prelude::*;
use bevy_egui::{
    EguiContext, EguiContextSettings, EguiFullOutput, EguiInput, EguiPrimaryContextPass,
    EguiRenderOutput, PrimaryEguiContext, egui,
};

/// Passes a second while nobody uses the UI: figures that change ten
/// times a second read as live.
pub const IDLE_PASSES_PER_S: f64 = 10.0;
/// Frames after start-up that all run a pass (windows settle their sizes).
const SETTLE_FRAMES: u64 = 30;

/// How often the pass ran, and what the last one drew.
#[derive(Resource)]
pub struct PassRate {
    pub frames: u64,
    pub passes: u64,
    /// When the last pass ran.
    last_pass: Option<std::time::Instant>,
    /// Whether this frame ran a pass (else it replays the last one's
    /// triangles).
    ran: bool,
    /// The last pass's scale and screen (points).
    pixels_per_point: f32,
    screen: egui::Rect,
}

impl Default for PassRate {
    fn default() -> Self {
        Self {
            frames: 0,
            passes: 0,
            last_pass: None,
            ran: false,
            pixels_per_point: 1.0,
            screen: egui::Rect::ZERO,
        }
    }
}

/// Whether frame `frame` runs the egui pass, `since_pass` after the last
/// one, frames coming `frame_time` apart. An idle overlay's pass runs on
/// the frame nearest to its due time: a game at 30 frames a second
/// passes every third frame, not every fourth for want of a millisecond.
pub fn runs_pass(
    frame: u64,
    overlay_open: bool,
    ui_busy: bool,
    since_pass: std::time::Duration,
    frame_time: std::time::Duration,
) -> bool {
    let due = std::time::Duration::from_secs_f64(1.0 / IDLE_PASSES_PER_S);
    frame < SETTLE_FRAMES
        || !overlay_open
        || ui_busy
        || since_pass.saturating_add(frame_time / 2) >= due
}

/// Whether the waiting input asks for a pass now: anything but pointer
/// motion and the modifier state (bevy_egui sends that every frame; a key
/// pressed with a modifier comes as a key event).
pub fn input_waiting(events: &[egui::Event]) -> bool {
    events.iter().any(|e| {
        !matches!(
            e,
            egui::Event::PointerMoved(_)
                | egui::Event::MouseMoved(_)
                | egui::Event::ModifiersChanged(_)
                | egui::Event::PointerGone
        )
    })
}

/// The camera's egui context is run by `egui_pass`, not by bevy_egui.
pub fn manual_settings() -> EguiContextSettings {
    EguiContextSettings {
        run_manually: true,
        ..Default::default()
    }
}

/// Runs the egui pass (the `EguiPrimaryContextPass` schedule, where the
/// overlay draws), or on a frame without one hands bevy_egui an empty
/// output (`keep_triangles` then hands it the replay of the last pass).
pub fn egui_pass(world: &mut World) {
    // What the windows allocate (egui's widget state and laid-out text)
    // is the overlay's in the memory table.
    let _tag = crate::memory::enter(crate::memory::Component::Overlay);
    let overlay_open = world
        .get_resource::<PlayerState>()
        .is_some_and(|p| p.show_overlay);
    let mut contexts = world.query_filtered::<(
        Entity,
        &mut EguiContext,
        &EguiInput,
        &EguiContextSettings,
    ), With<PrimaryEguiContext>>();
    let Ok((entity, mut ctx, input, settings)) = contexts.single_mut(world) else {
        return;
    };
    if !settings.run_manually {
        return;
    }
    let ctx = ctx.get_mut().clone();
    // Hovering alone does not count: hover feedback at 20 Hz reads fine,
    // and with the overlay open the pointer is over a window most of the
    // time.
    let busy = ctx.egui_is_using_pointer()
        || ctx.egui_wants_keyboard_input()
        || input_waiting(&input.events);
    let frame_time = world
        .get_resource::<Time<Real>>()
        .map_or(std::time::Duration::ZERO, |t| t.delta());
    let now = std::time::Instant::now();
    let mut rate = world.resource_mut::<PassRate>();
    let frame = rate.frames;
    rate.frames += 1;
    let since_pass = rate
        .last_pass
        .map_or(std::time::Duration::MAX, |t| now.duration_since(t));
    let run = rate.passes == 0 || runs_pass(frame, overlay_open, busy, since_pass, frame_time);
    rate.ran = run;
    if run {
        rate.last_pass = Some(now);
    }
    let output = if run {
        // Take the input only when a pass runs: until then it keeps
        // collecting.
        let mut contexts = world.query_filtered::<&mut EguiInput, With<PrimaryEguiContext>>();
        let raw = match contexts.get_mut(world, entity) {
            Ok(mut input) => std::mem::take(&mut input.0),
            Err(_) => return,
        };
        ctx.begin_pass(raw);
        if let Err(e) = world.try_run_schedule(EguiPrimaryContextPass) {
            warn!("the overlay's egui pass did not run: {e}");
        }
        let output = ctx.end_pass();
        let mut rate = world.resource_mut::<PassRate>();
        rate.passes += 1;
        rate.pixels_per_point = output.pixels_per_point;
        rate.screen = ctx.viewport_rect();
        output
    } else {
        let pixels_per_point = rate.pixels_per_point;
        // The game's tools ask whether the pointer is over the UI every
        // frame: answer from where it is now and the windows as last laid
        // out (the pass that would have answered did not run).
        let pointer = world
            .query::<&bevy_egui::input::EguiContextPointerPosition>()
            .get(world, entity)
            .map(|p| p.position)
            .ok();
        let over = pointer
            .and_then(|pos| ctx.layer_id_at(pos))
            .is_some_and(|layer| layer.order != egui::Order::Background);
        if let Some(mut captures) = world.get_resource_mut::<UiCapturesInput>() {
            captures.pointer = over || ctx.egui_is_using_pointer();
            captures.keyboard = ctx.egui_wants_keyboard_input();
        }
        // Nothing to tessellate: `keep_triangles` puts the last pass's
        // triangles back once bevy_egui has processed this output.
        egui::FullOutput {
            pixels_per_point,
            ..Default::default()
        }
    };
    let mut outputs = world.query::<&mut EguiFullOutput>();
    if let Ok(mut slot) = outputs.get_mut(world, entity) {
        slot.0 = Some(output);
    }
}

/// After bevy_egui has tessellated the output: a pass's triangles are moved
/// into `KeptTriangles` (the render world uploads them once), and every
/// frame bevy_egui is given one paint callback that draws the kept ones
/// from the GPU (tessellating the same shapes again cost about as much as
/// a third of a pass; copying and uploading them again, in the main and
/// render worlds, about a third of a pass's cost a frame).
pub fn keep_triangles(
    rate: Res<PassRate>,
    mut kept: ResMut<KeptTriangles>,
    mut outputs: Query<(Entity, &mut EguiRenderOutput), With<PrimaryEguiContext>>,
) {
    let Ok((context, mut output)) = outputs.single_mut() else {
        return;
    };
    if rate.ran {
        kept.keep(context, std::mem::take(&mut output.paint_jobs));
    }
    if kept.generation > 0 {
        output.paint_jobs = KeptTriangles::replay(rate.screen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames `frames` apart from frame 100 on, the overlay open and idle:
    /// which of the next `n` frames run a pass.
    fn idle_passes(frame_ms: f64, n: u64) -> Vec<u64> {
        let dt = Duration::from_secs_f64(frame_ms / 1000.0);
        let mut since = Duration::MAX;
        let mut ran = Vec::new();
        for f in 100..100 + n {
            since = since.saturating_add(dt);
            if runs_pass(f, true, false, since, dt) {
                ran.push(f);
                since = Duration::ZERO;
            }
        }
        ran
    }

    use std::time::Duration;

    #[test]
    fn the_pass_runs_when_the_ui_is_used_and_ten_times_a_second_otherwise() {
        let (dt, long) = (Duration::from_millis(16), Duration::from_secs(1));
        // Start-up: every frame, however recent the last pass.
        assert!((0..SETTLE_FRAMES).all(|f| runs_pass(f, true, false, Duration::ZERO, dt)));
        // Closed overlay or busy UI: every frame.
        assert!((100..200).all(|f| runs_pass(f, false, false, Duration::ZERO, dt)));
        assert!((100..200).all(|f| runs_pass(f, true, true, Duration::ZERO, dt)));
        // Open and idle: when a pass is due, whatever the frame.
        assert!(runs_pass(101, true, false, long, dt));
        assert!(!runs_pass(101, true, false, Duration::from_millis(50), dt));
        // Ten passes a second at any frame rate: every sixth frame at 60,
        // every third at 30 (a 33.3 ms frame lands the due time within a
        // millisecond: it must not slip to every fourth), every frame at 8.
        let at = |ms, n| {
            idle_passes(ms, n)
                .windows(2)
                .map(|w| w[1] - w[0])
                .collect::<Vec<_>>()
        };
        assert!(
            at(1000.0 / 60.0, 120).iter().all(|&gap| gap == 6),
            "{:?}",
            at(1000.0 / 60.0, 120)
        );
        assert!(
            at(1000.0 / 30.0, 60).iter().all(|&gap| gap == 3),
            "{:?}",
            at(1000.0 / 30.0, 60)
        );
        assert!(at(125.0, 20).iter().all(|&gap| gap == 1));
        // At 144, every fourteenth (97 ms apart).
        assert!(at(1000.0 / 144.0, 144).iter().all(|&gap| gap == 14));
    }

    #[test]
    fn clicks_keys_and_scrolls_ask_for_a_pass_and_motion_does_not() {
        let moved = egui::Event::PointerMoved(egui::pos2(10.0, 10.0));
        let modifiers = egui::Event::ModifiersChanged(egui::Modifiers::NONE);
        assert!(!input_waiting(&[]));
        assert!(!input_waiting(&[moved.clone(), modifiers.clone()]));
        let click = egui::Event::PointerButton {
            pos: egui::pos2(10.0, 10.0),
            button: egui::PointerButton::Primary,
            pressed: true,
            modifiers: Default::default(),
        };
        assert!(input_waiting(&[moved.clone(), click]));
        assert!(input_waiting(&[egui::Event::Text("a".into())]));
    }

    #[test]
    fn frames_draw_the_last_pass_triangles_kept_on_the_gpu() {
        use bevy::ecs::system::RunSystemOnce;
        let mesh = |n: u32| egui::ClippedPrimitive {
            clip_rect: egui::Rect::EVERYTHING,
            primitive: egui::epaint::Primitive::Mesh(egui::Mesh {
                indices: (0..n).collect(),
                ..Default::default()
            }),
        };
        let mut world = World::new();
        let camera = world
            .spawn((EguiRenderOutput::default(), PrimaryEguiContext))
            .id();
        world.init_resource::<PassRate>();
        world.init_resource::<KeptTriangles>();
        // One frame: bevy_egui leaves `tessellated` (nothing on a frame
        // without a pass), then `keep_triangles` runs. Returns whether
        // bevy_egui is left the replay (`KeptTriangles::replay`), and the
        // kept triangles' generation and index counts.
        let mut frame = |ran: bool, tessellated: Vec<egui::ClippedPrimitive>| {
            world
                .get_mut::<EguiRenderOutput>(camera)
                .unwrap()
                .paint_jobs = tessellated;
            world.resource_mut::<PassRate>().ran = ran;
            world.run_system_once(keep_triangles).unwrap();
            let out = &world.get::<EguiRenderOutput>(camera).unwrap().paint_jobs;
            let callback =
                out.len() == 2 && matches!(out[1].primitive, egui::epaint::Primitive::Callback(_));
            let kept = world.resource::<KeptTriangles>();
            let counts: Vec<usize> = kept
                .jobs
                .iter()
                .map(|c| match &c.primitive {
                    egui::epaint::Primitive::Mesh(m) => m.indices.len(),
                    _ => 0,
                })
                .collect();
            assert_eq!(kept.context, (kept.generation > 0).then_some(camera));
            (callback, kept.generation, counts)
        };
        // Before any pass there is nothing to replay.
        assert_eq!(frame(false, Vec::new()), (false, 0, vec![]));
        // A pass ran: its triangles are kept (moved, not drawn directly).
        assert_eq!(frame(true, vec![mesh(3), mesh(6)]), (true, 1, vec![3, 6]));
        // No pass: the same kept triangles are drawn, frame after frame,
        // and nothing new goes to the render world.
        assert_eq!(frame(false, Vec::new()), (true, 1, vec![3, 6]));
        assert_eq!(frame(false, Vec::new()), (true, 1, vec![3, 6]));
        // A new pass replaces them.
        assert_eq!(frame(true, vec![mesh(9)]), (true, 2, vec![9]));
        assert_eq!(frame(false, Vec::new()), (true, 2, vec![9]));
    }
}
