//! The one place where a Rust error becomes a JS error. The message starts with the stable code
//! (`ERR_…: `), and with `?` when the outcome is unknown; `index.js` reads both and throws an
//! `EventPublisherError` with `code` and `outcomeUnknown`. The cause stays in the message.

use napi::bindgen_prelude::*;

use crate::errors::PublishError;

/// The JS error for `e`.
pub(super) fn to_napi(e: PublishError) -> Error {
    let prefix = if e.outcome_unknown { "?" } else { "" };
    Error::new(Status::GenericFailure, format!("{}{}", prefix, e))
}

/// A JS error for a misuse of the native class by `index.js` itself (never a publish's
/// outcome, so no code).
pub(super) fn misuse(message: impl std::fmt::Display) -> Error {
    Error::new(Status::GenericFailure, message.to_string())
}
