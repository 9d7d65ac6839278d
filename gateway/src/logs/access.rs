//! Access logs in nginx's line formats: `combined` for the Admin and status APIs, and Kong's
//! `kong_log_format` (combined plus `kong_request_id`) for the proxy, so the log parsers written
//! for Kong and nginx read ours.
//!
//! A line is formatted on the thread that served the request into that thread's own buffer (no
//! lock shared between cores, no syscall per request). A writer thread of the log's own writes the
//! buffers out every [`FLUSH_INTERVAL`], or sooner once one holds [`WAKE_AT`] bytes, so a slow disk
//! never blocks a proxy worker. If the disk stalls long enough for a buffer to reach
//! [`MAX_BUFFERED`], further lines are dropped and counted (the count is logged when the writer
//! catches up): memory stays bounded. [`Sink::reopen`] (SIGUSR1) makes the writer reopen its file,
//! for logrotate.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Uri, Version};

use crate::workers::PerWorker;

/// How often the writer writes what the buffers hold.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);
/// A buffer this full wakes the writer before its time.
pub const WAKE_AT: usize = 64 * 1024;
/// A buffer this full takes no more lines until the writer has emptied it.
pub const MAX_BUFFERED: usize = 4 * 1024 * 1024;

/// Where a log's lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Stdout,
    Stderr,
    /// Appended to, created 0640 (with its directory) when missing.
    File(PathBuf),
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Stdout => f.write_str("/dev/stdout"),
            Destination::Stderr => f.write_str("/dev/stderr"),
            Destination::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A line format, by nginx's name for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// nginx's `combined`: `$remote_addr - $remote_user [$time_local] "$request" $status
    /// $body_bytes_sent "$http_referer" "$http_user_agent"`.
    Combined,
    /// Kong's `kong_log_format`: `combined` followed by ` kong_request_id: "$kong_request_id"`.
    Kong,
}

impl Format {
    /// The format named in a `*_access_log` value.
    pub fn named(name: &str) -> Option<Format> {
        match name {
            "combined" => Some(Format::Combined),
            "kong_log_format" => Some(Format::Kong),
            _ => None,
        }
    }
}

/// One access log: its destination, its format and its writer thread. Dropping it writes what is
/// left and stops the writer; listeners hold [`Sink`]s.
pub struct AccessLog {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

/// Where a listener writes its lines.
#[derive(Clone)]
pub struct Sink(Arc<Shared>);

struct Shared {
    /// The key it was configured by, for messages.
    key: &'static str,
    format: Format,
    destination: Destination,
    buffers: PerWorker<Buffer>,
    writer: OnceLock<Thread>,
    reopen: AtomicBool,
    stop: AtomicBool,
}

impl Shared {
    fn new(key: &'static str, destination: Destination, format: Format, workers: usize) -> Arc<Shared> {
        Arc::new(Shared {
            key,
            format,
            destination,
            buffers: PerWorker::new(workers),
            writer: OnceLock::new(),
            reopen: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        })
    }
}

#[derive(Default)]
struct Buffer {
    lines: Vec<u8>,
    /// Lines refused since the writer last looked, because the buffer was full.
    dropped: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("{key}: cannot open {destination}: {source}")]
pub struct OpenError {
    pub key: &'static str,
    pub destination: Destination,
    #[source]
    pub source: std::io::Error,
}

impl AccessLog {
    /// Opens `destination` (so a path that cannot be written fails the start, naming `key`) and
    /// starts the writer. `workers` is the number of proxy workers, each given its own buffer.
    pub fn open(
        key: &'static str,
        destination: Destination,
        format: Format,
        workers: usize,
    ) -> Result<AccessLog, OpenError> {
        let output =
            Output::open(&destination).map_err(|source| OpenError { key, destination: destination.clone(), source })?;
        let shared = Shared::new(key, destination, format, workers);
        let for_writer = shared.clone();
        let writer = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_out(&for_writer, output))
            .map_err(|source| OpenError { key, destination: shared.destination.clone(), source })?;
        let _ = shared.writer.set(writer.thread().clone());
        Ok(AccessLog { shared, writer: Some(writer) })
    }

    pub fn sink(&self) -> Sink {
        Sink(self.shared.clone())
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(writer) = self.writer.take() {
            writer.thread().unpark();
            let _ = writer.join();
        }
    }
}

impl Sink {
    /// Logs one finished request: what its head said, the status answered and the body bytes sent.
    pub fn write(&self, entry: &Entry, status: u16, body_bytes_sent: u64) {
        let shared = &*self.0;
        let mut buffer = shared.buffers.lock();
        if buffer.lines.len() >= MAX_BUFFERED {
            buffer.dropped += 1;
            return;
        }
        entry.format(&mut buffer.lines, shared.format, status, body_bytes_sent, SystemTime::now());
        let wake = buffer.lines.len() >= WAKE_AT;
        drop(buffer);
        if wake && let Some(writer) = shared.writer.get() {
            writer.unpark();
        }
    }

    /// Makes the writer reopen its file (after logrotate moved it away).
    pub fn reopen(&self) {
        self.0.reopen.store(true, Ordering::Release);
        if let Some(writer) = self.0.writer.get() {
            writer.unpark();
        }
    }

    pub fn destination(&self) -> &Destination {
        &self.0.destination
    }
}

/// The writer thread: every [`FLUSH_INTERVAL`] (or when woken) takes every buffer's lines and
/// writes them, until the log is dropped.
fn write_out(shared: &Shared, mut output: Output) {
    let mut spares: Vec<Vec<u8>> = Vec::new();
    let mut failing = false;
    loop {
        std::thread::park_timeout(FLUSH_INTERVAL);
        let stopping = shared.stop.load(Ordering::Acquire);
        if shared.reopen.swap(false, Ordering::AcqRel) {
            match Output::open(&shared.destination) {
                Ok(reopened) => {
                    output = reopened;
                    tracing::info!(log = shared.key, destination = %shared.destination, "access log reopened");
                }
                Err(error) => {
                    tracing::error!(log = shared.key, destination = %shared.destination, %error, "access log: cannot reopen; still writing to the file open before");
                }
            }
        }
        let mut taken = Vec::new();
        let mut dropped = 0;
        shared.buffers.each(|buffer| {
            dropped += std::mem::take(&mut buffer.dropped);
            if !buffer.lines.is_empty() {
                taken.push(std::mem::replace(&mut buffer.lines, spares.pop().unwrap_or_default()));
            }
        });
        if dropped > 0 {
            tracing::warn!(log = shared.key, dropped, "access log: lines dropped while the writer was behind");
        }
        for mut lines in taken {
            match output.write_all(&lines) {
                Ok(()) => failing = false,
                Err(error) => {
                    if !failing {
                        tracing::error!(log = shared.key, destination = %shared.destination, %error, "access log: cannot write; lines are lost until it works again");
                    }
                    failing = true;
                }
            }
            lines.clear();
            if lines.capacity() <= 2 * WAKE_AT {
                spares.push(lines);
            }
        }
        if stopping {
            let _ = output.flush();
            return;
        }
    }
}

enum Output {
    Stdout,
    Stderr,
    File(File),
}

impl Output {
    fn open(destination: &Destination) -> std::io::Result<Output> {
        Ok(match destination {
            Destination::Stdout => Output::Stdout,
            Destination::Stderr => Output::Stderr,
            Destination::File(path) => Output::File(open_append(path)?),
        })
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Output::Stdout => std::io::stdout().lock().write_all(bytes),
            Output::Stderr => std::io::stderr().lock().write_all(bytes),
            Output::File(file) => file.write_all(bytes),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Stdout => std::io::stdout().lock().flush(),
            Output::Stderr => std::io::stderr().lock().flush(),
            Output::File(_) => Ok(()),
        }
    }
}

pub(super) fn open_append(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().append(true).create(true).mode(0o640).open(path)
}

/// What an access line says about a request, taken from its head when it arrives (cheap clones of
/// what hyper parsed; nothing is formatted until the response has ended).
pub struct Entry {
    pub remote_addr: IpAddr,
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub referer: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
    /// `Authorization` when it is HTTP Basic: `$remote_user` is its user name.
    pub basic_auth: Option<HeaderValue>,
    /// The request's id, when the service that answered gave it one (the proxy's); else one is
    /// made for the line.
    pub request_id: Option<RequestId>,
}

impl Entry {
    pub fn of<B>(req: &Request<B>, remote_addr: IpAddr) -> Entry {
        let headers = req.headers();
        let basic_auth = headers
            .get(header::AUTHORIZATION)
            .filter(|v| v.as_bytes().get(..6).is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"basic ")))
            .cloned();
        Entry {
            remote_addr,
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            referer: headers.get(header::REFERER).cloned(),
            user_agent: headers.get(header::USER_AGENT).cloned(),
            basic_auth,
            request_id: None,
        }
    }

    /// Appends this request's line, ending in `\n`, to `out`.
    pub fn format(&self, out: &mut Vec<u8>, format: Format, status: u16, body_bytes_sent: u64, now: SystemTime) {
        let mut line = String::with_capacity(256);
        let _ = write!(line, "{} - ", self.remote_addr);
        match self.remote_user() {
            Some(user) => escape_into(&mut line, &user),
            None => line.push('-'),
        }
        line.push_str(" [");
        local_time(now, &mut line);
        line.push_str("] \"");
        escape_into(&mut line, self.method.as_str().as_bytes());
        line.push(' ');
        // HTTP/2 has no request line: nginx logs the path, as HTTP/1 clients send it.
        let target = match (self.version, self.uri.path_and_query()) {
            (Version::HTTP_2 | Version::HTTP_3, Some(path)) => path.as_str().to_string(),
            _ => self.uri.to_string(),
        };
        escape_into(&mut line, target.as_bytes());
        let _ = write!(line, " {}\" {status} {body_bytes_sent} \"", version_name(self.version));
        header_into(&mut line, self.referer.as_ref());
        line.push_str("\" \"");
        header_into(&mut line, self.user_agent.as_ref());
        line.push('"');
        if format == Format::Kong {
            let _ = write!(line, " kong_request_id: \"{}\"", self.request_id.unwrap_or_default());
        }
        line.push('\n');
        out.extend_from_slice(line.as_bytes());
    }

    /// The user name of HTTP Basic credentials, as nginx's `$remote_user`.
    fn remote_user(&self) -> Option<Vec<u8>> {
        let value = self.basic_auth.as_ref()?.as_bytes().get(6..)?;
        let decoded = base64::engine::general_purpose::STANDARD.decode(value.trim_ascii()).ok()?;
        let user = decoded.split(|&b| b == b':').next()?.to_vec();
        (!user.is_empty()).then_some(user)
    }
}

fn version_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

fn header_into(line: &mut String, value: Option<&HeaderValue>) {
    match value {
        Some(value) => escape_into(line, value.as_bytes()),
        None => line.push('-'),
    }
}

/// nginx's default log escaping: `"`, `\`, control bytes and bytes above 0x7e as `\xHH`, so a
/// client can neither end a field nor a line early.
fn escape_into(line: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if !(0x20..=0x7e).contains(&b) || b == b'"' || b == b'\\' {
            let _ = write!(line, "\\x{b:02X}");
        } else {
            line.push(b as char);
        }
    }
}

thread_local! {
    /// The last second formatted as `$time_local` on this thread, and its text.
    static TIME_LOCAL: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    static REQUEST_IDS: std::cell::Cell<u64> = std::cell::Cell::new(seed());
}

/// nginx's `$time_local`, always in UTC: `06/Dec/2026:18:26:51 +0000`. (Reading the local
/// offset is unsound once threads run, and servers and containers mostly keep UTC anyway.)
fn local_time(now: SystemTime, line: &mut String) {
    let secs = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    TIME_LOCAL.with_borrow_mut(|(cached, text)| {
        if *cached != secs {
            text.clear();
            let at = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0))
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            const MONTHS: [&str; 12] =
                ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
            let _ = write!(
                text,
                "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
                at.day(),
                MONTHS[usize::from(u8::from(at.month())) - 1],
                at.year(),
                at.hour(),
                at.minute(),
                at.second(),
            );
            *cached = secs;
        }
        line.push_str(text);
    });
}

/// A seed for this thread's request ids, from the process's random hash keys and the clock.
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    hasher.finish()
}

/// Kong's `$kong_request_id`: 128 bits, unique per request, printed as 32 lowercase hex digits.
/// The proxy gives each request one (its `X-Kong-Request-Id`, its error answers' `request_id`)
/// and hands it to the access log with the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId(pub u128);

impl RequestId {
    /// The next id from this thread's stream.
    pub fn new() -> RequestId {
        RequestId(request_id())
    }
}

impl Default for RequestId {
    fn default() -> Self {
        RequestId::new()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// 128 bits from this thread's splitmix64 stream.
fn request_id() -> u128 {
    REQUEST_IDS.with(|state| {
        let next = || {
            let s = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            state.set(s);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        (u128::from(next()) << 64) | u128::from(next())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(req: Request<()>) -> Entry {
        Entry::of(&req, "192.0.2.7".parse().unwrap())
    }

    fn line(entry: &Entry, format: Format) -> String {
        let mut out = Vec::new();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_581_611); // 2026-12-06 18:26:51 UTC
        entry.format(&mut out, format, 200, 1234, at);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn combined_reads_as_nginx_writes_it() {
        let req = Request::get("/echo/hello?x=1")
            .header("referer", "https://example.com/")
            .header("user-agent", "curl/8.1")
            .header("authorization", "Basic YWxpY2U6c2VjcmV0")
            .body(())
            .unwrap();
        let text = line(&entry(req), Format::Combined);
        let time = text.split('[').nth(1).unwrap().split(']').next().unwrap();
        assert_eq!(time, "06/Dec/2026:18:26:51 +0000");
        assert_eq!(
            text.replace(time, "T"),
            "192.0.2.7 - alice [T] \"GET /echo/hello?x=1 HTTP/1.1\" 200 1234 \"https://example.com/\" \"curl/8.1\"\n"
        );
    }

    #[test]
    fn kong_format_adds_a_request_id_unique_per_request() {
        let e = entry(Request::get("/").body(()).unwrap());
        let (a, b) = (line(&e, Format::Kong), line(&e, Format::Kong));
        let id = |l: &str| l.split("kong_request_id: \"").nth(1).unwrap().trim_end_matches("\"\n").to_string();
        assert_eq!(id(&a).len(), 32);
        assert!(id(&a).bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id(&a), id(&b));
        assert!(a.contains("\"GET / HTTP/1.1\" 200 1234 \"-\" \"-\" kong_request_id: \""), "{a}");
    }

    #[test]
    fn http2_requests_log_their_path() {
        let req = Request::get("https://example.com/a?b").version(Version::HTTP_2).body(()).unwrap();
        assert!(line(&entry(req), Format::Combined).contains("\"GET /a?b HTTP/2.0\""));
    }

    proptest::proptest! {
        /// Whatever a client puts in the fields, its line is one line and each quoted field ends
        /// where nginx's would.
        #[test]
        fn client_bytes_never_break_a_line(agent in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
                                           user in proptest::collection::vec(proptest::num::u8::ANY, 0..32)) {
            let mut e = entry(Request::get("/").body(()).unwrap());
            e.user_agent = HeaderValue::from_bytes(&agent).ok();
            let credentials = base64::engine::general_purpose::STANDARD.encode([&user[..], b":pw"].concat());
            e.basic_auth = HeaderValue::from_str(&format!("Basic {credentials}")).ok();
            let text = line(&e, Format::Combined);
            proptest::prop_assert_eq!(text.matches('\n').count(), 1);
            proptest::prop_assert!(text.ends_with('\n'));
            proptest::prop_assert_eq!(text.matches('"').count(), 6, "{}", text);
            proptest::prop_assert!(text.bytes().all(|b| (0x20..0x7f).contains(&b) || b == b'\n'));
        }
    }

    #[test]
    fn a_log_writes_its_lines_and_reopens_after_a_move() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/access.log");
        let log = AccessLog::open("proxy_access_log", Destination::File(path.clone()), Format::Combined, 2).unwrap();
        let sink = log.sink();
        let e = entry(Request::get("/first").body(()).unwrap());
        sink.write(&e, 200, 1);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&path).unwrap_or_default().is_empty() {
            assert!(std::time::Instant::now() < deadline, "the line was never written");
            std::thread::sleep(Duration::from_millis(20));
        }
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        let rotated = dir.path().join("logs/access.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        sink.reopen();
        while !path.exists() {
            assert!(std::time::Instant::now() < deadline, "the log was never reopened");
            std::thread::sleep(Duration::from_millis(20));
        }
        sink.write(&entry(Request::get("/second").body(()).unwrap()), 404, 0);
        drop(log);
        assert!(std::fs::read_to_string(&rotated).unwrap().contains("\"GET /first HTTP/1.1\" 200 1 "));
        let after = std::fs::read_to_string(&path).unwrap();
        assert!(after.contains("\"GET /second HTTP/1.1\" 404 0 "), "dropping the log writes what is left: {after:?}");
    }

    #[test]
    fn a_full_buffer_drops_lines_instead_of_growing() {
        // No writer thread: nothing empties the buffer.
        let sink = Sink(Shared::new("proxy_access_log", Destination::Stdout, Format::Combined, 1));
        let e = entry(Request::get("/").body(()).unwrap());
        while sink.0.buffers.lock().lines.len() < MAX_BUFFERED {
            sink.write(&e, 200, 0);
        }
        let full = sink.0.buffers.lock().lines.len();
        for _ in 0..10 {
            sink.write(&e, 200, 0);
        }
        let buffer = sink.0.buffers.lock();
        assert_eq!(buffer.lines.len(), full, "no line past the cap");
        assert_eq!(buffer.dropped, 10);
        assert!(full < MAX_BUFFERED + 512);
    }
}
