// The cutout composite, on screen (preview) and offscreen (tests, export check).
// Same formulas as src/image_ops/composite.rs (the CPU reference); keep the two in step.

// Output kind and target colour space are fixed per pipeline (override constants), and the
// fragment stage has no branch that depends on uniforms alone: software Vulkan (lavapipe)
// compiles a fresh copy of a shader with such branches each time its pipeline is bound, and
// never frees it (about 0.5 MB per frame).

// 0 preview (checkerboard behind transparency, opaque output), 1 export (straight alpha).
override EXPORT: u32 = 0u;
// 1 when the target format is sRGB, so the shader must hand over linear values.
override TARGET_SRGB: u32 = 0u;

struct Uniforms {
    // Image coordinates (0–1) at the top-left and bottom-right of the viewport.
    view_min: vec2<f32>,
    view_max: vec2<f32>,
    // Colour behind the subject for the colour background, sRGB 0–1.
    color: vec4<f32>,
    // What shows behind the subject, one weight 1 and the others 0: transparency (the
    // checkerboard in the preview, straight alpha in an export), the colour, the dimmed
    // photo, the blurred photo.
    behind: vec4<f32>,
    // Alpha ramp: alpha = clamp((mask - lo) / max(hi - lo, MIN_RAMP), 0, 1).
    lo: f32,
    hi: f32,
    // Brightness kept by the dimmed background.
    dim: f32,
    // Viewport x (0–1) left of which the original photo shows; below 0 = no split.
    split: f32,
    // 1 shows the mask alone (preview), 0 the composite.
    mask_only: f32,
    // Checkerboard square size in physical pixels.
    checker_px: f32,
    _pad0: f32,
    _pad1: f32,
};

const MIN_RAMP: f32 = 1e-4;

@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var photo_tex: texture_2d<f32>;
// The subject's colours (foreground estimation) with the refined mask as alpha.
@group(0) @binding(2) var cutout_tex: texture_2d<f32>;
@group(0) @binding(3) var backdrop_tex: texture_2d<f32>;
@group(0) @binding(4) var linear_sampler: sampler;
// Touch-up edits: r = how much the edits override the network (0–1), g = how much of that is
// "keep" (premultiplied). Same formula as src/image_ops/edits.rs `apply`.
@group(0) @binding(5) var edits_tex: texture_2d<f32>;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    // 0–1 across the viewport, y down.
    @location(0) viewport_uv: vec2<f32>,
};

// One triangle that covers the viewport.
@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> VertexOut {
    let x = f32((index << 1u) & 2u);
    let y = f32(index & 2u);
    var out: VertexOut;
    out.position = vec4<f32>(x * 2.0 - 1.0, 1.0 - y * 2.0, 0.0, 1.0);
    out.viewport_uv = vec2<f32>(x, y);
    return out;
}

fn srgb_to_linear(c: vec3<f32>) -> vec3<f32> {
    let low = c / 12.92;
    let high = pow((c + 0.055) / 1.055, vec3<f32>(2.4));
    return select(high, low, c <= vec3<f32>(0.04045));
}

fn finish(rgba: vec4<f32>) -> vec4<f32> {
    if TARGET_SRGB == 1u {
        return vec4<f32>(srgb_to_linear(rgba.rgb), rgba.a);
    }
    return rgba;
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let image_uv = mix(u.view_min, u.view_max, in.viewport_uv);
    if any(image_uv < vec2<f32>(0.0)) || any(image_uv > vec2<f32>(1.0)) {
        discard;
    }

    var photo: vec3<f32>;
    var cutout: vec4<f32>;
    var edit: vec2<f32>;
    if EXPORT == 1u {
        // Export: one output pixel per photo pixel, read exactly.
        let size = vec2<f32>(textureDimensions(photo_tex));
        let texel = vec2<i32>(clamp(floor(image_uv * size), vec2<f32>(0.0), size - 1.0));
        photo = textureLoad(photo_tex, texel, 0).rgb;
        cutout = textureLoad(cutout_tex, texel, 0);
        edit = textureLoad(edits_tex, texel, 0).rg;
    } else {
        photo = textureSampleLevel(photo_tex, linear_sampler, image_uv, 0.0).rgb;
        cutout = textureSampleLevel(cutout_tex, linear_sampler, image_uv, 0.0);
        edit = textureSampleLevel(edits_tex, linear_sampler, image_uv, 0.0).rg;
    }
    let ramp = clamp((cutout.a - u.lo) / max(u.hi - u.lo, MIN_RAMP), 0.0, 1.0);
    // The edits: alpha towards 0 where erased and towards 1 where kept, with the photo's own
    // colour where kept.
    let a = ramp * (1.0 - edit.x) + edit.y;
    let fg = mix(cutout.rgb, photo, edit.y);

    let cell = floor(in.position.xy / u.checker_px);
    let odd = (i32(cell.x) + i32(cell.y)) & 1;
    let checker = select(vec3<f32>(0.8), vec3<f32>(0.6), odd == 1);
    let blurred = textureSampleLevel(backdrop_tex, linear_sampler, image_uv, 0.0).rgb;
    // Exactly one weight is 1, so the sum is exactly that background.
    let behind = checker * u.behind.x + u.color.rgb * u.behind.y + (photo * u.dim) * u.behind.z
        + blurred * u.behind.w;
    let over = vec4<f32>(fg * a + behind * (1.0 - a), 1.0);

    if EXPORT == 1u {
        // Straight alpha over transparency; fully transparent pixels are stored black.
        let straight = select(vec4<f32>(0.0), vec4<f32>(fg, a), a * 255.0 >= 0.5);
        return select(finish(over), straight, u.behind.x > 0.5);
    }
    let shown = select(over, vec4<f32>(vec3<f32>(a), 1.0), u.mask_only > 0.5);
    return finish(select(shown, vec4<f32>(photo, 1.0), in.viewport_uv.x < u.split));
}
