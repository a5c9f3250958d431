//! Shared helpers for golden-parity tests against `shared/fixtures/` (see its README).
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, IndexOp, Tensor};

/// The fixtures folder: `$DNATUNE_SHARED/fixtures` or `../shared/fixtures` beside the crate.
/// `None` (with the reason printed) when neither exists, so the caller can return early.
pub fn fixtures_dir(test: &str) -> Option<PathBuf> {
    let shared = match std::env::var_os("DNATUNE_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
    };
    let fixtures = shared.join("fixtures");
    if fixtures.is_dir() {
        Some(fixtures)
    } else {
        eprintln!(
            "SKIPPED {test}: {} not found (set DNATUNE_SHARED to the shared folder)",
            fixtures.display()
        );
        None
    }
}

/// The device the parity tests run on: `$DNATUNE_TEST_DEVICE` (`cpu`, `cuda`, `cuda:N`,
/// `metal`; a build with that back end), else the CPU. The GPU verification script
/// (`bench/gpu/verify.sh`) runs the same tests on a GPU this way.
pub fn test_device() -> Device {
    let choice = std::env::var("DNATUNE_TEST_DEVICE").unwrap_or_else(|_| "cpu".into());
    let choice: dnatune::train::DeviceChoice = choice
        .parse()
        .unwrap_or_else(|e| panic!("DNATUNE_TEST_DEVICE: {e}"));
    dnatune::train::resolve_device(choice)
        .unwrap_or_else(|e| panic!("DNATUNE_TEST_DEVICE={choice}: {e}"))
}

/// A tensor's values on the CPU (comparisons read them there).
pub fn on_cpu(t: &Tensor) -> Tensor {
    t.to_device(&Device::Cpu).expect("copy to the CPU")
}

/// The tensors of a `golden*.safetensors` file.
pub struct Golden {
    pub path: PathBuf,
    pub tensors: HashMap<String, Tensor>,
}

impl Golden {
    pub fn open(path: &Path) -> Self {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        Self {
            path: path.to_path_buf(),
            tensors,
        }
    }

    pub fn get(&self, name: &str) -> &Tensor {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("{} has no tensor {name}", self.path.display()))
    }

    /// `(row, col)` pairs of `mlm_positions`.
    pub fn mlm_positions(&self) -> Vec<(usize, usize)> {
        let rows: Vec<Vec<i64>> = self.get("mlm_positions").to_vec2().expect("mlm_positions");
        rows.iter()
            .map(|p| (p[0] as usize, p[1] as usize))
            .collect()
    }
}

/// Largest |actual − expected| over the positions where `attention_mask == 1`, for
/// `[batch, tokens, …]` tensors and a `[batch, tokens]` mask.
pub fn max_abs_diff_valid(actual: &Tensor, expected: &Tensor, attention_mask: &Tensor) -> f32 {
    let actual = &on_cpu(actual);
    assert_eq!(actual.dims(), expected.dims(), "shapes differ");
    let mask: Vec<Vec<i64>> = attention_mask
        .to_dtype(DType::I64)
        .and_then(|m| m.to_vec2())
        .expect("attention_mask");
    let mut max = 0f32;
    for (row, row_mask) in mask.iter().enumerate() {
        for (col, &valid) in row_mask.iter().enumerate() {
            if valid == 1 {
                let a = actual.i((row, col)).expect("index");
                let e = expected.i((row, col)).expect("index");
                max = max.max(max_abs_diff(&a, &e));
            }
        }
    }
    max
}

/// Largest |actual − expected| over all elements (f32 comparison).
pub fn max_abs_diff(actual: &Tensor, expected: &Tensor) -> f32 {
    let actual = &on_cpu(actual);
    assert_eq!(actual.dims(), expected.dims(), "shapes differ");
    let diff = (actual.to_dtype(DType::F32).expect("f32")
        - expected.to_dtype(DType::F32).expect("f32"))
    .expect("sub")
    .abs()
    .expect("abs")
    .flatten_all()
    .expect("flatten");
    if diff.elem_count() == 0 {
        return 0.0;
    }
    diff.max(0)
        .expect("max")
        .to_scalar::<f32>()
        .expect("scalar")
}

/// Asserts `actual` matches the golden `name` within `tol` at valid positions only.
pub fn assert_close_valid(name: &str, actual: &Tensor, expected: &Tensor, mask: &Tensor, tol: f32) {
    let diff = max_abs_diff_valid(actual, expected, mask);
    assert!(
        diff <= tol,
        "{name}: max |diff| at valid positions = {diff:.3e} > {tol:.0e}"
    );
    eprintln!("{name}: max |diff| = {diff:.3e}");
}

/// Asserts `actual` matches the golden `name` within `tol` everywhere.
pub fn assert_close(name: &str, actual: &Tensor, expected: &Tensor, tol: f32) {
    let diff = max_abs_diff(actual, expected);
    assert!(diff <= tol, "{name}: max |diff| = {diff:.3e} > {tol:.0e}");
    eprintln!("{name}: max |diff| = {diff:.3e}");
}
