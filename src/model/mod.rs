//! The DNA language-model families, their loading, catalog and Hub access.
pub mod ops;
