//! The graph edit behind a prepared model: the input fixed at `[1, 3, side, side]`, only the mask
//! output kept (and the nodes that only fed the others dropped), and the weights converted to the
//! precision asked for, with Casts at the float32 edges.

use std::collections::{HashMap, HashSet};

use onnx_protobuf::{
    Message as _, ModelProto, tensor_proto::DataType, tensor_shape_proto::dimension,
};

use super::{
    Fp16Source, PrepareStats, TransformError,
    island::split_islands,
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
        (Precision::Fp32, Precision::Fp16) => {
            convert_to_f16(graph, input_pos, target.fp32_islands, &mut stats)?;
        }
        (Precision::Fp16, Precision::Fp16) => {
            upcast_to_f32(graph, &mut stats)?;
            convert_to_f16(graph, input_pos, target.fp32_islands, &mut stats)?;
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

/// Which node (index) makes each tensor.
pub(super) fn producers(graph: &onnx_protobuf::GraphProto) -> HashMap<&str, usize> {
    graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect()
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
    use onnx_protobuf::{NodeProto, TensorProto};

    use super::{
        super::precision::{cast_node, cast_target, element_types},
        *,
    };

    fn value(name: &str, dims: &[Option<i64>]) -> onnx_protobuf::ValueInfoProto {
        use onnx_protobuf::{TypeProto, ValueInfoProto, type_proto};
        let value = |name: &str, dims: &[Option<i64>]| {
            let mut shape = onnx_protobuf::TensorShapeProto::new();
            shape.dim = dims
                .iter()
                .map(|d| {
                    let mut dim = onnx_protobuf::tensor_shape_proto::Dimension::new();
                    match d {
                        Some(v) => dim.set_dim_value(*v),
                        None => dim.set_dim_param("H".to_owned()),
                    }
                    dim
                })
                .collect();
            let mut tensor = type_proto::Tensor::new();
            tensor.elem_type = DataType::FLOAT as i32;
            tensor.shape = Some(shape).into();
            let mut ty = TypeProto::new();
            ty.value = Some(type_proto::Value::TensorType(tensor));
            let mut v = ValueInfoProto::new();
            v.name = name.to_owned();
            v.type_ = Some(ty).into();
            v
        };
        value(name, dims)
    }

    fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
        let mut n = NodeProto::new();
        op.clone_into(&mut n.op_type);
        n.name = format!("{op}_{output}");
        n.input = inputs.iter().map(|s| (*s).to_owned()).collect();
        n.output = vec![output.to_owned()];
        n
    }

    fn encode(graph: onnx_protobuf::GraphProto) -> Vec<u8> {
        let mut model = ModelProto::new();
        model.ir_version = 8;
        let mut opset = onnx_protobuf::OperatorSetIdProto::new();
        opset.version = 17;
        model.opset_import = vec![opset];
        model.graph = Some(graph).into();
        model.write_to_bytes().expect("encode")
    }

    fn target(side_px: u32, precision: Precision, output_index: usize) -> Target<'static> {
        Target {
            side_px,
            precision,
            fp16_source: Fp16Source::Stored,
            output_index,
            fp32_islands: &[],
            split_for_tf32: false,
        }
    }

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

    fn cast(input: &str, output: &str, to: DataType) -> NodeProto {
        let mut n = cast_node(input, output, to);
        n.name = format!("Cast_{output}");
        n
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

    fn cast_targets(graph: &onnx_protobuf::GraphProto) -> Vec<i64> {
        graph.node.iter().filter_map(cast_target).collect()
    }

    fn initializer<'g>(graph: &'g onnx_protobuf::GraphProto, name: &str) -> &'g TensorProto {
        graph
            .initializer
            .iter()
            .find(|t| t.name == name)
            .expect("initializer")
    }

    const F32: i64 = DataType::FLOAT as i64;
    const F16: i64 = DataType::FLOAT16 as i64;

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

    fn dims(v: &onnx_protobuf::ValueInfoProto) -> Vec<i64> {
        v.type_
            .tensor_type()
            .shape
            .dim
            .iter()
            .map(onnx_protobuf::tensor_shape_proto::Dimension::dim_value)
            .collect()
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

    /// u2netp's shape in small: conv0 -> Relu -> Resize -> Concat (with x) -> conv1 -> Relu ->
    /// Add (conv0's Relu) -> Add (a bias the convolutions share) -> Sigmoid.
    fn island_model() -> Vec<u8> {
        let tensor = |name: &str, dims: Vec<i64>, values: Vec<f32>| {
            let mut t = TensorProto::new();
            t.name = name.to_owned();
            t.dims = dims;
            t.data_type = DataType::FLOAT as i32;
            t.float_data = values;
            t
        };
        let mut graph = onnx_protobuf::GraphProto::new();
        graph.node = vec![
            node("Conv", &["x", "w0", "b"], "c0"),
            node("Relu", &["c0"], "r0"),
            node("Resize", &["r0", "", "scales"], "up"),
            node("Concat", &["up", "x"], "cat"),
            node("Conv", &["cat", "w1", "b"], "c1"),
            node("Relu", &["c1"], "r1"),
            node("Add", &["r1", "r0"], "sum"),
            node("Add", &["sum", "b"], "biased"),
            node("Sigmoid", &["biased"], "mask"),
        ];
        graph.node[3].attribute = vec![{
            let mut a = onnx_protobuf::AttributeProto::new();
            a.name = "axis".to_owned();
            a.type_ = onnx_protobuf::attribute_proto::AttributeType::INT.into();
            a.i = 1;
            a
        }];
        graph.initializer = vec![
            tensor("w0", vec![1, 3, 1, 1], vec![0.5, -0.25, 1.0]),
            tensor("w1", vec![1, 4, 1, 1], vec![0.1, 0.2, 0.3, 0.4]),
            tensor("b", vec![1], vec![0.125]),
            tensor("scales", vec![4], vec![1.0; 4]),
        ];
        graph.input = vec![value("x", &[Some(1), Some(3), None, None])];
        graph.output = vec![value("mask", &[Some(1), Some(1), None, None])];
        encode(graph)
    }

    #[test]
    fn an_fp32_island_keeps_its_path_in_float32_with_casts_at_its_borders() {
        let islands = [[0, 1]];
        let target = Target {
            fp32_islands: &islands,
            ..target(8, Precision::Fp16, 0)
        };
        let (bytes, stats) = transform_with_stats(&island_model(), target).expect("prepare");
        // conv0, relu, Resize, Concat, conv1: the Relu after conv1 is not between them.
        assert_eq!(stats.fp32_island_nodes, 5);
        let model = ModelProto::parse_from_bytes(&bytes).expect("parse");
        let graph = model.graph.as_ref().expect("graph");
        let types = element_types(graph);
        let producer_of = |name: &str| {
            graph
                .node
                .iter()
                .find(|n| n.output.iter().any(|o| o == name))
                .expect("producer")
        };
        let float = DataType::FLOAT as i32;
        let half = DataType::FLOAT16 as i32;
        // Inside: float32 all the way, weights included; the shared bias has a float32 copy.
        for op in ["Conv", "Relu", "Resize", "Concat"] {
            let inside = graph
                .node
                .iter()
                .filter(|n| n.op_type == op && !n.input[0].starts_with("r1"))
                .find(|n| types.get(&n.input[0]) == Some(&float));
            assert!(inside.is_some(), "{op} runs in float32 inside the island");
        }
        assert_eq!(initializer(graph, "w0").data_type, float);
        assert_eq!(initializer(graph, "w1").data_type, float);
        assert_eq!(initializer(graph, "b__fp32").data_type, float);
        assert_eq!(initializer(graph, "scales").data_type, float);
        // Outside: float16; the tensors entering and leaving pass through Casts.
        assert_eq!(initializer(graph, "b").data_type, half);
        assert_eq!(types["r1"], half, "the Relu after the island is float16");
        assert_eq!(types["sum"], half);
        let add = graph
            .node
            .iter()
            .find(|n| n.op_type == "Add" && n.output[0] == "sum")
            .expect("add");
        assert_eq!(cast_target(producer_of(&add.input[1])), Some(F16));
        let concat = graph
            .node
            .iter()
            .find(|n| n.op_type == "Concat")
            .expect("concat");
        assert_eq!(cast_target(producer_of(&concat.input[1])), Some(F32));
        assert_eq!(types[&concat.input[1]], float);
        assert_eq!(
            stats.island_casts, 3,
            "x in (one Cast for both readers), c1 and r0 out"
        );
        assert_split(graph, "cat", "c1");
    }

    /// Convolution `y = Conv(x)` became `Conv(hi) + Conv(lo)` with `hi` = `x` through bfloat16
    /// and `lo` = `x - hi`, the bias added once, all in float32.
    fn assert_split(graph: &onnx_protobuf::GraphProto, x: &str, y: &str) {
        let producer_of = |name: &str| {
            graph
                .node
                .iter()
                .find(|n| n.output.iter().any(|o| o == name))
                .unwrap_or_else(|| panic!("nothing makes {name}"))
        };
        let add = producer_of(y);
        assert_eq!(add.op_type, "Add");
        let (high, low) = (producer_of(&add.input[0]), producer_of(&add.input[1]));
        assert_eq!(
            (high.op_type.as_str(), low.op_type.as_str()),
            ("Conv", "Conv")
        );
        assert_eq!(high.input.len(), 3, "the bias is added by one of them");
        assert_eq!(low.input.len(), 2);
        assert_eq!(high.input[1], low.input[1], "the same weights");
        let widen = producer_of(&high.input[0]);
        assert_eq!(cast_target(widen), Some(F32));
        let round = producer_of(&widen.input[0]);
        assert_eq!(cast_target(round), Some(DataType::BFLOAT16 as i64));
        let sub = producer_of(&low.input[0]);
        assert_eq!(sub.op_type, "Sub");
        assert_eq!(sub.input, vec![x.to_owned(), high.input[0].clone()]);
        assert_eq!(round.input[0], x);
        assert_eq!(
            graph.node.iter().filter(|n| n.op_type == "Conv").count(),
            3,
            "one convolution more"
        );
    }

    #[test]
    fn an_fp32_graph_for_tf32_splits_the_islands_last_input_and_nothing_else() {
        let islands = [[0, 1]];
        let split = Target {
            fp32_islands: &islands,
            split_for_tf32: true,
            ..target(8, Precision::Fp32, 0)
        };
        let (bytes, stats) = transform_with_stats(&island_model(), split).expect("prepare");
        assert_eq!((stats.fp32_island_nodes, stats.tensors_to_fp16), (0, 0));
        let model = ModelProto::parse_from_bytes(&bytes).expect("parse");
        let graph = model.graph.as_ref().expect("graph");
        assert_split(graph, "cat", "c1");
        assert!(
            graph
                .initializer
                .iter()
                .all(|t| t.data_type == DataType::FLOAT as i32),
            "an FP32 graph stays float32"
        );
        // Without the flag (the CPU provider's FP32 graph) the islands change nothing.
        let plain = Target {
            fp32_islands: &islands,
            ..target(8, Precision::Fp32, 0)
        };
        let (_, stats) = transform_with_stats(&island_model(), plain).expect("prepare");
        assert_eq!(stats.nodes_after, 9);
    }

    #[test]
    fn an_island_that_names_missing_or_unrelated_convolutions_is_refused() {
        for (islands, words) in [
            ([[0, 5]], "names convolution #5, and it has 2"),
            ([[1, 0]], "#0 does not use #1's output"),
        ] {
            let target = Target {
                fp32_islands: &islands,
                ..target(8, Precision::Fp16, 0)
            };
            let err = transform(&island_model(), target).expect_err("refused");
            assert!(err.to_string().contains(words), "{err}");
        }
        // FP32 graphs have no islands to make.
        let target = Target {
            fp32_islands: &[[0, 5]],
            ..target(8, Precision::Fp32, 0)
        };
        assert!(transform(&island_model(), target).is_ok());
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
