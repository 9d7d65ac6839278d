//! Serving HTTP/1.1 and HTTP/2 on a bound listener until shutdown, then draining: stop accepting,
//! let open connections finish their requests, and give up on them after a bound.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

pub mod access_log;
pub mod client_io;

use crate::conf::ClientLimits;
use crate::io::AcceptBackoff;
use crate::metrics::Facts;
use crate::shutdown::Shutdown;
use crate::workers::{OpenConnection, Workers};
use access_log::{AccessLogging, ConnLog, ConnMetrics, Pending, Record};
use client_io::{Activity, ClientIo, Clocks, Counted, InFlight};

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
    /// The connection's requests in flight; tell it when the connection becomes a tunnel.
    pub activity: Arc<Activity>,
}

#[derive(Debug, Clone)]
pub struct TlsInfo {
    pub sni: Option<String>,
}

/// How a listener serves its connections.
#[derive(Clone)]
pub struct ServeOptions {
    /// Serve through TLS (the listen flag `ssl`).
    pub tls: Option<TlsAcceptor>,
    /// Speak HTTP/2 as well (the listen flag `http2`); else HTTP/1.1 only, also in plain text.
    pub http2: bool,
    pub limits: ClientLimits,
    /// Serve each connection on one of these worker threads (the proxy's); else on the runtime
    /// that accepts.
    pub workers: Option<Arc<Workers>>,
    /// Log each request (`*_access_log`), or not.
    pub access_log: Option<AccessLogging>,
    /// Count each request whose response carries its [`crate::metrics::Facts`] (the proxy's).
    pub counters: Option<access_log::Counters>,
}

/// Accepts on `listener` (through TLS when the options say so) and serves each connection with
/// the service `make` builds for it, until shutdown; then drains: open connections finish their
/// requests (HTTP/1 closes after the current one, HTTP/2 sends GOAWAY) for up to `drain`.
pub async fn serve<M, S, B>(
    name: &'static str,
    listener: TcpListener,
    options: ServeOptions,
    make: M,
    mut shutdown: Shutdown,
    drain: Duration,
) where
    M: Fn(Conn) -> S + Send + Sync + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let protocols = Arc::new(Protocols::new(&options));
    let limits = options.limits.clone();
    let (draining, drained) = watch::channel(false);
    let make = Arc::new(make);
    let mut connections = tokio::task::JoinSet::new();
    let mut backoff = AcceptBackoff::new(name);
    // Room for the next connection on the workers, taken before accepting it: while the workers
    // are full, new connections wait in the listen backlog (nginx's worker_connections).
    let mut room = None;
    let admit = |workers: Option<Arc<Workers>>| async move {
        match workers {
            Some(workers) => workers.admit().await,
            None => std::future::pending().await,
        }
    };
    loop {
        let waiting = options.workers.is_some() && room.is_none();
        tokio::select! {
            admitted = admit(options.workers.clone()), if waiting => room = Some(admitted),
            accepted = listener.accept(), if !waiting => match accepted {
                Ok((stream, peer)) => {
                    backoff.accepted();
                    // An IPv4 client of an `ipv6only=off` listener arrives as `::ffff:a.b.c.d`:
                    // it is that IPv4 client to trusted_ips, ip-restriction, rate limits and logs.
                    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
                    let _ = stream.set_nodelay(true);
                    let local = stream.local_addr().map_or(peer, |a| SocketAddr::new(a.ip().to_canonical(), a.port()));
                    let (stream, assigned) = match &options.workers {
                        None => (Accepted::Here(stream), None),
                        // Off this runtime's reactor, to be registered with the worker's.
                        Some(workers) => match stream.into_std() {
                            Ok(stream) => {
                                let assigned = workers.assign(room.take().expect("room is taken before accepting"));
                                (Accepted::Moved(stream, assigned.open), Some(assigned.handle))
                            }
                            Err(error) => {
                                tracing::debug!(%peer, %error, "{name}: cannot hand the connection to a worker");
                                continue;
                            }
                        },
                    };
                    let protocols = protocols.clone();
                    let drained = drained.clone();
                    let tls = options.tls.clone();
                    let make = make.clone();
                    let limits = limits.clone();
                    let access_log = options.access_log.as_ref().map(|logging| ConnLog::new(logging, peer.ip()));
                    // The connection's own handle: cloned per request without touching a count
                    // the other cores write.
                    let metrics = options.counters.clone().map(Arc::new);
                    let task = async move {
                        let (stream, _open) = match stream.register() {
                            Ok(registered) => registered,
                            Err(error) => {
                                tracing::debug!(%peer, %error, "{name}: cannot register the connection with its worker");
                                return;
                            }
                        };
                        let activity = Arc::new(Activity::default());
                        let clocks = Clocks {
                            header: limits.header_timeout,
                            keepalive: limits.keepalive_timeout,
                            send: limits.send_timeout,
                        };
                        let io = ClientIo::new(stream, activity.clone(), clocks);
                        let watched = activity.clone();
                        let serving = async {
                            match tls {
                                None => {
                                    let conn = Conn { peer, local, tls: None, activity: activity.clone() };
                                    let service = Counting::new(make(conn), activity, access_log, metrics);
                                    protocols.serve(io, service, drained).await
                                }
                                Some(acceptor) => {
                                    let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                                        Ok(Ok(stream)) => stream,
                                        Ok(Err(error)) => return Err(format!("TLS handshake failed: {error}").into()),
                                        Err(_) => return Err("TLS handshake timed out".into()),
                                    };
                                    let sni = stream.get_ref().1.server_name().map(str::to_string);
                                    let conn = Conn { peer, local, tls: Some(TlsInfo { sni }), activity: activity.clone() };
                                    let service = Counting::new(make(conn), activity, access_log, metrics);
                                    protocols.serve(stream, service, drained).await
                                }
                            }
                        };
                        // Dropping the connection closes it, with every stream and upstream request on it.
                        let result: Result<(), BoxError> = tokio::select! {
                            result = serving => result,
                            () = watched.stalled(limits.send_timeout) => {
                                Err(format!("the client took no response data for send_timeout {:?}", limits.send_timeout).into())
                            }
                        };
                        if let Err(error) = result {
                            tracing::debug!(%peer, %error, "{name}: connection ended with an error");
                        }
                    };
                    match assigned {
                        Some(worker) => connections.spawn_on(task, &worker),
                        None => connections.spawn(task),
                    };
                }
                Err(error) => tokio::select! {
                    () = backoff.failed(&error) => {}
                    () = shutdown.wait() => break,
                },
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = shutdown.wait() => break,
        }
    }
    drop(listener);
    let open = connections.len();
    let _ = draining.send(true);
    let all_done = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(drain, all_done).await.is_err() {
        tracing::warn!("{name}: connections still busy after {drain:?}; closing them");
        connections.abort_all();
    } else if open > 0 {
        tracing::debug!("{name}: {open} connection(s) drained");
    }
}

/// An accepted connection: on the accepting runtime already, or moved off it for a worker (with
/// its count on that worker).
enum Accepted {
    Here(TcpStream),
    Moved(std::net::TcpStream, OpenConnection),
}

impl Accepted {
    /// The stream on the runtime this runs on.
    fn register(self) -> std::io::Result<(TcpStream, Option<OpenConnection>)> {
        match self {
            Accepted::Here(stream) => Ok((stream, None)),
            Accepted::Moved(stream, open) => Ok((TcpStream::from_std(stream)?, Some(open))),
        }
    }
}

/// Resolves once `flag` is true (or its sender is gone).
async fn until_true(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|d| *d).await;
}

/// The HTTP versions a listener speaks, with the client limits applied to each.
struct Protocols {
    /// HTTP/1.1 and HTTP/2 (ALPN or prior knowledge), for listeners with the `http2` flag.
    both: Option<auto::Builder<TokioExecutor>>,
    /// HTTP/1.1 alone. hyper-util's auto builder would still answer an HTTP/2 preface.
    http1: hyper::server::conn::http1::Builder,
}

impl Protocols {
    fn new(options: &ServeOptions) -> Protocols {
        let limits = &options.limits;
        let max_buf = limits.max_header_bytes.max(8192);
        let mut http1 = hyper::server::conn::http1::Builder::new();
        // The head clock is `client_io`'s: hyper's would start when a connection turns idle.
        http1.timer(TokioTimer::new()).header_read_timeout(None).max_buf_size(max_buf);
        let both = options.http2.then(|| {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new()).header_read_timeout(None).max_buf_size(max_buf);
            builder
                .http2()
                .timer(TokioTimer::new())
                .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
            builder
        });
        Protocols { both, http1 }
    }

    /// Serves one connection until it ends, or until `drained` turns true: then the connection
    /// finishes what it is doing and closes.
    async fn serve<I, S, B>(&self, io: I, service: S, mut drained: watch::Receiver<bool>) -> Result<(), BoxError>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
        S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let io = TokioIo::new(io);
        match &self.both {
            Some(builder) => {
                let conn = builder.serve_connection_with_upgrades(io, service);
                tokio::pin!(conn);
                tokio::select! {
                    result = conn.as_mut() => result,
                    () = until_true(&mut drained) => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                }
            }
            None => {
                let conn = self.http1.serve_connection(io, service).with_upgrades();
                tokio::pin!(conn);
                tokio::select! {
                    result = conn.as_mut() => result.map_err(Into::into),
                    () = until_true(&mut drained) => {
                        conn.as_mut().graceful_shutdown();
                        conn.await.map_err(Into::into)
                    }
                }
            }
        }
    }
}

/// A connection's service that counts its requests in flight until their responses are sent,
/// and logs each one then when the listener has an access log.
struct Counting<S> {
    inner: S,
    activity: Arc<Activity>,
    access_log: Option<Arc<ConnLog>>,
    metrics: Option<ConnMetrics>,
}

impl<S> Counting<S> {
    fn new(inner: S, activity: Arc<Activity>, access_log: Option<Arc<ConnLog>>, metrics: Option<ConnMetrics>) -> Self {
        Counting { inner, activity, access_log, metrics }
    }
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Counting<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
{
    type Response = Response<Counted<B>>;
    type Error = S::Error;
    type Future = CountingFuture<S::Future>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let logged = self.access_log.as_ref().map(|log| log.begin(&req));
        CountingFuture {
            inner: self.inner.call(req),
            in_flight: Some(self.activity.begin()),
            logged,
            metrics: self.metrics.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    struct CountingFuture<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight>,
        logged: Option<Pending>,
        metrics: Option<ConnMetrics>,
    }
}

impl<F, B, E> Future for CountingFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<Counted<B>>, E>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx));
        let in_flight = this.in_flight.take().expect("polled after completion");
        let mut logged = this.logged.take();
        std::task::Poll::Ready(response.map(|mut r| {
            if let (Some(pending), Some(id)) = (logged.as_mut(), r.extensions().get::<crate::logs::RequestId>()) {
                pending.entry.request_id = Some(*id);
            }
            let counted = this.metrics.take().and_then(|m| Some((m, r.extensions_mut().remove::<Facts>()?)));
            let record = Record::answered(logged, counted, r.status());
            r.map(|body| Counted::new(body, in_flight, record))
        }))
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
    use crate::shutdown;

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

    fn plain() -> ServeOptions {
        ServeOptions {
            tls: None,
            http2: false,
            limits: ClientLimits::default(),
            workers: None,
            access_log: None,
            counters: None,
        }
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
            tokio::spawn(serve("test", listener, plain(), move |_| service.clone(), stop, Duration::from_secs(10)));

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
            tokio::spawn(serve("test", listener, plain(), move |_| service.clone(), stop, Duration::from_millis(200)))
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
