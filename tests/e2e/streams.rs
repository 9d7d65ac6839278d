//! Bodies and upgraded connections pass through the proxy as streams: 100 MB each way without the
//! gateway's memory growing by anything like the body, and a WebSocket upgrade carried both ways.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use gateway_tests::{DbLess, EchoServer, http_request, peak_rss};

const BODY: u64 = 100 * 1024 * 1024;
/// Far below the body: a gateway that buffered either body whole would pass it.
const GROWTH_LIMIT: u64 = 40 * 1024 * 1024;

fn node(echo: &EchoServer) -> DbLess {
    DbLess::start(
        &format!(
            "_format_version: '3.0'\nservices:\n- name: s\n  url: http://{}\n  routes: [{{name: r, paths: [/]}}]\n",
            echo.addr
        ),
        &[],
    )
}

/// Reads a response head; returns the status and the reader positioned at the body.
fn read_head(reader: &mut BufReader<TcpStream>) -> (u16, Vec<String>) {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        lines.push(line);
    }
    let status = lines[0].split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, lines)
}

#[test]
fn a_100_mb_body_streams_both_ways_without_growing_memory() {
    let echo = EchoServer::start();
    let node = node(&echo);
    assert_eq!(http_request(node.proxy, "GET", "/warm", &[]).unwrap().status, 200);
    let before = peak_rss(node.gateway.pid());

    // Upload: the upstream counts what arrives.
    let stream = TcpStream::connect(node.proxy).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut writer = stream.try_clone().unwrap();
    write!(writer, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {BODY}\r\n\r\n").unwrap();
    std::io::copy(&mut std::io::repeat(b'u').take(BODY), &mut writer).unwrap();
    let mut reader = BufReader::new(stream);
    let (status, head) = read_head(&mut reader);
    assert_eq!(status, 200, "{head:?}");
    let length: usize = head
        .iter()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .unwrap();
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let seen: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(seen["body_len"], BODY, "{seen}");

    // Download on the same keep-alive connection.
    write!(writer, "GET /bytes/{BODY} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (status, head) = read_head(&mut reader);
    assert_eq!(status, 200, "{head:?}");
    let received = std::io::copy(&mut (&mut reader).take(BODY), &mut std::io::sink()).unwrap();
    assert_eq!(received, BODY);

    let growth = peak_rss(node.gateway.pid()).saturating_sub(before);
    assert!(growth < GROWTH_LIMIT, "peak memory grew by {} MiB while streaming 2 × 100 MiB", growth >> 20);
}

#[test]
fn a_websocket_upgrade_is_carried_both_ways() {
    let echo = EchoServer::start();
    let node = node(&echo);
    let stream = TcpStream::connect(node.proxy).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut writer = stream.try_clone().unwrap();
    write!(
        writer,
        "GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let (status, head) = read_head(&mut reader);
    assert_eq!(status, 101, "{head:?}");
    let has = |needle: &str| head.iter().any(|l| l.eq_ignore_ascii_case(needle));
    assert!(has("upgrade: websocket"), "{head:?}");
    assert!(has("x-echo-key: dGhlIHNhbXBsZSBub25jZQ=="), "the upstream saw the key: {head:?}");

    // A masked text frame, then a megabyte of raw bytes: the tunnel carries whatever is written.
    let frame = [0x81u8, 0x85, 1, 2, 3, 4, b'h' ^ 1, b'e' ^ 2, b'l' ^ 3, b'l' ^ 4, b'o' ^ 1];
    writer.write_all(&frame).unwrap();
    let mut back = [0u8; 11];
    reader.read_exact(&mut back).unwrap();
    assert_eq!(back, frame);
    let payload: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let sender = {
        let payload = payload.clone();
        std::thread::spawn(move || writer.write_all(&payload).unwrap())
    };
    let mut echoed = vec![0u8; payload.len()];
    reader.read_exact(&mut echoed).unwrap();
    sender.join().unwrap();
    assert!(echoed == payload, "the echoed bytes differ");
}

fn node_with_timeouts(echo: &EchoServer, read_ms: u32, write_ms: u32) -> DbLess {
    DbLess::start(
        &format!(
            "_format_version: '3.0'\nservices:\n- name: s\n  url: http://{}\n  read_timeout: {read_ms}\n  write_timeout: {write_ms}\n  routes: [{{name: r, paths: [/]}}]\n",
            echo.addr
        ),
        &[],
    )
}

/// Sends `head` then `chunks` of `chunk` bytes each, pausing `pause` between them; returns the status.
fn upload(proxy: std::net::SocketAddr, path: &str, chunks: usize, chunk: usize, pause: Duration) -> u16 {
    let stream = TcpStream::connect(proxy).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let path = path.to_string();
    let sender = std::thread::spawn(move || {
        let _ = write!(writer, "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", chunks * chunk);
        for _ in 0..chunks {
            if writer.write_all(&vec![b'w'; chunk]).is_err() {
                return;
            }
            std::thread::sleep(pause);
        }
    });
    let mut reader = BufReader::new(stream);
    let (status, _) = read_head(&mut reader);
    drop(reader);
    let _ = sender.join();
    status
}

#[test]
fn an_upstream_that_stops_reading_the_body_times_out_with_504() {
    let echo = EchoServer::start();
    let node = node_with_timeouts(&echo, 60_000, 300);
    // The upstream reads nothing for 20 s; 64 MiB cannot all fit in socket buffers meanwhile.
    let status = upload(node.proxy, "/noread/20000", 64, 1 << 20, Duration::ZERO);
    assert_eq!(status, 504);
    let mut gateway = node.gateway;
    gateway.wait_for_log("the upstream accepted nothing for write_timeout 300ms");
}

#[test]
fn read_timeout_starts_once_the_body_is_sent() {
    let echo = EchoServer::start();
    let node = node_with_timeouts(&echo, 500, 60_000);
    // A paced upload that lasts well over read_timeout is not a slow upstream.
    assert_eq!(upload(node.proxy, "/upload", 4, 256 * 1024, Duration::from_millis(300)), 200);
    // A slow answer after the body is.
    assert_eq!(http_request(node.proxy, "GET", "/slow/2000", &[]).unwrap().status, 504);
}
