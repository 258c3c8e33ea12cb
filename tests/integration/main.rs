//! cutout's integration tests, in one binary: one link of wgpu, ONNX Runtime and egui instead of
//! one per file. Each module is one area (`app`, `cli`, `worker`…); run one with
//! `cargo test --release --test integration app::`. They read the real models and photos from
//! `../shared` (`common`) and drive the real binary, window, GPU adapter and files.

// A test is one story from setup to the last assertion; it may be long. The helpers are `pub`
// within this one test crate.
#![allow(clippy::too_many_lines, unreachable_pub)]

mod common;

mod app;
mod brush;
mod cli;
mod compositor;
mod download;
mod first_hour;
mod fuzz;
mod handover;
mod icons;
mod layers;
mod live_memory;
mod long_batch;
mod packaging;
mod parity;
mod phone_photos;
mod refine;
mod setup;
mod shard;
mod tensorrt_rtx;
mod webgpu;
mod window;
mod wine;
mod worker;
