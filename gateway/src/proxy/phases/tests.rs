//! The phases through a real proxy: the bundled router, a tiny upstream on a free port, and a
//! test runner that records what each phase saw and does what its script says.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;
use hyper::body::{Body, Frame};
use hyper::header::HeaderName;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::conf::{ClientLimits, ClientTrust};
use crate::proxy::Proxy;
use crate::proxy::answers::Blame;
use crate::server::Conn;
use crate::server::client_io::Activity;
use crate::wasm::WasmRuntime;
use crate::wasm::router::CompiledRouter;

const WAIT: Duration = Duration::from_secs(10);

/// What a phase does, beyond recording that it ran.
#[derive(Default)]
struct Script {
    wants: HashSet<Phase>,
    rewrite_to: Option<&'static str>,
    /// `rewrite` sets the request's Host to this.
    rewrite_host: Option<&'static str>,
    access_exit: Option<Exit>,
    fail_in: Option<Phase>,
    upper_body: bool,
    /// `log` waits for a message on it first.
    log_gate: Option<Mutex<std::sync::mpsc::Receiver<()>>>,
}

/// What `log` saw.
#[derive(Debug)]
struct Logged {
    route: Option<String>,
    status: Option<u16>,
    body_complete: bool,
    bytes_out: u64,
    shared: Option<String>,
    ended: bool,
}

struct Recorder {
    script: Script,
    events: Mutex<Vec<String>>,
    logged: tokio::sync::mpsc::UnboundedSender<Logged>,
}

impl Recorder {
    fn new(script: Script) -> (Arc<Recorder>, tokio::sync::mpsc::UnboundedReceiver<Logged>) {
        let (logged, rx) = tokio::sync::mpsc::unbounded_channel();
        (Arc::new(Recorder { script, events: Mutex::default(), logged }), rx)
    }

    fn event(&self, text: String) {
        self.events.lock().unwrap().push(text);
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    fn fail(&self, phase: Phase) -> Result<(), PhaseError> {
        if self.script.fail_in == Some(phase) {
            return Err(PhaseError {
                plugin: "recorder".into(),
                phase,
                reason: "scripted failure".into(),
                fault: Fault::Error,
            });
        }
        Ok(())
    }
}

impl PhaseRunner for Recorder {
    fn wants(&self, phase: Phase, _ctx: &RequestContext) -> bool {
        self.script.wants.contains(&phase)
    }

    fn rewrite(&self, ctx: &mut RequestContext, req: &mut request::Parts) -> Result<Flow, PhaseError> {
        self.event(format!("rewrite {} routed={}", req.uri.path(), ctx.route.is_some()));
        self.fail(Phase::Rewrite)?;
        if let Some(path) = self.script.rewrite_to {
            req.uri = path.parse().unwrap();
        }
        if let Some(host) = self.script.rewrite_host {
            req.headers.insert(hyper::header::HOST, HeaderValue::from_static(host));
            // As the Wasm runner reports a plugin's `set-header("host", …)`.
            ctx.host_set = true;
        }
        Ok(Flow::Continue)
    }

    fn access(&self, ctx: &mut RequestContext, _req: &mut request::Parts) -> Result<Flow, PhaseError> {
        let route = ctx.route().and_then(|r| r.name.clone()).unwrap_or_default();
        self.event(format!("access {route}"));
        self.fail(Phase::Access)?;
        ctx.shared.insert("seen-in".into(), "access".into());
        Ok(match &self.script.access_exit {
            Some(exit) => Flow::Respond(exit.clone()),
            None => Flow::Continue,
        })
    }

    fn header_filter(&self, ctx: &mut RequestContext, res: &mut response::Parts) -> Result<(), PhaseError> {
        self.event(format!("header_filter {}", res.status.as_u16()));
        self.fail(Phase::HeaderFilter)?;
        res.headers.remove("x-upstream");
        res.headers.insert("x-filtered", HeaderValue::from_static("yes"));
        if ctx.shared.contains_key("seen-in") {
            res.headers.insert("x-shared", HeaderValue::from_static("yes"));
        }
        Ok(())
    }

    fn body_filter(&self, _ctx: &mut RequestContext, chunk: &mut Bytes, eof: bool) -> Result<(), PhaseError> {
        self.event(format!("body_filter {:?} eof={eof}", String::from_utf8_lossy(chunk)));
        self.fail(Phase::BodyFilter)?;
        if self.script.upper_body {
            *chunk = Bytes::from(chunk.to_ascii_uppercase());
        }
        Ok(())
    }

    fn log(&self, ctx: &mut RequestContext) {
        if let Some(gate) = &self.script.log_gate {
            let _ = gate.lock().unwrap().recv_timeout(WAIT);
        }
        self.event("log".into());
        let _ = self.logged.send(Logged {
            route: ctx.route().and_then(|r| r.name.clone()),
            status: ctx.status.map(|s| s.as_u16()),
            body_complete: ctx.body_complete,
            bytes_out: ctx.bytes_out,
            shared: ctx.shared.get("seen-in").cloned(),
            ended: ctx.timings.end.is_some() && ctx.timings.request().is_some(),
        });
    }
}

fn all_phases() -> HashSet<Phase> {
    [Phase::Rewrite, Phase::Access, Phase::HeaderFilter, Phase::BodyFilter, Phase::Log].into()
}

type TestBody = BoxBody<Bytes, Infallible>;

/// A body of the given chunks, sent one frame each.
struct Chunks(VecDeque<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|c| Ok(Frame::data(c))))
    }
}

/// A body that sends one chunk and then nothing, ever.
struct Endless(bool);

impl Body for Endless {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.0 {
            return Poll::Pending;
        }
        self.0 = true;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"first")))))
    }
}

/// An upstream on a free port: `/chunks` answers `a`, `b`, `c` chunked, `/stream` one chunk and
/// then nothing, anything else `hello` with an `x-upstream` header. It records the paths and the
/// Host headers it saw.
struct Upstream {
    address: SocketAddr,
    paths: Arc<Mutex<Vec<String>>>,
    hosts: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let paths: Arc<Mutex<Vec<String>>> = Arc::default();
        let hosts: Arc<Mutex<Vec<String>>> = Arc::default();
        let (seen, seen_hosts) = (paths.clone(), hosts.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (seen, seen_hosts) = (seen.clone(), seen_hosts.clone());
                let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let path = req.uri().path().to_string();
                    seen.lock().unwrap().push(path.clone());
                    let host = req.headers().get(hyper::header::HOST).map(|h| h.to_str().unwrap().to_string());
                    seen_hosts.lock().unwrap().push(host.unwrap_or_default());
                    async move {
                        let body: TestBody = match path.as_str() {
                            "/chunks" => {
                                Chunks(["a", "b", "c"].map(|s| Bytes::from_static(s.as_bytes())).into()).boxed()
                            }
                            "/stream" => Endless(false).boxed(),
                            _ => Full::new(Bytes::from_static(b"hello")).boxed(),
                        };
                        let mut response = Response::new(body);
                        response.headers_mut().insert("x-upstream", HeaderValue::from_static("yes"));
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Upstream { address, paths, hosts }
    }

    fn hits(&self) -> usize {
        self.paths.lock().unwrap().len()
    }
}

fn router() -> Arc<CompiledRouter> {
    static ROUTER: OnceLock<Arc<CompiledRouter>> = OnceLock::new();
    ROUTER
        .get_or_init(|| {
            let runtime = WasmRuntime::new().unwrap();
            CompiledRouter::new(&runtime, "router", crate::wasm::bundled::ROUTER).unwrap()
        })
        .clone()
}

/// A proxy serving routes `r` (`/r`) and `moved` (`/moved`) to `upstream`, with `phases`
/// installed; its address.
async fn proxy(upstream: &Upstream, phases: Option<Arc<dyn PhaseRunner>>) -> SocketAddr {
    let router = tokio::task::spawn_blocking(router).await.unwrap();
    let tls = Arc::new(crate::tls::trust::UpstreamTls::new(&[], None).unwrap());
    let plugins = Arc::new(crate::wasm::plugin_set::PluginSet::empty());
    let proxy = Proxy::new(
        router,
        1,
        crate::proxy::ProxySettings {
            presentation: Default::default(),
            trust: ClientTrust::default(),
            limits: ClientLimits::default(),
            vaults: Default::default(),
        },
        crate::proxy::upstream::Connector {
            tls,
            keepalive: Default::default(),
            resolver: Arc::new(
                crate::dns::Resolver::new(crate::dns::Settings { hostsfile: None, ..Default::default() }).unwrap(),
            ),
        },
        plugins,
    );
    let config = serde_json::json!({
        "_format_version": "3.0",
        "services": [{
            "name": "up",
            "url": format!("http://{}", upstream.address),
            "routes": [{"name": "r", "paths": ["/r"]}, {"name": "moved", "paths": ["/moved"]}],
        }],
    });
    let config = crate::entities::parse_str(&config.to_string(), true, "test").unwrap();
    proxy.apply_with_phases(config, phases).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let local = stream.local_addr().unwrap();
            let conn = Conn { peer, local, tls: None, activity: Arc::new(Activity::default()) };
            let service = proxy.service(conn);
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades(),
            );
        }
    });
    address
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

async fn get(proxy: SocketAddr, path: &str) -> Answer {
    let stream = TcpStream::connect(proxy).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let req = Request::get(path).header("host", "a.test").body(Empty::<Bytes>::new()).unwrap();
    let response = tokio::time::timeout(WAIT, sender.send_request(req)).await.unwrap().unwrap();
    let (head, body) = response.into_parts();
    let body = tokio::time::timeout(WAIT, body.collect()).await.unwrap().unwrap().to_bytes();
    Answer { status: head.status, headers: head.headers, body }
}

async fn next_log(logged: &mut tokio::sync::mpsc::UnboundedReceiver<Logged>) -> Logged {
    tokio::time::timeout(WAIT, logged.recv()).await.expect("log ran").unwrap()
}

fn has(headers: &HeaderMap, name: &str) -> bool {
    headers.contains_key(HeaderName::from_bytes(name.as_bytes()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phases_run_in_kongs_order_with_one_context() {
    let upstream = Upstream::start().await;
    let (recorder, mut logged) = Recorder::new(Script { wants: all_phases(), ..Script::default() });
    let proxy = proxy(&upstream, Some(recorder.clone())).await;
    let answer = get(proxy, "/r/x").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "hello");
    assert_eq!(answer.headers["x-shared"], "yes", "header_filter read what access left in ctx.shared");
    let log = next_log(&mut logged).await;
    assert_eq!(log.route.as_deref(), Some("r"));
    assert_eq!(log.status, Some(200));
    assert!(log.body_complete && log.ended);
    assert_eq!(log.bytes_out, 5);
    assert_eq!(log.shared.as_deref(), Some("access"));
    let events = recorder.events();
    assert_eq!(events[..3], ["rewrite /r/x routed=false", "access r", "header_filter 200"], "{events:?}");
    let body: Vec<&String> = events[3..events.len() - 1].iter().collect();
    assert!(!body.is_empty() && body.last().unwrap().ends_with("eof=true"), "{events:?}");
    assert!(body[..body.len() - 1].iter().all(|e| e.ends_with("eof=false")), "{events:?}");
    assert_eq!(events.last().unwrap(), "log", "{events:?}");
    assert_eq!(upstream.paths.lock().unwrap()[..], ["/x"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrite_runs_before_routing_and_changes_what_is_routed() {
    let upstream = Upstream::start().await;
    let without = proxy(&upstream, None).await;
    assert_eq!(get(without, "/old/here").await.status, StatusCode::NOT_FOUND, "no route has /old");

    let wants = [Phase::Rewrite].into();
    let (recorder, _logged) = Recorder::new(Script { wants, rewrite_to: Some("/moved/here"), ..Script::default() });
    let with = proxy(&upstream, Some(recorder.clone())).await;
    let answer = get(with, "/old/here").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(upstream.paths.lock().unwrap()[..], ["/here"], "routed by the rewritten path, on route moved");
    assert_eq!(recorder.events(), ["rewrite /old/here routed=false"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_set_in_rewrite_is_routed_and_sent_upstream() {
    let upstream = Upstream::start().await;
    let plain = proxy(&upstream, None).await;
    assert_eq!(get(plain, "/r/x").await.status, StatusCode::OK);
    assert_eq!(upstream.hosts.lock().unwrap()[..], [upstream.address.to_string()], "the service's host");

    let wants = [Phase::Rewrite].into();
    let (recorder, _logged) = Recorder::new(Script { wants, rewrite_host: Some("b.test"), ..Script::default() });
    let with = proxy(&upstream, Some(recorder)).await;
    assert_eq!(get(with, "/r/x").await.status, StatusCode::OK);
    assert_eq!(upstream.hosts.lock().unwrap()[1..], ["b.test"], "Kong's upstream_host, without preserve_host");
    // An absolute-form request names its host in the URI, as HTTP/2 does in `:authority`: the
    // Host the plugin set still wins.
    assert_eq!(get(with, "http://a.test/r/x").await.status, StatusCode::OK);
    assert_eq!(upstream.hosts.lock().unwrap()[2..], ["b.test"], "over the request's authority");

    // Set to the value the client sent: still Kong's upstream_host (set, not changed).
    let wants = [Phase::Rewrite].into();
    let (recorder, _logged) = Recorder::new(Script { wants, rewrite_host: Some("a.test"), ..Script::default() });
    let same = proxy(&upstream, Some(recorder)).await;
    assert_eq!(get(same, "/r/x").await.status, StatusCode::OK);
    assert_eq!(upstream.hosts.lock().unwrap()[3..], ["a.test"], "the client's host, set by the plugin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_exit_reaches_the_client_without_the_upstream_and_later_phases_still_run() {
    let upstream = Upstream::start().await;
    let mut headers = HeaderMap::new();
    headers.insert("x-exit", HeaderValue::from_static("1"));
    let exit = Exit { status: StatusCode::FORBIDDEN, headers, body: Bytes::from_static(b"denied") };
    let wants = [Phase::Access, Phase::HeaderFilter, Phase::BodyFilter, Phase::Log].into();
    let (recorder, mut logged) = Recorder::new(Script { wants, access_exit: Some(exit), ..Script::default() });
    let proxy = proxy(&upstream, Some(recorder.clone())).await;
    let answer = get(proxy, "/r/x").await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.headers["x-exit"], "1");
    assert_eq!(answer.headers["x-filtered"], "yes", "header_filter ran on the exit");
    assert_eq!(answer.body, "denied");
    let log = next_log(&mut logged).await;
    assert_eq!(log.status, Some(403));
    assert_eq!(upstream.hits(), 0, "the upstream was never asked");
    let events = recorder.events();
    assert_eq!(events[..2], ["access r", "header_filter 403"], "{events:?}");
    assert!(events.iter().any(|e| e.starts_with("body_filter \"denied\"")), "{events:?}");
    assert_eq!(events.last().unwrap(), "log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_filter_changes_the_response_head_and_nothing_else_is_touched() {
    let upstream = Upstream::start().await;
    let wants = [Phase::HeaderFilter].into();
    let (recorder, _logged) = Recorder::new(Script { wants, ..Script::default() });
    let proxy = proxy(&upstream, Some(recorder.clone())).await;
    let answer = get(proxy, "/r/x").await;
    assert_eq!(answer.headers["x-filtered"], "yes");
    assert!(!has(&answer.headers, "x-upstream"), "removed by header_filter");
    assert_eq!(answer.headers["content-length"], "5", "no body_filter wanted: the body goes out as it came");
    assert_eq!(recorder.events(), ["header_filter 200"], "only the wanted phase ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_filter_sees_every_chunk_and_eof_and_can_change_them() {
    let upstream = Upstream::start().await;
    let wants = [Phase::BodyFilter].into();
    let (recorder, _logged) = Recorder::new(Script { wants, upper_body: true, ..Script::default() });
    let proxy = proxy(&upstream, Some(recorder.clone())).await;
    let answer = get(proxy, "/r/chunks").await;
    assert_eq!(answer.body, "ABC");
    let events = recorder.events();
    let seen: String = events.iter().filter_map(|e| e.split('"').nth(1)).collect();
    assert_eq!(seen, "abc", "{events:?}");
    assert_eq!(events.iter().filter(|e| e.ends_with("eof=true")).count(), 1, "{events:?}");
    assert!(events.last().unwrap().ends_with("eof=true"), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_that_wants_nothing_is_never_called() {
    let upstream = Upstream::start().await;
    let (recorder, _logged) = Recorder::new(Script::default());
    let proxy = proxy(&upstream, Some(recorder.clone())).await;
    let answer = get(proxy, "/r/x").await;
    assert_eq!(answer.body, "hello");
    assert_eq!(answer.headers["content-length"], "5");
    assert!(has(&answer.headers, "x-upstream"));
    assert!(recorder.events().is_empty(), "{:?}", recorder.events());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn log_runs_after_the_body_and_does_not_delay_it() {
    let upstream = Upstream::start().await;
    let (release, gate) = std::sync::mpsc::channel();
    let wants = [Phase::Log].into();
    let (recorder, mut logged) = Recorder::new(Script { wants, log_gate: Some(Mutex::new(gate)), ..Script::default() });
    let proxy = proxy(&upstream, Some(recorder.clone())).await;
    // The log is held until the client has the whole response: were the response waiting for
    // the log, this would time out.
    let answer = get(proxy, "/r/chunks").await;
    assert_eq!(answer.body, "abc");
    assert!(recorder.events().is_empty(), "log has not finished");
    release.send(()).unwrap();
    let log = next_log(&mut logged).await;
    assert!(log.body_complete);
    assert_eq!(log.bytes_out, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_runs_when_the_client_leaves_mid_body() {
    let upstream = Upstream::start().await;
    let wants = [Phase::Log].into();
    let (recorder, mut logged) = Recorder::new(Script { wants, ..Script::default() });
    let proxy = proxy(&upstream, Some(recorder.clone())).await;
    let mut client = TcpStream::connect(proxy).await.unwrap();
    client.write_all(b"GET /r/stream HTTP/1.1\r\nHost: a.test\r\n\r\n").await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("first") {
        let n = tokio::time::timeout(WAIT, client.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "the proxy closed early");
        seen.extend_from_slice(&buf[..n]);
    }
    drop(client);
    let log = next_log(&mut logged).await;
    assert!(!log.body_complete, "the client left before the end");
    assert!(log.ended);
    assert_eq!(log.status, Some(200));
    assert_eq!(log.bytes_out, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phase_error_fails_only_its_request_with_kongs_500() {
    let upstream = Upstream::start().await;
    for phase in [Phase::Rewrite, Phase::Access, Phase::HeaderFilter] {
        let wants = [phase, Phase::Log].into();
        let (recorder, mut logged) = Recorder::new(Script { wants, fail_in: Some(phase), ..Script::default() });
        let proxy = proxy(&upstream, Some(recorder)).await;
        let answer = get(proxy, "/r/x").await;
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR, "{phase:?}");
        // No Accept: Kong's error page in `error_default_type` (text/plain).
        let body = String::from_utf8_lossy(&answer.body);
        assert!(body.starts_with("An unexpected error occurred\nrequest_id: "), "{phase:?}: {body}");
        assert_eq!(next_log(&mut logged).await.status, Some(500), "{phase:?}: log still runs");
    }
    assert_eq!(upstream.hits(), 1, "only the request failing in header_filter reached the upstream");
    let failure = crate::proxy::answers::Failure::plugin(PhaseError {
        plugin: "p".into(),
        phase: Phase::Access,
        reason: "r".into(),
        fault: Fault::Error,
    });
    assert_eq!(failure.blame, Blame::Plugin);
}
