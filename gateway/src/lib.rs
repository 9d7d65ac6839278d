//! `gateway`: an API gateway with Kong's configuration, a control plane / data plane split and
//! WebAssembly components for routing and plugins. `main.rs` is only the command line; everything
//! else lives here, one module per part.

#![deny(unsafe_code)]

pub mod admin;
pub mod catalog;
pub mod certs;
pub mod cluster;
pub mod conf;
pub mod console;
pub mod dns;
pub mod entities;
pub mod io;
pub mod logs;
pub mod metrics;
pub mod node;
pub mod prefix;
pub mod proxy;
pub mod server;
pub mod shutdown;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod wasm;
pub mod workers;

#[cfg(test)]
mod layering;

/// The gateway's version, as `gateway version` prints it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
