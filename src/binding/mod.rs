//! The napi boundary: the only folder that names napi. `native_publisher` is the class
//! `index.js` wraps, `testing` the core of `/testing`; `error` is the one place a Rust error
//! becomes a JS error; `completions` and `packed_batch` are the wire formats `index.js` relies on.

mod completions;
mod error;
mod native_publisher;
mod options;
mod packed_batch;
mod testing;

/// One Tokio worker thread unless `EVENT_PUBLISHER_THREADS=n` asks for more (napi's default is
/// one per CPU). Measured (bench, package, medians of 3, 2 CPUs): one worker against two cost Node
/// 191 against 220 µs of CPU per sequential publish (fewer hand-offs between threads), at the same
/// events/s sequentially, at 64 in flight and in batches of 1,000.
#[napi_derive::module_init]
fn init_runtime() {
    let workers = std::env::var("EVENT_PUBLISHER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1);
    if let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        napi::bindgen_prelude::create_custom_tokio_runtime(rt);
    }
}
