//! Giving memory back after a burst. glibc's malloc keeps freed memory for reuse: after a stall
//! released hundreds of large event buffers, the process stayed gigabytes above where it started
//! (issue 23: 58 MB before, 2.2 GB after the events settled and a GC). Once the publisher is idle
//! again after holding a lot, one `malloc_trim(0)` returns the free pages (measured in
//! docs/overload.md). Other allocators (musl, macOS, Windows) return large blocks themselves.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes held at once since the last trim before going idle is worth a trim.
const TRIM_AFTER_BYTES: usize = 16 << 20;

/// The most bytes held at once since the last trim.
static HIGH_WATER: AtomicUsize = AtomicUsize::new(0);

/// Notes that `bytes` are held now (admission's total).
pub(crate) fn held(bytes: usize) {
    HIGH_WATER.fetch_max(bytes, Ordering::Relaxed);
}

/// Called when the publisher has nothing in flight: trims the allocator if it held a lot since
/// the last time, on a blocking thread (a trim of a large heap takes milliseconds).
pub(crate) fn idle() {
    if HIGH_WATER.load(Ordering::Relaxed) < TRIM_AFTER_BYTES {
        return;
    }
    HIGH_WATER.store(0, Ordering::Relaxed);
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn_blocking(|| {
            // SAFETY: malloc_trim only walks glibc's own arenas; any thread may call it.
            unsafe {
                libc::malloc_trim(0);
            }
        });
    }
}
