//! A real window under Xvfb with Mesa's software Vulkan driver: the
//! screenshot mode writes a PNG that shows the particles where they were
//! spawned. Offscreen, with no display at all, the same picture comes out
//! of an image render target.

use super::{game, run, scratch_dir};
use std::process::Command;

/// Background, sand and water as the palette and shader produce them
/// (roughly: the shader shades the centre of each sprite).
fn classify(p: &[u8]) -> &'static str {
    let (r, g, b) = (p[0] as i32, p[1] as i32, p[2] as i32);
    if r + g + b < 60 {
        "background"
    } else if b > r + 60 {
        "water"
    } else if r > b + 50 && g > b {
        "sand"
    } else {
        "other"
    }
}

#[test]
fn screenshot_shows_particles_where_they_were_spawned() {
    let dir = scratch_dir("screenshot");
    let png = dir.join("shot.png");
    let mut cmd = Command::new("xvfb-run");
    cmd.args(["-a", "-s", "-screen 0 1280x720x24"])
        .arg(game().get_program())
        .args([
            "--frames",
            "20",
            "--particles",
            "20000",
            "--seed",
            "2",
            "--data-dir",
        ])
        .arg(dir.join("data"))
        .arg("--screenshot")
        .arg(&png);
    let (code, _, stderr) = run(&mut cmd);
    assert_eq!(code, 0, "the screenshot run failed: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let img = image::open(&png).expect("a readable PNG").to_rgb8();
    assert_blocks_on_the_floor(&img);
    // Above the blocks and beside them the box is empty.
    let sky = count_class(&img, (300, 1000, 40, 150), "background");
    assert!(
        sky > 700 * 110 * 99 / 100,
        "the sky has {sky} background pixels"
    );
    let right = count_class(&img, (1225, 1275, 300, 700), "background");
    assert!(right > 50 * 400 * 95 / 100, "right of the blocks: {right}");
}

/// Pixels of class `what` in the rectangle `(x0, x1, y0, y1)`.
fn count_class(img: &image::RgbImage, (x0, x1, y0, y1): (u32, u32, u32, u32), what: &str) -> u32 {
    let mut n = 0;
    for y in y0..y1 {
        for x in x0..x1 {
            if classify(&img.get_pixel(x, y).0) == what {
                n += 1;
            }
        }
    }
    n
}

/// The initial blocks stand on the floor between 5% and 95% of the width:
/// sand in the first fifth (64–294 px), water in the second (294–524 px).
fn assert_blocks_on_the_floor(img: &image::RgbImage) {
    assert_eq!((img.width(), img.height()), (1280, 720));
    let band = (640, 700);
    let sand = count_class(img, (100, 260, band.0, band.1), "sand");
    let water = count_class(img, (330, 490, band.0, band.1), "water");
    let area = 160 * (band.1 - band.0);
    assert!(sand * 3 > area, "sand block: {sand} of {area} pixels");
    assert!(water * 3 > area, "water block: {water} of {area} pixels");
}

/// Takes a screenshot with or without the overlay, in a window under Xvfb
/// or offscreen with no display; returns the image.
fn shot(name: &str, overlay: bool, offscreen: bool) -> image::RgbImage {
    let dir = scratch_dir(name);
    let png = dir.join("shot.png");
    let mut cmd = if offscreen {
        let mut cmd = game();
        cmd.env_remove("DISPLAY").arg("--offscreen");
        cmd
    } else {
        let mut cmd = Command::new("xvfb-run");
        cmd.args(["-a", "-s", "-screen 0 1280x720x24"])
            .arg(game().get_program());
        cmd
    };
    cmd.args(["--frames", "40", "--particles", "20000", "--seed", "2"])
        .arg("--data-dir")
        .arg(dir.join("data"));
    if overlay {
        cmd.arg("--overlay");
    }
    cmd.arg("--screenshot").arg(&png);
    let (code, _, stderr) = run(&mut cmd);
    assert_eq!(code, 0, "the screenshot run failed: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    image::open(&png).expect("a readable PNG").to_rgb8()
}

/// The Frame window's plot lines, in their own colours.
const FRAME_LINE: [u8; 3] = [255, 170, 60];
const PHYSICS_LINE: [u8; 3] = [60, 220, 120];

/// Pixels near colour `c` where the Frame window's plot is.
fn plot_pixels(img: &image::RgbImage, c: [u8; 3]) -> u32 {
    let near = |p: [u8; 3]| (0..3).all(|k| (p[k] as i32 - c[k] as i32).abs() < 30);
    let mut n = 0;
    for y in 150..300 {
        for x in 60..310 {
            if near(img.get_pixel(x, y).0) {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn the_overlay_shows_its_windows_and_graph_lines() {
    let off = shot("overlay-off", false, false);
    let on = shot("overlay-on", true, false);
    // Where the Frame, Memory and Hotspots windows open (top left to the
    // middle right, above the particle blocks), the pictures differ.
    let mut differ = 0;
    let (x0, x1, y0, y1) = (10, 1060, 40, 280);
    for y in y0..y1 {
        for x in x0..x1 {
            let (a, b) = (off.get_pixel(x, y).0, on.get_pixel(x, y).0);
            let d: i32 = (0..3).map(|k| (a[k] as i32 - b[k] as i32).abs()).sum();
            if d > 40 {
                differ += 1;
            }
        }
    }
    let area = (x1 - x0) * (y1 - y0);
    assert!(differ * 4 > area, "only {differ} of {area} pixels changed");
    let frame_line = plot_pixels(&on, FRAME_LINE);
    let physics_line = plot_pixels(&on, PHYSICS_LINE);
    assert!(frame_line > 100, "frame line: {frame_line} pixels");
    assert!(physics_line > 100, "physics line: {physics_line} pixels");
    assert!(plot_pixels(&off, FRAME_LINE) < frame_line / 10);
    // The status line at the top left is drawn with the overlay closed
    // too (the same replay of the last pass): its light text.
    let status_text = |img: &image::RgbImage| {
        let mut n = 0;
        for y in 6..26 {
            for x in 8..256 {
                n += u32::from(img.get_pixel(x, y).0.iter().all(|&c| c > 150));
            }
        }
        n
    };
    assert!(
        status_text(&off) > 200,
        "{} light pixels",
        status_text(&off)
    );
}

#[test]
fn offscreen_draws_the_game_and_the_overlay_with_no_display() {
    let game = shot("offscreen-off", false, true);
    assert_blocks_on_the_floor(&game);
    let sky = count_class(&game, (300, 1000, 40, 150), "background");
    assert!(
        sky > 700 * 110 * 99 / 100,
        "the sky has {sky} background pixels"
    );
    let overlay = shot("offscreen-on", true, true);
    let frame_line = plot_pixels(&overlay, FRAME_LINE);
    assert!(frame_line > 100, "frame line: {frame_line} pixels");
    assert!(plot_pixels(&game, FRAME_LINE) < frame_line / 10);
}
