//! Mouse and keyboard to tool commands (windowed game only).
//!
//! Left drag: spawn brush · right: attract · Shift+right: repel · Space:
//! explosion · 1–4: kind · P: pause · R: reset · H: help · F3: debug overlay ·
//! Esc: quit.

use super::{GameConfig, GameSet, PlayerState, ToolCommand, ToolQueue};
use crate::particles::Kind;
use bevy::prelude::*;
use bevy::window::PrimaryWindow;

/// Marks the camera that looks at the particle box.
#[derive(Component)]
pub struct WorldCamera;

/// Set by the overlay when egui is using the pointer or keyboard this frame,
/// so clicks on a window do not also spawn particles.
#[derive(Resource, Default)]
pub struct UiCapturesInput {
    pub pointer: bool,
    pub keyboard: bool,
}

pub struct InputToolsPlugin;

impl Plugin for InputToolsPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<UiCapturesInput>().add_systems(
            Update,
            (keyboard_tools, mouse_tools)
                .before(super::apply_tools)
                .in_set(GameSet::Management),
        );
    }
}

fn keyboard_tools(
    keys: Res<ButtonInput<KeyCode>>,
    ui: Res<UiCapturesInput>,
    mut player: ResMut<PlayerState>,
    mut exit: MessageWriter<AppExit>,
) {
    if ui.keyboard {
        return;
    }
    for (key, kind) in [
        (KeyCode::Digit1, Kind::Sand),
        (KeyCode::Digit2, Kind::Water),
        (KeyCode::Digit3, Kind::Spark),
        (KeyCode::Digit4, Kind::Heavy),
    ] {
        if keys.just_pressed(key) {
            player.kind = kind;
        }
    }
    if keys.just_pressed(KeyCode::KeyP) {
        player.paused = !player.paused;
    }
    if keys.just_pressed(KeyCode::KeyC) {
        player.compact_requested = true;
    }
    if keys.just_pressed(KeyCode::KeyR) {
        player.reset_requested = true;
    }
    if keys.just_pressed(KeyCode::KeyH) {
        player.show_help = !player.show_help;
    }
    if keys.just_pressed(KeyCode::F3) {
        player.show_overlay = !player.show_overlay;
    }
    if keys.just_pressed(KeyCode::Escape) {
        exit.write(AppExit::Success);
    }
}

#[allow(clippy::too_many_arguments)]
fn mouse_tools(
    buttons: Res<ButtonInput<MouseButton>>,
    keys: Res<ButtonInput<KeyCode>>,
    ui: Res<UiCapturesInput>,
    window: Single<&Window, With<PrimaryWindow>>,
    camera: Single<(&Camera, &GlobalTransform), With<WorldCamera>>,
    player: Res<PlayerState>,
    config: Res<GameConfig>,
    mut queue: ResMut<ToolQueue>,
) {
    let Some(cursor) = window.cursor_position() else {
        return;
    };
    let (camera, at) = *camera;
    let Ok(p) = camera.viewport_to_world_2d(at, cursor) else {
        return;
    };
    if !ui.pointer && buttons.pressed(MouseButton::Left) {
        queue.0.push(ToolCommand::Spawn {
            x: p.x,
            y: p.y,
            kind: player.kind,
            count: config.0.tools.brush_per_frame,
        });
    }
    if !ui.pointer && buttons.pressed(MouseButton::Right) {
        let repel = keys.pressed(KeyCode::ShiftLeft) || keys.pressed(KeyCode::ShiftRight);
        queue.0.push(ToolCommand::Attract {
            x: p.x,
            y: p.y,
            repel,
        });
    }
    if !ui.keyboard && keys.just_pressed(KeyCode::Space) {
        queue.0.push(ToolCommand::Explode { x: p.x, y: p.y });
    }
}
