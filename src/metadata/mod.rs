pub mod sql_literal;
pub mod store;
pub(crate) mod warm_connection;
