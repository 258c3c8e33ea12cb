//! Bilinear 2× upsampling in a form a channels-last GPU keeps channels-last.
//!
//! ONNX Runtime's CUDA provider has no channels-last Resize, and in CUDA builds its transpose
//! optimiser never moves a layout transpose across one. So every Resize in u2netp and IS-Net costs
//! a transpose before it, one after it, and more around the Concat that takes its output (108 of
//! the 475 nodes ONNX Runtime runs for u2netp at 320 px). This rewrite replaces each Resize that
//! doubles the height and width (bilinear, half-pixel centres) with three operators that all run
//! channels-last: `Pad` (edge) → depthwise `Conv` 3×3 with four outputs per channel (one per
//! output phase) → `DepthToSpace` (CRD). The arithmetic is the same: output row `2i` is
//! `0.25·in[i−1] + 0.75·in[i]`, row `2i+1` is `0.75·in[i] + 0.25·in[i+1]`, and the edge padding
//! reproduces Resize's clamping at the borders. Resizes by other factors are left as they are.

use std::collections::{HashMap, HashSet};

use onnx_protobuf::{
    AttributeProto, GraphProto, NodeProto, TensorProto, attribute_proto::AttributeType,
    tensor_proto::DataType,
};

/// Channels, height and width of a tensor, where the walk could work them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    channels: i64,
    height: i64,
    width: i64,
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

fn text(node: &NodeProto, name: &str) -> Option<String> {
    attr(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// Output side of a convolution or pooling window along one axis.
fn window_out(input: i64, kernel: i64, stride: i64, pad: i64, dilation: i64, ceil: bool) -> i64 {
    let span = input + pad - dilation * (kernel - 1) - 1;
    if ceil {
        span.div_euclid(stride) + i64::from(span.rem_euclid(stride) != 0) + 1
    } else {
        span.div_euclid(stride) + 1
    }
}

/// Spatial shapes after a Conv or a pool, or `None` for what the walk does not model.
fn windowed(node: &NodeProto, input: Shape, channels: i64, kernel: &[i64]) -> Option<Shape> {
    if text(node, "auto_pad").is_some_and(|p| p != "NOTSET") || kernel.len() != 2 {
        return None;
    }
    let strides = ints(node, "strides").unwrap_or_else(|| vec![1, 1]);
    let pads = ints(node, "pads").unwrap_or_else(|| vec![0; 4]);
    let dilations = ints(node, "dilations").unwrap_or_else(|| vec![1, 1]);
    let ceil = attr(node, "ceil_mode").is_some_and(|a| a.i != 0);
    if strides.len() != 2 || pads.len() != 4 || dilations.len() != 2 {
        return None;
    }
    Some(Shape {
        channels,
        height: window_out(
            input.height,
            kernel[0],
            strides[0],
            pads[0] + pads[2],
            dilations[0],
            ceil,
        ),
        width: window_out(
            input.width,
            kernel[1],
            strides[1],
            pads[1] + pads[3],
            dilations[1],
            ceil,
        ),
    })
}

/// Where a Resize's output height and width come from: its `sizes` input is computed from the
/// shape of another tensor (`Shape(target)` sliced and concatenated: u2netp), or ends in a
/// constant pair (`[N, C]` of the input and a constant `[H, W]`: IS-Net exported at 1024 px).
enum SizeSource {
    Like(String),
    Fixed(i64, i64),
}

fn int64_values(tensor: &TensorProto) -> Vec<i64> {
    if tensor.raw_data.is_empty() {
        tensor.int64_data.clone()
    } else {
        tensor
            .raw_data
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect()
    }
}

fn size_source(
    graph: &GraphProto,
    producer: &HashMap<&str, usize>,
    resize: &NodeProto,
) -> Option<SizeSource> {
    let sizes = resize.input.get(3).filter(|s| !s.is_empty())?;
    let mut stack = vec![sizes.as_str()];
    let mut seen = HashSet::new();
    let mut sources = HashSet::new();
    let mut pairs = Vec::new();
    while let Some(name) = stack.pop() {
        if !seen.insert(name) {
            continue;
        }
        let Some(&i) = producer.get(name) else {
            continue;
        };
        let node = &graph.node[i];
        match node.op_type.as_str() {
            "Shape" => {
                sources.insert(node.input.first()?.clone());
            }
            "Constant" => {
                let value = attr(node, "value").and_then(|a| a.t.as_ref());
                if let Some(t) = value.filter(|t| t.data_type == DataType::INT64 as i32) {
                    let values = int64_values(t);
                    if values.len() == 2 {
                        pairs.push((values[0], values[1]));
                    }
                }
            }
            "Concat" | "Cast" | "Slice" | "Gather" | "Unsqueeze" | "Squeeze" => {
                stack.extend(node.input.iter().map(String::as_str));
            }
            _ => return None,
        }
    }
    if let [(height, width)] = pairs[..] {
        return Some(SizeSource::Fixed(height, width));
    }
    sources.remove(resize.input.first()?);
    let mut sources = sources.into_iter();
    match (sources.next(), sources.next()) {
        (Some(one), None) => Some(SizeSource::Like(one)),
        _ => None,
    }
}

/// Works out channels, height and width of every image tensor from the fixed input, in node order
/// (ONNX nodes are topologically sorted).
fn shapes(graph: &GraphProto, input: &str, side: i64) -> HashMap<String, Shape> {
    let initializers: HashMap<&str, &TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let producer: HashMap<&str, usize> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let mut known = HashMap::from([(
        input.to_owned(),
        Shape {
            channels: 3,
            height: side,
            width: side,
        },
    )]);
    // Files need not list nodes in order (IS-Net's does not): pass until nothing new is learnt.
    loop {
        let learnt = known.len();
        for node in &graph.node {
            learn(node, &initializers, &producer, graph, &mut known);
        }
        if known.len() == learnt {
            return known;
        }
    }
}

/// Adds the shape of `node`'s output when its inputs' shapes are known.
fn learn(
    node: &NodeProto,
    initializers: &HashMap<&str, &TensorProto>,
    producer: &HashMap<&str, usize>,
    graph: &GraphProto,
    known: &mut HashMap<String, Shape>,
) {
    if node.output.first().is_none_or(|o| known.contains_key(o)) {
        return;
    }
    {
        let first = node.input.first().and_then(|i| known.get(i)).copied();
        let out = match (node.op_type.as_str(), first) {
            ("Conv", Some(x)) => node
                .input
                .get(1)
                .and_then(|w| initializers.get(w.as_str()))
                .filter(|w| w.dims.len() == 4)
                .and_then(|w| {
                    let kernel = ints(node, "kernel_shape").unwrap_or_else(|| w.dims[2..].to_vec());
                    windowed(node, x, w.dims[0], &kernel)
                }),
            ("MaxPool" | "AveragePool", Some(x)) => {
                ints(node, "kernel_shape").and_then(|k| windowed(node, x, x.channels, &k))
            }
            (
                "Relu" | "Sigmoid" | "Cast" | "Identity" | "Clip" | "BatchNormalization" | "Add"
                | "Mul" | "Sub" | "Div",
                Some(x),
            ) => Some(x),
            ("Concat", Some(x)) if attr(node, "axis").is_some_and(|a| a.i == 1) => node
                .input
                .iter()
                .map(|i| known.get(i).map(|s| s.channels))
                .sum::<Option<i64>>()
                .map(|channels| Shape { channels, ..x }),
            ("Resize", Some(x)) => match size_source(graph, producer, node) {
                Some(SizeSource::Like(target)) => known.get(&target).map(|t| Shape {
                    channels: x.channels,
                    ..*t
                }),
                Some(SizeSource::Fixed(height, width)) => Some(Shape {
                    channels: x.channels,
                    height,
                    width,
                }),
                None => None,
            },
            _ => None,
        };
        if let (Some(shape), Some(name)) = (out, node.output.first()) {
            known.insert(name.clone(), shape);
        }
    }
}

fn int_attr(name: &str, value: i64) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.to_owned();
    a.type_ = AttributeType::INT.into();
    a.i = value;
    a
}

fn ints_attr(name: &str, values: &[i64]) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.to_owned();
    a.type_ = AttributeType::INTS.into();
    a.ints = values.to_vec();
    a
}

fn text_attr(name: &str, value: &str) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.to_owned();
    a.type_ = AttributeType::STRING.into();
    a.s = value.as_bytes().to_vec();
    a
}

fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    output: &str,
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.to_owned();
    n.name = name.to_owned();
    n.input = inputs.iter().map(|s| (*s).to_owned()).collect();
    n.output = vec![output.to_owned()];
    n.attribute = attrs;
    n
}

/// The weights `[4C, C, 3, 3]`: for each channel, one 3×3 filter per output phase `(dy, dx)`, in
/// DepthToSpace's CRD order (`4c + 2dy + dx`), reading only its own channel. A dense convolution
/// with zeros off the diagonal, not a grouped one: cuDNN runs grouped convolutions channels-last
/// through a generic engine of hundreds of launches (measured: 2.10 → 2.64 ms for u2netp at
/// 320 px), while the dense form stays on its tensor-core kernels.
pub(super) fn phase_weights(channels: i64) -> Vec<f32> {
    const TAPS: [[f32; 3]; 2] = [[0.25, 0.75, 0.0], [0.0, 0.75, 0.25]];
    let mut one = Vec::with_capacity(36);
    for vertical in &TAPS {
        for horizontal in &TAPS {
            for v in vertical {
                one.extend(horizontal.iter().map(|h| v * h));
            }
        }
    }
    let c = usize::try_from(channels).unwrap_or(0);
    let mut out = vec![0.0; 4 * c * c * 9];
    for channel in 0..c {
        for phase in 0..4 {
            let at = ((4 * channel + phase) * c + channel) * 9;
            out[at..at + 9].copy_from_slice(&one[phase * 9..phase * 9 + 9]);
        }
    }
    out
}

/// Replaces each bilinear half-pixel Resize that doubles height and width with Pad → Conv →
/// DepthToSpace, its weights in float16 when `half` (the graph's float type), else float32.
/// Returns how many were replaced.
pub(super) fn rewrite(graph: &mut GraphProto, input: &str, side: i64, half: bool) -> usize {
    let known = shapes(graph, input, side);
    let mut nodes = Vec::with_capacity(graph.node.len());
    let mut added = Vec::new();
    let mut count = 0;
    for resize in std::mem::take(&mut graph.node) {
        let doubling = (resize.op_type == "Resize")
            .then(|| {
                let x = known.get(resize.input.first()?)?;
                let y = known.get(resize.output.first()?)?;
                let linear = text(&resize, "mode").as_deref() == Some("linear");
                let half_pixel = matches!(
                    text(&resize, "coordinate_transformation_mode").as_deref(),
                    Some("half_pixel" | "pytorch_half_pixel")
                );
                (linear && half_pixel && y.height == 2 * x.height && y.width == 2 * x.width)
                    .then_some(x.channels)
            })
            .flatten();
        let Some(channels) = doubling else {
            nodes.push(resize);
            continue;
        };
        let (x, y) = (resize.input[0].clone(), resize.output[0].clone());
        let base = format!("cutout_up2_{count}");
        let (pads, weights, padded, phases) = (
            format!("{base}_pads"),
            format!("{base}_weights"),
            format!("{base}_padded"),
            format!("{base}_phases"),
        );
        let mut pad_values = TensorProto::new();
        pad_values.name = pads.clone();
        pad_values.data_type = DataType::INT64 as i32;
        pad_values.dims = vec![8];
        pad_values.int64_data = vec![0, 0, 1, 1, 0, 0, 1, 1];
        let mut weight_values = TensorProto::new();
        weight_values.name = weights.clone();
        weight_values.dims = vec![4 * channels, channels, 3, 3];
        let values = phase_weights(channels);
        if half {
            weight_values.data_type = DataType::FLOAT16 as i32;
            weight_values.raw_data = values
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect();
        } else {
            weight_values.data_type = DataType::FLOAT as i32;
            weight_values.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        }
        added.extend([pad_values, weight_values]);
        nodes.push(node(
            "Pad",
            &format!("{base}_pad"),
            &[&x, &pads],
            &padded,
            vec![text_attr("mode", "edge")],
        ));
        nodes.push(node(
            "Conv",
            &format!("{base}_conv"),
            &[&padded, &weights],
            &phases,
            vec![ints_attr("kernel_shape", &[3, 3])],
        ));
        nodes.push(node(
            "DepthToSpace",
            &format!("{base}_interleave"),
            &[&phases],
            &y,
            vec![int_attr("blocksize", 2), text_attr("mode", "CRD")],
        ));
        count += 1;
    }
    graph.node = nodes;
    graph.initializer.extend(added);
    count
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Bilinear half-pixel 2× upsampling of one row, the way ONNX's Resize defines it.
    fn resize_row(row: &[f32]) -> Vec<f32> {
        let n = row.len();
        (0..2 * n)
            .map(|o| {
                let x = ((o as f32 + 0.5) / 2.0 - 0.5).max(0.0);
                let i = x.floor() as usize;
                let t = x - i as f32;
                let next = (i + 1).min(n - 1);
                row[i] * (1.0 - t) + row[next] * t
            })
            .collect()
    }

    /// The rewrite's arithmetic on one row: edge pad, the 3-tap phase filters, interleave.
    fn phases_row(row: &[f32]) -> Vec<f32> {
        let n = row.len();
        let at = |i: isize| row[i.clamp(0, n as isize - 1) as usize];
        let w = phase_weights(1);
        // Row 1 of the 3×3 filter of phase (dy, 0) · its centre column weight 0.75 gives the
        // vertical taps; use the filters' vertical profile through the centre column.
        let taps = |dy: usize| [0, 1, 2].map(|ky| w[(dy * 2) * 9 + ky * 3 + 1] / 0.75);
        (0..2 * n)
            .map(|o| {
                let (i, dy) = ((o / 2) as isize, o % 2);
                let t = taps(dy);
                t[0] * at(i - 1) + t[1] * at(i) + t[2] * at(i + 1)
            })
            .collect()
    }

    #[test]
    fn the_phase_filters_are_bilinear_half_pixel_upsampling_with_clamped_edges() {
        for row in [vec![1.0, 5.0, -2.0, 3.5, 0.0], vec![7.0], vec![0.5, 0.25]] {
            let expected = resize_row(&row);
            let got = phases_row(&row);
            for (e, g) in expected.iter().zip(&got) {
                assert!((e - g).abs() < 1e-6, "{row:?}: {expected:?} vs {got:?}");
            }
        }
        // Each phase filter sums to one (a constant image stays constant).
        let w = phase_weights(2);
        assert_eq!(w.len(), 8 * 2 * 9);
        for (output, filters) in w.chunks(2 * 9).enumerate() {
            assert!((filters.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            // Output channel `4c + phase` reads input channel `c` only.
            let other = if output / 4 == 0 { 1 } else { 0 };
            assert!(filters[other * 9..other * 9 + 9].iter().all(|&v| v == 0.0));
        }
    }

    #[test]
    fn window_sides_follow_onnx() {
        assert_eq!(window_out(320, 3, 1, 2, 1, false), 320);
        assert_eq!(window_out(5, 2, 2, 0, 1, true), 3);
        assert_eq!(window_out(5, 2, 2, 0, 1, false), 2);
        assert_eq!(window_out(20, 3, 1, 4, 2, false), 20);
    }
}
