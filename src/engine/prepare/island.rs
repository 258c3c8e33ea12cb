//! FP32 islands in an FP16 graph: the few nodes whose values FP16 cannot carry.
//!
//! In u2netp one tensor decides most of the FP16 error: the output of the second decoder stage's
//! `rebnconv2d` reaches values near 230, and the next convolution (`rebnconv1d`) subtracts large
//! products of it from one another, so FP16's rounding of that one tensor moves the mask by as
//! much as everything else together (`.ci/fp16-sensitivity.py` finds it). Keeping the path from
//! one convolution to another in FP32 (both convolutions, and every node between them) costs two
//! convolutions of 119. FP32 is not enough on its own: the CUDA provider runs FP32 convolutions in
//! TF32, which rounds their inputs to FP16's 10 mantissa bits, so the second convolution reads its
//! input in two exactly representable parts ([`split_input`]), in FP16 graphs and in the CUDA
//! provider's FP32 graph alike.
//!
//! An island is named by two convolutions, counted from 0 in the order the graph lists its `Conv`
//! nodes, so that it holds for every export of the same network whatever its node names.

use std::collections::{HashMap, HashSet};

use onnx_protobuf::{
    AttributeProto, GraphProto, NodeProto, attribute_proto::AttributeType, tensor_proto::DataType,
};

use super::TransformError;

/// The nodes kept in FP32, and the initializers that only they read.
#[derive(Debug, Default)]
pub(super) struct Island {
    /// Indices into the graph's node list.
    pub nodes: HashSet<usize>,
    /// Initializers read only by island nodes (shared ones are copied first).
    pub initializers: HashSet<String>,
}

impl Island {
    /// Finds the islands' nodes. Initializers that island nodes share with other nodes are
    /// copied, so that each side keeps its own precision.
    pub(super) fn plan(
        graph: &mut GraphProto,
        islands: &[[usize; 2]],
    ) -> Result<Self, TransformError> {
        let mut island = Self::default();
        if islands.is_empty() {
            return Ok(island);
        }
        let convs: Vec<usize> = (0..graph.node.len())
            .filter(|&i| graph.node[i].op_type == "Conv")
            .collect();
        let producer = producers(graph);
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in graph.node.iter().enumerate() {
            for input in n.input.iter().filter(|s| !s.is_empty()) {
                consumers.entry(input.as_str()).or_default().push(i);
            }
        }
        for &[first, last] in islands {
            let conv = |k: usize| {
                convs.get(k).copied().ok_or_else(|| {
                    TransformError::Unsupported(format!(
                        "its FP32 island names convolution #{k}, and it has {}",
                        convs.len()
                    ))
                })
            };
            let (from, to) = (conv(first)?, conv(last)?);
            let after = reach(from, |i| {
                graph.node[i]
                    .output
                    .iter()
                    .flat_map(|o| consumers.get(o.as_str()).into_iter().flatten().copied())
                    .collect()
            });
            let before = reach(to, |i| {
                graph.node[i]
                    .input
                    .iter()
                    .filter_map(|s| producer.get(s.as_str()).copied())
                    .collect()
            });
            if !after.contains(&to) {
                return Err(TransformError::Unsupported(format!(
                    "its FP32 island runs from convolution #{first} to #{last}, \
                     and #{last} does not use #{first}'s output"
                )));
            }
            island.nodes.extend(after.intersection(&before));
        }
        // Initializers: island-only ones stay float32; shared ones get an island copy.
        let initializer_names: HashSet<String> =
            graph.initializer.iter().map(|t| t.name.clone()).collect();
        let read_outside: HashSet<String> = (0..graph.node.len())
            .filter(|i| !island.nodes.contains(i))
            .flat_map(|i| graph.node[i].input.clone())
            .collect();
        let mut copies = Vec::new();
        for &i in &island.nodes {
            for input in &mut graph.node[i].input {
                if !initializer_names.contains(input) {
                    continue;
                }
                if read_outside.contains(input) {
                    let copy = format!("{input}__fp32");
                    copies.push((input.clone(), copy.clone()));
                    *input = copy;
                }
                island.initializers.insert(input.clone());
            }
        }
        for (original, copy) in copies {
            if graph.initializer.iter().any(|t| t.name == copy) {
                continue;
            }
            if let Some(t) = graph.initializer.iter().find(|t| t.name == original) {
                let mut t = t.clone();
                t.name = copy;
                graph.initializer.push(t);
            }
        }
        Ok(island)
    }

    /// Puts Casts at the islands' borders: float32 where a float tensor from outside enters an
    /// island node, float16 where an island's output leaves for a node outside. `is_float` says
    /// which tensors carry float data (integer shapes and Resize parameters do not change type).
    /// Returns how many Casts were added.
    pub(super) fn add_borders(
        &self,
        graph: &mut GraphProto,
        is_float: impl Fn(&str) -> bool,
    ) -> usize {
        if self.nodes.is_empty() {
            return 0;
        }
        let made_inside: HashSet<String> = self
            .nodes
            .iter()
            .flat_map(|&i| graph.node[i].output.clone())
            .collect();
        let graph_outputs: HashSet<String> = graph.output.iter().map(|o| o.name.clone()).collect();
        let mut nodes = Vec::with_capacity(graph.node.len() + 8);
        let mut entered: HashSet<String> = HashSet::new();
        let mut leaving: HashSet<String> = HashSet::new();
        let mut casts = 0;
        for (i, mut node) in std::mem::take(&mut graph.node).into_iter().enumerate() {
            if self.nodes.contains(&i) {
                for input in &mut node.input {
                    let from_outside = !input.is_empty()
                        && is_float(input)
                        && !made_inside.contains(input)
                        && !self.initializers.contains(input);
                    if from_outside {
                        let wide = format!("{input}__fp32");
                        if entered.insert(input.clone()) {
                            nodes.push(border_cast(input, &wide, DataType::FLOAT));
                            casts += 1;
                        }
                        *input = wide;
                    }
                }
                let outputs: Vec<String> = node
                    .output
                    .iter()
                    .filter(|o| is_float(o) && !graph_outputs.contains(*o))
                    .cloned()
                    .collect();
                nodes.push(node);
                for output in outputs {
                    nodes.push(border_cast(
                        &output,
                        &format!("{output}__fp16"),
                        DataType::FLOAT16,
                    ));
                    leaving.insert(output);
                    casts += 1;
                }
            } else {
                for input in &mut node.input {
                    if leaving.contains(input) {
                        *input = format!("{input}__fp16");
                    }
                }
                nodes.push(node);
            }
        }
        // A Cast out whose tensor nobody outside reads is dropped again.
        let read: HashSet<String> = nodes.iter().flat_map(|n| n.input.clone()).collect();
        nodes.retain(|n| {
            let unread_border =
                n.name.starts_with(BORDER) && n.output.iter().all(|o| !read.contains(o));
            casts -= usize::from(unread_border);
            !unread_border
        });
        graph.node = nodes;
        casts
    }
}

/// Makes convolution `last` (counted in graph order) read its float32 input `x` as two parts,
/// `hi` = `x` rounded to bfloat16 and `lo` = `x - hi`, and add the two convolutions' outputs. A
/// TF32 convolution (what ONNX Runtime's CUDA provider runs for float32) rounds its input to 10
/// mantissa bits; `hi` has 8, so it passes exactly, and `lo`'s rounding is 2^-8 smaller, so the
/// sum keeps nearly float32 accuracy at TF32 speed (one more convolution).
pub(super) fn split_input(graph: &mut GraphProto, last: usize) -> Result<(), TransformError> {
    let position = graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| n.op_type == "Conv")
        .nth(last)
        .map(|(i, _)| i)
        .ok_or_else(|| {
            TransformError::Unsupported(format!(
                "its FP32 island names convolution #{last}, which it lacks"
            ))
        })?;
    let mut high = graph.node[position].clone();
    let x = high.input[0].clone();
    let y = high.output[0].clone();
    let name = |suffix: &str| format!("{x}__{suffix}");
    high.input[0] = name("hi");
    high.output[0] = format!("{y}__hi");
    high.name = format!("{SPLIT}{y}__conv_hi");
    let mut low = high.clone();
    low.input = vec![name("lo"), high.input[1].clone()]; // the bias is added once
    low.output[0] = format!("{y}__lo");
    low.name = format!("{SPLIT}{y}__conv_lo");
    let mut rounded = border_cast(&x, &name("bf16"), DataType::BFLOAT16);
    rounded.name = format!("{SPLIT}{x}__bf16");
    let mut widened = border_cast(&name("bf16"), &name("hi"), DataType::FLOAT);
    widened.name = format!("{SPLIT}{x}__hi");
    let sub = op("Sub", &[&x, &name("hi")], &name("lo"));
    let add = op("Add", &[&format!("{y}__hi"), &format!("{y}__lo")], &y);
    graph
        .node
        .splice(position..=position, [rounded, widened, sub, high, low, add]);
    Ok(())
}

/// [`split_input`] for the last convolution of every island, latest first (a split adds a
/// convolution, which would move the later ones' numbers).
pub(super) fn split_islands(
    graph: &mut GraphProto,
    islands: &[[usize; 2]],
) -> Result<(), TransformError> {
    let mut lasts: Vec<usize> = islands.iter().map(|&[_, last]| last).collect();
    lasts.sort_unstable();
    lasts.dedup();
    for &last in lasts.iter().rev() {
        split_input(graph, last)?;
    }
    Ok(())
}

fn op(op_type: &str, inputs: &[&str], output: &str) -> NodeProto {
    let mut node = NodeProto::new();
    op_type.clone_into(&mut node.op_type);
    node.name = format!("{SPLIT}{output}");
    node.input = inputs.iter().map(|s| (*s).to_owned()).collect();
    node.output = vec![output.to_owned()];
    node
}

const BORDER: &str = "cutout_island_";
const SPLIT: &str = "cutout_split_";

fn border_cast(input: &str, output: &str, to: DataType) -> NodeProto {
    let mut node = cast_node(input, output, to);
    node.name = format!("{BORDER}{output}");
    node
}

/// A Cast node from `input` to `output`, of type `to`.
pub(super) fn cast_node(input: &str, output: &str, to: DataType) -> NodeProto {
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

/// Which node (index) makes each tensor.
pub(super) fn producers(graph: &GraphProto) -> HashMap<&str, usize> {
    graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect()
}

/// Every node reachable from `start` through `next`, `start` included.
fn reach(start: usize, next: impl Fn(usize) -> Vec<usize>) -> HashSet<usize> {
    let mut seen = HashSet::from([start]);
    let mut stack = vec![start];
    while let Some(i) = stack.pop() {
        for j in next(i) {
            if seen.insert(j) {
                stack.push(j);
            }
        }
    }
    seen
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use onnx_protobuf::{Message as _, ModelProto, TensorProto};

    use super::{
        super::{
            Target,
            fixtures::{F16, F32, encode, initializer, node, target, value},
            precision::{cast_target, element_types},
            transform, transform_with_stats,
        },
        *,
    };
    use crate::engine::providers::Precision;

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
}
