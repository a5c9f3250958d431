//! Allocator settings for tensor work.

/// candle allocates a fresh buffer for every op result. glibc serves buffers above 128 KiB
/// (its default `M_MMAP_THRESHOLD`) with `mmap` and returns them with `munmap`, so every
/// activation of a training step costs page faults and zero-filling by the kernel; a high
/// threshold keeps them in the heap for reuse, and a high trim threshold stops the heap from
/// being handed back between steps. Call once at start-up, before threads are spawned.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads allocate.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 * 1024 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
    }
}
