//! Prepared models: cutout's analogue of TensorRT's ahead-of-time compile.
//!
//! From the FP32 model, for one input size and precision, a copy is derived by editing the ONNX
//! protobuf: the input fixed at `[1, 3, side, side]` (so ONNX Runtime folds the shape arithmetic
//! away and CUDA graphs become possible), only the mask output kept (the side outputs and the nodes
//! that only feed them are dropped), and for FP16 every float weight converted to float16 with a
//! Cast after the float32 input and before the float32 output. The result is cached under the
//! user cache folder, keyed by model hash, size, precision and cutout version.

use std::{
    fs,
    path::{Path, PathBuf},
};

mod graph;
mod island;
mod precision;

pub use graph::{Target, transform, transform_with_stats};

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
    /// Nodes kept in float32 in an FP16 graph (the model's FP32 islands).
    pub fp32_island_nodes: usize,
    /// Casts added at the islands' borders.
    pub island_casts: usize,
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
const PREPARE_FORMAT: u32 = 3;

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
    /// The model's FP32 islands (see [`Target::fp32_islands`]).
    pub fp32_islands: &'a [[usize; 2]],
    /// See [`Target::split_for_tf32`].
    pub split_for_tf32: bool,
    /// See [`Target::without_bf16`].
    pub without_bf16: bool,
}

impl PrepareKey<'_> {
    /// File name in the cache: every input that changes the result is in it.
    pub fn file_name(&self) -> String {
        let short = self.model_sha256.get(..16).unwrap_or(self.model_sha256);
        let mut variant = match (self.precision, self.fp16_source) {
            (Precision::Fp16, Fp16Source::Twin) => "-twin".to_owned(),
            _ => String::new(),
        };
        if self.precision == Precision::Fp16 {
            for [first, last] in self.fp32_islands {
                variant.push_str(&format!("-f32c{first}-{last}"));
            }
            if self.without_bf16 && !self.fp32_islands.is_empty() {
                variant.push_str("-nobf16");
            }
        } else if self.split_for_tf32 {
            for [_, last] in self.fp32_islands {
                variant.push_str(&format!("-tf32c{last}"));
            }
        }
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
        fp32_islands: key.fp32_islands,
        split_for_tf32: key.split_for_tf32,
        without_bf16: key.without_bf16,
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

#[cfg(test)]
mod fixtures;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn cache_names_carry_every_key() {
        let key = PrepareKey {
            model_sha256: "c491fbd91b4e6bf7e32480732f93474a",
            side_px: 320,
            precision: Precision::Fp16,
            fp16_source: Fp16Source::Stored,
            output_index: 0,
            fp32_islands: &[],
            split_for_tf32: false,
            without_bf16: false,
        };
        let name = key.file_name();
        assert!(
            name.starts_with("c491fbd91b4e6bf7-320px-fp16-out0-p3-cutout"),
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
        let islands = PrepareKey {
            fp32_islands: &[[96, 97]],
            ..key
        };
        assert!(
            islands.file_name().contains("-fp16-f32c96-97-out0-"),
            "{}",
            islands.file_name()
        );
        let fp32 = PrepareKey {
            precision: Precision::Fp32,
            ..islands
        };
        assert!(
            fp32.file_name().contains("-fp32-out0-"),
            "an FP32 graph for the CPU has no split: {}",
            fp32.file_name()
        );
        let tf32 = PrepareKey {
            split_for_tf32: true,
            ..fp32
        };
        assert!(
            tf32.file_name().contains("-fp32-tf32c97-out0-"),
            "{}",
            tf32.file_name()
        );
        let webgpu = PrepareKey {
            without_bf16: true,
            ..islands
        };
        assert!(
            webgpu.file_name().contains("-fp16-f32c96-97-nobf16-out0-"),
            "{}",
            webgpu.file_name()
        );
    }
}
