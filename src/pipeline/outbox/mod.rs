//! The transactional outbox (docs/outbox.md): events staged in the caller's own transaction
//! (`stage`), appended after its commit by `dispatch` or, whatever was not, by the relay.

mod relay;
mod stage;

pub(crate) use relay::Outbox;
pub(crate) use stage::{StagedStatement, Stager};
