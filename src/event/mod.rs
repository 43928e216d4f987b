//! One event before anything is written: its checks (`validate.rs`), its ids (`ids.rs`: CUID2
//! event and correlation ids, time-ordered row ids) and its envelope (`envelope.rs`: the JSON
//! byte-compatible with `JSON.stringify` of the platform's envelope). Touches no store.

mod envelope;
mod ids;
mod validate;

pub(crate) use envelope::{
    prepare_all, prepare_batch, push_json_string, EventInput, PreparedEvent,
};
pub(crate) use ids::new_id;
pub(crate) use validate::MAX_ID_LEN;
