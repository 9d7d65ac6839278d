//! Serving HTTP/1.1 and HTTP/2 on a bound listener until shutdown, then draining: stop accepting,
//! let open connections finish their requests, and give up on them after a bound.

use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::shutdown::Shutdown;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long a client may take to complete a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a service knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct Conn {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// Set for TLS connections: the server name the client asked for, if any.
    pub tls: Option<TlsInfo>,
}

#[derive(Debug, Clone)]
pub struct TlsInfo {
    pub sni: Option<String>,
}

/// Accepts on `listener` (through TLS when `tls` is set) and serves each connection with the
/// service `make` builds for it, until shutdown; then drains. HTTP/2 is spoken only when the
/// listener has the `http2` flag (over TLS its ALPN offers it; in clear text, with prior knowledge).
pub async fn serve<M, S, B>(
    name: &'static str,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    http2: bool,
    make: M,
    mut shutdown: Shutdown,
    drain: Duration,
) where
    M: Fn(Conn) -> S + Send + Sync + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let builder = if http2 { builder } else { builder.http1_only() };
    let graceful = GracefulShutdown::new();
    let make = std::sync::Arc::new(make);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let local = stream.local_addr().unwrap_or(peer);
                    let builder = builder.clone();
                    let watcher = graceful.watcher();
                    let tls = tls.clone();
                    let make = make.clone();
                    connections.spawn(async move {
                        let result = match tls {
                            None => {
                                let service = make(Conn { peer, local, tls: None });
                                watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service)).await
                            }
                            Some(acceptor) => {
                                let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                    Ok(Ok(stream)) => stream,
                                    Ok(Err(error)) => {
                                        tracing::debug!(%peer, %error, "{name}: TLS handshake failed");
                                        return;
                                    }
                                    Err(_) => {
                                        tracing::debug!(%peer, "{name}: TLS handshake timed out");
                                        return;
                                    }
                                };
                                let sni = stream.get_ref().1.server_name().map(str::to_string);
                                let service = make(Conn { peer, local, tls: Some(TlsInfo { sni }) });
                                watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service)).await
                            }
                        };
                        if let Err(error) = result {
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
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = shutdown.wait() => break,
        }
    }
    drop(listener);
    let open = graceful.count();
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("{name}: connections still busy after {drain:?}; closing them");
        connections.abort_all();
    } else if open > 0 {
        tracing::debug!("{name}: {open} connection(s) drained");
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;

    use http_body_util::Full;
    use hyper::body::Bytes;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::Notify;

    use super::*;
    use crate::node::shutdown;

    /// A service that signals when a request arrives, then answers after `delay` (never if `None`).
    fn slow(
        arrived: Arc<Notify>,
        delay: Option<Duration>,
    ) -> impl hyper::service::Service<
        Request<Incoming>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
    > + Clone
    + Send
    + Sync
    + 'static {
        hyper::service::service_fn(move |_req| {
            let arrived = arrived.clone();
            async move {
                arrived.notify_one();
                match delay {
                    Some(delay) => tokio::time::sleep(delay).await,
                    None => std::future::pending::<()>().await,
                }
                Ok(Response::new(Full::new(Bytes::from_static(b"finished"))))
            }
        })
    }

    async fn request(addr: std::net::SocketAddr) -> TcpStream {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
        stream
    }

    #[tokio::test]
    async fn an_in_flight_request_finishes_after_the_stop_and_new_connections_are_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (trigger, stop) = shutdown::channel();
        let arrived = Arc::new(Notify::new());
        let service = slow(arrived.clone(), Some(Duration::from_millis(300)));
        let server =
            tokio::spawn(serve("test", listener, None, false, move |_| service.clone(), stop, Duration::from_secs(10)));

        let mut client = request(addr).await;
        arrived.notified().await;
        trigger.fire();

        let mut response = String::new();
        client.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200") && response.ends_with("finished"), "{response}");
        tokio::time::timeout(Duration::from_secs(5), server).await.expect("serve returns once drained").unwrap();
        assert!(TcpStream::connect(addr).await.is_err(), "the listener is closed");
    }

    #[tokio::test]
    async fn a_request_that_never_finishes_is_cut_at_the_drain_bound() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (trigger, stop) = shutdown::channel();
        let arrived = Arc::new(Notify::new());
        let server = {
            let service = slow(arrived.clone(), None);
            tokio::spawn(serve(
                "test",
                listener,
                None,
                false,
                move |_| service.clone(),
                stop,
                Duration::from_millis(200),
            ))
        };

        let mut client = request(addr).await;
        arrived.notified().await;
        trigger.fire();
        tokio::time::timeout(Duration::from_secs(5), server).await.expect("serve gives up after the bound").unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the connection is closed without an answer: {read:?}");
    }
}
