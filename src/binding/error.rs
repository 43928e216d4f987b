//! The one place where a Rust error becomes a JS error. The message starts with the stable code
//! (`ERR_…: `), with `?` when the outcome is unknown, and for a batch whose first parts were
//! published with their ids after the code (`ERR_…@id,id: `; ids are URL-safe, so never contain
//! `,` or `:`); `index.js` reads them and throws an `EventPublisherError` with `code`,
//! `outcomeUnknown` and `publishedIds`. The cause stays in the message.

use napi::bindgen_prelude::*;

use crate::errors::PublishError;

/// The JS error for `e`.
pub(super) fn to_napi(e: PublishError) -> Error {
    let prefix = if e.outcome_unknown { "?" } else { "" };
    let text = if e.published_ids.is_empty() {
        format!("{prefix}{e}")
    } else {
        format!(
            "{prefix}{}@{}: {}",
            e.code.as_str(),
            e.published_ids.join(","),
            e.message
        )
    };
    Error::new(Status::GenericFailure, text)
}

/// A JS error for a misuse of the native class by `index.js` itself (never a publish's
/// outcome, so no code).
pub(super) fn misuse(message: impl std::fmt::Display) -> Error {
    Error::new(Status::GenericFailure, message.to_string())
}
