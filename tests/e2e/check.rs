//! `gateway check FILE`: exit codes and messages on good and bad files, and environment overrides.

use gateway_tests::{conf_dir, repo_root, run, stderr, stdout};

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
        err.contains("warning: kong.conf:2: pg_host is a Kong setting that gateway does not use; ignored"),
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
