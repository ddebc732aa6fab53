//! A real window under Xvfb with Mesa's software Vulkan driver: the
//! screenshot mode writes a PNG that shows the particles where they were
//! spawned.

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
            "--screenshot",
        ])
        .arg(&png);
    let (code, _, stderr) = run(&mut cmd);
    assert_eq!(code, 0, "the screenshot run failed: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let img = image::open(&png).expect("a readable PNG").to_rgb8();
    assert_eq!((img.width(), img.height()), (1280, 720));
    let count = |x0: u32, x1: u32, y0: u32, y1: u32, what: &str| {
        let mut n = 0;
        for y in y0..y1 {
            for x in x0..x1 {
                if classify(&img.get_pixel(x, y).0) == what {
                    n += 1;
                }
            }
        }
        n
    };
    // The initial blocks stand on the floor between 5% and 95% of the
    // width: sand in the first fifth (64–294 px), water in the second
    // (294–524 px).
    let band = (640, 700);
    let sand = count(100, 260, band.0, band.1, "sand");
    let water = count(330, 490, band.0, band.1, "water");
    let area = 160 * (band.1 - band.0);
    assert!(sand * 3 > area, "sand block: {sand} of {area} pixels");
    assert!(water * 3 > area, "water block: {water} of {area} pixels");
    // Above the blocks and beside them the box is empty.
    let sky = count(300, 1000, 40, 150, "background");
    assert!(
        sky > 700 * 110 * 99 / 100,
        "the sky has {sky} background pixels"
    );
    let right = count(1225, 1275, 300, 700, "background");
    assert!(right > 50 * 400 * 95 / 100, "right of the blocks: {right}");
}
