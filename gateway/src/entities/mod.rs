//! Services, routes, consumers, plugins, upstreams, targets, certificates and SNIs: their types,
//! Kong's declarative format, validation with entity paths, and the configuration hash.

pub mod declarative;
pub mod hash;
pub mod schema;
pub mod types;
pub mod validate;

pub use declarative::{DeclarativeError, parse_file, parse_str, parse_value, to_declarative};
pub use hash::{EMPTY_HASH, config_hash};
pub use schema::FieldError;
pub use types::*;

#[cfg(test)]
mod tests;
