//! Edge refinement (guided filter) and foreground colour estimation (blur fusion) as wgpu compute
//! passes, `refine.wgsl`: the network's mask and the photo in, one RGBA8 texture out (the
//! subject's colours, the refined mask as alpha) that the compositor samples.
//!
//! [`Refiner`] holds the compute pipelines (created once per device); [`RefineTargets`] the
//! intermediate textures and bind groups for one photo size (created with the photo's textures);
//! a run writes three small uniform blocks and records the passes.

use crate::image_ops::{
    CompositeSettings,
    refine::{FOREGROUND_RADII_PX, RefineSettings},
};

/// The passes of `refine.wgsl` and the bindings each one uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    BoxH,
    BoxV,
    Products,
    Coeffs,
    Apply,
    FusePrep,
    FuseStep,
    FuseFinal,
    Pack,
}

const PASSES: [Pass; 9] = [
    Pass::BoxH,
    Pass::BoxV,
    Pass::Products,
    Pass::Coeffs,
    Pass::Apply,
    Pass::FusePrep,
    Pass::FuseStep,
    Pass::FuseFinal,
    Pass::Pack,
];

// Binding numbers of refine.wgsl.
const PARAMS: u32 = 0;
const PHOTO: u32 = 1;
const MASK: u32 = 2;
const IN: [u32; 4] = [3, 4, 5, 6];
const OUT: [u32; 4] = [7, 8, 9, 10];
const REFINED_IN: u32 = 11;
const REFINED_OUT: u32 = 12;
const CUTOUT_OUT: u32 = 13;

impl Pass {
    fn label(self) -> &'static str {
        match self {
            Self::BoxH => "box_mean rows",
            Self::BoxV => "box_mean columns",
            _ => self.entry_point(),
        }
    }

    fn entry_point(self) -> &'static str {
        match self {
            Self::BoxH | Self::BoxV => "box_mean",
            Self::Products => "products",
            Self::Coeffs => "coeffs",
            Self::Apply => "apply",
            Self::FusePrep => "fuse_prep",
            Self::FuseStep => "fuse_step",
            Self::FuseFinal => "fuse_final",
            Self::Pack => "pack",
        }
    }

    /// Values of the shader's pipeline-overridable constants.
    fn constants(self) -> &'static [(&'static str, f64)] {
        match self {
            Self::BoxH => &[("AXIS", 0.0), ("CHUNK", BOX_CHUNK as f64)],
            Self::BoxV => &[("AXIS", 1.0), ("CHUNK", BOX_CHUNK as f64)],
            _ => &[],
        }
    }

    fn bindings(self) -> &'static [u32] {
        match self {
            Self::BoxH | Self::BoxV => &[PARAMS, IN[0], OUT[0]],
            Self::Products => &[PARAMS, PHOTO, MASK, OUT[0], OUT[1], OUT[2], OUT[3]],
            Self::Coeffs => &[PARAMS, IN[0], IN[1], IN[2], IN[3], OUT[0]],
            Self::Apply => &[PARAMS, PHOTO, MASK, IN[0], REFINED_OUT],
            Self::FusePrep => &[PARAMS, PHOTO, REFINED_IN, OUT[0], OUT[1]],
            Self::FuseStep => &[PARAMS, PHOTO, REFINED_IN, IN[0], IN[1], OUT[2], OUT[3]],
            Self::FuseFinal => &[PARAMS, PHOTO, REFINED_IN, IN[0], IN[1], CUTOUT_OUT],
            Self::Pack => &[PARAMS, PHOTO, REFINED_IN, CUTOUT_OUT],
        }
    }

    fn layout_entry(binding: u32) -> wgpu::BindGroupLayoutEntry {
        let storage = |format| wgpu::BindingType::StorageTexture {
            access: wgpu::StorageTextureAccess::WriteOnly,
            format,
            view_dimension: wgpu::TextureViewDimension::D2,
        };
        let ty = match binding {
            PARAMS => wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: wgpu::BufferSize::new(std::mem::size_of::<Params>() as u64),
            },
            REFINED_OUT => storage(wgpu::TextureFormat::R32Float),
            CUTOUT_OUT => storage(CUTOUT_FORMAT),
            b if OUT.contains(&b) => storage(wgpu::TextureFormat::Rgba32Float),
            _ => wgpu::BindingType::Texture {
                sample_type: wgpu::TextureSampleType::Float { filterable: false },
                view_dimension: wgpu::TextureViewDimension::D2,
                multisampled: false,
            },
        };
        wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty,
            count: None,
        }
    }
}

/// Pixels each invocation of `box_mean` slides its window along (its `CHUNK`). One invocation per
/// whole line is latency-bound on a big GPU (3–4 k invocations for 12 MP: 24.7 ms for both
/// steps on an H100); 256-pixel chunks give it ~50 k and took that to 5.8 ms, while costing a CPU
/// adapter only the extra window sums at each chunk's start.
const BOX_CHUNK: u32 = 256;

/// Format of the refined output: the subject's colours and the refined mask as alpha.
pub(super) const CUTOUT_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;

/// The uniform block of `refine.wgsl` (32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    width: u32,
    height: u32,
    radius: u32,
    guided: u32,
    eps: f32,
    lo: f32,
    hi: f32,
    pad: f32,
}

/// Which of the three uniform blocks (one per box radius) a pass reads.
#[derive(Debug, Clone, Copy)]
enum Radius {
    Guided,
    Wide,
    Narrow,
}

/// The compute pipelines of the refinement: created once per device.
pub(super) struct Refiner {
    pipelines: Vec<(Pass, wgpu::ComputePipeline, wgpu::BindGroupLayout)>,
}

impl Refiner {
    /// Compiles `refine.wgsl` and builds one pipeline per pass.
    pub(super) fn new(device: &wgpu::Device) -> Self {
        let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("cutout refine shader"),
            source: wgpu::ShaderSource::Wgsl(include_str!("refine.wgsl").into()),
        });
        let pipelines = PASSES
            .iter()
            .map(|&pass| {
                let entries: Vec<_> = pass
                    .bindings()
                    .iter()
                    .map(|&b| Pass::layout_entry(b))
                    .collect();
                let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(pass.label()),
                    entries: &entries,
                });
                let pipeline_layout =
                    device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                        label: Some(pass.label()),
                        bind_group_layouts: &[Some(&layout)],
                        immediate_size: 0,
                    });
                let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(pass.label()),
                    layout: Some(&pipeline_layout),
                    module: &shader,
                    entry_point: Some(pass.entry_point()),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants: pass.constants(),
                        ..Default::default()
                    },
                    cache: None,
                });
                (pass, pipeline, layout)
            })
            .collect();
        Self { pipelines }
    }

    fn get(&self, pass: Pass) -> (&wgpu::ComputePipeline, &wgpu::BindGroupLayout) {
        let (_, pipeline, layout) = self
            .pipelines
            .iter()
            .find(|(p, _, _)| *p == pass)
            .unwrap_or_else(|| unreachable!("every pass has a pipeline"));
        (pipeline, layout)
    }
}

/// One recorded dispatch.
struct Step {
    pass: Pass,
    group: wgpu::BindGroup,
}

/// Intermediate textures, uniform blocks and bind groups for one photo size.
pub(super) struct RefineTargets {
    params: [wgpu::Buffer; 3],
    guided: Vec<Step>,
    plain: Step,
    foreground: Vec<Step>,
    pack: Step,
    size: [u32; 2],
}

enum Res<'a> {
    Params(&'a wgpu::Buffer),
    View(&'a wgpu::TextureView),
}

/// The views every pass of one photo size binds: the photo, the mask and the cutout, four float
/// planes, a scratch plane and the refined mask.
struct Views {
    photo: wgpu::TextureView,
    mask: wgpu::TextureView,
    cutout: wgpu::TextureView,
    p: [wgpu::TextureView; 4],
    tmp: wgpu::TextureView,
    refined: wgpu::TextureView,
}

/// Builds the bind groups of one photo size's dispatches.
struct Binder<'a> {
    device: &'a wgpu::Device,
    refiner: &'a Refiner,
    params: &'a [wgpu::Buffer; 3],
}

impl Binder<'_> {
    /// One dispatch of `pass` with the uniform block of `radius` and the views `bound`.
    fn step(&self, pass: Pass, radius: Radius, bound: &[(u32, &wgpu::TextureView)]) -> Step {
        let (_, layout) = self.refiner.get(pass);
        let mut all = vec![(PARAMS, Res::Params(&self.params[radius as usize]))];
        all.extend(bound.iter().map(|&(b, v)| (b, Res::View(v))));
        let entries: Vec<_> = all
            .iter()
            .map(|(binding, res)| wgpu::BindGroupEntry {
                binding: *binding,
                resource: match res {
                    Res::Params(buffer) => buffer.as_entire_binding(),
                    Res::View(view) => wgpu::BindingResource::TextureView(view),
                },
            })
            .collect();
        Step {
            pass,
            group: self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(pass.label()),
                layout,
                entries: &entries,
            }),
        }
    }

    /// A box mean of `plane` in place, through the scratch texture.
    fn boxed(
        &self,
        plane: &wgpu::TextureView,
        tmp: &wgpu::TextureView,
        radius: Radius,
    ) -> [Step; 2] {
        [
            self.step(Pass::BoxH, radius, &[(IN[0], plane), (OUT[0], tmp)]),
            self.step(Pass::BoxV, radius, &[(IN[0], tmp), (OUT[0], plane)]),
        ]
    }

    /// The guided filter: products, their box means, the coefficients and their box mean (ending
    /// in p[0]), then the refined mask.
    fn guided(&self, v: &Views) -> Vec<Step> {
        let p = &v.p;
        let mut steps = vec![self.step(
            Pass::Products,
            Radius::Guided,
            &[
                (PHOTO, &v.photo),
                (MASK, &v.mask),
                (OUT[0], &p[0]),
                (OUT[1], &p[1]),
                (OUT[2], &p[2]),
                (OUT[3], &p[3]),
            ],
        )];
        for plane in p {
            steps.extend(self.boxed(plane, &v.tmp, Radius::Guided));
        }
        steps.push(self.step(
            Pass::Coeffs,
            Radius::Guided,
            &[
                (IN[0], &p[0]),
                (IN[1], &p[1]),
                (IN[2], &p[2]),
                (IN[3], &p[3]),
                (OUT[0], &v.tmp),
            ],
        ));
        steps.push(self.step(
            Pass::BoxH,
            Radius::Guided,
            &[(IN[0], &v.tmp), (OUT[0], &p[1])],
        ));
        steps.push(self.step(
            Pass::BoxV,
            Radius::Guided,
            &[(IN[0], &p[1]), (OUT[0], &p[0])],
        ));
        steps.push(self.apply(v));
        steps
    }

    /// The mask to the refined plane: through the guided coefficients in p[0] when they ran.
    fn apply(&self, v: &Views) -> Step {
        self.step(
            Pass::Apply,
            Radius::Guided,
            &[
                (PHOTO, &v.photo),
                (MASK, &v.mask),
                (IN[0], &v.p[0]),
                (REFINED_OUT, &v.refined),
            ],
        )
    }

    /// The foreground colours: a wide and a narrow pass of box means, then the cutout.
    fn foreground(&self, v: &Views) -> Vec<Step> {
        let p = &v.p;
        let mut steps = vec![self.step(
            Pass::FusePrep,
            Radius::Wide,
            &[
                (PHOTO, &v.photo),
                (REFINED_IN, &v.refined),
                (OUT[0], &p[0]),
                (OUT[1], &p[1]),
            ],
        )];
        steps.extend(self.boxed(&p[0], &v.tmp, Radius::Wide));
        steps.extend(self.boxed(&p[1], &v.tmp, Radius::Wide));
        steps.push(self.step(
            Pass::FuseStep,
            Radius::Wide,
            &[
                (PHOTO, &v.photo),
                (REFINED_IN, &v.refined),
                (IN[0], &p[0]),
                (IN[1], &p[1]),
                (OUT[2], &p[2]),
                (OUT[3], &p[3]),
            ],
        ));
        steps.extend(self.boxed(&p[2], &v.tmp, Radius::Narrow));
        steps.extend(self.boxed(&p[3], &v.tmp, Radius::Narrow));
        steps.push(self.step(
            Pass::FuseFinal,
            Radius::Narrow,
            &[
                (PHOTO, &v.photo),
                (REFINED_IN, &v.refined),
                (IN[0], &p[2]),
                (IN[1], &p[3]),
                (CUTOUT_OUT, &v.cutout),
            ],
        ));
        steps
    }
}

impl RefineTargets {
    /// Creates the intermediates for a photo of `photo`'s size; the passes read `photo` (RGBA8)
    /// and `mask` (R8) and write `cutout` ([`CUTOUT_FORMAT`], storage binding).
    pub(super) fn new(
        device: &wgpu::Device,
        refiner: &Refiner,
        photo: &wgpu::Texture,
        mask: &wgpu::Texture,
        cutout: &wgpu::Texture,
    ) -> Self {
        let size = [photo.width(), photo.height()];
        let plane = |label: &str, format| {
            super::texture_with_usage(
                device,
                label,
                (size[0], size[1]),
                format,
                wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::STORAGE_BINDING,
            )
            .create_view(&wgpu::TextureViewDescriptor::default())
        };
        let view = |t: &wgpu::Texture| t.create_view(&wgpu::TextureViewDescriptor::default());
        let views = Views {
            photo: view(photo),
            mask: view(mask),
            cutout: view(cutout),
            p: std::array::from_fn(|_| {
                plane("cutout refine plane", wgpu::TextureFormat::Rgba32Float)
            }),
            tmp: plane("cutout refine scratch", wgpu::TextureFormat::Rgba32Float),
            refined: plane("cutout refined mask", wgpu::TextureFormat::R32Float),
        };
        let params: [wgpu::Buffer; 3] = std::array::from_fn(|_| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("cutout refine params"),
                size: std::mem::size_of::<Params>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        let binder = Binder {
            device,
            refiner,
            params: &params,
        };
        let guided = binder.guided(&views);
        let plain = binder.apply(&views);
        let foreground = binder.foreground(&views);
        let pack = binder.step(
            Pass::Pack,
            Radius::Guided,
            &[
                (PHOTO, &views.photo),
                (REFINED_IN, &views.refined),
                (CUTOUT_OUT, &views.cutout),
            ],
        );
        Self {
            params,
            guided,
            plain,
            foreground,
            pack,
            size,
        }
    }

    /// The dispatches a run for `settings` records, in order.
    fn steps(&self, settings: &CompositeSettings) -> Vec<&Step> {
        let r: RefineSettings = settings.refine.clamped();
        let mut steps: Vec<&Step> = if r.guided {
            self.guided.iter().collect()
        } else {
            vec![&self.plain]
        };
        if r.foreground {
            steps.extend(&self.foreground);
        } else {
            steps.push(&self.pack);
        }
        steps
    }

    /// How many dispatches a run for `settings` has (see [`Self::record_part`]).
    pub(super) fn len(&self, settings: &CompositeSettings) -> usize {
        self.steps(settings).len()
    }

    /// Records dispatches `part` of a run for `settings` into `encoder` (all of them, `0..len`,
    /// or a few, so that a slow adapter can run them over several submissions with frames in
    /// between). The part that starts the run writes the
    /// uniforms; the later parts must follow it, in order, with the same `settings`.
    pub(super) fn record_part(
        &self,
        refiner: &Refiner,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        settings: &CompositeSettings,
        part: std::ops::Range<usize>,
    ) {
        if part.start == 0 {
            self.write_params(queue, settings);
        }
        let steps = self.steps(settings);
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("cutout refine"),
            timestamp_writes: None,
        });
        let [width, height] = self.size;
        for step in steps.get(part).unwrap_or_default() {
            let (pipeline, _) = refiner.get(step.pass);
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &step.group, &[]);
            // Box passes: 64 lines per workgroup, one chunk of them along y.
            let lines = |n: u32| n.div_ceil(64);
            let chunks = |n: u32| n.div_ceil(BOX_CHUNK);
            let tiles = |n: u32| n.div_ceil(8);
            match step.pass {
                Pass::BoxH => pass.dispatch_workgroups(lines(height), chunks(width), 1),
                Pass::BoxV => pass.dispatch_workgroups(lines(width), chunks(height), 1),
                _ => pass.dispatch_workgroups(tiles(width), tiles(height), 1),
            }
        }
    }

    /// The three uniform blocks (one per box radius) for `settings`.
    fn write_params(&self, queue: &wgpu::Queue, settings: &CompositeSettings) {
        let r: RefineSettings = settings.refine.clamped();
        let (lo, hi) = settings.ramp();
        let [width, height] = self.size;
        let radii = [r.radius, FOREGROUND_RADII_PX[0], FOREGROUND_RADII_PX[1]];
        for (buffer, radius) in self.params.iter().zip(radii) {
            let params = Params {
                width,
                height,
                radius,
                guided: u32::from(r.guided),
                eps: r.eps,
                lo,
                hi,
                pad: 0.0,
            };
            queue.write_buffer(buffer, 0, bytemuck::bytes_of(&params));
        }
    }
}
