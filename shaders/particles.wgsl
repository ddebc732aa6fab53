// Particles: one instanced draw, six vertices (two triangles) per instance.
// The vertex shader places a quad around each particle from the instance
// record; the fragment shader cuts it into a round, soft-edged sprite.

#import bevy_render::view::View

@group(0) @binding(0) var<uniform> view: View;

struct Instance {
    // x, y, radius in world units.
    @location(0) pos_radius: vec3<f32>,
    // sRGB + alpha bytes, red lowest.
    @location(1) rgba: u32,
};

struct VertexOutput {
    @builtin(position) clip: vec4<f32>,
    // Offset from the centre, in pixels.
    @location(0) offset_px: vec2<f32>,
    @location(1) radius_px: f32,
    @location(2) color: vec4<f32>,
};

// Tiny particles still cover most of a pixel, so a 100k-particle pile reads
// as a solid material rather than dust.
const MIN_RADIUS_PX: f32 = 0.75;
// Width of the soft edge, in pixels.
const FEATHER_PX: f32 = 1.0;

@vertex
fn vertex(@builtin(vertex_index) vertex_index: u32, instance: Instance) -> VertexOutput {
    var corners = array<vec2<f32>, 6>(
        vec2(-1.0, -1.0), vec2(1.0, -1.0), vec2(1.0, 1.0),
        vec2(-1.0, -1.0), vec2(1.0, 1.0), vec2(-1.0, 1.0),
    );
    let corner = corners[vertex_index];
    // Pixels per world unit, from the orthographic projection and viewport.
    let px_per_unit = view.clip_from_world[0][0] * view.viewport.z * 0.5;
    let radius_px = max(instance.pos_radius.z * px_per_unit, MIN_RADIUS_PX);
    let half_px = radius_px + FEATHER_PX;
    let world = instance.pos_radius.xy + corner * (half_px / px_per_unit);

    var out: VertexOutput;
    out.clip = view.clip_from_world * vec4(world, 0.0, 1.0);
    out.offset_px = corner * half_px;
    out.radius_px = radius_px;
    let c = unpack4x8unorm(instance.rgba);
    // The palette is sRGB; blending happens in linear space.
    out.color = vec4(pow(c.rgb, vec3(2.2)), c.a);
    return out;
}

@fragment
fn fragment(in: VertexOutput) -> @location(0) vec4<f32> {
    let d = length(in.offset_px);
    // Coverage falls from 1 to 0 across the feather at the rim.
    let coverage = clamp(in.radius_px + 0.5 * FEATHER_PX - d, 0.0, 1.0);
    if coverage <= 0.0 {
        discard;
    }
    // A slightly brighter centre makes grains read as round.
    let shade = 1.15 - 0.3 * (d / in.radius_px) * (d / in.radius_px);
    return vec4(in.color.rgb * shade, in.color.a * coverage);
}
