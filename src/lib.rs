//! cutout: photo background removal with a segmentation network through ONNX Runtime.
//!
//! Data flows one way: file → [`image_ops::decode`] → [`image_ops::preprocess`] →
//! [`engine::Segmenter`] → [`image_ops::postprocess`] → [`image_ops::export`]. The command line
//! ([`cli`]), the batch pipeline ([`batch`]) and the [`worker`] thread that the desktop app drives
//! all use the same engine and image functions. The desktop app ([`app`], drawn by its `ui` module) drives
//! the worker and composites on the GPU with [`render`]; nothing in `engine` or `image_ops`
//! depends on the UI.

pub mod app;
pub mod batch;
pub mod bench;
pub mod chart;
pub mod cli;
pub mod engine;
pub mod finish;
pub mod image_ops;
pub mod memory;
pub mod paths;
pub mod render;
pub mod timing;
pub mod worker;
