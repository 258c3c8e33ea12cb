//! Prepared models: cutout's analogue of the seed's ahead-of-time compile.
//!
//! From the FP32 model, for one input size and precision, a copy is derived by editing the ONNX
//! protobuf: the input fixed at `[1, 3, side, side]` (so ONNX Runtime folds the shape arithmetic
//! away and CUDA graphs become possible), only the mask output kept (the side outputs and the nodes
//! that only feed them are dropped), and for FP16 every float weight converted to float16 with a
//! Cast after the float32 input and before the float32 output. The result is cached under the
//! user cache folder, keyed by model hash, size, precision and cutout version.

use std::{
    collections::{HashMap, HashSet},
    fs,
    path::{Path, PathBuf},
};

use onnx_protobuf::{
    AttributeProto, Message as _, ModelProto, NodeProto, TensorProto,
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto::dimension,
};

use super::providers::Precision;

/// What is wrong with a model's bytes or graph.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    /// The bytes are not an ONNX model.
    #[error("it is not a readable ONNX model: {0}")]
    Parse(String),
    /// The graph is not shaped as cutout expects.
    #[error("{0}")]
    Unsupported(String),
}

/// Why a prepared model could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The model cannot be transformed.
    #[error("cannot prepare the model for {side_px} px {precision} ({source}): {}", .path.display())]
    Transform {
        /// The source model.
        path: PathBuf,
        /// Requested side.
        side_px: u32,
        /// Requested precision.
        precision: Precision,
        /// What is wrong.
        source: TransformError,
    },
    /// Reading or writing the cache failed.
    #[error("{action} ({source}): {}", .path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// What a prepared model is derived for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrepareKey<'a> {
    /// SHA-256 of the source model.
    pub model_sha256: &'a str,
    /// Fixed input side in pixels.
    pub side_px: u32,
    /// Network precision.
    pub precision: Precision,
    /// Index of the output to keep.
    pub output_index: usize,
}

impl PrepareKey<'_> {
    /// File name in the cache: every input that changes the result is in it.
    pub fn file_name(&self) -> String {
        let short = self.model_sha256.get(..16).unwrap_or(self.model_sha256);
        format!(
            "{short}-{}px-{}-out{}-cutout{}.onnx",
            self.side_px,
            self.precision.as_str(),
            self.output_index,
            env!("CARGO_PKG_VERSION")
        )
    }
}

/// Returns the prepared model for `key`, making it from `model_path` on first use. The file appears
/// atomically, so a crash mid-way never leaves a broken cache entry.
pub fn prepared_model(
    model_path: &Path,
    key: PrepareKey<'_>,
    cache_dir: &Path,
) -> Result<PathBuf, PrepareError> {
    let dir = cache_dir.join("prepared");
    let path = dir.join(key.file_name());
    if path.is_file() {
        return Ok(path);
    }
    fn io<'p>(
        action: &'static str,
        path: &'p Path,
    ) -> impl FnOnce(std::io::Error) -> PrepareError + 'p {
        move |source| PrepareError::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
    let bytes = fs::read(model_path).map_err(io("cannot read the model", model_path))?;
    let prepared =
        transform(&bytes, key.side_px, key.precision, key.output_index).map_err(|e| {
            PrepareError::Transform {
                path: model_path.to_owned(),
                side_px: key.side_px,
                precision: key.precision,
                source: e,
            }
        })?;
    fs::create_dir_all(&dir).map_err(io("cannot create the cache folder", &dir))?;
    let mut tmp = crate::paths::temp_file_builder(".prepare-", ".tmp")
        .tempfile_in(&dir)
        .map_err(io("cannot write to the cache folder", &dir))?;
    std::io::Write::write_all(&mut tmp, &prepared)
        .map_err(io("cannot write the prepared model", &path))?;
    tmp.persist(&path).map_err(|e| PrepareError::Io {
        action: "cannot store the prepared model",
        path: path.clone(),
        source: e.error,
    })?;
    Ok(path)
}

/// What [`transform`] did, for reports and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrepareStats {
    /// Nodes before and after pruning.
    pub nodes_before: usize,
    /// Nodes after.
    pub nodes_after: usize,
    /// Float tensors converted to float16.
    pub tensors_to_fp16: usize,
}

/// Derives the prepared model bytes from the source model bytes.
pub fn transform(
    bytes: &[u8],
    side_px: u32,
    precision: Precision,
    output_index: usize,
) -> Result<Vec<u8>, TransformError> {
    transform_with_stats(bytes, side_px, precision, output_index).map(|(b, _)| b)
}

/// [`transform`], also returning what changed.
pub fn transform_with_stats(
    bytes: &[u8],
    side_px: u32,
    precision: Precision,
    output_index: usize,
) -> Result<(Vec<u8>, PrepareStats), TransformError> {
    let mut model =
        ModelProto::parse_from_bytes(bytes).map_err(|e| TransformError::Parse(e.to_string()))?;
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| TransformError::Unsupported("it has no graph".to_owned()))?;
    let mut stats = PrepareStats {
        nodes_before: graph.node.len(),
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
    if output_index >= graph.output.len() {
        return Err(TransformError::Unsupported(format!(
            "it has no output #{output_index}"
        )));
    }
    let side = i64::from(side_px);
    fix_dims(&mut graph.input[input_pos], &[1, 3, side, side])?;
    let mut output = graph.output[output_index].clone();
    fix_dims(&mut output, &[1, 1, side, side])
        .or_else(|_| fix_dims(&mut output, &[1, side, side]))?;
    graph.output = vec![output];
    // Intermediate shapes are re-inferred by ONNX Runtime from the fixed input.
    graph.value_info.clear();

    prune_unused(graph);
    let input_name = graph.input[input_pos].name.clone();
    let output_name = graph.output[0].name.clone();

    if precision == Precision::Fp16 {
        // Parameters that ONNX requires in float32 whatever the data type (Resize roi and scales).
        let keep_f32: HashSet<String> = graph
            .node
            .iter()
            .filter(|n| n.op_type == "Resize" || n.op_type == "Upsample")
            .flat_map(|n| n.input.iter().skip(1).cloned())
            .filter(|s| !s.is_empty())
            .collect();
        for tensor in graph
            .initializer
            .iter_mut()
            .filter(|t| !keep_f32.contains(&t.name))
        {
            stats.tensors_to_fp16 += usize::from(tensor_to_f16(tensor)?);
        }
        for node in graph
            .node
            .iter_mut()
            .filter(|n| n.op_type == "Constant" && !n.output.iter().any(|o| keep_f32.contains(o)))
        {
            for attr in node.attribute.iter_mut().filter(|a| a.name == "value") {
                if let Some(t) = attr.t.as_mut() {
                    stats.tensors_to_fp16 += usize::from(tensor_to_f16(t)?);
                }
            }
        }
        if graph.node.iter().any(|n| {
            n.op_type == "Cast"
                && n.attribute
                    .iter()
                    .any(|a| a.name == "to" && a.i == DataType::FLOAT as i64)
        }) {
            return Err(TransformError::Unsupported(
                "it casts to float32 inside the graph, which an FP16 conversion would break"
                    .to_owned(),
            ));
        }
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
    let producer: HashMap<&str, usize> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
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

fn cast_node(input: &str, output: &str, to: DataType) -> NodeProto {
    let mut attr = AttributeProto::new();
    attr.name = "to".to_owned();
    attr.type_ = AttributeType::INT.into();
    attr.i = to as i64;
    let mut node = NodeProto::new();
    node.op_type = "Cast".to_owned();
    node.name = format!("cutout_cast_{output}");
    node.input = vec![input.to_owned()];
    node.output = vec![output.to_owned()];
    node.attribute = vec![attr];
    node
}

/// Converts a float32 tensor to float16 in place; returns whether it was float32.
fn tensor_to_f16(tensor: &mut TensorProto) -> Result<bool, TransformError> {
    if tensor.data_type != DataType::FLOAT as i32 {
        return Ok(false);
    }
    if !tensor.external_data.is_empty() {
        return Err(TransformError::Unsupported(format!(
            "tensor `{}` keeps its data in an external file",
            tensor.name
        )));
    }
    let values: Vec<f32> = if tensor.raw_data.is_empty() {
        std::mem::take(&mut tensor.float_data)
    } else {
        tensor
            .raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    tensor.float_data.clear();
    tensor.raw_data = values
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    tensor.data_type = DataType::FLOAT16 as i32;
    Ok(true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// A tiny model: input [N,3,H,W] → Conv(1×1, 3→1) → Sigmoid → "mask", plus a side output.
    fn tiny_model() -> Vec<u8> {
        use onnx_protobuf::{
            GraphProto, OperatorSetIdProto, TypeProto, ValueInfoProto, type_proto,
        };
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
        let node = |op: &str, inputs: &[&str], output: &str| {
            let mut n = NodeProto::new();
            n.op_type = op.to_owned();
            n.input = inputs.iter().map(|s| (*s).to_owned()).collect();
            n.output = vec![output.to_owned()];
            n
        };
        let mut weight = TensorProto::new();
        weight.name = "w".to_owned();
        weight.dims = vec![1, 3, 1, 1];
        weight.data_type = DataType::FLOAT as i32;
        weight.float_data = vec![0.5, -0.25, 1.0];
        let mut graph = GraphProto::new();
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
        let mut model = ModelProto::new();
        model.ir_version = 8;
        let mut opset = OperatorSetIdProto::new();
        opset.version = 17;
        model.opset_import = vec![opset];
        model.graph = Some(graph).into();
        model.write_to_bytes().expect("encode")
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
            transform_with_stats(&tiny_model(), 64, Precision::Fp32, 0).expect("prepare");
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
            transform_with_stats(&tiny_model(), 32, Precision::Fp16, 0).expect("prepare");
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
    fn cache_names_carry_every_key() {
        let key = PrepareKey {
            model_sha256: "c491fbd91b4e6bf7e32480732f93474a",
            side_px: 320,
            precision: Precision::Fp16,
            output_index: 0,
        };
        let name = key.file_name();
        assert!(
            name.starts_with("c491fbd91b4e6bf7-320px-fp16-out0-cutout"),
            "{name}"
        );
        assert!(name.ends_with(".onnx"));
    }

    #[test]
    fn garbage_is_a_parse_error() {
        assert!(matches!(
            transform(b"not a model at all", 320, Precision::Fp16, 0),
            Err(TransformError::Parse(_))
        ));
    }

    #[test]
    fn out_of_range_output_is_refused() {
        assert!(matches!(
            transform(&tiny_model(), 320, Precision::Fp32, 5),
            Err(TransformError::Unsupported(_))
        ));
    }
}
