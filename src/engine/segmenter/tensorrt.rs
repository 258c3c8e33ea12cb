//! The options of the TensorRT-class providers (TensorRT, TensorRT for RTX), decided in one place
//! so that they can be tested: what their engine and runtime caches are keyed on, precision and
//! workspace.

use std::path::Path;

use crate::engine::{providers::Precision, runtime::tensorrt_rtx};

/// The TensorRT provider's options, decided in one place so that they can be tested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TensorRtSettings {
    /// Where engines and timing caches are kept (`CACHE/tensorrt`).
    pub cache: std::path::PathBuf,
    /// The engine cache's file prefix: the model (its SHA-256), the input side, the precision,
    /// ONNX Runtime's version and the GPU's name. TensorRT adds its own version and hardware
    /// checks to each engine and rebuilds on a mismatch.
    pub prefix: String,
    /// FP16 kernels allowed (the FP16 precision).
    pub fp16: bool,
    /// The builder's workspace cap in bytes.
    pub workspace_bytes: usize,
}

/// What an engine or runtime cache depends on: a file-safe key made of the model (its SHA-256),
/// the input side, the precision, ONNX Runtime's version and the GPU's name.
#[derive(Debug, Clone, Copy)]
pub(super) struct CacheKey<'a> {
    /// The model's SHA-256.
    pub model_sha256: &'a str,
    /// The input side in pixels.
    pub side_px: u32,
    /// The precision.
    pub precision: Precision,
    /// ONNX Runtime's version.
    pub ort_version: &'a str,
    /// The GPU as `nvidia-smi` names it (empty when unknown).
    pub gpu: &'a str,
}

impl CacheKey<'_> {
    /// The key as a file name part (ASCII letters, digits and `_` only).
    pub(super) fn file_stem(&self) -> String {
        let gpu_tag: String = self
            .gpu
            .split(',')
            .next()
            .unwrap_or("")
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let model: String = self
            .model_sha256
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(16)
            .collect();
        let ort: String = self
            .ort_version
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!(
            "{model}_{}px_{}_ort{ort}_{gpu_tag}",
            self.side_px,
            self.precision.as_str()
        )
    }
}

impl TensorRtSettings {
    /// The options for `key` with a builder workspace cap of `workspace_bytes`.
    pub(super) fn new(cache_dir: &Path, key: CacheKey<'_>, workspace_bytes: usize) -> Self {
        Self {
            cache: cache_dir.join("tensorrt"),
            prefix: key.file_stem(),
            fp16: key.precision == Precision::Fp16,
            workspace_bytes,
        }
    }
}

/// The TensorRT-RTX provider's options, decided in one place so that they can be tested.
/// TensorRT-RTX is strongly typed: the precision is the graph's (the prepared FP16 graph for
/// FP16), so there is no FP16 flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TensorRtRtxSettings {
    /// The runtime cache folder (`CACHE/tensorrt-rtx/KEY_rtxVERSION`): kernels compiled for this
    /// GPU on the first run, reused by later processes.
    pub runtime_cache: std::path::PathBuf,
    /// The builder's workspace cap in bytes.
    pub workspace_bytes: usize,
    /// Capture CUDA graphs.
    pub cuda_graphs: bool,
}

impl TensorRtRtxSettings {
    /// The options for `key` (the plugin's version joins the key: a new plugin compiles afresh).
    pub(super) fn new(
        cache_dir: &Path,
        key: CacheKey<'_>,
        workspace_bytes: usize,
        cuda_graphs: bool,
    ) -> Self {
        let plugin: String = tensorrt_rtx::PACKAGE
            .rsplit("==")
            .next()
            .unwrap_or_default()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        Self {
            runtime_cache: cache_dir
                .join("tensorrt-rtx")
                .join(format!("{}_rtx{plugin}", key.file_stem())),
            workspace_bytes,
            cuda_graphs,
        }
    }

    /// The provider options, keyed as `SessionBuilder::with_devices` takes them.
    pub(super) fn provider_options(&self) -> Vec<(String, String)> {
        [
            (
                "nv_runtime_cache_path",
                self.runtime_cache.display().to_string(),
            ),
            ("nv_max_workspace_size", self.workspace_bytes.to_string()),
            (
                "enable_cuda_graph",
                if self.cuda_graphs { "1" } else { "0" }.to_owned(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (format!("{}.{k}", tensorrt_rtx::EP_NAME), v))
        .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn tensorrt_engines_are_keyed_on_everything_that_changes_them() {
        let settings = |model_sha256, side_px, precision, ort_version, gpu| {
            let key = CacheKey {
                model_sha256,
                side_px,
                precision,
                ort_version,
                gpu,
            };
            TensorRtSettings::new(Path::new("/cache"), key, 1 << 30)
        };
        let sha = "0123456789abcdef0123456789abcdef";
        let b = settings(
            sha,
            320,
            Precision::Fp16,
            "1.31.1",
            "NVIDIA H200, 580.95.05, 143771 MiB",
        );
        assert_eq!(b.cache, Path::new("/cache/tensorrt"));
        assert_eq!(b.prefix, "0123456789abcdef_320px_fp16_ort1_31_1_NVIDIAH200");
        assert!(b.fp16);
        assert_eq!(b.workspace_bytes, 1 << 30);
        assert_eq!(
            settings(
                sha,
                320,
                Precision::Fp16,
                "1.31.1",
                "NVIDIA H200, 580.95.05, 143771 MiB"
            ),
            b,
            "the same inputs give the same key"
        );
        let variants = [
            settings(
                "ffff456789abcdef0123456789abcdef",
                320,
                Precision::Fp16,
                "1.31.1",
                "NVIDIA H200",
            ),
            settings(sha, 1024, Precision::Fp16, "1.31.1", "NVIDIA H200"),
            settings(sha, 320, Precision::Fp32, "1.31.1", "NVIDIA H200"),
            settings(sha, 320, Precision::Fp16, "1.32.0", "NVIDIA H200"),
            settings(
                sha,
                320,
                Precision::Fp16,
                "1.31.1",
                "NVIDIA GeForce RTX 4090",
            ),
        ];
        for (i, v) in variants.iter().enumerate() {
            assert_ne!(v.prefix, b.prefix, "variant {i} must not reuse the engine");
            assert!(
                v.prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{}",
                v.prefix
            );
        }
        assert!(!variants[2].fp16, "FP32 keeps FP16 kernels off");
        // A hostile or odd version string cannot leave the cache folder.
        let odd_key = CacheKey {
            model_sha256: "../../x",
            side_px: 320,
            precision: Precision::Fp32,
            ort_version: "1.31/../..",
            gpu: "",
        };
        let odd = TensorRtSettings::new(Path::new("/cache"), odd_key, 1 << 20);
        assert!(
            !odd.prefix.contains('/') && !odd.prefix.contains(".."),
            "{}",
            odd.prefix
        );
        assert_eq!(odd.workspace_bytes, 1 << 20);
    }

    #[test]
    fn tensorrt_rtx_options_keep_a_runtime_cache_per_key_and_plugin_version() {
        let key = |precision| CacheKey {
            model_sha256: "0123456789abcdef0123456789abcdef",
            side_px: 1024,
            precision,
            ort_version: "1.31.1",
            gpu: "NVIDIA GeForce RTX 4090, 580.95.05, 24564 MiB",
        };
        let fp16 =
            TensorRtRtxSettings::new(Path::new("/cache"), key(Precision::Fp16), 1 << 30, true);
        assert_eq!(
            fp16.runtime_cache,
            Path::new(
                "/cache/tensorrt-rtx/0123456789abcdef_1024px_fp16_ort1_31_1_NVIDIAGeForceRTX4090_rtx0_5_0"
            )
        );
        let fp32 =
            TensorRtRtxSettings::new(Path::new("/cache"), key(Precision::Fp32), 1 << 30, false);
        assert_ne!(
            fp32.runtime_cache, fp16.runtime_cache,
            "one cache per precision"
        );
        let options = fp16.provider_options();
        let get = |options: &[(String, String)], k: &str| {
            options
                .iter()
                .find(|(key, _)| key == &format!("NvTensorRTRTXExecutionProvider.{k}"))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            get(&options, "nv_runtime_cache_path").as_deref(),
            Some(fp16.runtime_cache.to_str().unwrap())
        );
        assert_eq!(get(&options, "enable_cuda_graph").as_deref(), Some("1"));
        assert_eq!(
            get(&options, "nv_max_workspace_size").as_deref(),
            Some("1073741824")
        );
        assert_eq!(
            get(&fp32.provider_options(), "enable_cuda_graph").as_deref(),
            Some("0")
        );
        assert_eq!(
            options.len(),
            3,
            "no FP16 flag: the graph's precision rules"
        );
    }
}
