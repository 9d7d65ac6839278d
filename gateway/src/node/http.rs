//! Serving HTTP/1.1 and HTTP/2 on a bound listener until shutdown, then draining: stop accepting,
//! let open connections finish their requests, and give up on them after a bound.

use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use super::shutdown::Shutdown;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub async fn serve<S, B>(name: &'static str, listener: TcpListener, service: S, mut shutdown: Shutdown, drain: Duration)
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let builder = builder.clone();
                    let service = service.clone();
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        if let Err(error) = watcher.watch(conn).await {
                            tracing::debug!(%peer, %error, "{name}: connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "{name}: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = shutdown.wait() => break,
        }
    }
    drop(listener);
    let open = graceful.count();
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("{name}: connections still busy after {drain:?}; closing them");
    } else if open > 0 {
        tracing::debug!("{name}: {open} connection(s) drained");
    }
}
