//! Reading, labelling, windowing and splitting sequence data.

mod error;
mod fastx;
mod label;
mod load;
pub mod normalize;
mod sequences;
mod table;
mod types;

pub use error::DataError;
pub use label::HeaderLabelRule;
pub use load::{
    default_class_name, load, load_with_progress, ClassInput, LoadOptions, LoadProgress,
};
pub use sequences::{read_sequences, SequenceRecord};
pub use table::TableInput;
pub use types::*;
