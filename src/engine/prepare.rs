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

/// Where an FP16 graph comes from when the model file is already stored in FP16 (IS-Net ships
/// in FP16 with its Resize nodes kept in FP32 behind Casts). Models stored in FP32 are always
/// converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fp16Source {
    /// The file as stored, its FP32 islands included.
    Stored,
    /// Converted from the model's FP32 twin: every node in FP16, no islands and no Casts
    /// around them. The default: for IS-Net on an H200 (CUDA, 1024 px) 3.92 ms against 4.15 ms
    /// as stored, with the same masks (FP16 against FP32: 0.113 against 0.112 grey levels).
    #[default]
    Twin,
}

impl Fp16Source {
    /// Lower-case name, as on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stored => "stored",
            Self::Twin => "twin",
        }
    }
}

impl std::str::FromStr for Fp16Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stored" => Ok(Self::Stored),
            "twin" => Ok(Self::Twin),
            other => Err(format!("unknown FP16 source `{other}`; use stored or twin")),
        }
    }
}

/// Bumped whenever [`transform`] changes what it writes, so older cache entries are not reused.
const PREPARE_FORMAT: u32 = 2;

/// What a prepared model is derived for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrepareKey<'a> {
    /// SHA-256 of the source model.
    pub model_sha256: &'a str,
    /// Fixed input side in pixels.
    pub side_px: u32,
    /// Network precision.
    pub precision: Precision,
    /// For FP16 of a model stored in FP16: as stored, or from its FP32 twin.
    pub fp16_source: Fp16Source,
    /// Index of the output to keep.
    pub output_index: usize,
}

impl PrepareKey<'_> {
    /// File name in the cache: every input that changes the result is in it.
    pub fn file_name(&self) -> String {
        let short = self.model_sha256.get(..16).unwrap_or(self.model_sha256);
        let variant = match (self.precision, self.fp16_source) {
            (Precision::Fp16, Fp16Source::Twin) => "-twin",
            _ => "",
        };
        format!(
            "{short}-{}px-{}{variant}-out{}-p{PREPARE_FORMAT}-cutout{}.onnx",
            self.side_px,
            self.precision.as_str(),
            self.output_index,
            env!("CARGO_PKG_VERSION")
        )
    }
}

/// Where a prepared model came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// Made just now from the model.
    Made,
    /// Found in the cache (made by an earlier run, or damaged since: see [`discard`]).
    Cached,
}

/// Returns the prepared model for `key`, making it from `model_path` on first use. The file appears
/// atomically, so a crash mid-way never leaves a broken cache entry; one damaged later (a disk
/// error, another program) is found when the session cannot load it, then [`discard`]ed and made
/// again.
pub fn prepared_model(
    model_path: &Path,
    key: PrepareKey<'_>,
    cache_dir: &Path,
) -> Result<(PathBuf, Provenance), PrepareError> {
    let dir = cache_dir.join("prepared");
    let path = dir.join(key.file_name());
    if path.is_file() {
        return Ok((path, Provenance::Cached));
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
    let target = Target {
        side_px: key.side_px,
        precision: key.precision,
        fp16_source: key.fp16_source,
        output_index: key.output_index,
    };
    let prepared = transform(&bytes, target).map_err(|e| PrepareError::Transform {
        path: model_path.to_owned(),
        side_px: key.side_px,
        precision: key.precision,
        source: e,
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
    Ok((path, Provenance::Made))
}

/// Removes a cache entry that could not be loaded, so that the next [`prepared_model`] makes it
/// again.
pub fn discard(path: &Path) -> Result<(), PrepareError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(PrepareError::Io {
            action: "cannot remove the damaged prepared model",
            path: path.to_owned(),
            source,
        }),
    }
}

/// What a prepared graph is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Fixed input side in pixels.
    pub side_px: u32,
    /// Network precision.
    pub precision: Precision,
    /// For FP16 of a model stored in FP16: as stored, or from its FP32 twin.
    pub fp16_source: Fp16Source,
    /// Index of the output to keep.
    pub output_index: usize,
}

/// What [`transform`] did, for reports and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrepareStats {
    /// Nodes before pruning.
    pub nodes_before: usize,
    /// Nodes after.
    pub nodes_after: usize,
    /// The precision the model file stores its weights in.
    pub stored: Precision,
    /// Float tensors converted to float16.
    pub tensors_to_fp16: usize,
    /// Float16 tensors converted to float32 (the FP32 twin of a model stored in FP16).
    pub tensors_to_fp32: usize,
    /// Casts whose target type changed with the precision.
    pub casts_retargeted: usize,
}

/// Derives the prepared model bytes from the source model bytes.
pub fn transform(bytes: &[u8], target: Target) -> Result<Vec<u8>, TransformError> {
    transform_with_stats(bytes, target).map(|(b, _)| b)
}

/// [`transform`], also returning what changed.
pub fn transform_with_stats(
    bytes: &[u8],
    target: Target,
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
        (Precision::Fp32, Precision::Fp32) => {}
        (Precision::Fp16, Precision::Fp16) if keep_as_stored => {}
        (Precision::Fp16, Precision::Fp32) => upcast_to_f32(graph, &mut stats)?,
        (Precision::Fp32, Precision::Fp16) => convert_to_f16(graph, input_pos, &mut stats)?,
        (Precision::Fp16, Precision::Fp16) => {
            upcast_to_f32(graph, &mut stats)?;
            convert_to_f16(graph, input_pos, &mut stats)?;
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

/// The precision of a graph's weights: that of most initializers the convolutions and matrix
/// products read (other float tensors, Resize scales say, are float32 in any ONNX graph).
fn stored_precision(graph: &onnx_protobuf::GraphProto) -> Precision {
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
fn cast_target(node: &NodeProto) -> Option<i64> {
    (node.op_type == "Cast")
        .then(|| node.attribute.iter().find(|a| a.name == "to").map(|a| a.i))
        .flatten()
}

fn set_cast_target(node: &mut NodeProto, to: DataType) {
    for attr in node.attribute.iter_mut().filter(|a| a.name == "to") {
        attr.i = to as i64;
    }
}

/// Element types of the graph's tensors, propagated forward from the inputs, initializers and
/// constants. Enough for the ops of segmentation networks: Cast gives its target, Shape and Size
/// give int64, comparisons give bool, and every other op gives the type of its first input. Nodes are not always listed in order (FP16 converters append their Casts at the end),
/// so passes repeat until nothing new is learnt.
fn element_types(graph: &onnx_protobuf::GraphProto) -> HashMap<String, i32> {
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
fn resize_parameters(graph: &onnx_protobuf::GraphProto) -> HashSet<String> {
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
fn upcast_to_f32(
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
/// input and one before the float32 output.
fn convert_to_f16(
    graph: &mut onnx_protobuf::GraphProto,
    input_pos: usize,
    stats: &mut PrepareStats,
) -> Result<(), TransformError> {
    let keep_f32 = resize_parameters(graph);
    let types = element_types(graph);
    let float = DataType::FLOAT as i32;
    for tensor in graph
        .initializer
        .iter_mut()
        .filter(|t| !keep_f32.contains(&t.name))
    {
        stats.tensors_to_fp16 += usize::from(tensor_to_f16(tensor)?);
    }
    for node in &mut graph.node {
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
    convert_tensor(tensor, DataType::FLOAT, DataType::FLOAT16)
}

/// Converts a float16 tensor to float32 in place; returns whether it was float16.
fn tensor_to_f32(tensor: &mut TensorProto) -> Result<bool, TransformError> {
    convert_tensor(tensor, DataType::FLOAT16, DataType::FLOAT)
}

/// Rewrites a tensor of type `from` (float32 or float16) as `to`, little-endian raw data;
/// returns whether it was of type `from`.
fn convert_tensor(
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

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

    fn target(side_px: u32, precision: Precision, output_index: usize) -> Target {
        Target {
            side_px,
            precision,
            fp16_source: Fp16Source::Stored,
            output_index,
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

    #[test]
    fn cache_names_carry_every_key() {
        let key = PrepareKey {
            model_sha256: "c491fbd91b4e6bf7e32480732f93474a",
            side_px: 320,
            precision: Precision::Fp16,
            fp16_source: Fp16Source::Stored,
            output_index: 0,
        };
        let name = key.file_name();
        assert!(
            name.starts_with("c491fbd91b4e6bf7-320px-fp16-out0-p2-cutout"),
            "{name}"
        );
        assert!(name.ends_with(".onnx"));
        let twin = PrepareKey {
            fp16_source: Fp16Source::Twin,
            ..key
        };
        assert!(
            twin.file_name().contains("-fp16-twin-out0-"),
            "{}",
            twin.file_name()
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
