//! dnatune: fine-tune pretrained DNA language models with LoRA.
//!
//! The library holds everything a front end needs; the `dnatune` binary is a thin
//! command line (`cli`) plus, with the default `gui` feature, the desktop app.

pub mod adapter;
mod alloc;
pub mod assets;
pub mod bundled;
pub mod cli;
pub mod data;
pub mod device;
pub mod model;
pub mod predict;
pub mod pretrain;
pub mod tokenize;
pub mod train;

#[cfg(feature = "gui")]
pub mod gui;

pub use alloc::tune_allocator;

/// The version shown by `dnatune --version` and recorded in manifests.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
