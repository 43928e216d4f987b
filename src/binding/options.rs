//! JS options in, a resolved [`Config`] out (parsing and checking live in `config/`).

use napi::bindgen_prelude::*;

use super::error::to_napi;
use crate::config::{Config, Options};
use crate::errors::PublishError;

/// Options as the JS wrapper passes them (`PublisherOptions` in index.d.ts, flattened by
/// `nativeOptions` in index.js): deserialized straight into [`Options`], so the fields are listed
/// once, in `config/options.rs`.
pub(super) fn options(
    value: Option<serde_json::Value>,
) -> std::result::Result<Options, PublishError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(Options::default()),
        Some(v) => serde_json::from_value(v)
            .map_err(|e| PublishError::config(format!("invalid options: {e}"))),
    }
}

pub(super) fn resolve(value: Option<serde_json::Value>) -> Result<Config> {
    install_crypto();
    Config::resolve(options(value).map_err(to_napi)?).map_err(to_napi)
}

/// rustls needs one process-wide crypto provider; both drivers use ring. Installing is
/// idempotent (a second call just reports that one exists).
fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
