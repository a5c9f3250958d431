//! The DNA language-model families, their loading, catalog and Hub access.
pub mod dnabert2;
pub mod esm;
pub mod ops;
