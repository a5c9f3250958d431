//! Reading, labelling, windowing and splitting sequence data.

mod types;

pub use types::*;
