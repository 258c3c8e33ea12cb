//! Precision: which precision a graph stores its weights in, and converting them (FP32 → FP16
//! with Casts at the float32 edges, or an FP16 file back to its FP32 twin), keeping the tensors
//! that must stay float32 (Resize parameters, integer paths) as they are.

use std::collections::{HashMap, HashSet};

use onnx_protobuf::{NodeProto, TensorProto, tensor_proto::DataType};

use super::{
    PrepareStats, TransformError,
    island::{Island, cast_node, split_islands},
};
use crate::engine::providers::Precision;

/// The precision of a graph's weights: that of most initializers the convolutions and matrix
/// products read (other float tensors, Resize scales say, are float32 in any ONNX graph).
pub(super) fn stored_precision(graph: &onnx_protobuf::GraphProto) -> Precision {
    let weights: HashSet<&str> = graph
        .node
        .iter()
        .filter(|n| {
            matches!(
                n.op_type.as_str(),
                "Conv" | "ConvTranspose" | "Gemm" | "MatMul"
            )
        })
        .filter_map(|n| n.input.get(1).map(String::as_str))
        .collect();
    let count = |ty: DataType| {
        graph
            .initializer
            .iter()
            .filter(|t| t.data_type == ty as i32 && weights.contains(t.name.as_str()))
            .count()
    };
    if count(DataType::FLOAT16) > count(DataType::FLOAT) {
        Precision::Fp16
    } else {
        Precision::Fp32
    }
}

/// The value of a Cast node's `to` attribute.
pub(super) fn cast_target(node: &NodeProto) -> Option<i64> {
    (node.op_type == "Cast")
        .then(|| node.attribute.iter().find(|a| a.name == "to").map(|a| a.i))
        .flatten()
}

pub(super) fn set_cast_target(node: &mut NodeProto, to: DataType) {
    for attr in node.attribute.iter_mut().filter(|a| a.name == "to") {
        attr.i = to as i64;
    }
}

/// Element types of the graph's tensors, propagated forward from the inputs, initializers and
/// constants. Enough for the ops of segmentation networks: Cast gives its target, Shape and Size
/// give int64, comparisons give bool, and every other op gives the type of its first input. Nodes are not always listed in order (FP16 converters append their Casts at the end),
/// so passes repeat until nothing new is learnt.
pub(super) fn element_types(graph: &onnx_protobuf::GraphProto) -> HashMap<String, i32> {
    let mut types: HashMap<String, i32> = HashMap::new();
    for input in &graph.input {
        if let Some(onnx_protobuf::type_proto::Value::TensorType(t)) =
            input.type_.as_ref().and_then(|t| t.value.as_ref())
        {
            types.insert(input.name.clone(), t.elem_type);
        }
    }
    for t in &graph.initializer {
        types.insert(t.name.clone(), t.data_type);
    }
    let attribute_type = |node: &NodeProto| {
        node.attribute
            .iter()
            .find(|a| a.name == "value")
            .and_then(|a| a.t.as_ref())
            .map(|t| t.data_type)
    };
    for _ in 0..=graph.node.len() {
        let mut learnt = false;
        for node in &graph.node {
            if node.output.iter().all(|o| types.contains_key(o)) {
                continue;
            }
            let ty = match node.op_type.as_str() {
                "Cast" => cast_target(node).and_then(|to| i32::try_from(to).ok()),
                "Shape" | "Size" => Some(DataType::INT64 as i32),
                "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "Not" | "And"
                | "Or" | "Xor" => Some(DataType::BOOL as i32),
                "Constant" => attribute_type(node),
                "ConstantOfShape" => Some(attribute_type(node).unwrap_or(DataType::FLOAT as i32)),
                // The data input decides (a Resize's sizes are int64 whatever the data).
                _ => node.input.first().and_then(|i| types.get(i).copied()),
            };
            if let Some(ty) = ty {
                for output in &node.output {
                    types.insert(output.clone(), ty);
                }
                learnt = true;
            }
        }
        if !learnt {
            break;
        }
    }
    types
}

/// Parameters that ONNX requires in float32 whatever the data type (Resize roi and scales).
pub(super) fn resize_parameters(graph: &onnx_protobuf::GraphProto) -> HashSet<String> {
    graph
        .node
        .iter()
        .filter(|n| n.op_type == "Resize" || n.op_type == "Upsample")
        .flat_map(|n| n.input.iter().skip(1).cloned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The FP32 twin of a model stored in FP16: every float16 weight and constant becomes float32,
/// and every Cast to float16 a Cast to float32 (the islands' Casts become identities, which ONNX
/// Runtime removes).
pub(super) fn upcast_to_f32(
    graph: &mut onnx_protobuf::GraphProto,
    stats: &mut PrepareStats,
) -> Result<(), TransformError> {
    for tensor in &mut graph.initializer {
        stats.tensors_to_fp32 += usize::from(tensor_to_f32(tensor)?);
    }
    for node in &mut graph.node {
        if node.op_type == "Constant" {
            for attr in node.attribute.iter_mut().filter(|a| a.name == "value") {
                if let Some(t) = attr.t.as_mut() {
                    stats.tensors_to_fp32 += usize::from(tensor_to_f32(t)?);
                }
            }
        }
        if cast_target(node) == Some(DataType::FLOAT16 as i64) {
            set_cast_target(node, DataType::FLOAT);
            stats.casts_retargeted += 1;
        }
    }
    Ok(())
}

/// FP32 → FP16: every float weight and constant in float16 (Resize parameters stay float32, as
/// ONNX requires), Casts between floats retargeted to float16, and one Cast after the float32
/// input and one before the float32 output. The `islands` (pairs of convolutions, see
/// [`Island`]) and every node between them stay float32, with Casts at their borders; with
/// `split` their last convolutions read their inputs in two parts (see `island::split_input`).
pub(super) fn convert_to_f16(
    graph: &mut onnx_protobuf::GraphProto,
    input_pos: usize,
    islands: &[[usize; 2]],
    split: bool,
    stats: &mut PrepareStats,
) -> Result<(), TransformError> {
    let island = Island::plan(graph, islands)?;
    let keep_f32 = resize_parameters(graph);
    let types = element_types(graph);
    let float = DataType::FLOAT as i32;
    for tensor in graph
        .initializer
        .iter_mut()
        .filter(|t| !keep_f32.contains(&t.name) && !island.initializers.contains(&t.name))
    {
        stats.tensors_to_fp16 += usize::from(tensor_to_f16(tensor)?);
    }
    for (index, node) in graph.node.iter_mut().enumerate() {
        if island.nodes.contains(&index) {
            continue;
        }
        let feeds_parameters = node.output.iter().any(|o| keep_f32.contains(o));
        if node.op_type == "Constant" && !feeds_parameters {
            for attr in node.attribute.iter_mut().filter(|a| a.name == "value") {
                if let Some(t) = attr.t.as_mut() {
                    stats.tensors_to_fp16 += usize::from(tensor_to_f16(t)?);
                }
            }
        }
        if cast_target(node) == Some(DataType::FLOAT as i64) && !feeds_parameters {
            // A Cast between floats (an identity in FP32) stays on the data path: float16 now.
            // One from integers would put float32 values among float16 ones.
            let from = node.input.first().and_then(|i| types.get(i)).copied();
            if from != Some(float) {
                return Err(TransformError::Unsupported(format!(
                    "it casts a tensor that is not float32 to float32 inside the graph (node `{}`), \
                     which an FP16 conversion cannot follow",
                    node.name
                )));
            }
            set_cast_target(node, DataType::FLOAT16);
            stats.casts_retargeted += 1;
        }
    }
    stats.fp32_island_nodes = island.nodes.len();
    stats.island_casts = island.add_borders(graph, |name| {
        types.get(name) == Some(&float) && !keep_f32.contains(name)
    });
    if split {
        split_islands(graph, islands)?;
    }
    let input_name = graph.input[input_pos].name.clone();
    let output_name = graph.output[0].name.clone();
    let input_half = format!("{input_name}__fp16");
    let output_half = format!("{output_name}__fp16");
    for node in &mut graph.node {
        for name in node.input.iter_mut() {
            if *name == input_name {
                name.clone_from(&input_half);
            } else if *name == output_name {
                name.clone_from(&output_half);
            }
        }
        for name in node.output.iter_mut().filter(|n| **n == output_name) {
            name.clone_from(&output_half);
        }
    }
    graph
        .node
        .insert(0, cast_node(&input_name, &input_half, DataType::FLOAT16));
    graph
        .node
        .push(cast_node(&output_half, &output_name, DataType::FLOAT));
    Ok(())
}

/// Converts a float32 tensor to float16 in place; returns whether it was float32.
pub(super) fn tensor_to_f16(tensor: &mut TensorProto) -> Result<bool, TransformError> {
    convert_tensor(tensor, DataType::FLOAT, DataType::FLOAT16)
}

/// Converts a float16 tensor to float32 in place; returns whether it was float16.
pub(super) fn tensor_to_f32(tensor: &mut TensorProto) -> Result<bool, TransformError> {
    convert_tensor(tensor, DataType::FLOAT16, DataType::FLOAT)
}

/// Rewrites a tensor of type `from` (float32 or float16) as `to`, little-endian raw data;
/// returns whether it was of type `from`.
pub(super) fn convert_tensor(
    tensor: &mut TensorProto,
    from: DataType,
    to: DataType,
) -> Result<bool, TransformError> {
    if tensor.data_type != from as i32 {
        return Ok(false);
    }
    if !tensor.external_data.is_empty() {
        return Err(TransformError::Unsupported(format!(
            "tensor `{}` keeps its data in an external file",
            tensor.name
        )));
    }
    let raw = std::mem::take(&mut tensor.raw_data);
    // Without raw data, float32 values live in float_data and float16 bit patterns, one per
    // element, in int32_data.
    let values: Vec<f32> = match (from, raw.is_empty()) {
        (DataType::FLOAT16, false) => raw
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        (DataType::FLOAT16, true) => tensor
            .int32_data
            .iter()
            .map(|&bits| half::f16::from_bits(bits as u16).to_f32())
            .collect(),
        (_, false) => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        (_, true) => tensor.float_data.clone(),
    };
    tensor.float_data.clear();
    tensor.int32_data.clear();
    tensor.raw_data = match to {
        DataType::FLOAT16 => values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
        _ => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    };
    tensor.data_type = to as i32;
    Ok(true)
}
