//! The response's way back to the client, whoever made it (the upstream, the gateway or a plugin):
//! `header_filter` on its head, then, only when some plugin wants them, a body that runs
//! `body_filter` on each chunk and starts `log` once the body has ended. Without plugins the
//! response goes out untouched.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Frame, SizeHint};
use hyper::header;
use hyper::{Response, StatusCode};

use super::answers::Failure;
use super::context::RequestContext;
use super::log;
use super::phases::{Phase, PhaseRunner};
use super::upstream::{BoxError, ProxyBody};

/// Runs `header_filter` and arms `body_filter` and `log` on `response`, which then goes to the
/// client in its HTTP version.
pub fn deliver(
    mut response: Response<ProxyBody>,
    client_version: hyper::Version,
    mut ctx: RequestContext,
    phases: Option<Arc<dyn PhaseRunner>>,
    presentation: &super::answers::Presentation,
) -> Response<ProxyBody> {
    let Some(phases) = phases else {
        // The client hears our HTTP version, whatever the upstream spoke.
        *response.version_mut() = client_version;
        return response;
    };
    if phases.wants(Phase::HeaderFilter, &ctx) {
        let (mut head, body) = response.into_parts();
        response = match phases.header_filter(&mut ctx, &mut head) {
            Ok(()) => Response::from_parts(head, body),
            Err(error) => {
                let mut answer = Failure::plugin(error).answer(&ctx, client_version, presentation);
                presentation.stamp(answer.headers_mut(), &ctx, None);
                answer
            }
        };
    }
    *response.version_mut() = client_version;
    ctx.status = Some(response.status());
    let filter = phases.wants(Phase::BodyFilter, &ctx);
    let log = phases.wants(Phase::Log, &ctx);
    if !filter && !log {
        return response;
    }
    if filter && !matches!(response.status(), StatusCode::NOT_MODIFIED | StatusCode::NO_CONTENT) {
        // A filter may change the body's length: the length the upstream declared would then be
        // a lie that breaks the connection, so the body goes out chunked (Kong leaves this to
        // each plugin).
        response.headers_mut().remove(header::CONTENT_LENGTH);
    }
    response.map(|body| PhasedBody { inner: body, phases, ctx: Some(ctx), filter, log, eof_seen: false }.boxed())
}

/// A response body under `body_filter` and/or `log`.
struct PhasedBody {
    inner: ProxyBody,
    phases: Arc<dyn PhaseRunner>,
    /// Taken when the body ends, for `log`.
    ctx: Option<RequestContext>,
    filter: bool,
    log: bool,
    /// `body_filter` was called with `eof`.
    eof_seen: bool,
}

impl PhasedBody {
    /// The body ended (`complete`) or was abandoned: the request's log may run.
    fn finish(&mut self, complete: bool) {
        let Some(mut ctx) = self.ctx.take() else { return };
        ctx.timings.end = Some(Instant::now());
        ctx.body_complete = complete;
        if self.log {
            log::spawn(self.phases.clone(), ctx);
        }
    }

    /// Runs `body_filter` on `chunk`; on error the body ends early (the head is already sent).
    fn filter(&mut self, chunk: &mut Bytes, eof: bool) -> Result<(), BoxError> {
        let Some(ctx) = self.ctx.as_mut() else { return Ok(()) };
        if eof {
            self.eof_seen = true;
        }
        match self.phases.body_filter(ctx, chunk, eof) {
            Ok(()) => {
                ctx.bytes_out += chunk.len() as u64;
                Ok(())
            }
            Err(error) => {
                let route = ctx.route().map(|r| r.name.clone().unwrap_or_else(|| r.id.to_string()));
                tracing::error!(route = route.as_deref().unwrap_or("none"), %error, "a plugin failed the response body; it was cut short");
                self.finish(false);
                Err(Box::new(error))
            }
        }
    }
}

impl Body for PhasedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.ctx.is_none() {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let frame = match frame.into_data() {
                    Ok(mut data) => {
                        let eof = this.inner.is_end_stream();
                        if this.filter {
                            if let Err(error) = this.filter(&mut data, eof) {
                                return Poll::Ready(Some(Err(error)));
                            }
                        } else if let Some(ctx) = this.ctx.as_mut() {
                            ctx.bytes_out += data.len() as u64;
                        }
                        Frame::data(data)
                    }
                    Err(other) => other,
                };
                if this.inner.is_end_stream() && (!this.filter || this.eof_seen) {
                    this.finish(true);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                this.finish(false);
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                if this.filter && !this.eof_seen {
                    let mut last = Bytes::new();
                    if let Err(error) = this.filter(&mut last, true) {
                        return Poll::Ready(Some(Err(error)));
                    }
                    this.finish(true);
                    if !last.is_empty() {
                        // The body ends at the next poll (`ctx` is gone).
                        return Poll::Ready(Some(Ok(Frame::data(last))));
                    }
                    return Poll::Ready(None);
                }
                this.finish(true);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ctx.is_none() || (self.inner.is_end_stream() && (!self.filter || self.eof_seen))
    }

    fn size_hint(&self) -> SizeHint {
        if self.filter { SizeHint::default() } else { self.inner.size_hint() }
    }
}

impl Drop for PhasedBody {
    fn drop(&mut self) {
        // Not read to its end: the client went away (or nobody polls a bodiless response).
        let complete = self.inner.is_end_stream() && !self.filter;
        self.finish(complete);
    }
}
