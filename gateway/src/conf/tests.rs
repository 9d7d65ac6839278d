use std::path::Path;

use super::*;

fn load_text(text: &str) -> Result<Loaded, ConfError> {
    load_text_env(text, &[])
}

fn load_text_env(text: &str, env: &[(&str, &str)]) -> Result<Loaded, ConfError> {
    let file = ConfFile::parse(Path::new("test.conf"), text);
    let env = Environment::from_vars(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    load_from(Some(file), env)
}

fn problems(text: &str) -> Vec<String> {
    problems_env(text, &[])
}

fn problems_env(text: &str, env: &[(&str, &str)]) -> Vec<String> {
    match load_text_env(text, env) {
        Ok(_) => panic!("expected problems in:\n{text}"),
        Err(ConfError::Invalid { problems, .. }) => problems.iter().map(ToString::to_string).collect(),
        Err(e) => panic!("unexpected {e}"),
    }
}

fn cert_files(dir: &Path) -> (String, String) {
    let pair = crate::certs::cluster_pair(30).unwrap();
    let cert = dir.join("cluster.crt");
    let key = dir.join("cluster.key");
    std::fs::write(&cert, pair.cert_pem).unwrap();
    std::fs::write(&key, pair.key_pem).unwrap();
    (cert.display().to_string(), key.display().to_string())
}

#[test]
fn built_in_defaults_are_kongs() {
    let s = load_from(None, Environment::default()).unwrap().settings;
    assert_eq!(s.role, Role::Traditional);
    assert_eq!(s.database, Database::Lmdb);
    assert_eq!(s.prefix, Path::new("/usr/local/kong/"));
    assert_eq!(s.log_level, LogLevel::Notice);
    assert_eq!(s.proxy_listen.len(), 2);
    assert!(s.proxy_listen[1].ssl && s.proxy_listen[1].http2);
    assert_eq!(s.admin_listen[0].authority(), "127.0.0.1:8001");
    assert_eq!(s.status_listen[0].authority(), "127.0.0.1:8007");
    assert_eq!(s.cluster_listen[0].authority(), "0.0.0.0:8005");
    assert_eq!(s.cluster_telemetry_listen[0].authority(), "0.0.0.0:8006");
    assert_eq!(s.cluster_control_plane.to_string(), "127.0.0.1:8005");
    assert_eq!(s.cluster_telemetry_endpoint.to_string(), "127.0.0.1:8006");
    assert_eq!(s.cluster_mtls, ClusterMtls::Shared);
    assert_eq!(s.cluster_ocsp, ClusterOcsp::Off);
    assert!(!s.cluster_use_proxy);
    assert!(s.proxy_server_ssl_verify);
    assert_eq!(s.lua_ssl_trusted_certificate, vec![TrustSource::System]);
    assert_eq!(s.cluster_max_payload, 16_777_216);
    assert_eq!(s.cluster_data_plane_purge_delay, Duration::from_secs(1_209_600));
    assert_eq!(s.analytics_flush_interval, Duration::from_secs(1));
    assert_eq!(s.analytics_buffer_size_limit, 100_000);
    assert_eq!(s.lmdb_map_size, 2048 << 20);
    assert!(s.cluster_cert.is_none() && s.declarative_config.is_none() && s.proxy_server.is_none());
}

#[test]
fn every_default_in_the_key_table_parses() {
    // `required` relies on this to keep checking after a bad value.
    let loaded = load_from(None, Environment::default()).unwrap();
    assert!(loaded.warnings.is_empty());
}

#[test]
fn file_values_override_defaults() {
    let s = load_text("log_level = debug\nproxy_listen = 127.0.0.1:9000\nlmdb_map_size = 64m\n").unwrap().settings;
    assert_eq!(s.log_level, LogLevel::Debug);
    assert_eq!(s.proxy_listen.len(), 1);
    assert_eq!(s.lmdb_map_size, 64 << 20);
}

#[test]
fn environment_overrides_the_file() {
    let s = load_text_env("log_level = debug\n", &[("KONG_LOG_LEVEL", "error")]).unwrap().settings;
    assert_eq!(s.log_level, LogLevel::Error);
}

#[test]
fn environment_values_are_not_comment_stripped() {
    let err = problems_env("", &[("KONG_LOG_LEVEL", "warn # loud")]);
    assert_eq!(
        err,
        vec![
            "environment variable KONG_LOG_LEVEL: log_level = \"warn # loud\": must be one of: debug, info, notice, warn, error, crit, alert, emerg"
        ]
    );
}

#[test]
fn a_bad_value_names_file_line_key_value_and_reason() {
    let err = problems("# comment\n\ncluster_mtls = mutual\n");
    assert_eq!(err, vec!["test.conf:3: cluster_mtls = \"mutual\": must be one of: shared, pki"]);
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let err = problems("log_level = loud\nlmdb_map_size = big\nrole = boss\ncluster_max_payload = 10\n");
    assert_eq!(err.len(), 4, "{err:#?}");
    assert!(err[0].starts_with("test.conf:3: role = \"boss\""), "{err:#?}");
    assert!(err.iter().any(|e| e.starts_with("test.conf:1: log_level = \"loud\"")));
    assert!(err.iter().any(|e| e.starts_with("test.conf:2: lmdb_map_size = \"big\": must be a size")));
    assert!(err.iter().any(|e| e == "test.conf:4: cluster_max_payload = \"10\": must be at least 4194304"));
}

#[test]
fn syntax_errors_are_problems_with_their_line() {
    let err = problems("role = traditional\nthis is not a setting\n");
    assert_eq!(err, vec!["test.conf:2: expected `key = value`: `this is not a setting`"]);
}

#[test]
fn quotes_are_kept_so_a_quoted_enum_is_wrong() {
    let err = problems("role = \"data_plane\"\n");
    assert!(err[0].contains("role = \"\"data_plane\"\": must be one of"), "{err:?}");
}

#[test]
fn a_trailing_comment_does_not_reach_the_value() {
    let s = load_text("role = traditional # the default\n").unwrap().settings;
    assert_eq!(s.role, Role::Traditional);
}

#[test]
fn unknown_keys_warn_and_suggest() {
    let loaded = load_text("cluster_contol_plane = cp:8005\nfoo_bar_baz = 1\npg_host = db\n").unwrap();
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        vec![
            "test.conf:1: unknown key cluster_contol_plane (did you mean cluster_control_plane?); ignored",
            "test.conf:2: unknown key foo_bar_baz; ignored",
            "test.conf:3: pg_host does not apply here: PostgreSQL is not supported yet (database = postgres is refused); ignored",
        ]
    );
}

#[test]
fn a_key_set_twice_warns_and_the_last_wins() {
    let loaded = load_text("log_level = debug\nlog_level = warn\n").unwrap();
    assert_eq!(loaded.settings.log_level, LogLevel::Warn);
    assert_eq!(loaded.warnings[0].to_string(), "test.conf:2: log_level is also set on line 1; this line wins");
}

#[test]
fn an_empty_value_unsets_and_required_keys_say_so() {
    let err = problems("role =\n");
    assert_eq!(err, vec!["test.conf:1: role: must not be empty"]);
}

#[test]
fn comma_lists_drop_empty_items() {
    let s = load_text("cluster_dp_labels = a:b, ,c:d,\n").unwrap_err();
    // Labels are DP-only; the list itself parsed into two labels.
    assert!(s.to_string().contains("only data planes have labels"), "{s}");
    let s = load_text("status_listen = 127.0.0.1:1, ,127.0.0.1:2,\n").unwrap().settings;
    assert_eq!(s.status_listen.len(), 2);
}

#[test]
fn listen_off_disables() {
    let s = load_text("status_listen = off\n").unwrap().settings;
    assert!(s.status_listen.is_empty());
}

#[test]
fn booleans_accept_on_off_true_false_only() {
    assert!(!load_text("proxy_server_ssl_verify = false\n").unwrap().settings.proxy_server_ssl_verify);
    assert!(load_text("proxy_server_ssl_verify = on\n").unwrap().settings.proxy_server_ssl_verify);
    let err = problems("proxy_server_ssl_verify = nope\n");
    assert_eq!(err, vec!["test.conf:1: proxy_server_ssl_verify = \"nope\": must be on, off, true or false"]);
}

#[test]
fn a_hash_in_a_proxy_password_is_written_percent_23() {
    let s = load_text("proxy_server = http://u:p%23w@proxy:3128 # corporate proxy\n").unwrap().settings;
    assert_eq!(s.proxy_server.unwrap().credentials.unwrap().password, "p#w");
    // `\#` reaches the value as a literal `#`, which a URL cannot hold: the error says what to write.
    let err = problems("proxy_server = http://u:p\\#w@proxy:3128\n");
    assert_eq!(
        err,
        vec![
            "test.conf:1: proxy_server = \"http://<credentials>@proxy:3128\": must not contain `#` (it would start a fragment): write it as %23"
        ]
    );
}

#[test]
fn proxy_credentials_never_appear_in_errors() {
    let err = problems("proxy_server = http://user:hunter2@proxy:3128/path\n");
    assert_eq!(err, vec!["test.conf:1: proxy_server = \"http://<credentials>@proxy:3128/path\": must not have a path"]);
}

#[test]
fn data_plane_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = cert_files(dir.path());
    let good = format!("role = data_plane\ndatabase = off\ncluster_cert = {cert}\ncluster_cert_key = {key}\n");
    let s = load_text(&good).unwrap().settings;
    assert_eq!(s.role, Role::DataPlane);

    let err = problems("role = data_plane\nproxy_listen = off\n");
    assert!(
        err.contains(
            &"test.conf:2: proxy_listen: a data plane needs proxy_listen: it must not be empty or off".to_string()
        ),
        "{err:#?}"
    );
    assert!(err.contains(&"built-in defaults: database = \"lmdb\": a data plane keeps its config in memory and its cache: set database = off".to_string()), "{err:#?}");
    assert!(
        err.iter()
            .any(|e| e
                .starts_with("test.conf:1: cluster_cert: role = data_plane needs cluster_cert and cluster_cert_key")),
        "{err:#?}"
    );
    assert!(err.iter().any(|e| e.starts_with("test.conf:1: cluster_cert_key: role = data_plane needs")), "{err:#?}");
}

#[test]
fn control_plane_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = cert_files(dir.path());
    let base = format!("role = control_plane\ncluster_cert = {cert}\ncluster_cert_key = {key}\n");
    load_text(&base).unwrap();

    let err = problems(&format!(
        "{base}database = off\ncluster_listen = off\ncluster_use_proxy = on\nproxy_server = http://p:1\ncluster_dp_labels = a:b\ncluster_mtls = pki\nadmin_listen = off\n"
    ));
    for needle in [
        "test.conf:4: database = \"off\": a control plane needs a store",
        "test.conf:5: cluster_listen: a control plane needs cluster_listen",
        "test.conf:6: cluster_use_proxy = \"on\": only data planes reach their control plane through a proxy",
        "test.conf:8: cluster_dp_labels = \"a:b\": only data planes have labels",
        "test.conf:9: cluster_ca_cert: cluster_mtls = pki on a control plane needs cluster_ca_cert",
        "test.conf:10: admin_listen: a control plane needs the Admin API",
    ] {
        assert!(err.iter().any(|e| e.starts_with(needle)), "missing {needle} in {err:#?}");
    }
}

#[test]
fn cluster_ocsp_needs_a_pki_control_plane() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = cert_files(dir.path());
    let cp = format!("role = control_plane\ncluster_cert = {cert}\ncluster_cert_key = {key}\n");
    for mode in ["on", "optional"] {
        let err = problems(&format!("{cp}cluster_ocsp = {mode}\n"));
        assert_eq!(
            err,
            vec![format!(
                "test.conf:4: cluster_ocsp = \"{mode}\": OCSP checks data plane certificates issued by a CA: it needs cluster_mtls = pki (shared mode pins one certificate); set cluster_ocsp = off or cluster_mtls = pki"
            )]
        );
    }
    let pki = load_text(&format!("{cp}cluster_mtls = pki\ncluster_ca_cert = {cert}\ncluster_ocsp = on\n")).unwrap();
    assert_eq!(pki.settings.cluster_ocsp, ClusterOcsp::On);
    assert!(pki.warnings.is_empty(), "{:?}", pki.warnings);
    load_text(&format!("{cp}cluster_ocsp = off\n")).unwrap();

    let dp = load_text(&format!(
        "role = data_plane\ndatabase = off\ncluster_cert = {cert}\ncluster_cert_key = {key}\ncluster_ocsp = optional\n"
    ))
    .unwrap();
    let warnings: Vec<String> = dp.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        vec![
            "test.conf:5: cluster_ocsp has no effect unless role = control_plane (the control plane checks data plane certificates)"
        ]
    );
}

#[test]
fn hybrid_certificate_files_must_exist_and_match() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = cert_files(dir.path());
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let (_, other_key) = cert_files(&other);
    let err = problems(&format!(
        "role = data_plane\ndatabase = off\ncluster_cert = {cert}\ncluster_cert_key = {other_key}\n"
    ));
    assert_eq!(err.len(), 1, "{err:#?}");
    assert!(err[0].contains("is not the private key of"), "{err:#?}");

    let err = problems("cluster_cert = /nonexistent/cluster.crt\n");
    assert!(
        err[0].starts_with(
            "test.conf:1: cluster_cert = \"/nonexistent/cluster.crt\": cannot read /nonexistent/cluster.crt"
        ),
        "{err:?}"
    );
}

#[test]
fn use_proxy_needs_a_proxy_server() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = cert_files(dir.path());
    let err = problems(&format!(
        "role = data_plane\ndatabase = off\ncluster_cert = {cert}\ncluster_cert_key = {key}\ncluster_use_proxy = on\n"
    ));
    assert_eq!(
        err,
        vec!["test.conf:5: cluster_use_proxy = \"on\": cluster_use_proxy is on but no proxy_server is configured"]
    );
}

#[test]
fn inline_keys_are_never_printed() {
    let pair = crate::certs::cluster_pair(1).unwrap();
    let inline = pair.key_pem.replace('\n', "\\n");
    let other = crate::certs::cluster_pair(1).unwrap().cert_pem.replace('\n', "\\n");
    let err = load_text_env(
        "role = data_plane\ndatabase = off\n",
        &[("KONG_CLUSTER_CERT_KEY", &inline), ("KONG_CLUSTER_CERT", &other)],
    )
    .unwrap_err()
    .to_string();
    assert!(!err.contains("PRIVATE KEY"), "{err}");
    assert!(err.contains("is not the private key of"), "{err}");
}

#[test]
fn declarative_config_must_exist() {
    let err = problems("database = off\ndeclarative_config = /nonexistent/kong.yml\n");
    assert_eq!(
        err,
        vec!["test.conf:2: declarative_config = \"/nonexistent/kong.yml\": no such file: /nonexistent/kong.yml"]
    );
}

#[test]
fn the_shipped_configs_are_valid() {
    let conf_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf");
    let file = ConfFile::read(&conf_dir.join("kong.conf")).unwrap();
    let loaded = load_from(Some(file), Environment::default()).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn configuration_doc_lists_every_key_with_its_default() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md")).unwrap();
    for key in keys::KEYS {
        assert!(doc.contains(&format!("`{}`", key.name)), "docs/configuration.md misses {}", key.name);
        if let Some(default) = key.default {
            assert!(doc.contains(&format!("`{default}`")), "docs/configuration.md misses the default of {}", key.name);
        }
    }
}

#[test]
fn admin_api_edge_settings() {
    let s = load_text("admin_allowed_hosts = Admin.Example.test, *.ops.test\nnginx_admin_client_max_body_size = 2m\n")
        .unwrap()
        .settings;
    assert_eq!(s.admin_allowed_hosts, vec!["admin.example.test".to_string(), "*.ops.test".into()]);
    assert_eq!(s.admin_max_body, 2 << 20);
    assert_eq!(load_from(None, Environment::default()).unwrap().settings.admin_max_body, 10 << 20, "Kong's 10m");
    let p = problems("admin_allowed_hosts = http://x.test\nnginx_admin_client_max_body_size = 0\n");
    assert!(
        p[0].starts_with("test.conf:1: admin_allowed_hosts = \"http://x.test\": \"http://x.test\" is not a host name"),
        "{p:?}"
    );
    assert!(p[1].starts_with("test.conf:2: nginx_admin_client_max_body_size"), "{p:?}");
}

#[test]
fn listener_certificates_come_in_matching_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = cert_files(dir.path());
    let other = crate::certs::cluster_pair(30).unwrap();
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, other.key_pem).unwrap();

    let ok =
        load_text(&format!("admin_listen = 127.0.0.1:8444 ssl\nadmin_ssl_cert = {cert}\nadmin_ssl_cert_key = {key}\n"))
            .unwrap();
    assert!(ok.settings.admin_ssl.is_some() && ok.warnings.is_empty(), "{:?}", ok.warnings);

    let p = problems(&format!("status_ssl_cert = {cert}\n"));
    assert_eq!(p, vec!["test.conf:1: status_ssl_cert_key: status_ssl_cert is set: set status_ssl_cert_key too"]);
    let p = problems(&format!("admin_ssl_cert = {cert}\nadmin_ssl_cert_key = {}\n", other_key.display()));
    assert!(p[0].contains("admin_ssl_cert_key") && p[0].contains("is not the private key of"), "{p:?}");

    // A certificate no listener serves is worth a warning, not a refusal.
    let loaded =
        load_text(&format!("admin_listen = 127.0.0.1:8001\nadmin_ssl_cert = {cert}\nadmin_ssl_cert_key = {key}\n"))
            .unwrap();
    assert_eq!(
        loaded.warnings[0].to_string(),
        "test.conf:2: admin_ssl_cert has no effect: no address in admin_listen has the `ssl` flag"
    );
}

#[test]
fn listen_flags_are_checked_per_listener() {
    let p = problems("proxy_listen = 0.0.0.0:8000 proxy_protocol\ncluster_listen = 0.0.0.0:8005 ssl\n");
    assert!(p[0].starts_with("test.conf:1: proxy_listen = \"0.0.0.0:8000 proxy_protocol\": `0.0.0.0:8000 proxy_protocol`: the `proxy_protocol` flag"), "{p:?}");
    assert!(p[1].starts_with("test.conf:2: cluster_listen"), "{p:?}");
    assert!(p[1].contains("remove the `ssl` flag"), "{p:?}");
}

/// Random kong.conf text never panics the loader: every problem is a value with its line.
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// A line: a known key (or a near miss) with a value made of the characters values use.
    fn line() -> impl Strategy<Value = String> {
        let keys: Vec<&'static str> = keys::KEYS.iter().map(|k| k.name).collect();
        let key = prop_oneof![prop::sample::select(keys).prop_map(str::to_string), "[a-z_]{1,12}"];
        let value = "[a-zA-Z0-9 ,:.=\\[\\]#;*_\\\\-]{0,40}";
        prop_oneof![(key, value).prop_map(|(k, v)| format!("{k} = {v}")), "[ -~]{0,40}", Just(String::new()),]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn conf_files_never_panic(lines in prop::collection::vec(line(), 0..12)) {
            let text = lines.join("\n");
            if let Err(ConfError::Invalid { problems, .. }) = load_text(&text) {
                prop_assert!(!problems.is_empty());
            }
        }

        #[test]
        fn listen_values_never_panic(value in "[a-z0-9 ,:.=\\[\\]*_-]{0,60}") {
            let _ = listen::parse_listen_list(&value);
            let _ = load_text_env("", &[("KONG_ADMIN_LISTEN", &value), ("KONG_PROXY_LISTEN", &value)]);
        }
    }
}

#[test]
fn nginx_worker_processes_is_auto_or_a_number_of_workers() {
    assert_eq!(load_text("").unwrap().settings.worker_processes, None, "Kong's default is auto");
    assert_eq!(load_text("nginx_worker_processes = auto\n").unwrap().settings.worker_processes, None);
    assert_eq!(load_text("nginx_worker_processes = 3\n").unwrap().settings.worker_processes, Some(3));
    for bad in ["0", "513", "-1", "two"] {
        assert_eq!(
            problems(&format!("nginx_worker_processes = {bad}\n")),
            vec![format!(
                "test.conf:1: nginx_worker_processes = \"{bad}\": must be `auto` or a number of workers from 1 to 512"
            )]
        );
    }
}

#[test]
fn access_logs_are_kongs_files_under_the_prefix_with_kongs_formats() {
    use crate::logs::{Destination, Format};
    let settings = load_text("prefix = /srv/kong\n").unwrap().settings;
    let file = |p: &str| Destination::File(PathBuf::from(p));
    assert_eq!(
        settings.proxy_access_log,
        Some(AccessLogSpec { destination: file("/srv/kong/logs/access.log"), format: Format::Kong })
    );
    assert_eq!(
        settings.admin_access_log,
        Some(AccessLogSpec { destination: file("/srv/kong/logs/admin_access.log"), format: Format::Combined })
    );
    assert_eq!(settings.status_access_log, None, "Kong's default is off");

    let settings = load_text(
        "proxy_access_log = /dev/stdout\nadmin_access_log = off\nstatus_access_log = /var/log/s.log kong_log_format\n",
    )
    .unwrap()
    .settings;
    assert_eq!(
        settings.proxy_access_log,
        Some(AccessLogSpec { destination: Destination::Stdout, format: Format::Kong })
    );
    assert_eq!(settings.admin_access_log, None);
    assert_eq!(
        settings.status_access_log,
        Some(AccessLogSpec { destination: file("/var/log/s.log"), format: Format::Kong })
    );

    assert_eq!(
        problems("proxy_access_log = logs/a.log main extra\n"),
        vec![
            "test.conf:1: proxy_access_log = \"logs/a.log main extra\": must be a path, optionally followed by a format name"
        ]
    );
    assert_eq!(
        problems("admin_access_log = logs/a.log main\n"),
        vec![
            "test.conf:1: admin_access_log = \"logs/a.log main\": log format `main` is not one the gateway writes: use `combined` or `kong_log_format`, or name none"
        ]
    );
}

#[test]
fn error_logs_are_kongs_files_under_the_prefix() {
    use crate::logs::Destination;
    let settings = load_text("prefix = /srv/kong\n").unwrap().settings;
    assert_eq!(settings.proxy_error_log, Destination::File(PathBuf::from("/srv/kong/logs/error.log")));
    assert_eq!(settings.admin_error_log, Destination::File(PathBuf::from("/srv/kong/logs/error.log")));
    assert_eq!(settings.status_error_log, Destination::File(PathBuf::from("/srv/kong/logs/status_error.log")));
    let settings = load_text("proxy_error_log = /dev/stderr\nadmin_error_log = /var/log/admin.log\n").unwrap().settings;
    assert_eq!(settings.proxy_error_log, Destination::Stderr);
    assert_eq!(settings.admin_error_log, Destination::File(PathBuf::from("/var/log/admin.log")));
    assert_eq!(
        problems("status_error_log = off\n"),
        vec![
            "test.conf:1: status_error_log = \"off\": an error log cannot be turned off: name a file, /dev/stderr or /dev/null"
        ]
    );
}

/// Kong 3.10's own `kong.conf.default` (tests/data), every `#key = value` line uncommented.
fn kongs_default_file(database: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/kong.conf.default");
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest)
                if rest.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                }) =>
            {
                if rest.starts_with("database = ") {
                    format!("database = {database}")
                } else {
                    rest.to_string()
                }
            }
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The keys of Kong 3.10's `kong.conf.default`, in its order.
fn kongs_keys() -> Vec<String> {
    let file = ConfFile::parse(Path::new("kong.conf"), &kongs_default_file("off"));
    file.entries.iter().map(|e| e.key.clone()).collect()
}

#[test]
fn kongs_whole_default_file_loads_with_every_key_recognised() {
    let keys = kongs_keys();
    assert_eq!(keys.len(), 178, "Kong 3.10's kong.conf.default has 178 keys");
    let loaded = load_text(&kongs_default_file("off")).unwrap_or_else(|e| panic!("{e}"));
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert!(warnings.iter().all(|w| !w.contains("unknown key")), "{warnings:#?}");
    // Each key is honoured or warned about exactly once, with its reason.
    for key in &keys {
        let about: Vec<&String> = warnings
            .iter()
            .filter(|w| {
                let message = w.split_once(": ").map_or("", |(_, m)| m);
                message.starts_with(&format!("{key} ")) || message.starts_with(&format!("{key}: "))
            })
            .collect();
        match (keys::find(key), kong_keys::find(key)) {
            (Some(_), None) => assert!(about.is_empty(), "{key} is honoured but warned: {about:?}"),
            (None, Some(kong)) => {
                assert_eq!(about.len(), 1, "{key}: {about:?}");
                assert!(about[0].ends_with(&format!("{}; ignored", kong.reason)), "{about:?}");
            }
            other => panic!("{key} is in neither table or in both: {}", other.0.is_some()),
        }
    }
    assert_eq!(loaded.settings.database, Database::Off);
    // Kong leaves cluster_control_plane empty on a traditional node.
    assert_eq!(loaded.settings.role, Role::Traditional);
}

#[test]
fn a_control_plane_address_is_needed_only_by_a_data_plane() {
    assert!(load_text("cluster_control_plane =\n").is_ok());
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = cert_files(dir.path());
    let err = problems(&format!(
        "role = data_plane\ndatabase = off\ncluster_cert = {cert}\ncluster_cert_key = {key}\ncluster_control_plane =\n"
    ));
    assert_eq!(err, vec!["test.conf:5: cluster_control_plane: must not be empty"]);
}

#[test]
fn kong_keys_that_would_fail_open_accept_only_kongs_default() {
    // Kong's defaults, spelt loosely, are accepted with a warning.
    let loaded = load_text("lua_ssl_protocols = TLSv1.2,TLSv1.3\nnginx_user = kong kong\n").unwrap();
    assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
    let err = problems("lua_ssl_protocols = TLSv1.3\n");
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(
        err[0].starts_with(
            "test.conf:1: lua_ssl_protocols = \"TLSv1.3\": not honoured yet: outbound TLS is always TLS 1.2 or 1.3"
        ),
        "{err:?}"
    );
    assert!(err[0].ends_with("only Kong's default (`TLSv1.2 TLSv1.3`) is accepted"), "{err:?}");
    // The same from the environment, which is otherwise read only for honoured keys.
    let err = problems_env("", &[("KONG_LUA_SSL_PROTOCOLS", "TLSv1.3")]);
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(
        err[0].starts_with(
            "environment variable KONG_LUA_SSL_PROTOCOLS: lua_ssl_protocols = \"TLSv1.3\": not honoured yet"
        ),
        "{err:?}"
    );
    let loaded = load_text_env("", &[("KONG_LUA_PACKAGE_PATH", "/x/?.lua")]).unwrap();
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        vec![
            "environment variable KONG_LUA_PACKAGE_PATH: lua_package_path does not apply here: no Lua in this gateway (plugins are WebAssembly components); ignored"
        ]
    );
}

#[test]
fn node_id_router_flavor_and_inline_declarative_config() {
    let s =
        load_text("node_id = 6ba7b810-9dad-11d1-80b4-00c04fd430c8\nrouter_flavor = traditional\n").unwrap().settings;
    assert_eq!(s.node_id.unwrap().to_string(), "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
    assert!(load_text("router_flavor = traditional_compatible\n").unwrap().settings.node_id.is_none());
    let mut err = problems("node_id = node-1\nrouter_flavor = expressions\n");
    err.sort();
    assert_eq!(err.len(), 2, "{err:?}");
    assert!(err[0].starts_with("test.conf:1: node_id = \"node-1\": must be a UUID"), "{err:?}");
    assert!(
        err[1].starts_with("test.conf:2: router_flavor = \"expressions\": the expressions router is not supported"),
        "{err:?}"
    );
    let secret = "_format_version: \"3.0\"\nconsumers: [{username: a, keyauth_credentials: [{key: s3cret}]}]";
    let s = load_text_env("", &[("KONG_DECLARATIVE_CONFIG_STRING", secret)]).unwrap().settings;
    let inline = s.declarative_config_string.as_ref().unwrap();
    assert_eq!(inline.0, secret);
    assert!(!inline.is_json());
    assert!(!format!("{s:?}").contains("s3cret"), "Settings' Debug shows the inline configuration");
    assert_eq!(printable("declarative_config_string", secret), "<inline configuration>");
}

/// The table of every Kong 3.10 key in docs/configuration.md, made from the two key tables.
fn kong_key_table() -> String {
    let mut out =
        String::from("| key | Kong's default | here | why, or what the gateway does instead |\n|---|---|---|---|\n");
    let file = ConfFile::parse(Path::new("kong.conf"), &kongs_default_file("postgres"));
    for entry in &file.entries {
        let default =
            if entry.value.is_empty() { String::new() } else { format!("`{}`", entry.value.replace('|', "\\|")) };
        let (here, why) = match (keys::find(&entry.key), kong_keys::find(&entry.key)) {
            (Some(_), _) => ("honoured", "see [Keys](#keys)".to_string()),
            (None, Some(k)) => match k.handling {
                kong_keys::Handling::NotApplicable => ("not applicable", k.reason.to_string()),
                kong_keys::Handling::Later => ("later", k.reason.to_string()),
                kong_keys::Handling::LaterDefaultOnly => ("later; only Kong's default accepted", k.reason.to_string()),
            },
            (None, None) => ("unknown", String::new()),
        };
        out.push_str(&format!("| `{}` | {default} | {here} | {why} |\n", entry.key));
    }
    out
}

#[test]
fn configuration_doc_has_the_table_of_every_kong_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (begin, end) =
        ("<!-- kong-keys: made by conf::tests (GATEWAY_UPDATE_DOCS=1 rewrites it) -->\n", "<!-- /kong-keys -->");
    let start = doc.find(begin).expect("docs/configuration.md has the kong-keys markers") + begin.len();
    let stop = doc[start..].find(end).expect("the closing marker") + start;
    let table = kong_key_table();
    if std::env::var_os("GATEWAY_UPDATE_DOCS").is_some() {
        std::fs::write(&path, format!("{}{table}{}", &doc[..start], &doc[stop..])).unwrap();
    } else {
        assert!(
            doc[start..stop] == table,
            "docs/configuration.md's table of Kong keys is stale: run with GATEWAY_UPDATE_DOCS=1"
        );
    }
}

#[test]
fn vault_references_are_resolved_from_the_environment_and_never_printed() {
    let env = [
        ("LOG_LEVEL_SECRET", "debug"),
        ("CORP_PROXY", "http://alice:s3cret@proxy.corp:3128/x"),
        ("APP_LABELS", "env:prod"),
    ];
    let loaded = load_text_env("log_level = {vault://env/log-level-secret}\n", &env).unwrap();
    assert_eq!(loaded.settings.log_level, LogLevel::Debug);
    // With a prefix, in an item of a list, and from a KONG_ variable.
    let s = load_text_env(
        "vault_env_prefix = app_\n",
        &[("APP_ADMIN_HOST", "Admin.Example.test"), ("KONG_ADMIN_ALLOWED_HOSTS", "{vault://env/admin-host}, b.test")],
    )
    .unwrap()
    .settings;
    assert_eq!(s.admin_allowed_hosts, vec!["admin.example.test", "b.test"]);
    // A bad value shows the reference, not what it stood for.
    let err = problems_env("proxy_server = {vault://env/corp-proxy}\n", &env);
    assert_eq!(err, vec!["test.conf:1: proxy_server = \"{vault://env/corp-proxy}\": must not have a path"]);
    let err = problems("cluster_cert_key = {vault://env/nowhere}\n");
    assert_eq!(
        err,
        vec!["test.conf:1: cluster_cert_key = \"{vault://env/nowhere}\": the environment variable NOWHERE is not set"]
    );
    let err = problems("vaults = off\nlog_level = {vault://env/x}\n");
    assert_eq!(err, vec!["test.conf:2: log_level = \"{vault://env/x}\": vaults = off: references are not resolved"]);
    let err = problems("log_level = {vault://hcv/x}\n");
    assert_eq!(
        err,
        vec!["test.conf:1: log_level = \"{vault://hcv/x}\": only the env vault is available here, not `hcv`"]
    );
}
