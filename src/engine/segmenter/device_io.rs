//! Device-resident input and output: tensors allocated once on the GPU and bound with IO binding,
//! so the network runs with fixed addresses (what CUDA graphs need) and host copies are timed apart.

use std::{path::Path, time::Instant};

use ort::{
    memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType},
    session::{IoBinding, RunOptions, Session},
    value::{Tensor, TensorElementType, ValueType},
};

use super::ms_since;
use crate::engine::EngineError;

/// Input and output tensors on the GPU, bound once.
pub(super) struct DeviceIo {
    binding: IoBinding,
    device_input: Tensor<f32>,
    device_output: Tensor<f32>,
    host_input: Tensor<f32>,
    host_output: Tensor<f32>,
    /// For a plugin provider's memory (WebGPU): the environment whose registered data transfer
    /// copies it. `None` for CUDA, which `ort` copies itself.
    plugin_env: Option<ort::environment::Environment>,
    /// The host output holds the last run's mask already (see [`run_bound`]).
    read_back: bool,
}

pub(super) fn run_bound(
    session: &mut Session,
    device: &mut DeviceIo,
    options: &RunOptions,
) -> Result<f64, EngineError> {
    let started = Instant::now();
    session
        .run_binding_with_options(&device.binding, options)
        .map_err(|e| EngineError::ort("run the model", &e))?;
    device
        .binding
        .synchronize_outputs()
        .map_err(|e| EngineError::ort("wait for the GPU", &e))?;
    if device.plugin_env.is_some() {
        // WebGPU returns before its queue has run (with graph capture, at once), and ONNX
        // Runtime offers no other wait on it: reading the mask back is what waits, so it is part
        // of the run's time, and the download after it is free.
        device.read_back = false;
        device.copy_output()?;
        device.read_back = true;
    }
    Ok(ms_since(started))
}

impl DeviceIo {
    pub(super) fn new(
        session: &Session,
        memory: AllocationDevice<'static>,
        plugin_env: Option<ort::environment::Environment>,
        input_name: &str,
        output_name: &str,
        side: usize,
    ) -> ort::Result<Self> {
        let info = MemoryInfo::new(memory, 0, AllocatorType::Device, MemoryType::Default)?;
        let allocator = Allocator::new(session, info)?;
        let device_input = Tensor::<f32>::new(&allocator, [1usize, 3, side, side])?;
        let mut device_output = Tensor::<f32>::new(&allocator, [1usize, 1, side, side])?;
        let host_input =
            Tensor::<f32>::from_array(([1usize, 3, side, side], vec![0f32; 3 * side * side]))?;
        let host_output =
            Tensor::<f32>::from_array(([1usize, 1, side, side], vec![0f32; side * side]))?;
        let mut binding = session.create_binding()?;
        binding.bind_input(input_name, &device_input)?;
        binding.bind_output(output_name, &mut device_output)?;
        Ok(Self {
            binding,
            device_input,
            device_output,
            host_input,
            host_output,
            plugin_env,
            read_back: false,
        })
    }

    pub(super) fn upload(&mut self, input: &[f32]) -> Result<(), EngineError> {
        let (_, host) = self
            .host_input
            .try_extract_tensor_mut::<f32>()
            .map_err(|e| EngineError::ort("stage the input", &e))?;
        host.copy_from_slice(input);
        match &self.plugin_env {
            Some(env) => super::device_copy::copy(env, &self.host_input, &mut self.device_input)
                .map_err(|reason| EngineError::ort("copy the input to the GPU", &reason)),
            None => self
                .host_input
                .copy_into(&mut self.device_input)
                .map_err(|e| EngineError::ort("copy the input to the GPU", &e)),
        }
    }

    pub(super) fn download(&mut self) -> Result<Vec<f32>, EngineError> {
        if !std::mem::take(&mut self.read_back) {
            self.copy_output()?;
        }
        let (_, host) = self
            .host_output
            .try_extract_tensor::<f32>()
            .map_err(|e| EngineError::ort("read the mask", &e))?;
        Ok(host.to_vec())
    }

    fn copy_output(&mut self) -> Result<(), EngineError> {
        match &self.plugin_env {
            Some(env) => super::device_copy::copy(env, &self.device_output, &mut self.host_output)
                .map_err(|reason| EngineError::ort("copy the mask from the GPU", &reason))?,
            None => self
                .device_output
                .copy_into(&mut self.host_output)
                .map_err(|e| EngineError::ort("copy the mask from the GPU", &e))?,
        }
        Ok(())
    }
}

/// Checks that the session takes one `[1, 3, side, side]` float input and gives a one-channel
/// float map; returns the input and output names (never assumed, always read from the session).
pub(super) fn check_io(
    session: &Session,
    model_path: &Path,
    side_px: u32,
) -> Result<(String, String), EngineError> {
    let bad = |what: String| EngineError::UnsupportedModel {
        path: model_path.to_owned(),
        what,
    };
    let input = session
        .inputs()
        .first()
        .ok_or_else(|| bad("it has no inputs".to_owned()))?;
    let input_dims = float_tensor_dims(input.dtype())
        .ok_or_else(|| bad(format!("input `{}` is not a float32 tensor", input.name())))?;
    let side = i64::from(side_px);
    if input_dims != [1, 3, side, side] {
        return Err(bad(format!(
            "input `{}` has shape {input_dims:?}; expected [N, 3, H, W]",
            input.name()
        )));
    }
    let output = session
        .outputs()
        .first()
        .ok_or_else(|| bad("it has no outputs".to_owned()))?;
    let output_dims = float_tensor_dims(output.dtype()).ok_or_else(|| {
        bad(format!(
            "output `{}` is not a float32 tensor",
            output.name()
        ))
    })?;
    if output_dims.iter().product::<i64>() != side * side {
        return Err(bad(format!(
            "output `{}` has shape {output_dims:?}; expected a {side}×{side} map",
            output.name()
        )));
    }
    Ok((input.name().to_owned(), output.name().to_owned()))
}

pub(super) fn float_tensor_dims(dtype: &ValueType) -> Option<Vec<i64>> {
    match dtype {
        ValueType::Tensor {
            ty: TensorElementType::Float32,
            shape,
            ..
        } => Some(shape.iter().copied().collect()),
        _ => None,
    }
}
