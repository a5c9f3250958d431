//! Compute devices: what a device is called, which dtype its frozen weights use, how much
//! memory a run holds on it, and whether an error means it ran out of memory.

use candle_core::{DType, Device};

use crate::train::Precision;

/// `cpu`, `cuda:N` or `metal`, with the card's name and compute capability when known.
pub fn describe(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda(_) => {
            let ordinal = match device.location() {
                candle_core::DeviceLocation::Cuda { gpu_id } => gpu_id,
                _ => 0,
            };
            match (cuda::name(device), compute_capability(device)) {
                (Some(name), Some((major, minor))) => {
                    format!("cuda:{ordinal} ({name}, compute capability {major}.{minor})")
                }
                _ => format!("cuda:{ordinal}"),
            }
        }
        Device::Metal(_) => "metal".to_string(),
    }
}

/// The CUDA compute capability `(major, minor)` of a CUDA device; `None` elsewhere.
pub fn compute_capability(device: &Device) -> Option<(i32, i32)> {
    cuda::compute_capability(device)
}

/// The dtype of the frozen base weights for `precision` on `device`, or why it cannot be used
/// there.
pub fn frozen_dtype(precision: Precision, device: &Device) -> Result<DType, String> {
    let capability = compute_capability(device);
    let bf16_capable = capability.is_some_and(|(major, _)| major >= 8);
    match (precision, device) {
        (Precision::F32, _) => Ok(DType::F32),
        (Precision::Auto, Device::Cpu) => Ok(DType::F32),
        (Precision::Auto, Device::Cuda(_)) if bf16_capable => Ok(DType::BF16),
        (Precision::Auto, _) => Ok(DType::F16),
        (Precision::F16, _) => Ok(DType::F16),
        (Precision::Bf16, Device::Cuda(_)) if bf16_capable => Ok(DType::BF16),
        (Precision::Bf16, Device::Cuda(_)) => Err(format!(
            "bf16 needs an NVIDIA GPU of compute capability 8.0 or newer (Ampere); this one has \
             {}. Use --precision f16 or f32",
            capability.map_or(
                "an unknown capability".to_string(),
                |(major, minor)| format!("{major}.{minor}")
            )
        )),
        (Precision::Bf16, Device::Cpu) => Err(
            "bf16 weights are for CUDA GPUs (the CPU has no bf16 matrix product here); use \
             --precision f32 (the CPU default) or f16 (half the memory, slower)"
                .to_string(),
        ),
        (Precision::Bf16, Device::Metal(_)) => {
            Err("use --precision f16 on Metal (bf16 is for CUDA GPUs)".to_string())
        }
    }
}

/// Bytes of memory in use: on a CUDA device the whole card's (total − free, as `nvidia-smi`
/// shows it), on the CPU this process's resident set; `None` where it cannot be read.
pub fn memory_in_use(device: &Device) -> Option<u64> {
    match device {
        Device::Cpu => resident_set_bytes(),
        Device::Cuda(_) => cuda::memory_in_use(device),
        Device::Metal(_) => None,
    }
}

#[cfg(target_os = "linux")]
fn resident_set_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

#[cfg(not(target_os = "linux"))]
fn resident_set_bytes() -> Option<u64> {
    None
}

/// The peak of [`memory_in_use`] over the samples of a run, and what was in use before it.
#[derive(Debug, Clone)]
pub struct MemoryMeter {
    device: Device,
    baseline: Option<u64>,
    peak: Option<u64>,
}

impl MemoryMeter {
    /// Starts with what is in use now (other programs' share of the card, on a GPU).
    pub fn start(device: &Device) -> Self {
        let baseline = memory_in_use(device);
        Self {
            device: device.clone(),
            baseline,
            peak: baseline,
        }
    }

    /// Reads the memory in use now and keeps the peak.
    pub fn sample(&mut self) {
        if let Some(now) = memory_in_use(&self.device) {
            self.peak = Some(self.peak.map_or(now, |peak| peak.max(now)));
        }
    }

    /// The highest memory in use seen, in MiB.
    pub fn peak_mib(&self) -> Option<f64> {
        self.peak.map(|bytes| bytes as f64 / (1024.0 * 1024.0))
    }

    /// The peak minus what was in use at the start, in MiB: what this run added.
    pub fn run_peak_mib(&self) -> Option<f64> {
        Some(self.peak?.saturating_sub(self.baseline?) as f64 / (1024.0 * 1024.0))
    }
}

/// Whether an error's text is a device allocation failure (CUDA's `CUDA_ERROR_OUT_OF_MEMORY`,
/// cuBLAS's `CUBLAS_STATUS_ALLOC_FAILED`, Metal's "out of memory").
pub fn is_out_of_memory(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("out_of_memory")
        || lower.contains("out of memory")
        || lower.contains("alloc_failed")
        || lower.contains("failed to allocate")
}

#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::Device;

    fn context(
        device: &Device,
    ) -> Option<std::sync::Arc<candle_core::cuda::cudarc::driver::CudaContext>> {
        let cuda = device.as_cuda_device().ok()?;
        Some(cuda.cuda_stream().context().clone())
    }

    pub fn compute_capability(device: &Device) -> Option<(i32, i32)> {
        context(device)?.compute_capability().ok()
    }

    pub fn name(device: &Device) -> Option<String> {
        context(device)?.name().ok()
    }

    pub fn memory_in_use(device: &Device) -> Option<u64> {
        let (free, total) = context(device)?.mem_get_info().ok()?;
        Some(total.saturating_sub(free) as u64)
    }
}

#[cfg(not(feature = "cuda"))]
mod cuda {
    use candle_core::Device;

    pub fn compute_capability(_device: &Device) -> Option<(i32, i32)> {
        None
    }

    pub fn name(_device: &Device) -> Option<String> {
        None
    }

    pub fn memory_in_use(_device: &Device) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_precision_choices() {
        assert_eq!(frozen_dtype(Precision::Auto, &Device::Cpu), Ok(DType::F32));
        assert_eq!(frozen_dtype(Precision::F16, &Device::Cpu), Ok(DType::F16));
        let err = frozen_dtype(Precision::Bf16, &Device::Cpu).unwrap_err();
        assert!(err.contains("--precision f32"), "{err}");
    }

    #[test]
    fn out_of_memory_messages_are_recognised() {
        assert!(is_out_of_memory(
            "DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")"
        ));
        assert!(is_out_of_memory("cublas error CUBLAS_STATUS_ALLOC_FAILED"));
        assert!(!is_out_of_memory("shape mismatch in matmul"));
    }

    #[test]
    fn cpu_memory_meter_sees_an_allocation() {
        let mut meter = MemoryMeter::start(&Device::Cpu);
        assert!(meter.peak_mib().is_some(), "/proc/self/statm is readable");
        let block = vec![1u8; 64 << 20];
        meter.sample();
        assert!(block.iter().all(|&b| b == 1));
        // Other tests of this process allocate and free concurrently, so only the absolute
        // peak is certain: it includes the 64 MiB just touched.
        let peak = meter.peak_mib().unwrap_or(0.0);
        assert!(peak >= 64.0, "64 MiB in use but the peak shows {peak} MiB");
    }
}
