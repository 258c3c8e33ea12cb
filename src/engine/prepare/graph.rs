//! The graph edit behind a prepared model: the input fixed at `[1, 3, side, side]`, only the mask
//! output kept (and the nodes that only fed the others dropped), and the weights converted to the
//! precision asked for, with Casts at the float32 edges.

use std::collections::HashSet;

use onnx_protobuf::{
    Message as _, ModelProto, tensor_proto::DataType, tensor_shape_proto::dimension,
};

use super::{
    Fp16Source, PrepareStats, TransformError,
    island::{producers, split_islands},
    precision::{convert_to_f16, stored_precision, upcast_to_f32},
};
use crate::engine::providers::Precision;

/// What a prepared graph is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// Fixed input side in pixels.
    pub side_px: u32,
    /// Network precision.
    pub precision: Precision,
    /// For FP16 of a model stored in FP16: as stored, or from its FP32 twin.
    pub fp16_source: Fp16Source,
    /// Index of the output to keep.
    pub output_index: usize,
    /// Pairs of convolutions (counted in graph order) kept in FP32 with every node between them,
    /// in an FP16 graph converted by cutout; the second one reads its input in two parts that
    /// TF32 convolutions keep exact (`island::split_input`).
    pub fp32_islands: &'a [[usize; 2]],
    /// An FP32 graph for a provider that runs FP32 convolutions in TF32 (CUDA): the islands'
    /// last convolutions read their inputs in two parts too.
    pub split_for_tf32: bool,
    /// For a provider with no bfloat16 casts (WebGPU), which also runs FP32 convolutions in full
    /// FP32: an FP16 graph's islands are kept in FP32 without the two-part split.
    pub without_bf16: bool,
}

/// Derives the prepared model bytes from the source model bytes.
pub fn transform(bytes: &[u8], target: Target<'_>) -> Result<Vec<u8>, TransformError> {
    transform_with_stats(bytes, target).map(|(b, _)| b)
}

/// [`transform`], also returning what changed.
pub fn transform_with_stats(
    bytes: &[u8],
    target: Target<'_>,
) -> Result<(Vec<u8>, PrepareStats), TransformError> {
    let mut model =
        ModelProto::parse_from_bytes(bytes).map_err(|e| TransformError::Parse(e.to_string()))?;
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| TransformError::Unsupported("it has no graph".to_owned()))?;
    let mut stats = PrepareStats {
        nodes_before: graph.node.len(),
        stored: stored_precision(graph),
        ..PrepareStats::default()
    };

    // The one real input (initializers may also be listed as inputs in old IR versions).
    let initializer_names: HashSet<String> =
        graph.initializer.iter().map(|t| t.name.clone()).collect();
    let inputs: Vec<usize> = (0..graph.input.len())
        .filter(|&i| !initializer_names.contains(&graph.input[i].name))
        .collect();
    let [input_pos] = inputs[..] else {
        return Err(TransformError::Unsupported(format!(
            "it has {} inputs; cutout drives models with one image input",
            inputs.len()
        )));
    };
    if target.output_index >= graph.output.len() {
        return Err(TransformError::Unsupported(format!(
            "it has no output #{}",
            target.output_index
        )));
    }
    let side = i64::from(target.side_px);
    fix_dims(&mut graph.input[input_pos], &[1, 3, side, side])?;
    let mut output = graph.output[target.output_index].clone();
    fix_dims(&mut output, &[1, 1, side, side])
        .or_else(|_| fix_dims(&mut output, &[1, side, side]))?;
    graph.output = vec![output];
    // Intermediate shapes (and, in an FP16 file, types) are re-inferred by ONNX Runtime.
    graph.value_info.clear();

    prune_unused(graph);
    let keep_as_stored =
        stats.stored == Precision::Fp16 && target.fp16_source == Fp16Source::Stored;
    match (stats.stored, target.precision) {
        (Precision::Fp32, Precision::Fp32) if target.split_for_tf32 => {
            split_islands(graph, target.fp32_islands)?;
        }
        (Precision::Fp32, Precision::Fp32) => {}
        (Precision::Fp16, Precision::Fp16) if keep_as_stored => {}
        (Precision::Fp16, Precision::Fp32) => {
            upcast_to_f32(graph, &mut stats)?;
            if target.split_for_tf32 {
                split_islands(graph, target.fp32_islands)?;
            }
        }
        (stored, Precision::Fp16) => {
            if stored == Precision::Fp16 {
                upcast_to_f32(graph, &mut stats)?;
            }
            let split = !target.without_bf16;
            convert_to_f16(graph, input_pos, target.fp32_islands, split, &mut stats)?;
        }
    }
    stats.nodes_after = graph.node.len();
    model.producer_name = format!(
        "cutout {} (prepared from {})",
        env!("CARGO_PKG_VERSION"),
        model.producer_name
    );
    let bytes = model
        .write_to_bytes()
        .map_err(|e| TransformError::Parse(e.to_string()))?;
    Ok((bytes, stats))
}

fn fix_dims(value: &mut onnx_protobuf::ValueInfoProto, dims: &[i64]) -> Result<(), TransformError> {
    let name = value.name.clone();
    let tensor = match value.type_.as_mut().and_then(|t| t.value.as_mut()) {
        Some(onnx_protobuf::type_proto::Value::TensorType(t)) => t,
        _ => {
            return Err(TransformError::Unsupported(format!(
                "`{name}` is not a tensor"
            )));
        }
    };
    if tensor.elem_type != DataType::FLOAT as i32 {
        return Err(TransformError::Unsupported(format!(
            "`{name}` is not float32"
        )));
    }
    let shape = tensor.shape.mut_or_insert_default();
    if !shape.dim.is_empty() && shape.dim.len() != dims.len() {
        return Err(TransformError::Unsupported(format!(
            "`{name}` has {} dimensions, expected {}",
            shape.dim.len(),
            dims.len()
        )));
    }
    for (pos, &size) in dims.iter().enumerate() {
        if let Some(existing) = shape.dim.get(pos).and_then(|d| match d.value {
            Some(dimension::Value::DimValue(v)) => Some(v),
            _ => None,
        }) && existing != size
        {
            return Err(TransformError::Unsupported(format!(
                "`{name}` is fixed at {existing} in dimension {pos}; cannot make it {size}"
            )));
        }
    }
    shape.dim = dims
        .iter()
        .map(|&v| {
            let mut d = onnx_protobuf::tensor_shape_proto::Dimension::new();
            d.set_dim_value(v);
            d
        })
        .collect();
    Ok(())
}

/// Drops nodes whose outputs no kept graph output depends on, and initializers nobody reads.
fn prune_unused(graph: &mut onnx_protobuf::GraphProto) {
    let producer = producers(graph);
    let mut needed_nodes = HashSet::new();
    let mut stack: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    let mut seen: HashSet<&str> = HashSet::new();
    while let Some(name) = stack.pop() {
        if !seen.insert(name) {
            continue;
        }
        if let Some(&i) = producer.get(name) {
            needed_nodes.insert(i);
            stack.extend(
                graph.node[i]
                    .input
                    .iter()
                    .map(String::as_str)
                    .filter(|s| !s.is_empty()),
            );
        }
    }
    let used: HashSet<String> = seen.iter().map(|s| (*s).to_owned()).collect();
    let mut index = 0;
    graph.node.retain(|_| {
        let keep = needed_nodes.contains(&index);
        index += 1;
        keep
    });
    graph.initializer.retain(|t| used.contains(&t.name));
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use onnx_protobuf::TensorProto;

    use super::{
        super::{
            fixtures::{
                F16, F32, cast, cast_targets, dims, encode, initializer, node, target, value,
            },
            precision::{cast_target, element_types},
        },
        *,
    };

    /// A tiny model: input [N,3,H,W] → Conv(1×1, 3→1) → Sigmoid → "mask", plus a side output.
    fn tiny_model() -> Vec<u8> {
        let mut weight = TensorProto::new();
        weight.name = "w".to_owned();
        weight.dims = vec![1, 3, 1, 1];
        weight.data_type = DataType::FLOAT as i32;
        weight.float_data = vec![0.5, -0.25, 1.0];
        let mut graph = onnx_protobuf::GraphProto::new();
        graph.node = vec![
            node("Conv", &["x", "w"], "c"),
            node("Sigmoid", &["c"], "mask"),
            node("Relu", &["c"], "side"),
        ];
        graph.initializer = vec![weight];
        graph.input = vec![value("x", &[None, Some(3), None, None])];
        graph.output = vec![
            value("mask", &[None, Some(1), None, None]),
            value("side", &[None, Some(1), None, None]),
        ];
        encode(graph)
    }

    /// Shaped like IS-Net as shipped: FP16 weights, a Resize kept in FP32 behind Casts, FP32 input
    /// and output.
    fn tiny_fp16_model() -> Vec<u8> {
        let mut weight = TensorProto::new();
        weight.name = "w".to_owned();
        weight.dims = vec![1, 3, 1, 1];
        weight.data_type = DataType::FLOAT16 as i32;
        weight.raw_data = [0.5f32, -0.25, 1.0]
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect();
        let mut scales = TensorProto::new();
        scales.name = "scales".to_owned();
        scales.dims = vec![4];
        scales.data_type = DataType::FLOAT as i32;
        scales.float_data = vec![1.0, 1.0, 1.0, 1.0];
        let mut graph = onnx_protobuf::GraphProto::new();
        graph.node = vec![
            cast("x", "x16", DataType::FLOAT16),
            node("Conv", &["x16", "w"], "c"),
            cast("c", "c32", DataType::FLOAT),
            node("Resize", &["c32", "", "scales"], "r32"),
            cast("r32", "r", DataType::FLOAT16),
            node("Sigmoid", &["r"], "s"),
            cast("s", "mask", DataType::FLOAT),
        ];
        graph.initializer = vec![weight, scales];
        graph.input = vec![value("x", &[Some(1), Some(3), None, None])];
        graph.output = vec![value("mask", &[Some(1), Some(1), None, None])];
        encode(graph)
    }

    #[test]
    fn a_model_stored_in_fp16_gets_an_fp32_twin() {
        let (bytes, stats) =
            transform_with_stats(&tiny_fp16_model(), target(64, Precision::Fp32, 0))
                .expect("prepare");
        assert_eq!(stats.stored, Precision::Fp16);
        assert_eq!(stats.tensors_to_fp32, 1);
        let model = ModelProto::parse_from_bytes(&bytes).expect("parse");
        let graph = model.graph.as_ref().expect("graph");
        let w = initializer(graph, "w");
        assert_eq!(w.data_type, DataType::FLOAT as i32);
        let values: Vec<f32> = w
            .raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(values, vec![0.5, -0.25, 1.0]);
        assert_eq!(
            cast_targets(graph),
            vec![F32; 4],
            "every Cast is to float32 now"
        );
        assert_eq!(dims(&graph.input[0]), vec![1, 3, 64, 64]);
    }

    #[test]
    fn fp16_of_a_model_stored_in_fp16_is_as_stored_or_from_its_twin() {
        let (bytes, stats) =
            transform_with_stats(&tiny_fp16_model(), target(64, Precision::Fp16, 0))
                .expect("prepare");
        assert_eq!((stats.tensors_to_fp16, stats.tensors_to_fp32), (0, 0));
        let model = ModelProto::parse_from_bytes(&bytes).expect("parse");
        let graph = model.graph.as_ref().expect("graph");
        assert_eq!(
            cast_targets(graph),
            vec![F16, F32, F16, F32],
            "islands kept"
        );

        let twin = Target {
            fp16_source: Fp16Source::Twin,
            ..target(64, Precision::Fp16, 0)
        };
        let (bytes, stats) = transform_with_stats(&tiny_fp16_model(), twin).expect("prepare");
        assert_eq!((stats.tensors_to_fp32, stats.tensors_to_fp16), (1, 1));
        let model = ModelProto::parse_from_bytes(&bytes).expect("parse");
        let graph = model.graph.as_ref().expect("graph");
        // Our Cast in, the model's four (now float16 → float16), our Cast out.
        assert_eq!(cast_targets(graph), vec![F16, F16, F16, F16, F16, F32]);
        assert_eq!(initializer(graph, "w").data_type, DataType::FLOAT16 as i32);
        assert_eq!(
            initializer(graph, "scales").data_type,
            DataType::FLOAT as i32,
            "Resize scales must stay float32"
        );
        let resize = graph
            .node
            .iter()
            .find(|n| n.op_type == "Resize")
            .expect("resize");
        let feeding = graph
            .node
            .iter()
            .find(|n| n.output[0] == resize.input[0])
            .expect("producer");
        assert_eq!(cast_target(feeding), Some(F16), "Resize runs in float16");
    }

    #[test]
    fn types_follow_nodes_listed_out_of_order() {
        let mut graph = onnx_protobuf::GraphProto::new();
        // The Cast consumes what the Sigmoid listed after it produces, as FP16 converters
        // append their Casts at the end of the node list.
        graph.node = vec![
            cast("s", "mask", DataType::FLOAT),
            node("Sigmoid", &["c"], "s"),
            node("Shape", &["x"], "shape"),
            cast("x", "c", DataType::FLOAT16),
        ];
        graph.input = vec![value("x", &[Some(1), Some(3), None, None])];
        let types = element_types(&graph);
        assert_eq!(types["s"], DataType::FLOAT16 as i32);
        assert_eq!(types["mask"], DataType::FLOAT as i32);
        assert_eq!(types["shape"], DataType::INT64 as i32);
    }

    #[test]
    fn casts_from_integers_inside_the_graph_are_refused_for_fp16() {
        let mut graph = onnx_protobuf::GraphProto::new();
        graph.node = vec![
            node("Shape", &["x"], "shape"),
            cast("shape", "shape_f", DataType::FLOAT),
            node("Mul", &["x", "shape_f"], "mask"),
        ];
        graph.input = vec![value("x", &[Some(1), Some(3), None, None])];
        graph.output = vec![value("mask", &[Some(1), Some(1), None, None])];
        let bytes = encode(graph);
        assert!(transform(&bytes, target(8, Precision::Fp32, 0)).is_ok());
        let err = transform(&bytes, target(8, Precision::Fp16, 0)).expect_err("refused");
        assert!(err.to_string().contains("not float32"), "{err}");
    }

    #[test]
    fn fp32_fixes_the_input_and_keeps_only_the_mask() {
        let (bytes, stats) =
            transform_with_stats(&tiny_model(), target(64, Precision::Fp32, 0)).expect("prepare");
        let model = ModelProto::parse_from_bytes(&bytes).expect("parse");
        let graph = model.graph.as_ref().expect("graph");
        assert_eq!(dims(&graph.input[0]), vec![1, 3, 64, 64]);
        assert_eq!(graph.output.len(), 1);
        assert_eq!(graph.output[0].name, "mask");
        assert_eq!(dims(&graph.output[0]), vec![1, 1, 64, 64]);
        assert_eq!(
            (stats.nodes_before, stats.nodes_after),
            (3, 2),
            "the side output's Relu is dropped"
        );
        assert_eq!(graph.initializer[0].float_data, vec![0.5, -0.25, 1.0]);
    }

    #[test]
    fn fp16_converts_weights_and_casts_at_the_edges() {
        let (bytes, stats) =
            transform_with_stats(&tiny_model(), target(32, Precision::Fp16, 0)).expect("prepare");
        assert_eq!(stats.tensors_to_fp16, 1);
        let model = ModelProto::parse_from_bytes(&bytes).expect("parse");
        let graph = model.graph.as_ref().expect("graph");
        let w = &graph.initializer[0];
        assert_eq!(w.data_type, DataType::FLOAT16 as i32);
        let halves: Vec<f32> = w
            .raw_data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect();
        assert_eq!(halves, vec![0.5, -0.25, 1.0]);
        let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, vec!["Cast", "Conv", "Sigmoid", "Cast"]);
        assert_eq!(graph.node[0].input, vec!["x"]);
        assert_eq!(graph.node[1].input[0], "x__fp16");
        assert_eq!(graph.node[3].output, vec!["mask"]);
        // Graph input and output stay float32.
        assert_eq!(
            graph.input[0].type_.tensor_type().elem_type,
            DataType::FLOAT as i32
        );
        assert_eq!(
            graph.output[0].type_.tensor_type().elem_type,
            DataType::FLOAT as i32
        );
    }

    #[test]
    fn garbage_is_a_parse_error() {
        assert!(matches!(
            transform(b"not a model at all", target(320, Precision::Fp16, 0)),
            Err(TransformError::Parse(_))
        ));
    }

    #[test]
    fn out_of_range_output_is_refused() {
        assert!(matches!(
            transform(&tiny_model(), target(320, Precision::Fp32, 5)),
            Err(TransformError::Unsupported(_))
        ));
    }
}
