//! Reading, labelling, windowing and splitting sequence data.

mod error;
mod fasta;
mod fastx;
pub mod feature_label;
pub mod genbank;
mod label;
mod load;
pub mod normalize;
mod sequences;
mod table;
mod types;

pub mod dataset;
pub mod dedup;
pub mod manifest;
pub mod qc;
pub mod split;
pub mod summary;
pub mod window;

pub use dataset::{Dataset, DatasetError, DatasetOptions};
pub use error::DataError;
pub use feature_label::{FeatureLabelling, DEFAULT_MIN_FEATURE_OVERLAP};
pub use genbank::{read_genbank, Feature, GenbankRecord, Span};
pub use label::HeaderLabelRule;
pub use load::{
    default_class_name, load, load_with_progress, load_with_settings, ClassInput, LoadOptions,
    LoadProgress, ReadSettings,
};
pub use manifest::Manifest;
pub use qc::QcReport;
pub use sequences::{read_sequences, SequenceRecord};
pub use split::SplitFractions;
pub use table::TableInput;
pub use types::*;
pub use window::WindowOptions;
