//! The host state of every component's store: a WASI context that grants nothing (no files, no
//! environment, no network, no inherited stdio) and memory limits. What the component writes to
//! stdout or stderr is kept (the last few KiB) so a trap can be reported with the component's own
//! last words, such as its panic message.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Linear memory a component may grow to, unless it says otherwise.
pub const MEMORY_LIMIT: usize = 64 << 20;

/// How much of a component's output is kept.
const OUTPUT_TAIL: usize = 2048;

pub struct Sandbox {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    /// What a plugin component's imports work on (unused by other worlds).
    pub plugin: super::plugin::PluginHost,
    pub limits: StoreLimits,
    /// The end of what the component wrote to stdout and stderr.
    pub output: OutputTail,
}

impl Sandbox {
    pub fn new() -> Self {
        Self::with_memory_limit(MEMORY_LIMIT)
    }

    /// A sandbox whose component may grow its linear memory to `bytes`.
    pub fn with_memory_limit(bytes: usize) -> Self {
        let output = OutputTail::default();
        Sandbox {
            wasi: WasiCtxBuilder::new().stdout(output.clone()).stderr(output.clone()).build(),
            table: ResourceTable::new(),
            plugin: super::plugin::PluginHost::default(),
            limits: StoreLimitsBuilder::new().memory_size(bytes).instances(16).build(),
            output,
        }
    }

    /// A failed call, described with what the component last wrote (a panic message, usually).
    pub fn failure(&self, error: &wasmtime::Error) -> String {
        let cause = super::chain(error);
        match self.output.take() {
            output if output.is_empty() => cause,
            output => format!("{cause}; the component wrote: {output}"),
        }
    }

    /// A linker with the WASI interfaces Rust's std imports, all backed by the deny-all context,
    /// and callable from async worker threads (see `sync_io`).
    pub fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<Sandbox>> {
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        super::sync_io::shadow(&mut linker)?;
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

/// The last [`OUTPUT_TAIL`] bytes a component wrote; writing never blocks and never fails.
#[derive(Clone, Default)]
pub struct OutputTail(Arc<Mutex<Vec<u8>>>);

impl OutputTail {
    fn push(&self, bytes: &[u8]) {
        let mut tail = self.0.lock().unwrap_or_else(|p| p.into_inner());
        tail.extend_from_slice(&bytes[bytes.len().saturating_sub(OUTPUT_TAIL)..]);
        let excess = tail.len().saturating_sub(OUTPUT_TAIL);
        tail.drain(..excess);
    }

    /// What was written since the last call, as text on one line (empty when nothing was).
    pub fn take(&self) -> String {
        let tail = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        String::from_utf8_lossy(&tail).split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

impl IsTerminal for OutputTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputTail {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for OutputTail {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for OutputTail {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for OutputTail {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_tail_keeps_the_last_bytes_on_one_line() {
        let tail = OutputTail::default();
        tail.push(&vec![b'a'; OUTPUT_TAIL]);
        tail.push(b"\npanicked at src/lib.rs:3:5:\nboom\n");
        let text = tail.take();
        assert!(text.ends_with("aaa panicked at src/lib.rs:3:5: boom"), "{text}");
        assert_eq!(text.len(), OUTPUT_TAIL - 1, "newlines collapse to spaces: {text}");
        assert_eq!(tail.take(), "", "taking empties it");
    }
}
