//! The overlay's last pass, kept on the GPU between passes.
//!
//! bevy_egui uploads every triangle every frame: moved to the render world,
//! packed into one vertex and one index list, written to the GPU. The
//! overlay changes ten times a second (`pass`), so at 30 or 60 frames a
//! second that was the same ~17,000 vertices copied three to six times
//! over. Here a pass's triangles are moved (not copied) into
//! [`KeptTriangles`]; the render world packs and uploads them once
//! ([`KeptGpu`]); and every frame bevy_egui draws a single paint callback,
//! [`DrawKept`], that replays the kept draws from those buffers with
//! bevy_egui's own pipeline, transform and texture bindings — the same
//! draws bevy_egui would issue, from buffers that are already there.

use bevy::prelude::*;
use bevy::render::{
    Extract,
    render_phase::TrackedRenderPass,
    render_resource::{BufferUsages, IndexFormat, PipelineCache, RawBufferVec},
    renderer::{RenderDevice, RenderQueue},
    sync_world::{MainEntity, RenderEntity},
};
use bevy_egui::egui;
use bevy_egui::egui::epaint::{ClippedPrimitive, Primitive, Vertex};
use bevy_egui::render::systems::{
    EguiPipelines, EguiTextureBindGroups, EguiTextureId, EguiTransforms,
};
use bevy_egui::render::{EguiBevyPaintCallback, EguiBevyPaintCallbackImpl, EguiPipelineKey};
use std::ops::Range;
use std::sync::Arc;

/// The last pass's triangles, in the main world.
#[derive(Resource, Clone, Default)]
pub struct KeptTriangles {
    /// Passes kept so far (0: none yet).
    pub generation: u64,
    /// The egui context (its camera) they were drawn for.
    pub context: Option<Entity>,
    pub jobs: Arc<Vec<ClippedPrimitive>>,
}

impl KeptTriangles {
    /// Keeps a pass's triangles in place of the last.
    pub fn keep(&mut self, context: Entity, jobs: Vec<ClippedPrimitive>) {
        self.generation += 1;
        self.context = Some(context);
        self.jobs = Arc::new(jobs);
    }

    /// What bevy_egui is given to draw, pass or not: one paint callback
    /// over `screen` (in points) that replays the kept triangles. Before
    /// it, one empty triangle (three times the same vertex: no pixel):
    /// bevy_egui's render pass draws nothing, callbacks included, until it
    /// has vertex and index buffers of its own, and it makes them only for
    /// mesh triangles.
    pub fn replay(screen: egui::Rect) -> Vec<ClippedPrimitive> {
        let empty = egui::Mesh {
            indices: vec![0; 3],
            vertices: vec![Vertex::default()],
            texture_id: egui::TextureId::default(),
        };
        vec![
            ClippedPrimitive {
                clip_rect: screen,
                primitive: Primitive::Mesh(empty),
            },
            ClippedPrimitive {
                clip_rect: screen,
                primitive: Primitive::Callback(EguiBevyPaintCallback::new_paint_callback(
                    screen, DrawKept,
                )),
            },
        ]
    }
}

/// One kept draw: a mesh's indices in the packed list, its clip rectangle
/// (points) and texture.
#[derive(Clone, Debug, PartialEq)]
pub struct KeptDraw {
    pub clip: egui::Rect,
    pub texture: egui::TextureId,
    pub indices: Range<u32>,
}

/// The kept triangles in the render world: packed, and uploaded once a
/// pass.
#[derive(Resource)]
pub struct KeptGpu {
    /// The `KeptTriangles::generation` these buffers hold.
    generation: u64,
    /// The latest extracted triangles (an `Arc`: extracting copies none).
    latest: KeptTriangles,
    context: Option<MainEntity>,
    vertices: RawBufferVec<Vertex>,
    indices: RawBufferVec<u32>,
    draws: Vec<KeptDraw>,
}

impl Default for KeptGpu {
    fn default() -> Self {
        Self {
            generation: 0,
            latest: KeptTriangles::default(),
            context: None,
            vertices: RawBufferVec::new(BufferUsages::VERTEX),
            indices: RawBufferVec::new(BufferUsages::INDEX),
            draws: Vec::new(),
        }
    }
}

/// Packs the meshes of `jobs` into one vertex list and one index list (each
/// mesh's indices moved past the vertices before it), as bevy_egui packs
/// them, and lists the draws. Paint callbacks are not kept (the overlay
/// draws none).
pub fn pack(
    jobs: &[ClippedPrimitive],
    vertices: &mut Vec<Vertex>,
    indices: &mut Vec<u32>,
) -> Vec<KeptDraw> {
    vertices.clear();
    indices.clear();
    let mut draws = Vec::with_capacity(jobs.len());
    for job in jobs {
        let Primitive::Mesh(mesh) = &job.primitive else {
            continue;
        };
        let base = vertices.len() as u32;
        let first = indices.len() as u32;
        vertices.extend_from_slice(&mesh.vertices);
        indices.extend(mesh.indices.iter().map(|i| i + base));
        draws.push(KeptDraw {
            clip: job.clip_rect,
            texture: mesh.texture_id,
            indices: first..indices.len() as u32,
        });
    }
    draws
}

/// The scissor rectangle (x, y, width, height in pixels) of a clip
/// rectangle in points, within a `width` × `height` pixel target; `None`
/// if nothing of it is on the target.
pub fn scissor(
    clip: egui::Rect,
    pixels_per_point: f32,
    width: u32,
    height: u32,
) -> Option<[u32; 4]> {
    let px = |v: f32, most: u32| ((v * pixels_per_point).round().max(0.0) as u32).min(most);
    let (x0, y0) = (px(clip.min.x, width), px(clip.min.y, height));
    let (x1, y1) = (px(clip.max.x, width), px(clip.max.y, height));
    (x1 > x0 && y1 > y0).then(|| [x0, y0, x1 - x0, y1 - y0])
}

/// Render world, extract: the latest kept triangles (an `Arc` clone).
pub fn extract_kept(kept: Extract<Res<KeptTriangles>>, mut gpu: ResMut<KeptGpu>) {
    if kept.generation != gpu.latest.generation {
        gpu.latest = kept.clone();
    }
}

/// Replays the kept triangles inside bevy_egui's render pass.
pub struct DrawKept;

impl EguiBevyPaintCallbackImpl for DrawKept {
    /// Packs and uploads a new pass's triangles; nothing on other frames.
    fn update(
        &self,
        _info: egui::PaintCallbackInfo,
        _render_entity: RenderEntity,
        _key: EguiPipelineKey,
        world: &mut World,
    ) {
        let _tag = crate::memory::enter(crate::memory::Component::Overlay);
        world.resource_scope(|world, mut gpu: Mut<KeptGpu>| {
            let gpu = &mut *gpu;
            if gpu.generation == gpu.latest.generation {
                return;
            }
            let jobs = gpu.latest.jobs.clone();
            gpu.draws = pack(&jobs, gpu.vertices.values_mut(), gpu.indices.values_mut());
            gpu.generation = gpu.latest.generation;
            gpu.context = gpu.latest.context.map(MainEntity::from);
            let device = world.resource::<RenderDevice>();
            let queue = world.resource::<RenderQueue>();
            if !gpu.vertices.is_empty() {
                gpu.vertices.write_buffer(device, queue);
                gpu.indices.write_buffer(device, queue);
            }
        });
    }

    fn render<'pass>(
        &self,
        info: egui::PaintCallbackInfo,
        render_pass: &mut TrackedRenderPass<'pass>,
        _render_entity: RenderEntity,
        _key: EguiPipelineKey,
        world: &'pass World,
    ) {
        let gpu = world.resource::<KeptGpu>();
        let Some(context) = gpu.context else {
            return;
        };
        let (Some(vertices), Some(indices)) = (gpu.vertices.buffer(), gpu.indices.buffer()) else {
            return;
        };
        // bevy_egui's own pipeline and bindings for this context, as its
        // render pass uses them.
        let Some(pipeline) = world
            .resource::<EguiPipelines>()
            .0
            .get(&context)
            .and_then(|id| world.resource::<PipelineCache>().get_render_pipeline(*id))
        else {
            return;
        };
        let transforms = world.resource::<EguiTransforms>();
        let (Some(offset), Some((_, transform))) = (
            transforms.offsets.get(&context),
            transforms.bind_group.as_ref(),
        ) else {
            return;
        };
        let textures = world.resource::<EguiTextureBindGroups>();
        let [width, height] = info.screen_size_px;
        // The callback's viewport is its rectangle; the kept vertices are
        // in the whole target's points.
        render_pass.set_viewport(0.0, 0.0, width as f32, height as f32, 0.0, 1.0);
        render_pass.set_render_pipeline(pipeline);
        render_pass.set_bind_group(0, transform, &[*offset]);
        render_pass.set_vertex_buffer(0, vertices.slice(..));
        render_pass.set_index_buffer(indices.slice(..), IndexFormat::Uint32);
        let mut last_bindless = None;
        for draw in &gpu.draws {
            let Some([x, y, w, h]) = scissor(draw.clip, info.pixels_per_point, width, height)
            else {
                continue;
            };
            let texture = match draw.texture {
                egui::TextureId::Managed(id) => EguiTextureId::Managed(context, id),
                egui::TextureId::User(id) => EguiTextureId::User(id),
            };
            let Some((group, bindless)) = textures.0.get(&texture) else {
                continue;
            };
            render_pass.set_scissor_rect(x, y, w, h);
            render_pass.set_bind_group(1, group, &[]);
            if let Some(at) = bindless
                && last_bindless != Some(at)
            {
                last_bindless = Some(at);
                render_pass.set_immediates(0, bytemuck::bytes_of(at));
            }
            render_pass.draw_indexed(draw.indices.clone(), 0, 0..1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mesh(clip: egui::Rect, texture: u64, vertices: usize, indices: &[u32]) -> ClippedPrimitive {
        ClippedPrimitive {
            clip_rect: clip,
            primitive: Primitive::Mesh(egui::Mesh {
                indices: indices.to_vec(),
                vertices: (0..vertices)
                    .map(|i| Vertex {
                        pos: egui::pos2(i as f32, 0.0),
                        ..Default::default()
                    })
                    .collect(),
                texture_id: egui::TextureId::Managed(texture),
            }),
        }
    }

    #[test]
    fn packing_moves_each_mesh_past_the_vertices_before_it() {
        let a = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(10.0, 10.0));
        let b = egui::Rect::from_min_max(egui::pos2(5.0, 5.0), egui::pos2(20.0, 30.0));
        let jobs = [
            mesh(a, 0, 3, &[0, 1, 2]),
            mesh(b, 1, 4, &[0, 1, 2, 2, 3, 0]),
        ];
        let (mut vertices, mut indices) = (vec![Vertex::default(); 9], vec![7; 2]);
        let draws = pack(&jobs, &mut vertices, &mut indices);
        assert_eq!(vertices.len(), 7, "what was there before is gone");
        assert_eq!(indices, [0, 1, 2, 3, 4, 5, 5, 6, 3]);
        assert_eq!(vertices[4].pos.x, 1.0, "the second mesh's vertex 1");
        assert_eq!(
            draws,
            [
                KeptDraw {
                    clip: a,
                    texture: egui::TextureId::Managed(0),
                    indices: 0..3
                },
                KeptDraw {
                    clip: b,
                    texture: egui::TextureId::Managed(1),
                    indices: 3..9
                },
            ]
        );
    }

    #[test]
    fn scissors_are_in_pixels_and_on_the_target() {
        let r = |x0, y0, x1, y1| egui::Rect::from_min_max(egui::pos2(x0, y0), egui::pos2(x1, y1));
        assert_eq!(
            scissor(r(10.0, 20.0, 110.0, 70.0), 1.0, 1280, 720),
            Some([10, 20, 100, 50])
        );
        assert_eq!(
            scissor(r(10.0, 20.0, 110.0, 70.0), 2.0, 1280, 720),
            Some([20, 40, 200, 100])
        );
        // Cut at the target's edges; nothing left, no draw.
        assert_eq!(
            scissor(r(-5.0, 700.0, 50.0, 800.0), 1.0, 1280, 720),
            Some([0, 700, 50, 20])
        );
        assert_eq!(
            scissor(egui::Rect::EVERYTHING, 1.0, 1280, 720),
            Some([0, 0, 1280, 720])
        );
        assert_eq!(scissor(r(1300.0, 0.0, 1400.0, 50.0), 1.0, 1280, 720), None);
    }

    #[test]
    fn a_replay_is_an_empty_triangle_and_one_callback_over_the_screen() {
        let screen = egui::Rect::from_min_max(egui::Pos2::ZERO, egui::pos2(1280.0, 720.0));
        let jobs = KeptTriangles::replay(screen);
        assert_eq!(jobs.len(), 2);
        assert!(jobs.iter().all(|j| j.clip_rect == screen));
        let Primitive::Mesh(empty) = &jobs[0].primitive else {
            panic!("a mesh first");
        };
        // Three indices of one vertex: a triangle of no area.
        assert_eq!(
            (empty.vertices.len(), empty.indices.as_slice()),
            (1, &[0, 0, 0][..])
        );
        assert!(matches!(&jobs[1].primitive, Primitive::Callback(c) if c.rect == screen));
    }
}
