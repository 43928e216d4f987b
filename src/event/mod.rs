pub mod envelope;
pub mod ids;
pub mod validate;
