//! A real browser for the console's tests: Debian's `chromium`, headless, driven over the Chrome
//! DevTools Protocol (a WebSocket carrying JSON commands) by this small client. Chromium picks its
//! own debugging port (`--remote-debugging-port=0`) and writes it to `DevToolsActivePort` in its
//! profile directory; the process is stopped by its pid when the [`Browser`] is dropped.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

use crate::DEADLINE;

/// How long one command may take before the browser is taken to be stuck.
const COMMAND_DEADLINE: Duration = Duration::from_secs(30);

pub struct Browser {
    child: Child,
    socket: WebSocket<TcpStream>,
    /// The page's session (`Target.attachToTarget` with `flatten`).
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts headless Chromium with an empty profile and opens one page, `width` × `height`.
    pub fn start(width: u32, height: u32) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(chromium())
            // Its own process group, so stopping it stops its helper processes too.
            .process_group(0)
            .args([
                "--headless=new",
                // Tests run as root in CI, where Chromium's sandbox cannot start.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-sync",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                &format!("--window-size={width},{height}"),
                &format!("--user-data-dir={}", profile.path().display()),
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e} (.ci/setup installs chromium)", chromium().display()));
        // Stopped by its pid whatever happens before the browser is ready.
        let mut guard = Stopper(Some(child));
        let active = profile.path().join("DevToolsActivePort");
        let (port, path) = crate::poll("chromium's DevTools port", DEADLINE, || {
            let text = std::fs::read_to_string(&active).ok()?;
            let mut lines = text.lines();
            let port: u16 = lines.next()?.trim().parse().ok()?;
            Some((port, lines.next()?.trim().to_string()))
        });
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting to chromium's DevTools");
        stream.set_read_timeout(Some(COMMAND_DEADLINE)).unwrap();
        let (socket, _) =
            tungstenite::client(format!("ws://127.0.0.1:{port}{path}"), stream).expect("chromium's DevTools WebSocket");
        let child = guard.0.take().expect("the child is kept until here");
        let mut browser = Browser { child, socket, session: String::new(), next_id: 0, _profile: profile };
        let target = browser.command(None, "Target.createTarget", json!({"url": "about:blank"}));
        let target = target["targetId"].as_str().expect("a target id").to_string();
        let attached = browser.command(None, "Target.attachToTarget", json!({"targetId": target, "flatten": true}));
        browser.session = attached["sessionId"].as_str().expect("a session id").to_string();
        browser.call("Page.enable", json!({}));
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
        browser
    }

    /// Sends `method` to the page and returns its result.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.command(Some(&session), method, params)
    }

    fn command(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.try_command(session, method, params).unwrap_or_else(|error| panic!("{method}: {error}"))
    }

    /// A command's result, or the error DevTools answered with.
    fn try_command(&mut self, session: Option<&str>, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.socket.send(Message::text(message.to_string())).unwrap_or_else(|e| panic!("{method}: {e}"));
        let started = Instant::now();
        loop {
            assert!(started.elapsed() < COMMAND_DEADLINE, "{method}: no answer from chromium");
            let frame = match self.socket.read() {
                Ok(frame) => frame,
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(e) => panic!("{method}: {e}"),
            };
            let Message::Text(text) = frame else { continue };
            let answer: Value = serde_json::from_str(text.as_str()).expect("DevTools sends JSON");
            if answer["id"] != json!(id) {
                continue; // an event, or another command's answer
            }
            if let Some(error) = answer.get("error") {
                return Err(error.clone());
            }
            return Ok(answer["result"].clone());
        }
    }

    /// Opens `url` in the page (and waits for the navigation to be committed).
    pub fn goto(&mut self, url: &str) {
        let result = self.call("Page.navigate", json!({"url": url}));
        if let Some(error) = result.get("errorText") {
            panic!("opening {url}: {error}");
        }
    }

    /// The value of `expression` in the page (a promise is awaited). Panics on a script error.
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true, "awaitPromise": true}));
        if let Some(details) = result.get("exceptionDetails") {
            panic!("{expression}: {details}");
        }
        result["result"]["value"].clone()
    }

    /// Types `text` into the field `selector` names, as a person would: focused, its old value
    /// selected, then the keystrokes' text inserted.
    pub fn type_into(&mut self, selector: &str, text: &str) {
        let found = self.eval(&format!(
            "(() => {{ const el = document.querySelector({selector:?}); if (!el) return false; el.focus(); el.select && el.select(); return true; }})()"
        ));
        assert_eq!(found, Value::Bool(true), "no field {selector}");
        self.call("Input.insertText", json!({"text": text}));
    }

    /// Clicks the element `selector` names.
    pub fn click(&mut self, selector: &str) {
        let found = self.eval(&format!(
            "(() => {{ const el = document.querySelector({selector:?}); if (!el) return false; el.click(); return true; }})()"
        ));
        assert_eq!(found, Value::Bool(true), "nothing to click at {selector}");
    }

    /// Polls `expression` until it is truthy (not null, false, 0 or ""), and returns its value. A
    /// script error counts as not yet (the page may still be loading); the last one is reported
    /// if the deadline passes.
    pub fn wait_for(&mut self, what: &str, expression: &str) -> Value {
        let started = Instant::now();
        let guarded = format!(
            "(async () => {{ try {{ return {{ value: await ({expression}) }}; }} catch (e) {{ return {{ error: String(e) }}; }} }})()"
        );
        let mut last_error = Value::Null;
        loop {
            // A page between two documents answers with an error (its context is gone): not yet.
            let session = self.session.clone();
            let params = json!({"expression": guarded, "returnByValue": true, "awaitPromise": true});
            let answer = match self.try_command(Some(&session), "Runtime.evaluate", params) {
                Ok(result) => result["result"]["value"].clone(),
                Err(error) => json!({ "error": error }),
            };
            if !answer["error"].is_null() {
                last_error = answer["error"].clone();
            }
            let value = answer["value"].clone();
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            if started.elapsed() >= DEADLINE {
                let shown = self.eval("location.href + '\\n' + (document.body?.innerText || '').slice(0, 3000)");
                panic!(
                    "timed out after {DEADLINE:?} waiting for {what} ({expression}); last script error: {last_error}; the page:\n{}",
                    shown.as_str().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves a PNG of the page as it is now (`full`: the whole page, not just the window).
    pub fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png", "captureBeyondViewport": true}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }
}

/// Stops a browser process that never became a [`Browser`] (a start that failed half way).
struct Stopper(Option<Child>);

impl Drop for Stopper {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            stop_group(child);
        }
    }
}

/// SIGKILL to the process group the browser leads (it and its helpers), then reaped by pid.
fn stop_group(child: &mut Child) {
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Browser {
    /// Asks Chromium to close (it stops its own helper processes), then makes sure of its pid.
    fn drop(&mut self) {
        self.next_id += 1;
        let close = json!({"id": self.next_id, "method": "Browser.close", "params": {}});
        let _ = self.socket.send(Message::text(close.to_string()));
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) && !matches!(self.child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(50));
        }
        // Whatever of its group is left (its helpers, or all of it if it did not close).
        stop_group(&mut self.child);
    }
}

/// The browser the tests drive: `$CHROMIUM`, else Debian's.
pub fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}
