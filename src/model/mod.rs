//! The DNA language-model families, their loading, catalog and Hub access.
pub mod bert;
pub mod catalog;
pub mod classifier;
pub mod config;
pub mod dnabert2;
pub mod encoder;
pub mod esm;
pub mod fused;
pub mod heads;
pub mod hub;
pub mod load;
pub mod lora;
pub mod ops;
