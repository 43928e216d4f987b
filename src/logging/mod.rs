//! Logging on `tracing`: the publisher's code (and the drivers: sqlx logs through `tracing`,
//! redis-rs through `log`, bridged by `bridge.rs`) emits events and spans; one `RecordLayer` (`layer.rs`) per
//! publisher turns the enabled ones into [`LogRecord`]s (`record.rs`) for a [`LogSink`] (the
//! caller's `logger` callback, wired in `binding/`, or JSON lines on stderr); `filter.rs` parses
//! `logLevel`.
//!
//! Per publisher, never global: [`dispatch`] builds a `Dispatch` that the publisher attaches to
//! its own futures and tasks (`WithSubscriber`), so two publishers with different levels each get
//! their own records, and no global subscriber collides with another library's (or with a second
//! copy of this addon). Filtering happens before anything is formatted: a disabled callsite costs
//! tracing's level comparison and nothing else.

mod bridge;
mod filter;
mod layer;
mod record;

pub(crate) use filter::parse_filter;
pub(crate) use layer::dispatch;
pub(crate) use record::{Joined, LogRecord, LogSink, StderrSink};
