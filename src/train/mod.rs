//! Fine-tuning: one blocking [`train`] call that the command line, the desktop app, the
//! tests and the benchmarks all drive; they differ only in what they do with its events.

pub mod metrics;
