//! `prepareEvents`, the core of `@hyvve/event-publisher/testing`: the publisher's own validation
//! and envelope code, with no store and no environment.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::error::to_napi;
use super::native_publisher::NativeEvent;
use crate::config::Config;
use crate::event::prepare_all;

/// One event as the publisher would write it: the stream entry's `event` field and the row's
/// columns (for `@hyvve/event-publisher/testing`).
#[napi(object)]
// Only JS calls it: a `cargo test` build (no napi registration) sees no user.
#[cfg_attr(test, allow(dead_code))]
pub struct PreparedEntry {
    /// The envelope JSON, byte for byte what the stream entry's `event` field would hold.
    pub envelope: String,
    /// The event id.
    pub event_id: String,
    /// Whether the caller chose the event id (then retries are deduplicated by it).
    pub caller_event_id: bool,
    /// The row's primary key.
    pub row_id: String,
    /// The event type.
    #[napi(js_name = "type")]
    pub event_type: String,
    /// The source after defaulting.
    pub source: String,
    /// The tenant.
    pub tenant_id: String,
    /// The correlation id after defaulting.
    pub correlation_id: String,
    /// The envelope's timestamp, also the row's `created_at`.
    pub timestamp: String,
}

/// Resolves `options` and prepares `events` with the publisher's own validation and envelope
/// code, touching no store: the in-memory test publisher's core. `batch` prepares them as
/// `publishBatch` does, otherwise as `publish` (one event). Store URLs are not needed
/// (placeholders stand in for them when absent), the environment is not read.
#[napi(
    ts_args_type = "options: Record<string, unknown> | undefined | null, events: Array<NativeEvent>, batch: boolean"
)]
#[cfg_attr(test, allow(dead_code))]
pub fn prepare_events(
    options: Option<serde_json::Value>,
    events: Vec<NativeEvent>,
    batch: bool,
) -> Result<Vec<PreparedEntry>> {
    let mut o = super::options::options(options).map_err(to_napi)?;
    // An empty map, not `None` (which reads the process environment): a test publisher must not
    // fail on, or be configured by, the variables of the machine it runs on.
    o.env = Some(Default::default());
    o.redis_url
        .get_or_insert_with(|| "redis://127.0.0.1:6379".into());
    o.database_url
        .get_or_insert_with(|| "postgres://127.0.0.1:5432/test".into());
    let cfg = Config::resolve(o).map_err(to_napi)?;
    let inputs = events.into_iter().map(NativeEvent::into_input).collect();
    let prepared =
        prepare_all(inputs, batch, &cfg.source, cfg.max_payload_bytes).map_err(to_napi)?;
    Ok(prepared
        .into_iter()
        .map(|e| PreparedEntry {
            envelope: e.json,
            event_id: e.event_id,
            caller_event_id: e.caller_event_id,
            row_id: e.row_id,
            event_type: e.event_type,
            source: e.source,
            tenant_id: e.tenant_id,
            correlation_id: e.correlation_id,
            timestamp: e.timestamp,
        })
        .collect())
}
