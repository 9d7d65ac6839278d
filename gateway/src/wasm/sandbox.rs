//! The host state of every component's store: a WASI context that grants nothing (no files, no
//! environment, no network, no inherited stdio) and memory limits.

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Linear memory a component may grow to.
pub const MEMORY_LIMIT: usize = 64 << 20;

pub struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limits: StoreLimits,
}

impl Sandbox {
    pub fn new() -> Self {
        Sandbox {
            wasi: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new().memory_size(MEMORY_LIMIT).instances(16).build(),
        }
    }

    /// A linker with the WASI interfaces Rust's std imports, all backed by the deny-all context.
    pub fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<Sandbox>> {
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        Ok(linker)
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
