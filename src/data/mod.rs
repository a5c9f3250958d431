//! Reading, labelling, windowing and splitting sequence data.

mod error;
mod fastx;
mod label;
mod load;
pub mod normalize;
mod table;
mod types;

pub use error::DataError;
pub use label::HeaderLabelRule;
pub use load::{
    default_class_name, load, load_with_progress, load_with_settings, ClassInput, LoadOptions,
    LoadProgress, ReadSettings,
};
pub use table::TableInput;
pub use types::*;
