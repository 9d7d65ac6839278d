//! The cluster link when a side goes quiet: a stalled path (an in-test TCP relay that stops
//! forwarding), a control plane under SIGSTOP, a data plane that stops cleanly, and a configuration
//! over `cluster_max_payload`. The silence limit is Kong's fixed 45 s, so two of these tests wait
//! about a minute each (they run in parallel with the rest).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway_tests::{DEADLINE, EchoServer, free_port, http_request, poll};
use serde_json::{Value, json};

use crate::hybrid::{
    Cp, SYNC_DEADLINE, add_route, cluster_dir, cp_hash, data_planes, get, start_cp, start_cp_with, start_dp,
    wait_status,
};

/// Kong's 45 s, plus the time a loaded machine may need to log it.
const SILENCE_DEADLINE: Duration = Duration::from_secs(75);

/// A TCP relay on 127.0.0.1 to `target` that can stop forwarding without closing anything: while
/// stalled it reads nothing and writes nothing, so the senders' socket buffers fill as on a hung
/// network path. Its threads end when it is dropped.
struct Relay {
    port: u16,
    stalled: Arc<AtomicBool>,
    stopped: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(target: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let relay = Relay {
            port,
            stalled: Arc::new(AtomicBool::new(false)),
            stopped: Arc::new(AtomicBool::new(false)),
            streams: Arc::new(Mutex::new(Vec::new())),
        };
        let (stalled, stopped, streams) = (relay.stalled.clone(), relay.stopped.clone(), relay.streams.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else { continue };
                {
                    let mut held = streams.lock().unwrap();
                    held.push(client.try_clone().unwrap());
                    held.push(server.try_clone().unwrap());
                }
                for (from, to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)] {
                    let (stalled, stopped) = (stalled.clone(), stopped.clone());
                    std::thread::spawn(move || pump(from, to, &stalled, &stopped));
                }
            }
        });
        relay
    }

    fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }

    fn resume(&self) {
        self.stalled.store(false, Ordering::SeqCst);
    }
}

/// Copies `from` to `to`, holding still while `stalled`.
fn pump(mut from: TcpStream, mut to: TcpStream, stalled: &AtomicBool, stopped: &AtomicBool) {
    let mut buf = [0u8; 4096];
    let wait = || {
        while stalled.load(Ordering::SeqCst) && !stopped.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    loop {
        wait();
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Bytes read just as the stall began are held until it ends.
        wait();
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        for stream in self.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        // Wakes the accept loop so that it sees the stop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn count(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

fn the_row(cp: &Cp) -> Value {
    let rows = data_planes(cp);
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0].clone()
}

fn wait_in_sync(cp: &Cp) {
    poll("the data plane to report the control plane's hash", SYNC_DEADLINE, || {
        let row = the_row(cp);
        (row["sync_status"] == "normal" && row["config_hash"] == cp_hash(cp)).then_some(())
    });
}

#[test]
fn a_stalled_link_carries_one_configuration_and_both_ends_notice_the_silence() {
    let echo = EchoServer::start();
    let dir = cluster_dir();
    let cp = start_cp(dir.path(), free_port());
    let relay = Relay::start(cp.cluster);
    let dp = start_dp(dir.path(), "dp", relay.port, &[]);
    add_route(&cp, &echo, "s", "r0", "/r0");
    wait_status(&dp, "/r0", 200);
    wait_in_sync(&cp);

    relay.stall();
    let stalled_at = Instant::now();
    let sent_before = count(&cp.gateway.log(), "configuration sent");
    let applied_before = count(&dp.gateway.log(), "configuration from the control plane applied");
    // Changes keep coming while the path is stalled, as under a soak test.
    add_route(&cp, &echo, "s", "r1", "/r1");
    poll("the data plane to be listed out of sync", DEADLINE, || {
        (the_row(&cp)["sync_status"] == "out_of_sync").then_some(())
    });
    let mut last = 1;
    let mut next_change = Instant::now();
    let dropped = "nothing arrived from the data plane for 45s; dropping the link";
    while !cp.gateway.log().contains(dropped) {
        assert!(
            stalled_at.elapsed() < SILENCE_DEADLINE,
            "the control plane never noticed the stall:\n{}",
            cp.gateway.log()
        );
        if Instant::now() >= next_change {
            last += 1;
            add_route(&cp, &echo, "s", &format!("r{last}"), &format!("/r{last}"));
            next_change += Duration::from_secs(5);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    poll(
        "the data plane to notice the silence",
        SILENCE_DEADLINE.saturating_sub(stalled_at.elapsed()) + DEADLINE,
        || dp.gateway.log().contains("was silent for 45s").then_some(()),
    );
    // One frame went into the stalled path; the changes after it waited, newest replacing older.
    let sent = count(&cp.gateway.log(), "configuration sent") - sent_before;
    assert!(sent <= 1, "{sent} configurations written into a stalled link ({last} changes)");
    assert_eq!(the_row(&cp)["sync_status"], "out_of_sync");
    assert_eq!(get(dp.proxy, "/r0").status, 200, "the data plane keeps serving what it has");

    relay.resume();
    wait_status(&dp, &format!("/r{last}"), 200);
    wait_in_sync(&cp);
    let applied = count(&dp.gateway.log(), "configuration from the control plane applied") - applied_before;
    assert!(applied <= 2, "the data plane applied {applied} configurations after the stall, not just the newest");
}

#[test]
fn a_stopped_control_plane_is_noticed_by_its_data_plane() {
    let echo = EchoServer::start();
    let dir = cluster_dir();
    let cp = start_cp(dir.path(), free_port());
    let dp = start_dp(dir.path(), "dp", cp.cluster, &[]);
    add_route(&cp, &echo, "s", "r0", "/r0");
    wait_status(&dp, "/r0", 200);

    cp.gateway.signal("STOP");
    let stopped = Instant::now();
    // The data plane's own pings (every 30 s) must not count as hearing from the control plane.
    let noticed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        poll("the data plane to notice the stopped control plane", SILENCE_DEADLINE, || {
            dp.gateway.log().contains("was silent for 45s").then_some(())
        })
    }));
    let waited = stopped.elapsed();
    cp.gateway.signal("CONT");
    noticed.unwrap_or_else(|_| panic!("not noticed in {waited:?}:\n{}", dp.gateway.log()));
    assert!(waited >= Duration::from_secs(14), "noticed after {waited:?}, before 45 s since the last pong could pass");
    assert_eq!(get(dp.proxy, "/r0").status, 200, "the data plane keeps serving without its control plane");

    add_route(&cp, &echo, "s", "r1", "/r1");
    wait_status(&dp, "/r1", 200);
    wait_in_sync(&cp);
}

#[test]
fn a_data_plane_that_stops_closes_its_link_cleanly() {
    let dir = cluster_dir();
    let mut cp = start_cp(dir.path(), free_port());
    let mut dp = start_dp(dir.path(), "dp", cp.cluster, &[]);
    dp.gateway.wait_for_log("connected to the control plane");
    cp.gateway.wait_for_log("data plane connected");

    dp.gateway.signal("TERM");
    assert!(dp.gateway.wait_exit(DEADLINE).success());
    assert!(dp.gateway.log().contains("closed the link to the control plane"), "{}", dp.gateway.log());
    cp.gateway.wait_for_log("the data plane closed the link");
    cp.gateway.wait_for_log("data plane disconnected");
    let log = cp.gateway.log();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
    assert!(warnings.is_empty(), "a clean stop logged as a problem:\n{}", warnings.join("\n"));
    assert!(log.lines().any(|l| l.contains(" INFO ") && l.contains("the data plane closed the link")), "{log}");
}

/// Consumers whose tags make the configuration about `mib` MiB of JSON (tags barely compress
/// worse than text, which is the point: the limit is on the uncompressed size).
fn bulk_consumers(cp: &Cp, count: usize) {
    for c in 0..count {
        let tags: Vec<String> = (0..1500).map(|t| format!("c{c}t{t}{}", "x".repeat(120))).collect();
        let out = gateway_tests::http_json(cp.admin, "PUT", &format!("/consumers/bulk{c}"), &json!({ "tags": tags }));
        assert!(out.status == 200 || out.status == 201, "{out:?}");
    }
}

#[test]
fn a_configuration_over_cluster_max_payload_is_not_sent_and_the_data_plane_is_listed_out_of_sync() {
    let echo = EchoServer::start();
    let dir = cluster_dir();
    // The least Kong allows; the data plane keeps the 16 MiB default.
    let mut cp = start_cp_with(dir.path(), free_port(), &["cluster_max_payload = 4194304".into()]);
    let dp = start_dp(dir.path(), "dp", cp.cluster, &[]);
    add_route(&cp, &echo, "s", "r0", "/r0");
    wait_status(&dp, "/r0", 200);
    wait_in_sync(&cp);

    // About 5 MiB of JSON: gzip makes it far smaller, which is what Kong's compressed limit let pass.
    bulk_consumers(&cp, 24);
    cp.gateway.wait_for_log("more than cluster_max_payload (4194304 bytes)");
    cp.gateway.wait_for_log("not sending the configuration to this data plane");
    poll("the data plane to be listed out of sync", DEADLINE, || {
        (the_row(&cp)["sync_status"] == "out_of_sync").then_some(())
    });
    let row = the_row(&cp);
    assert_ne!(row["config_hash"], cp_hash(&cp), "{row}");
    assert_eq!(row["config_hash"].as_str().map(str::len), Some(32), "{row}");

    // Back under the limit, the data plane syncs again.
    for c in 0..24 {
        let out = http_request(cp.admin, "DELETE", &format!("/consumers/bulk{c}"), &[]).unwrap();
        assert_eq!(out.status, 204);
    }
    add_route(&cp, &echo, "s", "r1", "/r1");
    wait_status(&dp, "/r1", 200);
    wait_in_sync(&cp);
}

#[test]
fn a_connection_that_never_starts_its_tls_handshake_is_closed() {
    let dir = cluster_dir();
    let cluster = free_port();
    let cp = start_cp(dir.path(), cluster);
    let lived = gateway_tests::silent_connection_lifetime(std::net::SocketAddr::from(([127, 0, 0, 1], cp.cluster)));
    assert!(lived >= Duration::from_secs(9), "closed after the handshake timeout, not before");
}
