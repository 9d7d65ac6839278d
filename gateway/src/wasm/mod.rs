//! The WebAssembly side of the gateway: one engine for the process, the sandbox every component runs
//! in, the components bundled into the binary, and the host end of each WIT world in `wit/`.

pub mod analytics;
pub mod bundled;
pub mod cache;
pub mod engine;
pub mod health;
pub mod plugin;
pub mod plugin_run;
pub mod plugin_runner;
pub mod plugin_set;
pub mod router;
pub mod sandbox;
pub mod scaffold;
mod sync_io;

pub use engine::{Traps, WasmRuntime};

/// Errors of loading or calling a component. wasmtime's error is kept as text with its whole chain.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    #[error("creating the wasm engine: {0}")]
    Engine(String),
    #[error("compiling component {component}: {cause}")]
    Compile { component: String, cause: String },
    #[error("instantiating component {component}: {cause}")]
    Instantiate { component: String, cause: String },
    #[error("calling {component}.{function}: {cause}")]
    Call { component: String, function: String, cause: String },
    #[error("component {component} answered wrongly: {detail}")]
    WrongAnswer { component: String, detail: String },
}

/// wasmtime's errors print their cause chain with `{:#}`.
pub(crate) fn chain(e: &wasmtime::Error) -> String {
    format!("{e:#}")
}
