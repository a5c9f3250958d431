//! Reading, labelling, windowing and splitting sequence data.

mod types;

pub mod dataset;
pub mod dedup;
pub mod manifest;
pub mod qc;
pub mod split;
pub mod window;

pub use dataset::{Dataset, DatasetError, DatasetOptions};
pub use manifest::Manifest;
pub use qc::QcReport;
pub use split::SplitFractions;
pub use types::*;
pub use window::WindowOptions;
