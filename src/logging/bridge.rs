//! `log` records into `tracing`: redis-rs logs through the `log` crate, so without this a
//! directive like `redis=debug` would find nothing. tracing-log's `LogTracer` is installed once
//! as the process's `log` logger; it hands each record to the *current* dispatcher (the
//! per-publisher one its tasks carry), where the same `Targets` filter decides.
//!
//! Off costs one comparison: `log::max_level` is kept at the most verbose driver directive of
//! the publishers alive (`Off` when none names one), so a `log::debug!` in redis-rs stops at the
//! `log` crate's own level check. If another logger was installed first (`set_logger` fails),
//! the bridge stays off and that logger, and its `max_level`, are left alone.

use std::sync::{Mutex, OnceLock};

use tracing_log::AsLog;
use tracing_subscriber::filter::{LevelFilter, Targets};

use super::filter::OWN_TARGET;

/// Live publishers per most verbose driver level, indexed by `log::LevelFilter as usize`
/// (0 = off … 5 = trace).
static LIVE: Mutex<[usize; 6]> = Mutex::new([0; 6]);

/// Whether our `LogTracer` is the process's `log` logger (decided on first use).
fn installed() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        tracing_log::LogTracer::builder()
            .with_max_level(log::LevelFilter::Off)
            .init()
            .is_ok()
    })
}

/// Keeps `log::max_level` at least at its publisher's driver level while it lives.
pub struct LogLevelGuard(log::LevelFilter);

/// Installs the bridge (once) and raises `log::max_level` to what `filter` wants of targets
/// other than this crate's (whose records are `tracing` events already).
pub fn register(filter: &Targets) -> LogLevelGuard {
    let level = filter
        .iter()
        .filter(|(target, _)| !target.starts_with(OWN_TARGET))
        .map(|(_, level)| level)
        .chain(filter.default_level())
        .max()
        .unwrap_or(LevelFilter::OFF)
        .as_log();
    update(|live| live[level as usize] += 1);
    LogLevelGuard(level)
}

impl Drop for LogLevelGuard {
    fn drop(&mut self) {
        update(|live| live[self.0 as usize] -= 1);
    }
}

fn update(change: impl FnOnce(&mut [usize; 6])) {
    let installed = installed();
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    change(&mut live);
    if installed {
        let most = live.iter().rposition(|n| *n > 0).unwrap_or(0);
        log::set_max_level(LEVELS[most]);
    }
}

const LEVELS: [log::LevelFilter; 6] = [
    log::LevelFilter::Off,
    log::LevelFilter::Error,
    log::LevelFilter::Warn,
    log::LevelFilter::Info,
    log::LevelFilter::Debug,
    log::LevelFilter::Trace,
];
