// Edge refinement and foreground colour estimation as compute passes.
// Same steps and formulas as src/image_ops/refine.rs (the CPU reference); keep the two in step.
//
// Guided filter (He, Sun, Tang), colour guide I, input mask p, window radius r:
//   products -> box -> coeffs (a, b per window) -> box -> apply (q = mean_a . I + mean_b)
// Blur fusion (Forte, Pitié), alpha from the refined mask through the composite's ramp:
//   fuse_prep -> box (wide) -> fuse_step -> box (narrow) -> fuse_final
// Box means are separable, one pass per axis, running sums over chunks of a line: O(1) per pixel
// whatever the radius, edge-normalised like the CPU reference.

struct Params {
    width: u32,
    height: u32,
    // Box radius of the passes that use this block.
    radius: u32,
    // 1 = guided filter on, 0 = pass the network's mask through.
    guided: u32,
    // Guided filter regularisation.
    eps: f32,
    // Composite alpha ramp: alpha = clamp((m - lo) / max(hi - lo, MIN_RAMP), 0, 1).
    lo: f32,
    hi: f32,
    _pad: f32,
};

const MIN_RAMP: f32 = 1e-4;
const FOREGROUND_EPS: f32 = 1e-5;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var photo: texture_2d<f32>;
@group(0) @binding(2) var mask: texture_2d<f32>;
@group(0) @binding(3) var in0: texture_2d<f32>;
@group(0) @binding(4) var in1: texture_2d<f32>;
@group(0) @binding(5) var in2: texture_2d<f32>;
@group(0) @binding(6) var in3: texture_2d<f32>;
@group(0) @binding(7) var out0: texture_storage_2d<rgba32float, write>;
@group(0) @binding(8) var out1: texture_storage_2d<rgba32float, write>;
@group(0) @binding(9) var out2: texture_storage_2d<rgba32float, write>;
@group(0) @binding(10) var out3: texture_storage_2d<rgba32float, write>;
@group(0) @binding(11) var refined_in: texture_2d<f32>;
@group(0) @binding(12) var refined_out: texture_storage_2d<r32float, write>;
@group(0) @binding(13) var cutout_out: texture_storage_2d<rgba8unorm, write>;

fn inside(id: vec3<u32>) -> bool {
    return id.x < params.width && id.y < params.height;
}

fn guide(p: vec2<i32>) -> vec3<f32> {
    return textureLoad(photo, p, 0).rgb;
}

// Rounds to the 8-bit level the CPU reference stores (it keeps masks as 8-bit images).
fn quantize(v: f32) -> f32 {
    return round(clamp(v, 0.0, 1.0) * 255.0) / 255.0;
}

fn ramp(m: f32) -> f32 {
    return clamp((m - params.lo) / max(params.hi - params.lo, MIN_RAMP), 0.0, 1.0);
}

// ---- separable box mean (running sums over chunks) ----

// Set per pipeline (src/render/refine.rs): the axis a box pass averages along (0 = along rows,
// 1 = along columns) and the pixels each invocation slides its window over.
override AXIS: u32 = 0u;
override CHUNK: u32 = 256u;

fn on_axis(line: i32, i: i32) -> vec2<i32> {
    if AXIS == 0u {
        return vec2<i32>(i, line);
    }
    return vec2<i32>(line, i);
}

// Window mean of in0 along AXIS: invocation (line, chunk) sums the window of the chunk's first
// pixel, then slides it along the chunk, adding the pixel that enters and taking away the one
// that leaves. Neighbouring invocations take neighbouring lines, so their loads share cache lines.
@compute @workgroup_size(64)
fn box_mean(@builtin(global_invocation_id) id: vec3<u32>) {
    let len = i32(select(params.height, params.width, AXIS == 0u));
    let lines = select(params.width, params.height, AXIS == 0u);
    let first = i32(id.y * CHUNK);
    if id.x >= lines || first >= len {
        return;
    }
    let line = i32(id.x);
    let r = i32(params.radius);
    let end = min(first + i32(CHUNK), len);
    var sum = vec4<f32>(0.0);
    for (var i = max(first - r, 0); i <= min(first + r, len - 1); i++) {
        sum += textureLoad(in0, on_axis(line, i), 0);
    }
    for (var i = first; i < end; i++) {
        let n = f32(min(i + r, len - 1) - max(i - r, 0) + 1);
        textureStore(out0, on_axis(line, i), sum / n);
        if i + r + 1 < len {
            sum += textureLoad(in0, on_axis(line, i + r + 1), 0);
        }
        if i - r >= 0 {
            sum -= textureLoad(in0, on_axis(line, i - r), 0);
        }
    }
}

// ---- guided filter ----

// The 13 per-pixel terms whose window means the filter needs.
@compute @workgroup_size(8, 8)
fn products(@builtin(global_invocation_id) id: vec3<u32>) {
    if !inside(id) {
        return;
    }
    let p = vec2<i32>(id.xy);
    let i = guide(p);
    let m = textureLoad(mask, p, 0).r;
    textureStore(out0, p, vec4<f32>(i, m));
    textureStore(out1, p, vec4<f32>(i * m, i.r * i.r));
    textureStore(out2, p, vec4<f32>(i.r * i.g, i.r * i.b, i.g * i.g, i.g * i.b));
    textureStore(out3, p, vec4<f32>(i.b * i.b, 0.0, 0.0, 0.0));
}

// Per window: a = (cov(I) + eps)^-1 cov(I, p), b = mean(p) - a . mean(I).
@compute @workgroup_size(8, 8)
fn coeffs(@builtin(global_invocation_id) id: vec3<u32>) {
    if !inside(id) {
        return;
    }
    let p = vec2<i32>(id.xy);
    let m0 = textureLoad(in0, p, 0);
    let m1 = textureLoad(in1, p, 0);
    let m2 = textureLoad(in2, p, 0);
    let m3 = textureLoad(in3, p, 0);
    let mi = m0.rgb;
    let mp = m0.a;
    let cov = m1.rgb - mi * mp;
    let e = params.eps;
    let rr = m1.a - mi.r * mi.r + e;
    let rg = m2.x - mi.r * mi.g;
    let rb = m2.y - mi.r * mi.b;
    let gg = m2.z - mi.g * mi.g + e;
    let gb = m2.w - mi.g * mi.b;
    let bb = m3.x - mi.b * mi.b + e;
    // Symmetric 3x3 solve by cofactors (Cramer's rule).
    let c0 = gg * bb - gb * gb;
    let c1 = rb * gb - rg * bb;
    let c2 = rg * gb - rb * gg;
    let c3 = rr * bb - rb * rb;
    let c4 = rg * rb - rr * gb;
    let c5 = rr * gg - rg * rg;
    let det = rr * c0 + rg * c1 + rb * c2;
    var a = vec3<f32>(0.0);
    if det != 0.0 {
        a = vec3<f32>(
            c0 * cov.r + c1 * cov.g + c2 * cov.b,
            c1 * cov.r + c3 * cov.g + c4 * cov.b,
            c2 * cov.r + c4 * cov.g + c5 * cov.b,
        ) / det;
    }
    textureStore(out0, p, vec4<f32>(a, mp - dot(a, mi)));
}

// q = mean_a . I + mean_b, or the network's mask when the filter is off.
@compute @workgroup_size(8, 8)
fn apply(@builtin(global_invocation_id) id: vec3<u32>) {
    if !inside(id) {
        return;
    }
    let p = vec2<i32>(id.xy);
    // A select, not a branch on the uniform: software Vulkan (lavapipe) compiles a fresh copy of
    // a shader that branches on uniforms alone each time it is bound, and never frees it.
    let ab = textureLoad(in0, p, 0);
    let q = select(textureLoad(mask, p, 0).r, dot(ab.rgb, guide(p)) + ab.a, params.guided == 1u);
    textureStore(refined_out, p, vec4<f32>(quantize(q), 0.0, 0.0, 0.0));
}

// ---- blur fusion ----

fn alpha_at(p: vec2<i32>) -> f32 {
    return ramp(textureLoad(refined_in, p, 0).r);
}

// First step: the foreground and background estimates are the photo itself.
@compute @workgroup_size(8, 8)
fn fuse_prep(@builtin(global_invocation_id) id: vec3<u32>) {
    if !inside(id) {
        return;
    }
    let p = vec2<i32>(id.xy);
    let i = guide(p);
    let a = alpha_at(p);
    textureStore(out0, p, vec4<f32>(i * a, a));
    textureStore(out1, p, vec4<f32>(i * (1.0 - a), 1.0 - a));
}

struct Fused {
    fg: vec3<f32>,
    bg: vec3<f32>,
};

// From the window means of F·alpha, alpha (in0) and B·(1-alpha) (in1).
fn fuse(p: vec2<i32>, a: f32) -> Fused {
    let fa = textureLoad(in0, p, 0);
    let bb = textureLoad(in1, p, 0);
    let mf = fa.rgb / (fa.a + FOREGROUND_EPS);
    let mb = bb.rgb / (1.0 - fa.a + FOREGROUND_EPS);
    let f = clamp(mf + a * (guide(p) - a * mf - (1.0 - a) * mb), vec3<f32>(0.0), vec3<f32>(1.0));
    return Fused(f, mb);
}

// Wide step's result, weighted for the narrow step.
@compute @workgroup_size(8, 8)
fn fuse_step(@builtin(global_invocation_id) id: vec3<u32>) {
    if !inside(id) {
        return;
    }
    let p = vec2<i32>(id.xy);
    let a = alpha_at(p);
    let fused = fuse(p, a);
    textureStore(out2, p, vec4<f32>(fused.fg * a, a));
    textureStore(out3, p, vec4<f32>(fused.bg * (1.0 - a), 1.0 - a));
}

// Narrow step's foreground and the refined mask, packed for the compositor.
@compute @workgroup_size(8, 8)
fn fuse_final(@builtin(global_invocation_id) id: vec3<u32>) {
    if !inside(id) {
        return;
    }
    let p = vec2<i32>(id.xy);
    let a = alpha_at(p);
    var fg = fuse(p, a).fg;
    if a <= 0.0 || a >= 1.0 {
        // No subject here (nothing of it shows, and the estimate is 0/0), or only the subject:
        // keep the photo.
        fg = guide(p);
    }
    textureStore(cutout_out, p, vec4<f32>(fg, textureLoad(refined_in, p, 0).r));
}

// Foreground estimation off: the photo's colours and the refined mask.
@compute @workgroup_size(8, 8)
fn pack(@builtin(global_invocation_id) id: vec3<u32>) {
    if !inside(id) {
        return;
    }
    let p = vec2<i32>(id.xy);
    textureStore(cutout_out, p, vec4<f32>(guide(p), textureLoad(refined_in, p, 0).r));
}
