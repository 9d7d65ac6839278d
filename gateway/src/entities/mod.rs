//! Services, routes, consumers, plugins, upstreams, targets, certificates and SNIs: their types,
//! Kong's declarative format, validation with entity paths, and the configuration hash.

pub mod declarative;
pub mod hash;
pub mod kind;
pub mod plugins;
pub mod schema;
pub mod secrets;
pub mod types;
pub mod validate;

pub use declarative::{
    DeclarativeError, parse_file, parse_file_with, parse_str, parse_str_with, parse_value, parse_value_with,
    to_declarative,
};
pub use hash::{EMPTY_HASH, config_hash};
pub use kind::{Kind, OnDelete};
pub use plugins::{PluginRegistry, PluginSchema, describe as describe_plugin};
pub use schema::{ErrorKind, FieldError};
pub use types::*;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

/// Seconds since the Unix epoch: the clock entities' times (`created_at`, a key's `ttl`) are on.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
