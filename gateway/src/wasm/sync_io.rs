//! `wasi:io` for components called synchronously on the proxy's async worker threads.
//!
//! wasmtime-wasi's synchronous bindings run every potentially blocking `wasi:io` call (writing to
//! stderr, dropping a stream, `poll`) through `Handle::block_on`, which panics on a thread that
//! drives tokio tasks, as ours do. So a component that printed a panic message took down the
//! connection task instead of failing one request. Here the same operations are polled exactly
//! once: what the deny-all sandbox offers (stdio sinks, elapsed clocks) is always ready; anything
//! that would really wait traps, which fails only the call, as a component doing blocking I/O on
//! the request path should. Everything that never blocks goes to wasmtime-wasi's own code.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::p2::bindings::sync::io::{poll, streams};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, StreamError, StreamResult};
use wasmtime_wasi_io::bindings::wasi::io::poll as async_poll;
use wasmtime_wasi_io::bindings::wasi::io::streams as async_streams;

/// Why a component was stopped for waiting.
const WOULD_BLOCK: &str = "the component tried to wait for I/O; blocking is not allowed in the gateway's sandbox";

/// Runs `future` if it completes without waiting, else fails with [`WOULD_BLOCK`].
fn now<T>(future: impl Future<Output = T>) -> Option<T> {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => Some(value),
        Poll::Pending => None,
    }
}

fn now_or_trap<T>(future: impl Future<Output = wasmtime::Result<T>>) -> wasmtime::Result<T> {
    now(future).unwrap_or_else(|| Err(wasmtime::format_err!("{WOULD_BLOCK}")))
}

fn stream_now_or_trap<T>(future: impl Future<Output = StreamResult<T>>) -> StreamResult<T> {
    now(future).unwrap_or_else(|| Err(StreamError::trap(WOULD_BLOCK)))
}

/// The view the overriding bindings work on.
pub struct SyncIo<'a>(&'a mut ResourceTable);

struct HasSyncIo;

impl HasData for HasSyncIo {
    type Data<'a> = SyncIo<'a>;
}

/// Replaces the `wasi:io/poll` and `wasi:io/streams` bindings already in `linker` with ours.
pub fn shadow<T: WasiView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    poll::add_to_linker::<T, HasSyncIo>(linker, |t| SyncIo(t.ctx().table))?;
    streams::add_to_linker::<T, HasSyncIo>(linker, |t| SyncIo(t.ctx().table))?;
    linker.allow_shadowing(false);
    Ok(())
}

impl poll::Host for SyncIo<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        now_or_trap(async { async_poll::Host::poll(self.0, pollables).await })
    }
}

impl poll::HostPollable for SyncIo<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        let borrowed = Resource::new_borrow(pollable.rep());
        Ok(now(async { async_poll::HostPollable::block(self.0, borrowed).await }).transpose()?.is_some())
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        now_or_trap(async { async_poll::HostPollable::block(self.0, pollable).await })
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        async_poll::HostPollable::drop(self.0, pollable)
    }
}

impl streams::Host for SyncIo<'_> {
    fn convert_stream_error(&mut self, err: StreamError) -> wasmtime::Result<streams::StreamError> {
        streams::Host::convert_stream_error(self.0, err)
    }
}

impl streams::HostOutputStream for SyncIo<'_> {
    fn drop(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<()> {
        now_or_trap(async { async_streams::HostOutputStream::drop(self.0, stream).await })
    }

    fn check_write(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<u64> {
        streams::HostOutputStream::check_write(self.0, stream)
    }

    fn write(&mut self, stream: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        streams::HostOutputStream::write(self.0, stream, bytes)
    }

    fn blocking_write_and_flush(&mut self, stream: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        stream_now_or_trap(async {
            async_streams::HostOutputStream::blocking_write_and_flush(self.0, stream, bytes).await
        })
    }

    fn blocking_write_zeroes_and_flush(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        stream_now_or_trap(async {
            async_streams::HostOutputStream::blocking_write_zeroes_and_flush(self.0, stream, len).await
        })
    }

    fn subscribe(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<Resource<DynPollable>> {
        streams::HostOutputStream::subscribe(self.0, stream)
    }

    fn write_zeroes(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        streams::HostOutputStream::write_zeroes(self.0, stream, len)
    }

    fn flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        streams::HostOutputStream::flush(self.0, stream)
    }

    fn blocking_flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        let borrowed = Resource::new_borrow(stream.rep());
        stream_now_or_trap(async { async_streams::HostOutputStream::blocking_flush(self.0, borrowed).await })
    }

    fn splice(&mut self, dst: Resource<DynOutputStream>, src: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        streams::HostOutputStream::splice(self.0, dst, src, len)
    }

    fn blocking_splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        stream_now_or_trap(async { async_streams::HostOutputStream::blocking_splice(self.0, dst, src, len).await })
    }
}

impl streams::HostInputStream for SyncIo<'_> {
    fn drop(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<()> {
        now_or_trap(async { async_streams::HostInputStream::drop(self.0, stream).await })
    }

    fn read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        streams::HostInputStream::read(self.0, stream, len)
    }

    fn blocking_read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        stream_now_or_trap(async { async_streams::HostInputStream::blocking_read(self.0, stream, len).await })
    }

    fn skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        streams::HostInputStream::skip(self.0, stream, len)
    }

    fn blocking_skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        stream_now_or_trap(async { async_streams::HostInputStream::blocking_skip(self.0, stream, len).await })
    }

    fn subscribe(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<Resource<DynPollable>> {
        streams::HostInputStream::subscribe(self.0, stream)
    }
}
