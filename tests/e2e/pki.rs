//! PKI mode (`cluster_mtls = pki`) with real binaries: a control plane and data planes with
//! certificates from test CAs (chains, EKUs, names, validity windows), each refusal checked by its
//! reason in the refusing side's log, the SNI seen by a real TLS-aware proxy (nginx `ssl_preread`),
//! `gateway cluster check`, and certificate rotation by SIGHUP with a live link.

use std::path::Path;

use gateway_tests::pki::{Chain, Leaf, LeafSpec, TestCa, write_cert, write_key};
use gateway_tests::{DEADLINE, EchoServer, Gateway, free_port, http_get, peers, poll, run, stdout};
use rcgen::ExtendedKeyUsagePurpose;

use crate::hybrid::{Cp, Dp, SYNC_DEADLINE, add_route, at, cp_hash, data_planes, get, wait_status, write_conf};

/// What the nodes log (the core's texts; see gateway/src/tls/pki.rs and cluster/).
const CP_REFUSES: &str = "refusing a data plane certificate";
const DP_CANNOT_SYNC: &str = "cannot sync with the control plane";
const DP_CONNECTED: &str = "connected to the control plane";
const RELOADED: &str = "cluster certificate, key and trust reloaded";
const RELOAD_FAILED: &str = "cannot reload the cluster TLS files";
const EXPIRES_SOON: &str = "expires within 30 days";

/// The CP's name in its certificate and in the data planes' `cluster_server_name`.
const CP_NAME: &str = "cp.cluster.test";

/// A node's cluster files, named relative to the test's directory.
#[derive(Clone, Debug)]
pub(crate) struct Files {
    pub(crate) cert: String,
    pub(crate) key: String,
    /// `cluster_ca_cert`: what this node trusts for its peers.
    pub(crate) ca: String,
}

impl Files {
    /// Writes `leaf` as `STEM.crt` (holding `chain`) and `STEM.key`, trusting the file `ca`.
    pub(crate) fn write(dir: &Path, stem: &str, leaf: &Leaf, chain: Chain, ca: &str) -> Files {
        let (cert, key) = leaf.write(dir, stem, chain);
        Files { cert, key, ca: ca.to_string() }
    }

    fn lines(&self) -> Vec<String> {
        vec![
            "cluster_mtls = pki".into(),
            format!("cluster_cert = {}", self.cert),
            format!("cluster_cert_key = {}", self.key),
            format!("cluster_ca_cert = {}", self.ca),
        ]
    }
}

pub(crate) fn server_name(name: &str) -> String {
    format!("cluster_server_name = {name}")
}

/// The conf lines of a PKI control plane named `name` (its prefix and conf file).
pub(crate) fn pki_cp_lines(name: &str, cluster: u16, admin: u16, files: &Files) -> Vec<String> {
    let mut lines = vec![
        "role = control_plane".into(),
        format!("prefix = {name}"),
        format!("admin_listen = 127.0.0.1:{admin}"),
        format!("cluster_listen = 127.0.0.1:{cluster}"),
        format!("cluster_telemetry_listen = 127.0.0.1:{}", free_port()),
        "status_listen = off".into(),
    ];
    lines.extend(files.lines());
    lines
}

/// A PKI control plane named `name` on `cluster`, with `extra` conf lines; waits until it started.
pub(crate) fn start_pki_cp(dir: &Path, name: &str, cluster: u16, files: &Files, extra: &[String]) -> Cp {
    let conf = format!("{name}.conf");
    let (gateway, admin) = start_node(dir, &conf, || {
        let admin = free_port();
        let mut lines = pki_cp_lines(name, cluster, admin, files);
        lines.extend_from_slice(extra);
        (lines, admin)
    });
    Cp { gateway, admin: at(admin), cluster }
}

/// Starts `gateway -c CONF` with the lines `make` returns, until it logs that it started. A start
/// that lost one of its free ports to another process (the suite runs many at once) is retried
/// with fresh ones.
fn start_node<T>(dir: &Path, conf: &str, mut make: impl FnMut() -> (Vec<String>, T)) -> (Gateway, T) {
    let mut attempt = 0;
    loop {
        let (lines, ports) = make();
        write_conf(dir, conf, &lines);
        let mut gateway = Gateway::start(dir, &["-c", conf], &[]);
        match gateway.try_wait_for_log("gateway started") {
            Ok(()) => return (gateway, ports),
            Err(log) if attempt < 3 && log.contains("Address already in use") => attempt += 1,
            Err(log) => panic!("{conf}: the gateway exited before it started:\n{log}"),
        }
    }
}

/// The conf lines of a PKI data plane named `name` dialing `control_plane` (`host:port`).
pub(crate) fn pki_dp_lines(name: &str, control_plane: &str, files: &Files) -> Vec<String> {
    let mut lines = vec![
        "role = data_plane".into(),
        "database = off".into(),
        format!("cluster_control_plane = {control_plane}"),
        format!("cluster_telemetry_endpoint = 127.0.0.1:{}", free_port()),
        format!("prefix = {name}"),
    ];
    lines.extend(files.lines());
    lines
}

/// A PKI data plane named `name`, with `extra` conf lines; waits until it started.
pub(crate) fn start_pki_dp(dir: &Path, name: &str, control_plane: &str, files: &Files, extra: &[String]) -> Dp {
    let conf = format!("{name}.conf");
    let (gateway, (proxy, status)) = start_node(dir, &conf, || {
        let (proxy, status) = (free_port(), free_port());
        let mut lines = pki_dp_lines(name, control_plane, files);
        lines.extend([format!("proxy_listen = 127.0.0.1:{proxy}"), format!("status_listen = 127.0.0.1:{status}")]);
        lines.extend_from_slice(extra);
        (lines, (proxy, status))
    });
    Dp { gateway, proxy: at(proxy), status: at(status) }
}

/// `gateway cluster check` for a PKI data plane conf; (passed, stdout).
pub(crate) fn pki_check(dir: &Path, control_plane: &str, files: &Files, extra: &[String]) -> (bool, String) {
    let mut lines = pki_dp_lines("checker", control_plane, files);
    lines.extend_from_slice(extra);
    write_conf(dir, "check.conf", &lines);
    let out = run(dir, &["cluster", "check", "-c", "check.conf"], &[]);
    (out.status.success(), stdout(&out))
}

fn local(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// The control plane's refusal of the data plane whose certificate's subject names `cn`.
fn refusal_of(cp: &Cp, cn: &str) -> String {
    poll(&format!("the control plane to refuse {cn}"), SYNC_DEADLINE, || {
        cp.gateway.log().lines().find(|l| l.contains(CP_REFUSES) && l.contains(cn)).map(str::to_string)
    })
}

/// The data plane's failed dial whose error holds `reason`.
fn dp_failure(dp: &Dp, reason: &str) -> String {
    poll(&format!("the data plane to fail with `{reason}`"), SYNC_DEADLINE, || {
        dp.gateway.log().lines().find(|l| l.contains(DP_CANNOT_SYNC) && l.contains(reason)).map(str::to_string)
    })
}

/// A control plane with a serverAuth leaf for [`CP_NAME`] from its own CA (`cp-ca.pem`, which the
/// data planes trust), trusting `dp_trust` (PEM, written to `STEM-trust.pem`) for data planes.
fn cp_trusting(dir: &Path, stem: &str, dp_trust: &str) -> (Cp, String) {
    let cp_ca = TestCa::new("control plane CA");
    let cp_ca_file = cp_ca.write(dir, &format!("{stem}-ca.pem"));
    let trust = format!("{stem}-trust.pem");
    write_cert(&dir.join(&trust), dp_trust);
    let files = Files::write(dir, stem, &cp_ca.issue(&LeafSpec::server(&[CP_NAME])), Chain::Leaf, &trust);
    (start_pki_cp(dir, stem, free_port(), &files, &[]), cp_ca_file)
}

/// A data plane presenting `leaf` as `chain`, trusting `cp_ca_file` for [`CP_NAME`].
fn dp_with(dir: &Path, cp: &Cp, name: &str, leaf: &Leaf, chain: Chain, cp_ca_file: &str) -> Dp {
    let files = Files::write(dir, name, leaf, chain, cp_ca_file);
    start_pki_dp(dir, name, &local(cp.cluster), &files, &[server_name(CP_NAME)])
}

fn client(name: &str) -> LeafSpec {
    LeafSpec::client(name)
}

#[test]
fn a_pki_data_plane_syncs_from_its_control_plane_and_proxies() {
    let echo = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new("cluster CA");
    let ca_file = ca.write(d, "cluster-ca.pem");
    let cp_files = Files::write(d, "cp", &ca.issue(&LeafSpec::server(&[CP_NAME])), Chain::Leaf, &ca_file);
    let cp = start_pki_cp(d, "cp", free_port(), &cp_files, &[]);
    let dp_leaf = ca.issue(&client("dp-1.cluster.test"));
    let dp_files = Files::write(d, "dp", &dp_leaf, Chain::Leaf, &ca_file);
    let dp = start_pki_dp(d, "dp", &local(cp.cluster), &dp_files, &[server_name(CP_NAME)]);

    add_route(&cp, &echo, "s", "r", "/pki");
    wait_status(&dp, "/pki", 200);
    let hash = cp_hash(&cp);
    poll("the data plane listed in sync", SYNC_DEADLINE, || {
        let rows = data_planes(&cp);
        (rows.len() == 1 && rows[0]["sync_status"] == "normal" && rows[0]["config_hash"] == hash).then_some(())
    });
    // The row describes the certificate the data plane presented.
    let row = &data_planes(&cp)[0];
    assert_eq!(row["cert_details"]["expiry_timestamp"].as_i64(), Some(dp_leaf.not_after), "{row}");

    // The data plane may trust the CP's CA through lua_ssl_trusted_certificate instead of
    // cluster_ca_cert (here another CA, which the CP's certificate does not chain to).
    let unrelated = TestCa::new("unrelated CA").write(d, "unrelated-ca.pem");
    let via_lua = Files::write(d, "dp2", &ca.issue(&client("dp-2.cluster.test")), Chain::Leaf, &unrelated);
    let dp2 = start_pki_dp(
        d,
        "dp2",
        &local(cp.cluster),
        &via_lua,
        &[server_name(CP_NAME), format!("lua_ssl_trusted_certificate = {ca_file}")],
    );
    wait_status(&dp2, "/pki", 200);
    // Trusting neither: the data plane refuses the control plane.
    let neither = Files::write(d, "dp3", &ca.issue(&client("dp-3.cluster.test")), Chain::Leaf, &unrelated);
    let dp3 = start_pki_dp(d, "dp3", &local(cp.cluster), &neither, &[server_name(CP_NAME)]);
    let line = dp_failure(&dp3, "is not trusted");
    assert!(line.contains("CP certificate"), "{line}");
    assert_eq!(get(dp3.proxy, "/pki").status, 404);
    assert_eq!(data_planes(&cp).len(), 2);
}

/// The CP trusts one leaf (pinned): that DP connects presenting just the leaf; a sibling leaf from
/// the same intermediate does not.
#[test]
fn a_control_plane_trusting_only_a_leaf_admits_that_data_plane_alone() {
    let echo = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = TestCa::new("DP root");
    let intermediate = root.intermediate("DP intermediate");
    let (a, b) = (intermediate.issue(&client("dp-a.cluster.test")), intermediate.issue(&client("dp-b.cluster.test")));
    let (cp, cp_ca) = cp_trusting(d, "cp", &a.cert);
    add_route(&cp, &echo, "s", "r", "/pinned");
    let dp_a = dp_with(d, &cp, "dp-a", &a, Chain::Leaf, &cp_ca);
    let dp_b = dp_with(d, &cp, "dp-b", &b, Chain::Leaf, &cp_ca);
    wait_status(&dp_a, "/pinned", 200);
    let line = refusal_of(&cp, "dp-b.cluster.test");
    assert!(line.contains(&b.serial), "the refusal names the serial {}: {line}", b.serial);
    assert_eq!(get(dp_b.proxy, "/pinned").status, 404);
    let rows = data_planes(&cp);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["cert_details"]["expiry_timestamp"].as_i64(), Some(a.not_after));
}

/// The CP trusts the intermediate: any leaf it issued connects presenting just the leaf; a leaf
/// of a sibling intermediate under the same root does not.
#[test]
fn a_control_plane_trusting_an_intermediate_admits_every_leaf_it_issued() {
    let echo = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = TestCa::new("DP root");
    let intermediate = root.intermediate("DP intermediate");
    let sibling = root.intermediate("another intermediate");
    let (cp, cp_ca) = cp_trusting(d, "cp", &intermediate.cert_pem());
    add_route(&cp, &echo, "s", "r", "/inter");
    let dp_a = dp_with(d, &cp, "dp-a", &intermediate.issue(&client("dp-a.cluster.test")), Chain::Leaf, &cp_ca);
    let dp_b = dp_with(d, &cp, "dp-b", &intermediate.issue(&client("dp-b.cluster.test")), Chain::Leaf, &cp_ca);
    let stranger = sibling.issue(&client("dp-sibling.cluster.test"));
    let _dp_c = dp_with(d, &cp, "dp-c", &stranger, Chain::WithRoot, &cp_ca);
    wait_status(&dp_a, "/inter", 200);
    wait_status(&dp_b, "/inter", 200);
    let line = refusal_of(&cp, "dp-sibling.cluster.test");
    assert!(line.contains("is not trusted"), "{line}");
    assert_eq!(data_planes(&cp).len(), 2);
}

/// The CP trusts the root: leaf + intermediate connects; the leaf alone is refused because the
/// chain is incomplete.
#[test]
fn a_control_plane_trusting_the_root_needs_the_intermediate_sent() {
    let echo = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = TestCa::new("DP root");
    let intermediate = root.intermediate("DP intermediate");
    let (cp, cp_ca) = cp_trusting(d, "cp", root.root_pem());
    add_route(&cp, &echo, "s", "r", "/root");
    let full = dp_with(
        d,
        &cp,
        "dp-full",
        &intermediate.issue(&client("dp-full.cluster.test")),
        Chain::WithIntermediates,
        &cp_ca,
    );
    let leaf_only = intermediate.issue(&client("dp-leaf.cluster.test"));
    let dp_leaf = dp_with(d, &cp, "dp-leaf", &leaf_only, Chain::Leaf, &cp_ca);
    wait_status(&full, "/root", 200);
    let line = refusal_of(&cp, "dp-leaf.cluster.test");
    assert!(line.contains("chain is incomplete"), "{line}");
    assert_eq!(get(dp_leaf.proxy, "/root").status, 404);
    assert_eq!(data_planes(&cp).len(), 1);
}

/// Every data-plane certificate the CP refuses, one DP each, with its reason, serial and subject
/// in the CP's log; a good DP beside them syncs.
#[test]
fn a_control_plane_refuses_bad_data_plane_certificates_naming_the_reason() {
    let echo = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = TestCa::new("DP root");
    let intermediate = root.intermediate("DP intermediate");
    let (cp, cp_ca) = cp_trusting(d, "cp", root.root_pem());
    add_route(&cp, &echo, "s", "r", "/good");
    let good = dp_with(d, &cp, "good", &root.issue(&client("dp-good.cluster.test")), Chain::Leaf, &cp_ca);

    let foreign = TestCa::new("foreign CA");
    let cases: Vec<(&str, Leaf, Chain, &str)> = vec![
        ("dp-foreign", foreign.issue(&client("dp-foreign.cluster.test")), Chain::WithRoot, "is not trusted"),
        (
            "dp-server-eku",
            root.issue(&client("dp-server-eku.cluster.test").usages(vec![ExtendedKeyUsagePurpose::ServerAuth])),
            Chain::Leaf,
            "lacks the extended key usage clientAuth",
        ),
        (
            "dp-no-eku",
            root.issue(&client("dp-no-eku.cluster.test").no_eku()),
            Chain::Leaf,
            "lacks the extended key usage clientAuth",
        ),
        ("dp-expired", root.issue(&client("dp-expired.cluster.test").expired()), Chain::Leaf, "expired"),
        ("dp-early", root.issue(&client("dp-early.cluster.test").not_yet_valid()), Chain::Leaf, "not yet valid"),
        (
            "dp-no-intermediate",
            intermediate.issue(&client("dp-no-intermediate.cluster.test")),
            Chain::Leaf,
            "chain is incomplete",
        ),
    ];
    let mut refused = Vec::new();
    for (name, leaf, chain, _) in &cases {
        refused.push(dp_with(d, &cp, name, leaf, *chain, &cp_ca));
    }
    wait_status(&good, "/good", 200);
    for ((name, leaf, _, reason), dp) in cases.iter().zip(&refused) {
        let line = refusal_of(&cp, &format!("{name}.cluster.test"));
        assert!(line.contains(reason), "{name}: `{reason}` in {line}");
        assert!(line.contains(&leaf.serial), "{name}: serial {} in {line}", leaf.serial);
        assert_eq!(get(dp.proxy, "/good").status, 404, "{name} got the configuration");
    }
    assert_eq!(data_planes(&cp).len(), 1, "{:?}", data_planes(&cp));
}

/// Every control-plane certificate a DP refuses, with its reason in the DP's log at the
/// CP-certificate hop.
#[test]
fn a_data_plane_refuses_bad_control_plane_certificates_naming_the_reason() {
    let echo = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new("cluster CA");
    let ca_file = ca.write(d, "cluster-ca.pem");
    let other_file = TestCa::new("another CA").write(d, "other-ca.pem");
    let cp_with = |stem: &str, spec: LeafSpec| {
        let files = Files::write(d, stem, &ca.issue(&spec), Chain::Leaf, &ca_file);
        start_pki_cp(d, stem, free_port(), &files, &[])
    };
    let good = cp_with("cp", LeafSpec::server(&[CP_NAME]));
    let client_only =
        cp_with("cp-client-eku", LeafSpec::server(&[CP_NAME]).usages(vec![ExtendedKeyUsagePurpose::ClientAuth]));
    let expired = cp_with("cp-expired", LeafSpec::server(&[CP_NAME]).expired());
    let early = cp_with("cp-early", LeafSpec::server(&[CP_NAME]).not_yet_valid());
    add_route(&good, &echo, "s", "r", "/good");

    let dp = |name: &str, cp: &Cp, trust: &str, sni: &str| {
        let files = Files::write(d, name, &ca.issue(&client(&format!("{name}.cluster.test"))), Chain::Leaf, trust);
        start_pki_dp(d, name, &local(cp.cluster), &files, &[server_name(sni)])
    };
    let synced = dp("dp-good", &good, &ca_file, CP_NAME);
    let cases = [
        (dp("dp-untrusted", &good, &other_file, CP_NAME), "is not trusted".to_string()),
        (
            dp("dp-elsewhere", &good, &ca_file, "elsewhere.cluster.test"),
            "is not valid for the name elsewhere.cluster.test".into(),
        ),
        (dp("dp-eku", &client_only, &ca_file, CP_NAME), "lacks the extended key usage serverAuth".into()),
        (dp("dp-expired", &expired, &ca_file, CP_NAME), "expired".into()),
        (dp("dp-early", &early, &ca_file, CP_NAME), "not yet valid".into()),
    ];
    wait_status(&synced, "/good", 200);
    for (dp, reason) in &cases {
        let line = dp_failure(dp, reason);
        assert!(line.contains("CP certificate"), "the hop is named: {line}");
    }
    assert_eq!(data_planes(&good).len(), 1);
    for cp in [&client_only, &expired, &early] {
        assert!(data_planes(cp).is_empty());
    }
}

/// A DP certificate expiring within 30 days is admitted with a warning in the CP's log and in
/// `/clustering/data-planes`; a CP whose own certificate expires within 30 days warns at start.
#[test]
fn certificates_expiring_within_30_days_are_warned_about() {
    let echo = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new("cluster CA");
    let ca_file = ca.write(d, "cluster-ca.pem");
    let cp_files =
        Files::write(d, "cp", &ca.issue(&LeafSpec::server(&[CP_NAME]).expiring_in_days(12)), Chain::Leaf, &ca_file);
    let mut cp = start_pki_cp(d, "cp", free_port(), &cp_files, &[]);
    cp.gateway.wait_for_log(EXPIRES_SOON);
    let own = cp.gateway.log().lines().find(|l| l.contains(EXPIRES_SOON)).unwrap().to_string();
    assert!(own.contains("WARN") && own.contains(CP_NAME), "{own}");
    add_route(&cp, &echo, "s", "r", "/soon");

    let soon = ca.issue(&client("dp-soon.cluster.test").expiring_in_days(10));
    let dp_soon = start_pki_dp(
        d,
        "dp-soon",
        &local(cp.cluster),
        &Files::write(d, "dp-soon", &soon, Chain::Leaf, &ca_file),
        &[server_name(CP_NAME)],
    );
    let later = ca.issue(&client("dp-later.cluster.test").expiring_in_days(90));
    let dp_later = start_pki_dp(
        d,
        "dp-later",
        &local(cp.cluster),
        &Files::write(d, "dp-later", &later, Chain::Leaf, &ca_file),
        &[server_name(CP_NAME)],
    );
    wait_status(&dp_soon, "/soon", 200);
    wait_status(&dp_later, "/soon", 200);
    let warning = poll("the CP to warn about the DP's certificate", DEADLINE, || {
        cp.gateway.log().lines().find(|l| l.contains(EXPIRES_SOON) && l.contains("dp-soon")).map(str::to_string)
    });
    assert!(warning.contains("WARN"), "{warning}");
    assert!(
        !cp.gateway.log().lines().any(|l| l.contains(EXPIRES_SOON) && l.contains("dp-later")),
        "{}",
        cp.gateway.log()
    );

    let rows = poll("both data planes listed", SYNC_DEADLINE, || {
        let rows = data_planes(&cp);
        (rows.len() == 2).then_some(rows)
    });
    let row_of = |not_after: i64| {
        rows.iter().find(|r| r["cert_details"]["expiry_timestamp"].as_i64() == Some(not_after)).cloned().unwrap()
    };
    let (soon_row, later_row) = (row_of(soon.not_after), row_of(later.not_after));
    assert_eq!(soon_row["cert_details"]["expires_soon"], true, "the row warns: {soon_row}");
    let days = soon_row["cert_details"]["days_left"].as_i64();
    assert!(matches!(days, Some(9 | 10)), "{soon_row}");
    assert!(later_row["cert_details"]["expires_soon"].is_null(), "{later_row}");
}

/// nginx `ssl_preread` routes by SNI between DP and CP: in PKI mode the DP sends
/// `cluster_server_name`, which nginx logs and routes (anything else goes to a closed port).
#[test]
fn an_sni_router_sees_cluster_server_name_and_routes_the_pki_link() {
    let echo = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new("cluster CA");
    let ca_file = ca.write(d, "cluster-ca.pem");
    let cp_files = Files::write(d, "cp", &ca.issue(&LeafSpec::server(&[CP_NAME])), Chain::Leaf, &ca_file);
    let cp = start_pki_cp(d, "cp", free_port(), &cp_files, &[]);
    add_route(&cp, &echo, "s", "r", "/routed");
    let router = peers::nginx_sni_router(d, CP_NAME, cp.cluster);
    let dp_files = Files::write(d, "dp", &ca.issue(&client("dp.cluster.test")), Chain::Leaf, &ca_file);
    let dp = start_pki_dp(d, "dp", &local(router.port), &dp_files, &[server_name(CP_NAME)]);
    wait_status(&dp, "/routed", 200);
    // nginx logs a stream session when it ends.
    drop(dp);
    poll("nginx's log of the SNI", DEADLINE, || {
        router.log_text().contains(&format!("sni={CP_NAME} upstream=127.0.0.1:{}", cp.cluster)).then_some(())
    });
}

/// Without `cluster_server_name`, a PKI DP sends (and checks) the host of `cluster_control_plane`.
#[test]
fn without_cluster_server_name_the_sni_is_the_control_plane_host() {
    let echo = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new("cluster CA");
    let ca_file = ca.write(d, "cluster-ca.pem");
    let cp_files = Files::write(d, "cp", &ca.issue(&LeafSpec::server(&["localhost"])), Chain::Leaf, &ca_file);
    let cp = start_pki_cp(d, "cp", free_port(), &cp_files, &[]);
    add_route(&cp, &echo, "s", "r", "/host");
    let router = peers::nginx_sni_router(d, "localhost", cp.cluster);
    let dp_files = Files::write(d, "dp", &ca.issue(&client("dp.cluster.test")), Chain::Leaf, &ca_file);
    let dp = start_pki_dp(d, "dp", &format!("localhost:{}", router.port), &dp_files, &[]);
    wait_status(&dp, "/host", 200);
    drop(dp);
    poll("nginx's log of the SNI", DEADLINE, || {
        router.log_text().contains(&format!("sni=localhost upstream=127.0.0.1:{}", cp.cluster)).then_some(())
    });
}

/// Shared mode sends `kong_clustering`, whatever the CP is called: that is all an SNI router sees.
#[test]
fn in_shared_mode_an_sni_router_sees_kong_clustering() {
    let echo = EchoServer::start();
    let dir = crate::hybrid::cluster_dir();
    let cp = crate::hybrid::start_cp(dir.path(), free_port());
    add_route(&cp, &echo, "s", "r", "/shared");
    let router = peers::nginx_sni_router(dir.path(), "kong_clustering", cp.cluster);
    let dp = crate::hybrid::start_dp(dir.path(), "dp", router.port, &[server_name(CP_NAME)]);
    wait_status(&dp, "/shared", 200);
    drop(dp);
    poll("nginx's log of the SNI", DEADLINE, || {
        router.log_text().contains(&format!("sni=kong_clustering upstream=127.0.0.1:{}", cp.cluster)).then_some(())
    });
    assert!(!router.log_text().contains(CP_NAME), "{}", router.log_text());
}

/// DP → tinyproxy (CONNECT) → nginx `ssl_preread` → CP: the SNI inside the tunnel is
/// `cluster_server_name`.
#[test]
fn pki_through_a_connect_proxy_and_an_sni_router() {
    let echo = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new("cluster CA");
    let ca_file = ca.write(d, "cluster-ca.pem");
    let cp_files = Files::write(d, "cp", &ca.issue(&LeafSpec::server(&[CP_NAME])), Chain::Leaf, &ca_file);
    let cp = start_pki_cp(d, "cp", free_port(), &cp_files, &[]);
    add_route(&cp, &echo, "s", "r", "/tunnel");
    let router = peers::nginx_sni_router(d, CP_NAME, cp.cluster);
    let proxy = peers::tinyproxy(d, &[router.port], Some(("dp", "tunnelPass")));
    let dp_files = Files::write(d, "dp", &ca.issue(&client("dp.cluster.test")), Chain::Leaf, &ca_file);
    let dp = start_pki_dp(
        d,
        "dp",
        &local(router.port),
        &dp_files,
        &[
            server_name(CP_NAME),
            "cluster_use_proxy = on".into(),
            format!("proxy_server = {}", proxy.url("http", Some("dp:tunnelPass"))),
        ],
    );
    wait_status(&dp, "/tunnel", 200);
    assert!(proxy.log_text().contains(&format!("CONNECT 127.0.0.1:{}", router.port)), "{}", proxy.log_text());
    drop(dp);
    poll("nginx's log of the SNI", DEADLINE, || {
        router.log_text().contains(&format!("sni={CP_NAME} upstream=127.0.0.1:{}", cp.cluster)).then_some(())
    });
}

/// `gateway cluster check` in PKI mode names each PKI failure at the CP-certificate hop.
#[test]
fn cluster_check_names_pki_failures_at_the_cp_certificate_hop() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new("cluster CA");
    let ca_file = ca.write(d, "cluster-ca.pem");
    let other_file = TestCa::new("another CA").write(d, "other-ca.pem");
    let cp_with = |stem: &str, spec: LeafSpec| {
        let files = Files::write(d, stem, &ca.issue(&spec), Chain::Leaf, &ca_file);
        start_pki_cp(d, stem, free_port(), &files, &[])
    };
    let good = cp_with("cp", LeafSpec::server(&[CP_NAME]));
    let client_only = cp_with("cp-eku", LeafSpec::server(&[CP_NAME]).usages(vec![ExtendedKeyUsagePurpose::ClientAuth]));
    let expired = cp_with("cp-expired", LeafSpec::server(&[CP_NAME]).expired());
    let dp_leaf = ca.issue(&client("checker.cluster.test"));
    let trusting = Files::write(d, "dp", &dp_leaf, Chain::Leaf, &ca_file);
    let untrusting = Files { ca: other_file, ..trusting.clone() };

    let (ok, out) = pki_check(d, &local(good.cluster), &trusting, &[server_name(CP_NAME)]);
    assert!(ok, "{out}");
    assert!(out.contains("ok    CP certificate") && out.contains("the whole path works"), "{out}");

    for (cp, files, name, reason) in [
        (&good, &untrusting, CP_NAME, "is not trusted"),
        (&good, &trusting, "elsewhere.cluster.test", "is not valid for the name elsewhere.cluster.test"),
        (&client_only, &trusting, CP_NAME, "lacks the extended key usage serverAuth"),
        (&expired, &trusting, CP_NAME, "expired"),
    ] {
        let (ok, out) = pki_check(d, &local(cp.cluster), files, &[server_name(name)]);
        assert!(!ok, "{reason}: {out}");
        let line = out.lines().find(|l| l.starts_with("FAIL")).unwrap_or_default();
        assert!(line.starts_with("FAIL  CP certificate") && line.contains(reason), "`{reason}` in:\n{out}");
        assert!(out.contains("hint:"), "{out}");
    }
}

/// SIGHUP re-reads the cluster certificate, key and trust files on both nodes: the running link
/// stays up and in sync, new links use the new material, and a bad file keeps the old material.
#[test]
fn sighup_rotates_cluster_certificates_with_a_live_data_plane() {
    let echo = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (old_ca, new_ca) = (TestCa::new("old cluster CA"), TestCa::new("new cluster CA"));
    old_ca.write(d, "old-ca.pem");
    new_ca.write(d, "new-ca.pem");
    // Each node's trust file starts as the old CA and is rotated in place.
    write_cert(&d.join("cp-trust.pem"), &old_ca.cert_pem());
    write_cert(&d.join("dp-trust.pem"), &old_ca.cert_pem());
    let cp_files = Files::write(d, "cp", &old_ca.issue(&LeafSpec::server(&[CP_NAME])), Chain::Leaf, "cp-trust.pem");
    let dp_files =
        Files::write(d, "dp", &old_ca.issue(&client("dp-rotated.cluster.test")), Chain::Leaf, "dp-trust.pem");
    let cluster = free_port();
    let mut cp = start_pki_cp(d, "cp", cluster, &cp_files, &[]);
    let mut dp = start_pki_dp(d, "dp", &local(cluster), &dp_files, &[server_name(CP_NAME)]);
    add_route(&cp, &echo, "s", "r", "/before");
    wait_status(&dp, "/before", 200);
    let (cp_mark, dp_mark) = (cp.gateway.log().len(), dp.gateway.log().len());

    // Rotate everything to the new CA, in place, and tell both nodes.
    let cp_rotated = new_ca.issue(&LeafSpec::server(&[CP_NAME]));
    cp_rotated.write(d, "cp", Chain::Leaf);
    write_cert(&d.join("cp-trust.pem"), &new_ca.cert_pem());
    new_ca.issue(&client("dp-rotated.cluster.test")).write(d, "dp", Chain::Leaf);
    write_cert(&d.join("dp-trust.pem"), &new_ca.cert_pem());
    cp.gateway.signal("HUP");
    dp.gateway.signal("HUP");
    cp.gateway.wait_for_log(RELOADED);
    dp.gateway.wait_for_log(RELOADED);

    // The running link stayed up: a change arrives over it, with no redial on either side.
    add_route(&cp, &echo, "s2", "r2", "/after");
    wait_status(&dp, "/after", 200);
    let (cp_after, dp_after) = (cp.gateway.log()[cp_mark..].to_string(), dp.gateway.log()[dp_mark..].to_string());
    for gone in [DP_CONNECTED, DP_CANNOT_SYNC, "link ended", "closed the link"] {
        assert!(!dp_after.contains(gone), "`{gone}` after SIGHUP:\n{dp_after}");
    }
    for gone in ["data plane connected", "data plane disconnected", "link ended"] {
        assert!(!cp_after.contains(gone), "`{gone}` after SIGHUP:\n{cp_after}");
    }
    assert_eq!(data_planes(&cp).len(), 1);

    // New links use the new material: the CP now trusts the new CA, not the old one, ...
    let fresh = Files::write(d, "dp-new", &new_ca.issue(&client("dp-new.cluster.test")), Chain::Leaf, "new-ca.pem");
    let dp_new = start_pki_dp(d, "dp-new", &local(cluster), &fresh, &[server_name(CP_NAME)]);
    wait_status(&dp_new, "/after", 200);
    let stale = Files::write(d, "dp-old", &old_ca.issue(&client("dp-old.cluster.test")), Chain::WithRoot, "new-ca.pem");
    let _dp_old = start_pki_dp(d, "dp-old", &local(cluster), &stale, &[server_name(CP_NAME)]);
    let line = refusal_of(&cp, "dp-old.cluster.test");
    assert!(line.contains("is not trusted"), "{line}");
    // ... and presents its new certificate.
    let (ok, out) = pki_check(d, &local(cluster), &fresh, &[server_name(CP_NAME)]);
    assert!(ok, "{out}");
    let old_trust = Files { ca: "old-ca.pem".into(), ..fresh.clone() };
    let (ok, out) = pki_check(d, &local(cluster), &old_trust, &[server_name(CP_NAME)]);
    assert!(!ok && out.contains("FAIL  CP certificate"), "{out}");

    // The DP's next link uses its new certificate and trust: restart the CP (same files, which
    // trust only the new CA) and the DP syncs again.
    cp.gateway.signal("KILL");
    cp.gateway.wait_exit(DEADLINE);
    let dp_mark = dp.gateway.log().len();
    let mut cp = start_pki_cp(d, "cp", cluster, &cp_files, &[]);
    poll("the rotated data plane to reconnect", SYNC_DEADLINE, || {
        dp.gateway.log()[dp_mark..].contains(DP_CONNECTED).then_some(())
    });
    add_route(&cp, &echo, "s3", "r3", "/third");
    wait_status(&dp, "/third", 200);

    // A bad file at SIGHUP: the node says why and keeps the material it had.
    std::fs::write(d.join("cp.crt"), "not a certificate\n").unwrap();
    cp.gateway.signal("HUP");
    cp.gateway.wait_for_log(RELOAD_FAILED);
    let why = cp.gateway.log().lines().find(|l| l.contains(RELOAD_FAILED)).unwrap().to_string();
    assert!(why.contains("cp.crt"), "names the file: {why}");
    let (ok, out) = pki_check(d, &local(cluster), &fresh, &[server_name(CP_NAME)]);
    assert!(ok, "the CP still presents its certificate: {out}");
    write_key(&d.join("dp.key"), "not a key\n");
    dp.gateway.signal("HUP");
    dp.gateway.wait_for_log(RELOAD_FAILED);
    let why = dp.gateway.log().lines().find(|l| l.contains(RELOAD_FAILED)).unwrap().to_string();
    assert!(why.contains("dp.key"), "names the file: {why}");
    add_route(&cp, &echo, "s4", "r4", "/fourth");
    wait_status(&dp, "/fourth", 200);
    // The data plane's next link still uses the material it had: restart the CP (its file
    // repaired) and the data plane reconnects.
    cp_rotated.write(d, "cp", Chain::Leaf);
    cp.gateway.signal("KILL");
    cp.gateway.wait_exit(DEADLINE);
    let dp_mark = dp.gateway.log().len();
    let cp = start_pki_cp(d, "cp", cluster, &cp_files, &[]);
    poll("the data plane to reconnect with its kept material", SYNC_DEADLINE, || {
        dp.gateway.log()[dp_mark..].contains(DP_CONNECTED).then_some(())
    });
    add_route(&cp, &echo, "s5", "r5", "/fifth");
    wait_status(&dp, "/fifth", 200);
}

/// The telemetry link in PKI mode through nginx `ssl_preread`: the DP sends
/// `cluster_telemetry_server_name` as the SNI of `/v1/ingest` (its config link keeps
/// `cluster_server_name`), nginx routes by it, and the CP counts the DP's requests.
#[test]
fn pki_telemetry_through_an_sni_router_with_cluster_telemetry_server_name() {
    const TELEMETRY_NAME: &str = "telemetry.cluster.test";
    let echo = EchoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new("cluster CA");
    let ca_file = ca.write(d, "cluster-ca.pem");
    let cp_files =
        Files::write(d, "cp", &ca.issue(&LeafSpec::server(&[CP_NAME, TELEMETRY_NAME])), Chain::Leaf, &ca_file);
    let telemetry = free_port();
    let cp =
        start_pki_cp(d, "cp", free_port(), &cp_files, &[format!("cluster_telemetry_listen = {}", local(telemetry))]);
    add_route(&cp, &echo, "s", "r", "/counted");
    let router = peers::nginx_sni_router(d, TELEMETRY_NAME, telemetry);
    let dp_files = Files::write(d, "dp", &ca.issue(&client("dp.cluster.test")), Chain::Leaf, &ca_file);
    let dp = start_pki_dp(
        d,
        "dp",
        &local(cp.cluster),
        &dp_files,
        &[
            server_name(CP_NAME),
            format!("cluster_telemetry_endpoint = {}", local(router.port)),
            format!("cluster_telemetry_server_name = {TELEMETRY_NAME}"),
        ],
    );
    wait_status(&dp, "/counted", 200);
    poll("the control plane to count the data plane's requests", SYNC_DEADLINE, || {
        let body = http_get(cp.admin, "/analytics?group_by=service").unwrap().json();
        let rows = body["data"].as_array().unwrap().clone();
        rows.iter().any(|row| row["service"]["name"] == "s" && row["calls"].as_u64() >= Some(1)).then_some(())
    });
    drop(dp);
    poll("nginx's log of the telemetry SNI", DEADLINE, || {
        router.log_text().contains(&format!("sni={TELEMETRY_NAME} upstream=127.0.0.1:{telemetry}")).then_some(())
    });
}
