//! Real third-party peers for the tests (see ../shared/peers.md): tinyproxy, stunnel and squid,
//! each in the foreground on a free 127.0.0.1 port with its files in the test's directory, and
//! stopped by its pid when dropped.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{DEADLINE, free_port, poll};

/// A peer process; killed by pid on drop.
pub struct Peer {
    child: Child,
    pub port: u16,
    /// Where the peer logs (its stderr, or its own log file).
    pub log: PathBuf,
}

impl Peer {
    fn spawn(mut cmd: Command, port: u16, log: PathBuf, stderr_to_log: bool) -> Peer {
        // Its own process group, so stopping it stops the children it forks (nginx's workers).
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        if stderr_to_log {
            let file = std::fs::File::create(&log).expect("creating the peer's log");
            cmd.stderr(file.try_clone().unwrap()).stdout(file);
        } else {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let mut child = cmd.stdin(Stdio::null()).spawn().unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        poll(&format!("{cmd:?} to listen on {port}"), DEADLINE, || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{cmd:?} exited ({status}): {}", std::fs::read_to_string(&log).unwrap_or_default());
            }
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
        });
        Peer { child, port, log }
    }

    pub fn url(&self, scheme: &str, credentials: Option<&str>) -> String {
        match credentials {
            Some(c) => format!("{scheme}://{c}@127.0.0.1:{}", self.port),
            None => format!("{scheme}://127.0.0.1:{}", self.port),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the peer and every process it started: SIGTERM to its process group, then SIGKILL
    /// to whatever of the group is left after a grace period; waits for the peer itself.
    pub fn kill(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let group = format!("-{}", self.child.id());
        let signal = |name: &str| {
            let _ = Command::new("kill").args([name, "--", &group]).stderr(Stdio::null()).status();
        };
        signal("-TERM");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        signal("-KILL");
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// tinyproxy allowing CONNECT to `connect_ports`, with Basic auth when `auth` is given.
pub fn tinyproxy(dir: &Path, connect_ports: &[u16], auth: Option<(&str, &str)>) -> Peer {
    tinyproxy_on(dir, free_port(), connect_ports, auth)
}

pub fn tinyproxy_on(dir: &Path, port: u16, connect_ports: &[u16], auth: Option<(&str, &str)>) -> Peer {
    let mut lines = vec![
        format!("Port {port}"),
        "Listen 127.0.0.1".into(),
        "Timeout 30".into(),
        "MaxClients 20".into(),
        "Allow 127.0.0.1".into(),
        "LogLevel Info".into(),
    ];
    lines.extend(connect_ports.iter().map(|p| format!("ConnectPort {p}")));
    if let Some((user, password)) = auth {
        lines.push(format!("BasicAuth {user} {password}"));
    }
    let conf = dir.join(format!("tinyproxy-{port}.conf"));
    std::fs::write(&conf, lines.join("\n") + "\n").unwrap();
    let mut cmd = Command::new("tinyproxy");
    cmd.arg("-d").arg("-c").arg(&conf);
    Peer::spawn(cmd, port, dir.join(format!("tinyproxy-{port}.log")), true)
}

/// stunnel accepting TLS (with `cert`/`key` PEM files) and passing the plain stream to `target`.
pub fn stunnel(dir: &Path, target: u16, cert: &Path, key: &Path) -> Peer {
    let port = free_port();
    let conf = dir.join(format!("stunnel-{port}.conf"));
    let lines = [
        "foreground = yes".to_string(),
        "pid =".into(),
        "debug = notice".into(),
        "[proxy]".into(),
        format!("accept = 127.0.0.1:{port}"),
        format!("connect = 127.0.0.1:{target}"),
        format!("cert = {}", cert.display()),
        format!("key = {}", key.display()),
    ];
    std::fs::write(&conf, lines.join("\n") + "\n").unwrap();
    let mut cmd = Command::new("stunnel4");
    cmd.arg(&conf);
    Peer::spawn(cmd, port, dir.join(format!("stunnel-{port}.log")), true)
}

/// squid with `basic_ncsa_auth` over one user, allowing CONNECT only to `cp_port`. Its files live in
/// a directory the `proxy` user owns (squid drops root for it).
pub fn squid(dir: &Path, cp_port: u16, user: &str, password: &str) -> Peer {
    let port = free_port();
    let home = dir.join(format!("squid-{port}"));
    std::fs::create_dir_all(&home).unwrap();
    let hash = Command::new("openssl").args(["passwd", "-apr1", password]).output().expect("openssl passwd");
    let htpasswd = home.join("htpasswd");
    std::fs::write(&htpasswd, format!("{user}:{}", String::from_utf8_lossy(&hash.stdout))).unwrap();
    let lines = [
        format!("http_port 127.0.0.1:{port}"),
        format!("auth_param basic program /usr/lib/squid/basic_ncsa_auth {}", htpasswd.display()),
        "auth_param basic realm test".into(),
        "acl authed proxy_auth REQUIRED".into(),
        format!("acl cp_ports port {cp_port}"),
        "acl CONNECT method CONNECT".into(),
        "http_access deny CONNECT !cp_ports".into(),
        "http_access allow authed".into(),
        "http_access deny all".into(),
        "cache deny all".into(),
        format!("pid_filename {}", home.join("squid.pid").display()),
        format!("cache_log {}", home.join("cache.log").display()),
        format!("access_log stdio:{}", home.join("access.log").display()),
        "shutdown_lifetime 0 seconds".into(),
    ];
    let conf = home.join("squid.conf");
    std::fs::write(&conf, lines.join("\n") + "\n").unwrap();
    // squid runs as `proxy`: it must reach and own its files.
    let mut at = Some(home.as_path());
    while let Some(d) = at {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d).map(|m| m.permissions().mode()).unwrap_or(0);
        let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode | 0o711));
        at = d.parent().filter(|p| p.starts_with(dir.parent().unwrap_or(dir)));
    }
    let status = Command::new("chown").args(["-R", "proxy:proxy"]).arg(&home).status().expect("chown");
    assert!(status.success());
    let mut cmd = Command::new("squid");
    cmd.arg("-N").arg("-f").arg(&conf);
    Peer::spawn(cmd, port, home.join("access.log"), false)
}

/// nginx as an SNI router (`stream` with `ssl_preread`): TLS whose SNI is `name` goes to `backend`,
/// anything else to a closed port. Its access log records the SNI of every connection.
pub fn nginx_sni_router(dir: &Path, name: &str, backend: u16) -> Peer {
    let port = free_port();
    let home = dir.join(format!("nginx-{port}"));
    std::fs::create_dir_all(&home).unwrap();
    let nowhere = free_port();
    let conf = format!(
        "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n\
         daemon off;\n\
         pid {home}/nginx.pid;\n\
         error_log {home}/error.log notice;\n\
         events {{ worker_connections 64; }}\n\
         stream {{\n\
           log_format sni '$remote_addr sni=$ssl_preread_server_name upstream=$upstream_addr';\n\
           access_log {home}/access.log sni;\n\
           map $ssl_preread_server_name $backend {{ {name} 127.0.0.1:{backend}; default 127.0.0.1:{nowhere}; }}\n\
           server {{ listen 127.0.0.1:{port}; ssl_preread on; proxy_pass $backend; }}\n\
         }}\n",
        home = home.display()
    );
    std::fs::write(home.join("nginx.conf"), conf).unwrap();
    let mut cmd = Command::new("nginx");
    cmd.arg("-p").arg(&home).arg("-c").arg(home.join("nginx.conf"));
    Peer::spawn(cmd, port, home.join("access.log"), false)
}

/// nginx run from `home/nginx.conf` (which must make it listen on `port`), logging to
/// `home/access.log`.
pub fn nginx(home: &Path, port: u16) -> Peer {
    let mut cmd = Command::new("nginx");
    cmd.arg("-p").arg(home).arg("-c").arg(home.join("nginx.conf"));
    Peer::spawn(cmd, port, home.join("access.log"), false)
}

/// nginx as a plain HTTP upstream answering `200 ok` (with the request's path in `X-Path`),
/// closing idle keep-alive connections after `keepalive` seconds. Its access log shows each
/// request with the connection it came on (`$connection`).
pub fn nginx_upstream(dir: &Path, keepalive: u32) -> Peer {
    let port = free_port();
    let home = dir.join(format!("nginx-{port}"));
    std::fs::create_dir_all(&home).unwrap();
    let conf = format!(
        "daemon off;\n\
         pid {home}/nginx.pid;\n\
         error_log {home}/error.log notice;\n\
         worker_processes 2;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n\
           access_log {home}/access.log;\n\
           log_format conn '$connection $request';\n\
           client_body_temp_path {home}/body;\n\
           keepalive_timeout {keepalive}s;\n\
           server {{ listen 127.0.0.1:{port}; access_log {home}/access.log conn; location / {{ add_header X-Path $uri; return 200 \"ok\"; }} }}\n\
         }}\n",
        home = home.display()
    );
    std::fs::write(home.join("nginx.conf"), conf).unwrap();
    let mut cmd = Command::new("nginx");
    cmd.arg("-p").arg(&home).arg("-c").arg(home.join("nginx.conf"));
    Peer::spawn(cmd, port, home.join("access.log"), false)
}

/// The pids of `pid`'s child processes.
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(candidate) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{candidate}/stat")) else { continue };
        // The parent pid is the second field after the parenthesised command name.
        let parent =
            stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)).and_then(|p| p.parse().ok());
        if parent == Some(pid) {
            out.push(candidate);
        }
    }
    out
}

/// Whether a process is still running (zombies count as gone).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

/// `openssl ocsp` on `port` (it binds all interfaces: `-port` takes only a number), answering
/// from `index` (an index.txt, see peers.md) for the certificates `ca` issued, signed by
/// `signer` (cert, key: a delegated responder or the CA), answers valid for `ndays`. Its log
/// names every request it received ([`ocsp_requests`]). It rereads `index` one request late.
pub fn openssl_ocsp(dir: &Path, port: u16, index: &Path, ca: &Path, signer: (&Path, &Path), ndays: u32) -> Peer {
    let log = dir.join(format!("ocsp-{port}.log"));
    let mut cmd = Command::new("openssl");
    cmd.arg("ocsp")
        .arg("-index")
        .arg(index)
        .args(["-port", &port.to_string()])
        .arg("-CA")
        .arg(ca)
        .arg("-rsigner")
        .arg(signer.0)
        .arg("-rkey")
        .arg(signer.1)
        .args(["-ndays", &ndays.to_string()]);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let file = std::fs::File::create(&log).expect("creating the responder's log");
    cmd.stderr(file.try_clone().unwrap()).stdout(file).stdin(Stdio::null());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    // Not probed by connecting: a connection that sends nothing makes openssl 3.0's responder spin.
    poll("openssl ocsp to listen", DEADLINE, || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{cmd:?} exited ({status}): {}", std::fs::read_to_string(&log).unwrap_or_default());
        }
        std::fs::read_to_string(&log).unwrap_or_default().contains("waiting for OCSP client connections").then_some(())
    });
    Peer { child, port, log }
}

/// How many requests an [`openssl_ocsp`] responder has received.
pub fn ocsp_requests(responder: &Peer) -> usize {
    responder.log_text().matches("Received request").count()
}

/// dnsmasq as an authoritative-only name server on a free 127.0.0.1 port (UDP and TCP), answering
/// from `records` (dnsmasq options such as `--host-record=name,ip,ttl` or
/// `--srv-host=name,target,port`) and NXDOMAIN for any other name under `.test`. Every question is
/// logged to its log (`query[A] name from ...`).
pub fn dnsmasq(dir: &Path, records: &[String]) -> Peer {
    dnsmasq_on(dir, free_port(), records)
}

pub fn dnsmasq_on(dir: &Path, port: u16, records: &[String]) -> Peer {
    let log = dir.join(format!("dnsmasq-{port}.log"));
    let mut cmd = Command::new("dnsmasq");
    cmd.args(["--keep-in-foreground", "--bind-interfaces", "--listen-address=127.0.0.1", "--no-resolv", "--no-hosts"])
        .args(["--user=root", "--log-queries", "--local=/test/"])
        .arg(format!("--port={port}"))
        .arg(format!("--pid-file={}", dir.join(format!("dnsmasq-{port}.pid")).display()))
        .arg(format!("--log-facility={}", log.display()))
        .args(records);
    Peer::spawn(cmd, port, log, false)
}

/// How many questions of `kind` (`A`, `SRV`, ...) about `name` a dnsmasq has been asked.
pub fn dns_questions(server: &Peer, kind: &str, name: &str) -> usize {
    let needle = format!("query[{kind}] {name} from");
    server.log_text().lines().filter(|l| l.contains(&needle)).count()
}
