//! Drawing the particles: one instanced draw through a custom pipeline.
//!
//! Main world, `GameSet::Rendering`: the SoA columns are packed into
//! `ParticleInstances` (16 bytes a particle, in parallel chunks).
//! Render world: the packed records are copied out at extract, uploaded into
//! one vertex buffer at prepare, and a single `Transparent2d` item draws
//! `6 vertices × N instances` with `shaders/particles.wgsl`. There is no
//! entity, mesh or sprite per particle; one marker entity carries the item.

pub mod instance;

use crate::game::{GameSet, Sandbox, input::WorldCamera, memory::MemorySystem};
use crate::workers::{Capability, Priority, TaskGraph, TaskSpec};
use bevy::{
    camera::{RenderTarget, ScalingMode},
    core_pipeline::core_2d::{CORE_2D_DEPTH_FORMAT, Transparent2d},
    ecs::{
        query::ROQueryItem,
        system::{SystemParamItem, lifetimeless::SRes},
    },
    math::FloatOrd,
    mesh::VertexBufferLayout,
    prelude::*,
    render::{
        Extract, ExtractSchedule, Render, RenderApp, RenderStartup, RenderSystems,
        render_phase::{
            AddRenderCommand, DrawFunctions, PhaseItem, PhaseItemExtraIndex, RenderCommand,
            RenderCommandResult, SetItemPipeline, TrackedRenderPass, ViewSortedRenderPhases,
        },
        render_resource::{
            BindGroupLayoutDescriptor, BlendState, Buffer, BufferDescriptor, BufferUsages,
            ColorTargetState, ColorWrites, CompareFunction, DepthStencilState, FragmentState,
            MultisampleState, PipelineCache, PrimitiveState, RenderPipelineDescriptor,
            SpecializedRenderPipeline, SpecializedRenderPipelines, VertexAttribute, VertexFormat,
            VertexState, VertexStepMode,
        },
        renderer::{RenderDevice, RenderQueue},
        sync_world::{MainEntity, RenderEntity, SyncToRenderWorld},
        view::ExtractedView,
    },
    shader::Shader,
    sprite_render::{
        Mesh2dPipeline, Mesh2dPipelineKey, SetMesh2dViewBindGroup, init_mesh_2d_pipeline,
    },
};
use instance::{InstanceChunks, Palette, ParticleInstance};

/// The packed particles of this frame, in memory-pool buffers.
#[derive(Resource, Default)]
pub struct ParticleInstances(pub InstanceChunks);

/// Offscreen runs (`--offscreen`): the image the game's camera draws into
/// instead of a window.
#[derive(Resource, Debug, Clone)]
pub struct OffscreenTarget(pub Handle<Image>);

/// The one entity that stands for all particles in the render phase.
#[derive(Component, Default)]
#[require(SyncToRenderWorld)]
pub struct ParticleLayer;

pub struct ParticleRenderPlugin;

impl Plugin for ParticleRenderPlugin {
    fn build(&self, app: &mut App) {
        let shader = app
            .world_mut()
            .resource_mut::<Assets<Shader>>()
            .add(Shader::from_wgsl(
                include_str!("../../shaders/particles.wgsl"),
                "shaders/particles.wgsl",
            ));
        app.init_resource::<ParticleInstances>()
            .insert_resource(ClearColor(Color::srgb(0.035, 0.04, 0.055)))
            .add_systems(Startup, spawn_camera_and_layer)
            .add_systems(Update, pack_instances.in_set(GameSet::Rendering));
        let Some(render_app) = app.get_sub_app_mut(RenderApp) else {
            return;
        };
        render_app
            .insert_resource(ParticleShader(shader))
            .init_resource::<GpuParticles>()
            .init_resource::<SpecializedRenderPipelines<ParticlePipeline>>()
            .add_render_command::<Transparent2d, DrawParticles>()
            .add_systems(
                RenderStartup,
                init_particle_pipeline.after(init_mesh_2d_pipeline),
            )
            .add_systems(ExtractSchedule, extract_particles)
            .add_systems(
                Render,
                (
                    upload_particles.in_set(RenderSystems::PrepareResources),
                    queue_particles.in_set(RenderSystems::Queue),
                ),
            );
    }
}

fn spawn_camera_and_layer(
    mut commands: Commands,
    sandbox: Res<Sandbox>,
    offscreen: Option<Res<OffscreenTarget>>,
) {
    let (w, h) = (sandbox.width(), sandbox.height());
    let mut camera = commands.spawn((
        Camera2d,
        WorldCamera,
        Projection::Orthographic(OrthographicProjection {
            scaling_mode: ScalingMode::AutoMin {
                min_width: w,
                min_height: h,
            },
            ..OrthographicProjection::default_2d()
        }),
        Transform::from_xyz(w * 0.5, h * 0.5, 0.0),
        // The sprites' edges are soft in the shader already, so multisampling
        // adds nothing to the picture; without a GPU (lavapipe) it made
        // every pixel of every pass, the overlay's included, four.
        Msaa::Off,
        // The overlay runs this camera's egui pass itself (`overlay::pass`).
        crate::overlay::pass::manual_settings(),
    ));
    if let Some(target) = offscreen {
        camera.insert(RenderTarget::Image(target.0.clone().into()));
    }
    commands.spawn(ParticleLayer);
}

/// The Rendering set's work: one frame-critical Rendering task that packs
/// the instances in parallel chunks.
fn pack_instances(
    sandbox: Res<Sandbox>,
    memory: Res<MemorySystem>,
    mut out: ResMut<ParticleInstances>,
    mut warned: Local<bool>,
) {
    let palette = Palette::new(&sandbox.kinds);
    let slices = sandbox.store.slices();
    let pool = &*sandbox.pool;
    let out = &mut out.0;
    let buffers = &memory.instance_pool;
    let warned = &mut *warned;
    let mut graph = TaskGraph::new();
    graph.add(
        TaskSpec::new("render.pack", Capability::Rendering).priority(Priority::FrameCritical),
        || {
            if let Err(e) = instance::pack(&slices, &palette, out, buffers, pool)
                && !std::mem::replace(warned, true)
            {
                warn!("drawing only the particles that fit: {e}; raise memory.pool_budget_mib");
            }
        },
    );
    match pool.run(graph) {
        Ok(report) if report.is_ok() => {}
        Ok(report) => error!(
            "packing the particle instances failed: {}",
            report.errors[0]
        ),
        Err(e) => error!("packing the particle instances failed: {e}"),
    }
}

#[derive(Resource)]
struct ParticleShader(Handle<Shader>);

/// Render-world handles to this frame's instance buffers, and the GPU buffer.
#[derive(Resource, Default)]
struct GpuParticles {
    chunks: InstanceChunks,
    /// The instances on the GPU, `capacity` bytes (grown by doubling).
    instances: Option<Buffer>,
    capacity: u64,
    count: u32,
    /// The layer entity: (render world, main world).
    layer: Option<(Entity, MainEntity)>,
}

fn extract_particles(
    mut gpu: ResMut<GpuParticles>,
    instances: Extract<Res<ParticleInstances>>,
    layer: Extract<Query<(Entity, &RenderEntity), With<ParticleLayer>>>,
) {
    // Handles only: the bytes stay where the packer wrote them.
    gpu.chunks = instances.0.clone();
    gpu.count = instances.0.count as u32;
    gpu.layer = layer
        .iter()
        .next()
        .map(|(main, render)| (render.id(), MainEntity::from(main)));
}

/// Writes the packed chunks straight from the pool buffers into the GPU
/// buffer, one write a chunk: at 200,000 particles a 3.2 MB copy a frame
/// less than gathering them into one list first.
fn upload_particles(
    mut gpu: ResMut<GpuParticles>,
    device: Res<RenderDevice>,
    queue: Res<RenderQueue>,
) {
    let gpu = &mut *gpu;
    let bytes = u64::from(gpu.count) * size_of::<ParticleInstance>() as u64;
    if bytes > gpu.capacity {
        gpu.capacity = bytes.next_power_of_two();
        gpu.instances = Some(device.create_buffer(&BufferDescriptor {
            label: Some("particle instances"),
            size: gpu.capacity,
            usage: BufferUsages::VERTEX | BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }));
    }
    if let Some(buffer) = &gpu.instances {
        let mut at = 0;
        for part in gpu.chunks.slices().filter(|p| !p.is_empty()) {
            let part: &[u8] = bytemuck::cast_slice(part);
            queue.write_buffer(buffer, at, part);
            at += part.len() as u64;
        }
    }
    // Let the packer have its buffers back.
    gpu.chunks = InstanceChunks::default();
}

#[derive(Resource)]
struct ParticlePipeline {
    view_layout: BindGroupLayoutDescriptor,
    shader: Handle<Shader>,
}

fn init_particle_pipeline(
    mut commands: Commands,
    mesh2d: Res<Mesh2dPipeline>,
    shader: Res<ParticleShader>,
) {
    commands.insert_resource(ParticlePipeline {
        view_layout: mesh2d.view_layout.clone(),
        shader: shader.0.clone(),
    });
}

impl SpecializedRenderPipeline for ParticlePipeline {
    type Key = Mesh2dPipelineKey;

    fn specialize(&self, key: Self::Key) -> RenderPipelineDescriptor {
        let instance_layout = VertexBufferLayout {
            array_stride: size_of::<ParticleInstance>() as u64,
            step_mode: VertexStepMode::Instance,
            attributes: vec![
                VertexAttribute {
                    format: VertexFormat::Float32x3,
                    offset: 0,
                    shader_location: 0,
                },
                VertexAttribute {
                    format: VertexFormat::Uint32,
                    offset: 12,
                    shader_location: 1,
                },
            ],
        };
        RenderPipelineDescriptor {
            label: Some("particles".into()),
            layout: vec![self.view_layout.clone()],
            vertex: VertexState {
                shader: self.shader.clone(),
                buffers: vec![instance_layout],
                ..default()
            },
            fragment: Some(FragmentState {
                shader: self.shader.clone(),
                targets: vec![Some(ColorTargetState {
                    format: key.target_format(),
                    blend: Some(BlendState::ALPHA_BLENDING),
                    write_mask: ColorWrites::ALL,
                })],
                ..default()
            }),
            primitive: PrimitiveState::default(),
            depth_stencil: Some(DepthStencilState {
                format: CORE_2D_DEPTH_FORMAT,
                depth_write_enabled: Some(false),
                depth_compare: Some(CompareFunction::Always),
                stencil: default(),
                bias: default(),
            }),
            multisample: MultisampleState {
                count: key.msaa_samples(),
                mask: !0,
                alpha_to_coverage_enabled: false,
            },
            ..default()
        }
    }
}

fn queue_particles(
    draw_functions: Res<DrawFunctions<Transparent2d>>,
    pipeline: Res<ParticlePipeline>,
    mut pipelines: ResMut<SpecializedRenderPipelines<ParticlePipeline>>,
    cache: Res<PipelineCache>,
    gpu: Res<GpuParticles>,
    mut phases: ResMut<ViewSortedRenderPhases<Transparent2d>>,
    views: Query<(&ExtractedView, &Msaa)>,
) {
    let Some(layer) = gpu.layer else {
        return;
    };
    if gpu.count == 0 {
        return;
    }
    let draw = draw_functions.read().id::<DrawParticles>();
    for (view, msaa) in &views {
        let Some(phase) = phases.get_mut(&view.retained_view_entity) else {
            continue;
        };
        let key = Mesh2dPipelineKey::from_msaa_samples(msaa.samples())
            | Mesh2dPipelineKey::from_target_format(view.target_format);
        phase.add_transient(Transparent2d {
            sort_key: FloatOrd(0.0),
            entity: layer,
            pipeline: pipelines.specialize(&cache, &pipeline, key),
            draw_function: draw,
            batch_range: 0..1,
            extracted_index: usize::MAX,
            extra_index: PhaseItemExtraIndex::None,
            indexed: false,
        });
    }
}

type DrawParticles = (
    SetItemPipeline,
    SetMesh2dViewBindGroup<0>,
    DrawParticleInstances,
);

struct DrawParticleInstances;

impl<P: PhaseItem> RenderCommand<P> for DrawParticleInstances {
    type Param = SRes<GpuParticles>;
    type ViewQuery = ();
    type ItemQuery = ();

    fn render<'w>(
        _: &P,
        _: ROQueryItem<'w, '_, Self::ViewQuery>,
        _: Option<ROQueryItem<'w, '_, Self::ItemQuery>>,
        gpu: SystemParamItem<'w, '_, Self::Param>,
        pass: &mut TrackedRenderPass<'w>,
    ) -> RenderCommandResult {
        let gpu = gpu.into_inner();
        let Some(buffer) = &gpu.instances else {
            return RenderCommandResult::Skip;
        };
        pass.set_vertex_buffer(0, buffer.slice(..));
        pass.draw(0..6, 0..gpu.count);
        RenderCommandResult::Success
    }
}
