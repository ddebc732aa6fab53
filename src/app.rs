//! The windowed game: Bevy's default plugins plus the game, input, renderer
//! and overlay plugins; optionally a frame limit and a screenshot on exit.
//! Offscreen, the same game renders into an image instead of a window: no
//! display needed, only a Vulkan device (a GPU server, or lavapipe).

use crate::game::{Config, GamePlugin, input::InputToolsPlugin};
use crate::overlay::OverlayPlugin;
use crate::render::{OffscreenTarget, ParticleRenderPlugin};
use bevy::app::ScheduleRunnerPlugin;
use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy::render::render_resource::{TextureFormat, TextureUsages};
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::window::{ExitCondition, PresentMode, WindowResolution};
use bevy::winit::WinitPlugin;
use bevy_egui::EguiPlugin;
use std::path::PathBuf;

/// Stop after `frames` frames, saving a screenshot first when `screenshot` is set.
#[derive(Resource, Debug, Clone)]
pub struct FrameLimit {
    pub frames: u64,
    pub screenshot: Option<PathBuf>,
    counted: u64,
    requested: bool,
}

/// Frames to wait for the screenshot after asking for it before giving up.
const SCREENSHOT_PATIENCE: u64 = 300;

/// Builds and runs the windowed game (or, `offscreen`, the same game drawn
/// into an image); returns the process exit code.
pub fn run_windowed(
    config: Config,
    autoplay: bool,
    frames: Option<u64>,
    screenshot: Option<PathBuf>,
    offscreen: bool,
) -> Result<u8, WindowError> {
    let largest = check_vulkan_device()?;
    if offscreen && config.window.width.max(config.window.height) > largest {
        return Err(WindowError::TooLarge {
            width: config.window.width,
            height: config.window.height,
            largest,
        });
    }
    let plugins = DefaultPlugins
        .set(crate::game::bevy_task_pools())
        .set(LogPlugin {
            filter: "warn,particle_forge=info,bevy_render::renderer=info,wgpu=error,naga=warn"
                .into(),
            ..default()
        });
    let mut app = App::new();
    if offscreen {
        // No window and no event loop: Bevy's own loop runs the frames
        // back to back.
        app.add_plugins(
            plugins
                .set(WindowPlugin {
                    primary_window: None,
                    exit_condition: ExitCondition::DontExit,
                    ..default()
                })
                .disable::<WinitPlugin>()
                .add(ScheduleRunnerPlugin::run_loop(std::time::Duration::ZERO)),
        );
        let (width, height) = (config.window.width, config.window.height);
        let mut image =
            Image::new_target_texture(width, height, TextureFormat::Rgba8UnormSrgb, None);
        // The screenshot copies the picture out of the texture.
        image.texture_descriptor.usage |= TextureUsages::COPY_SRC;
        let handle = app.world_mut().resource_mut::<Assets<Image>>().add(image);
        app.insert_resource(OffscreenTarget(handle));
    } else {
        let window = Window {
            title: "Particle Forge".into(),
            resolution: WindowResolution::new(config.window.width, config.window.height)
                .with_scale_factor_override(1.0),
            present_mode: if config.window.vsync {
                PresentMode::AutoVsync
            } else {
                PresentMode::AutoNoVsync
            },
            resizable: true,
            ..default()
        };
        app.add_plugins(plugins.set(WindowPlugin {
            primary_window: Some(window),
            ..default()
        }));
    }
    app.add_plugins(EguiPlugin::default())
        .add_plugins(GamePlugin::new(config, autoplay)?)
        .add_plugins((InputToolsPlugin, ParticleRenderPlugin, OverlayPlugin));
    if let Some(frames) = frames {
        app.insert_resource(FrameLimit {
            frames,
            screenshot,
            counted: 0,
            requested: false,
        })
        .add_systems(Last, count_frames.before(crate::game::ExitSet));
    }
    Ok(match app.run() {
        AppExit::Success => 0,
        AppExit::Error(code) => code.get(),
    })
}

/// Bevy's renderer panics when it finds no GPU; ask Vulkan first, so the
/// player gets one sentence that says what to install instead. Returns the
/// largest image side the devices can draw.
fn check_vulkan_device() -> Result<u32, WindowError> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = wgpu::Backends::VULKAN;
    let instance = wgpu::Instance::new(desc);
    let adapters = bevy::tasks::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN));
    adapters
        .iter()
        .map(|a| a.limits().max_texture_dimension_2d)
        .max()
        .ok_or(WindowError::NoVulkan)
}

/// Why the window could not open, worded for the player.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error(
        "no Vulkan device found; install a Vulkan driver (on Debian: apt install mesa-vulkan-drivers libvulkan1) or run with --headless"
    )]
    NoVulkan,
    #[error(
        "an offscreen image of {width} × {height} pixels is larger than this device draws ({largest} pixels a side at most); pick a smaller --width/--height"
    )]
    TooLarge {
        width: u32,
        height: u32,
        largest: u32,
    },
    #[error(transparent)]
    Setup(#[from] crate::game::SetupError),
}

fn count_frames(
    mut commands: Commands,
    mut limit: ResMut<FrameLimit>,
    offscreen: Option<Res<OffscreenTarget>>,
    mut exit: MessageWriter<AppExit>,
) {
    limit.counted += 1;
    if limit.counted < limit.frames {
        return;
    }
    let Some(path) = limit.screenshot.clone() else {
        exit.write(AppExit::Success);
        return;
    };
    if !limit.requested {
        limit.requested = true;
        let screenshot = match offscreen {
            Some(target) => Screenshot::image(target.0.clone()),
            None => Screenshot::primary_window(),
        };
        commands.spawn(screenshot).observe(
            move |captured: On<ScreenshotCaptured>, mut exit: MessageWriter<AppExit>| {
                exit.write(save_png(&captured.image, &path));
            },
        );
    } else if limit.counted > limit.frames + SCREENSHOT_PATIENCE {
        error!("the screenshot was not captured within {SCREENSHOT_PATIENCE} frames");
        exit.write(AppExit::from_code(1));
    }
}

/// Writes the captured window as an RGB PNG.
fn save_png(image: &Image, path: &PathBuf) -> AppExit {
    let saved = image
        .clone()
        .try_into_dynamic()
        .map_err(|e| e.to_string())
        .and_then(|img| {
            img.to_rgb8()
                .save_with_format(path, image::ImageFormat::Png)
                .map_err(|e| e.to_string())
        });
    match saved {
        Ok(()) => {
            info!("screenshot saved to {}", path.display());
            AppExit::Success
        }
        Err(e) => {
            error!("cannot save the screenshot to {}: {e}", path.display());
            AppExit::from_code(2)
        }
    }
}
