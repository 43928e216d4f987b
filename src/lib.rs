//! Node.js binding of the HYVVE event publisher (map in commit B).

#![deny(clippy::all)]

mod binding;
pub mod config;
pub mod errors;
pub mod event;
pub mod logging;
pub mod metadata;
pub mod metrics;
pub mod pipeline;
pub mod stream;
