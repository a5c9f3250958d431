//! The DNA language-model families, their loading, catalog and Hub access.
pub mod catalog;
pub mod hub;
pub mod ops;
