//! Small graphs and helpers for the prepare step's unit tests.
#![allow(clippy::expect_used)]

use onnx_protobuf::{Message as _, ModelProto, NodeProto, TensorProto, tensor_proto::DataType};

use super::{Fp16Source, Target, island::cast_node, precision::cast_target};
use crate::engine::providers::Precision;

pub(super) fn value(name: &str, dims: &[Option<i64>]) -> onnx_protobuf::ValueInfoProto {
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

pub(super) fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
    let mut n = NodeProto::new();
    op.clone_into(&mut n.op_type);
    n.name = format!("{op}_{output}");
    n.input = inputs.iter().map(|s| (*s).to_owned()).collect();
    n.output = vec![output.to_owned()];
    n
}

pub(super) fn encode(graph: onnx_protobuf::GraphProto) -> Vec<u8> {
    let mut model = ModelProto::new();
    model.ir_version = 8;
    let mut opset = onnx_protobuf::OperatorSetIdProto::new();
    opset.version = 17;
    model.opset_import = vec![opset];
    model.graph = Some(graph).into();
    model.write_to_bytes().expect("encode")
}

pub(super) fn target(side_px: u32, precision: Precision, output_index: usize) -> Target<'static> {
    Target {
        side_px,
        precision,
        fp16_source: Fp16Source::Stored,
        output_index,
        fp32_islands: &[],
        split_for_tf32: false,
        without_bf16: false,
    }
}

pub(super) fn cast(input: &str, output: &str, to: DataType) -> NodeProto {
    let mut n = cast_node(input, output, to);
    n.name = format!("Cast_{output}");
    n
}

pub(super) fn cast_targets(graph: &onnx_protobuf::GraphProto) -> Vec<i64> {
    graph.node.iter().filter_map(cast_target).collect()
}

pub(super) fn initializer<'g>(graph: &'g onnx_protobuf::GraphProto, name: &str) -> &'g TensorProto {
    graph
        .initializer
        .iter()
        .find(|t| t.name == name)
        .expect("initializer")
}

pub(super) const F32: i64 = DataType::FLOAT as i64;
pub(super) const F16: i64 = DataType::FLOAT16 as i64;

pub(super) fn dims(v: &onnx_protobuf::ValueInfoProto) -> Vec<i64> {
    v.type_
        .tensor_type()
        .shape
        .dim
        .iter()
        .map(onnx_protobuf::tensor_shape_proto::Dimension::dim_value)
        .collect()
}
