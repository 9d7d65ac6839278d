//! `gateway check FILE`: exit codes and messages on good and bad files, and environment overrides.

use std::net::SocketAddr;
use std::time::Duration;

use gateway_tests::{EchoServer, Gateway, conf_dir, free_port, http_get, poll, repo_root, run, stderr, stdout};

/// Every conf/*.conf checks clean, run as the files say: from a copy of the repository's `conf/`,
/// with the cluster certificate the hybrid ones expect made by `gateway hybrid gen_cert`.
#[test]
fn every_shipped_config_is_valid() {
    let root = repo_root();
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir(work.path().join("conf")).unwrap();
    for entry in std::fs::read_dir(root.join("conf")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, work.path().join("conf").join(path.file_name().unwrap())).unwrap();
    }
    assert!(run(work.path(), &["hybrid", "gen_cert"], &[]).status.success());
    let mut checked = 0;
    for entry in std::fs::read_dir(work.path().join("conf")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "conf") {
            let rel = path.strip_prefix(work.path()).unwrap().display().to_string();
            let out = run(work.path(), &["check", &rel], &[]);
            assert!(out.status.success(), "{rel}: {}", stderr(&out));
            assert_eq!(stdout(&out), format!("configuration at {rel} is valid\n"));
            assert_eq!(stderr(&out), "", "{rel} has warnings");
            checked += 1;
        }
    }
    assert!(checked >= 4, "conf/kong.conf, dbless.conf, cp.conf and dp.conf");
}

#[test]
fn check_reports_every_problem_with_file_line_key_value_and_reason() {
    let (dir, _) = conf_dir(&[
        "# a data plane with three mistakes".into(),
        "role = data_plane".into(),
        "database = off".into(),
        "cluster_mtls = mutual".into(),
        "lmdb_map_size = lots".into(),
        "proxy_listen = 127.0.0.1:8000 ssl htp2".into(),
    ]);
    let out = run(dir.path(), &["check", "kong.conf"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for line in [
        "kong.conf:4: cluster_mtls = \"mutual\": must be one of: shared, pki",
        "kong.conf:5: lmdb_map_size = \"lots\": must be a size such as 2048m",
        "kong.conf:6: proxy_listen = \"127.0.0.1:8000 ssl htp2\": unknown listen flag `htp2`",
        "kong.conf:2: cluster_cert: role = data_plane needs cluster_cert and cluster_cert_key",
    ] {
        assert!(err.contains(line), "missing `{line}` in:\n{err}");
    }
    assert!(err.contains("(5 problems)"), "{err}");
    assert_eq!(stdout(&out), "");
}

#[test]
fn unknown_keys_warn_with_a_suggestion_but_pass() {
    let (dir, _) = conf_dir(&["log_lvel = debug".into(), "pg_host = db.internal".into()]);
    let out = run(dir.path(), &["check", "kong.conf"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("warning: kong.conf:1: unknown key log_lvel (did you mean log_level?); ignored"), "{err}");
    assert!(
        err.contains("warning: kong.conf:2: pg_host does not apply here: PostgreSQL is not supported yet"),
        "{err}"
    );
    assert_eq!(stdout(&out), "configuration at kong.conf is valid\n");
}

#[test]
fn environment_overrides_the_file_and_is_named_in_errors() {
    let (dir, _) = conf_dir(&["log_level = debug".into()]);
    let out = run(dir.path(), &["check", "kong.conf"], &[("KONG_LOG_LEVEL", "chatty")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("environment variable KONG_LOG_LEVEL: log_level = \"chatty\": must be one of"),
        "{}",
        stderr(&out)
    );

    // The file alone is wrong for a data plane; the environment completes it.
    let (dir, _) = conf_dir(&["role = data_plane".into()]);
    let made = run(dir.path(), &["hybrid", "gen_cert"], &[]);
    assert!(made.status.success(), "{}", stderr(&made));
    let env =
        [("KONG_DATABASE", "off"), ("KONG_CLUSTER_CERT", "cluster.crt"), ("KONG_CLUSTER_CERT_KEY", "cluster.key")];
    let out = run(dir.path(), &["check", "kong.conf"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(dir.path(), &["check", "kong.conf"], &env[..1]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("kong.conf:1: cluster_cert: role = data_plane needs"), "{}", stderr(&out));
}

#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["check", "nope.conf"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read configuration file nope.conf"), "{}", stderr(&out));
}

#[test]
fn proxy_credentials_are_not_echoed() {
    let (dir, _) = conf_dir(&["proxy_server = http://alice:s3cret@proxy.corp:3128/x".into()]);
    let out = run(dir.path(), &["check", "kong.conf"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("proxy_server = \"http://<credentials>@proxy.corp:3128/x\": must not have a path"), "{err}");
    assert!(!err.contains("s3cret") && !err.contains("alice"), "{err}");
}

/// Kong 3.10's own `kong.conf.default` with every `#key = value` line uncommented and
/// `database = off`, as an operator would start from it.
fn kongs_default_file() -> String {
    let text = std::fs::read_to_string(repo_root().join("tests/data/kong.conf.default")).unwrap();
    let mut keys = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let key = line.strip_prefix('#').and_then(|rest| rest.split_once(" = ")).map(|(key, _)| key);
            match key {
                Some(key)
                    if !key.is_empty()
                        && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
                {
                    keys += 1;
                    if key == "database" { "database = off".to_string() } else { line[1..].to_string() }
                }
                _ => line.to_string(),
            }
        })
        .collect();
    assert_eq!(keys, 178, "Kong 3.10's kong.conf.default has 178 keys");
    lines.join("\n")
}

#[test]
fn kongs_own_default_file_uncommented_checks_clean_and_a_node_starts_with_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kong.conf"), kongs_default_file()).unwrap();
    let out = run(dir.path(), &["check", "kong.conf"], &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(stdout(&out), "configuration at kong.conf is valid\n");
    assert!(!err.contains("unknown key"), "{err}");
    // Every line is a warning about one of Kong's keys, with its reason.
    for line in err.lines() {
        assert!(line.starts_with("warning: kong.conf:") && line.ends_with("; ignored"), "{line}");
    }
    assert!(err.contains("lua_package_path does not apply here: no Lua in this gateway"), "{err}");
    assert!(err.contains("pg_host does not apply here: PostgreSQL is not supported yet"), "{err}");
    // The DNS keys are honoured, both Kong's dns_* and the resolver_* of new_dns_client (whose
    // `<name servers parsed from resolv.conf>` placeholders mean "the default").
    for key in
        ["dns_resolver", "dns_order", "dns_hostsfile", "resolver_address", "resolver_valid_ttl", "ssl_session_timeout"]
    {
        assert!(!err.contains(&format!(" {key} ")), "{key} is honoured: {err}");
    }

    // A node starts with the same file. Its addresses and prefix come from the environment (tests
    // bind free loopback ports), and so do its configuration and node id, as in a container.
    let upstream = EchoServer::start();
    let (proxy, admin) = (free_port(), free_port());
    let inline = format!(
        "_format_version: \"3.0\"\nservices:\n- name: echo\n  url: http://{}\n  routes:\n  - name: all\n    paths: [/]\n",
        upstream.addr
    );
    let node_id = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
    let mut node = Gateway::start(
        dir.path(),
        &["-c", "kong.conf"],
        &[
            ("KONG_PREFIX", "servroot"),
            ("KONG_PROXY_LISTEN", &format!("127.0.0.1:{proxy}")),
            ("KONG_ADMIN_LISTEN", &format!("127.0.0.1:{admin}")),
            ("KONG_STATUS_LISTEN", "off"),
            ("KONG_DECLARATIVE_CONFIG_STRING", &inline),
            ("KONG_NODE_ID", node_id),
        ],
    );
    node.wait_for_log("gateway started");
    let proxy = SocketAddr::from(([127, 0, 0, 1], proxy));
    let answer = poll("the proxy", Duration::from_secs(10), || http_get(proxy, "/hello").ok());
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["path"], "/hello");
    let root = http_get(SocketAddr::from(([127, 0, 0, 1], admin)), "/").unwrap().json();
    assert_eq!(root["node_id"], node_id);
    assert!(!dir.path().join("servroot/node_id").exists(), "a fixed node_id is not written to the prefix");
    // The inline configuration is what the Admin API shows; it is never logged.
    let services = http_get(SocketAddr::from(([127, 0, 0, 1], admin)), "/services").unwrap().json();
    assert_eq!(services["data"][0]["name"], "echo");
    assert!(!node.log().contains("_format_version"), "{}", node.log());
}

#[test]
fn a_bad_inline_declarative_config_stops_the_start_naming_the_key() {
    let (dir, _) = conf_dir(&[
        "database = off".into(),
        "prefix = servroot".into(),
        format!("proxy_listen = 127.0.0.1:{}", free_port()),
        "admin_listen = off".into(),
        "status_listen = off".into(),
    ]);
    let inline = "_format_version: \"3.0\"\nservices:\n- name: echo\n  url: ftp://nowhere\n";
    let mut node = Gateway::start(dir.path(), &["-c", "kong.conf"], &[("KONG_DECLARATIVE_CONFIG_STRING", inline)]);
    assert!(!node.wait_exit(Duration::from_secs(20)).success());
    let log = node.log();
    assert!(log.contains("declarative_config_string"), "{log}");
    assert!(log.contains("services[0].url") || log.contains("services.echo"), "{log}");
}

#[test]
fn kong_settings_that_would_fail_open_are_refused_from_file_and_environment() {
    let (dir, _) = conf_dir(&["admin_gui_auth = basic-auth".into(), "router_flavor = expressions".into()]);
    let out = run(dir.path(), &["check", "kong.conf"], &[("KONG_LUA_SSL_PROTOCOLS", "TLSv1.3")]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for line in [
        "kong.conf:1: admin_gui_auth = \"basic-auth\": not honoured yet: the console has no login of its own",
        "kong.conf:2: router_flavor = \"expressions\": the expressions router is not supported",
        "environment variable KONG_LUA_SSL_PROTOCOLS: lua_ssl_protocols = \"TLSv1.3\": not honoured yet",
    ] {
        assert!(err.contains(line), "missing `{line}` in:\n{err}");
    }
    assert!(err.contains("(3 problems)"), "{err}");
}

/// Kong's env vault: a key given as `{vault://env/NAME}` comes from the environment, the node
/// starts with it, and neither `gateway check` nor the node prints the secret.
#[test]
fn a_vault_reference_is_resolved_from_the_environment_and_never_printed() {
    let admin = free_port();
    let (dir, _) = conf_dir(&[
        "database = off".into(),
        "prefix = servroot".into(),
        format!("admin_listen = 127.0.0.1:{admin} ssl"),
        "proxy_listen = off".into(),
        "status_listen = off".into(),
        "vault_env_prefix = gw_".into(),
        "admin_ssl_cert = cluster.crt".into(),
        "admin_ssl_cert_key = {vault://env/admin-tls/key}".into(),
    ]);
    assert!(run(dir.path(), &["hybrid", "gen_cert"], &[]).status.success());
    let key = std::fs::read_to_string(dir.path().join("cluster.key")).unwrap();
    std::fs::remove_file(dir.path().join("cluster.key")).unwrap();
    // Missing: refused, naming the key and the variable, showing the reference.
    let out = run(dir.path(), &["check", "kong.conf"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "kong.conf:8: admin_ssl_cert_key = \"{vault://env/admin-tls/key}\": the environment variable GW_ADMIN_TLS is not set"
        ),
        "{}",
        stderr(&out)
    );
    // Set (a JSON object, as secret stores hand them over): the node serves TLS with it.
    let secret = serde_json::json!({ "key": key }).to_string();
    let env = [("GW_ADMIN_TLS", secret.as_str())];
    let out = run(dir.path(), &["check", "kong.conf"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut node = Gateway::start(dir.path(), &["-c", "kong.conf"], &env);
    node.wait_for_log("gateway started");
    let handshake = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{admin}"), "-brief"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&handshake.stderr).into_owned() + &String::from_utf8_lossy(&handshake.stdout);
    assert!(said.contains("CONNECTION ESTABLISHED"), "{said}");
    assert!(!node.log().contains("PRIVATE KEY") && !stderr(&out).contains("PRIVATE KEY"));
}
