//! Keep-alive connections to upstreams that close them: a request that meets a connection the
//! upstream already closed is sent again on a new one when that is safe, and never when part of
//! its body may have been sent. Peers started by tests are stopped with their children.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway_tests::peers::{alive, children, nginx_upstream};
use gateway_tests::{DEADLINE, DbLess, http_request, http_send, poll};

/// An upstream that answers the first request on each connection (keep-alive) and closes the
/// connection when the next one arrives, without answering: the race in which a pooled
/// connection dies as a request is sent on it, made certain. Records (connection, request line).
struct ClosingUpstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<(usize, String)>>>,
}

impl ClosingUpstream {
    fn start() -> ClosingUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().flatten().enumerate() {
                let log = log.clone();
                std::thread::spawn(move || serve_once(n, stream, &log));
            }
        });
        ClosingUpstream { addr, seen }
    }
}

fn serve_once(connection: usize, stream: TcpStream, log: &Mutex<Vec<(usize, String)>>) {
    let mut reader = BufReader::new(stream);
    for answered in 0.. {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        log.lock().unwrap().push((connection, line.trim().to_string()));
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
                break;
            }
            if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        if answered > 0 {
            return; // closes without an answer
        }
        let mut body = vec![0u8; length];
        let _ = reader.read_exact(&mut body);
        let _ = reader.get_mut().write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    }
}

/// A node with one proxy worker: idle upstream connections are kept per worker (as nginx keeps
/// them per worker process), so with one every request may reuse the connection of the one before.
fn node_for(upstream: SocketAddr) -> DbLess {
    DbLess::start(
        &format!(
            "_format_version: '3.0'\nservices:\n- name: s\n  url: http://{upstream}\n  retries: 0\n  routes: [{{name: r, paths: [/]}}]\n"
        ),
        &["nginx_worker_processes = 1".into()],
    )
}

#[test]
fn a_request_on_a_connection_the_upstream_closed_is_sent_again_on_a_new_one() {
    let upstream = ClosingUpstream::start();
    let node = node_for(upstream.addr);
    assert_eq!(http_request(node.proxy, "GET", "/first", &[]).unwrap().status, 200);
    let second = http_request(node.proxy, "GET", "/second", &[]).unwrap();
    assert_eq!(second.status, 200, "{second:?}");
    let seen = upstream.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(0, "GET /first HTTP/1.1".into()), (0, "GET /second HTTP/1.1".into()), (1, "GET /second HTTP/1.1".into())],
        "the second request met the closed connection, then went on a new one"
    );
    // A body that was already sent is not sent twice: the client gets 502.
    let post = http_send(node.proxy, "POST", "/third", &[], Some(b"payload")).unwrap();
    assert_eq!(post.status, 502, "{post:?}");
    let thirds = upstream.seen.lock().unwrap().iter().filter(|(_, l)| l.starts_with("POST /third")).count();
    assert_eq!(thirds, 1);
    // Nor is a complete bodiless POST: the upstream may have acted on it.
    assert_eq!(http_request(node.proxy, "GET", "/fresh", &[]).unwrap().status, 200);
    let post = http_send(node.proxy, "POST", "/fourth", &[], None).unwrap();
    assert_eq!(post.status, 502, "{post:?}");
    let fourths = upstream.seen.lock().unwrap().iter().filter(|(_, l)| l.starts_with("POST /fourth")).count();
    assert_eq!(fourths, 1);
}

#[test]
fn an_upstream_with_a_short_keepalive_never_costs_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let nginx = nginx_upstream(dir.path(), 1);
    let node = node_for(SocketAddr::from(([127, 0, 0, 1], nginx.port)));
    // Requests spaced around nginx's 1 s keep-alive timeout, so some meet a connection nginx is
    // closing at that moment.
    let mut failed = Vec::new();
    for i in 0..12u64 {
        std::thread::sleep(Duration::from_millis(900 + (i % 4) * 50));
        let reply = http_request(node.proxy, "GET", &format!("/r{i}"), &[]).unwrap();
        if reply.status != 200 {
            failed.push((i, reply.status, reply.body));
        }
    }
    assert!(failed.is_empty(), "{failed:?}\n{}", node.gateway.log());
}

#[test]
fn stopping_a_peer_stops_its_children_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut nginx = nginx_upstream(dir.path(), 1);
    let workers = poll("nginx's workers", DEADLINE, || {
        let workers = children(nginx.pid());
        (workers.len() == 2).then_some(workers)
    });
    nginx.kill();
    for worker in workers {
        poll("the worker to exit", DEADLINE, || (!alive(worker)).then_some(()));
    }
    assert!(TcpStream::connect(("127.0.0.1", nginx.port)).is_err(), "nothing listens any more");
}

/// A keep-alive upstream that answers every request with the number of the connection it came on.
fn numbering_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().flatten().enumerate() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line.trim().is_empty() {
                            break;
                        }
                    }
                    let body = n.to_string();
                    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                    if reader.get_mut().write_all(head.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// The upstream connection each of `n` requests in turn came on, through a node with `extra`.
fn connections(n: usize, extra: &[&str]) -> (Vec<String>, DbLess) {
    let upstream = numbering_upstream();
    let mut lines = vec!["nginx_worker_processes = 1".to_string()];
    lines.extend(extra.iter().map(|l| l.to_string()));
    let node = DbLess::start(
        &format!(
            "_format_version: '3.0'\nservices:\n- name: s\n  url: http://{upstream}\n  routes: [{{name: r, paths: [/]}}]\n"
        ),
        &lines,
    );
    let seen = (0..n).map(|i| http_request(node.proxy, "GET", &format!("/r{i}"), &[]).unwrap().body).collect();
    (seen, node)
}

#[test]
fn upstream_keepalive_settings_decide_how_connections_are_reused() {
    assert_eq!(connections(5, &[]).0, ["0", "0", "0", "0", "0"], "Kong's defaults: one connection for all");
    assert_eq!(
        connections(5, &["upstream_keepalive_max_requests = 2"]).0,
        ["0", "0", "1", "1", "2"],
        "a connection is closed after 2 requests"
    );
    assert_eq!(connections(3, &["upstream_keepalive_pool_size = 0"]).0, ["0", "1", "2"], "no pool: one each");
    let (seen, node) = connections(2, &["upstream_keepalive_idle_timeout = 1"]);
    assert_eq!(seen, ["0", "0"]);
    // Idle past the timeout: the next request opens a new connection.
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(http_request(node.proxy, "GET", "/late", &[]).unwrap().body, "1");
}
