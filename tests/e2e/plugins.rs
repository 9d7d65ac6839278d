//! The plugin platform with the real binary: `gateway plugin check` on the template plugin (built
//! from plugins/template with the pdk, against wit/plugin.wit) and on a component that is not a
//! plugin.

use gateway_tests::{DbLess, EchoServer, http_json, run, stderr, stdout, wasm_fixture};
use serde_json::json;

use crate::wasm_plugins::{created, get, traditional_with, upstream_header};

#[test]
fn plugin_check_reads_the_template_plugins_metadata_and_checks_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let template = wasm_fixture("template");
    let template = template.to_str().unwrap();
    let out = run(dir.path(), &["plugin", "check", template], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for line in
        ["name: template", "version: 0.1.0", "priority: 1000", "phases: access", "protocols: grpc, grpcs, http, https"]
    {
        assert!(text.lines().any(|l| l == line), "{line:?} missing in:\n{text}");
    }

    // Its check-config fills in defaults, and names the field at fault (relative to `config`).
    let out = run(dir.path(), &["plugin", "check", template, "--config", r#"{"header_value":"v1"}"#], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(r#"config: {"header_name":"X-Template","header_value":"v1"}"#), "{}", stdout(&out));
    let out = run(dir.path(), &["plugin", "check", template, "--config", r#"{"header_name":"not a name"}"#], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("config.header_name: bad header name 'not a name'"), "{}", stderr(&out));
    let out = run(dir.path(), &["plugin", "check", template, "--config", "{"], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("config: invalid JSON"), "{}", stderr(&out));
}

/// A plugin built for an earlier contract of the same minor version (`gateway:api@0.3.0`, before
/// 0.3.1 added `set-headers` and `set-response-headers`) still links and runs: the kept file is the
/// template plugin as that contract built it.
#[test]
fn a_plugin_built_for_contract_0_3_0_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let old = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/template-api-0.3.0.wasm");
    let bytes = std::fs::read(&old).unwrap();
    let imports = String::from_utf8_lossy(&bytes);
    assert!(imports.contains("gateway:api/http@0.3.0") && !imports.contains("@0.3.1"), "the fixture is a 0.3.0 build");
    let input = r#"{"config": {"header_value": "from 0.3.0"}, "request": {"path": "/"}}"#;
    let out = run(dir.path(), &["plugin", "run", old.to_str().unwrap(), "--input", input], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(answer["error"], serde_json::Value::Null, "{answer}");
    assert_eq!(answer["request"]["headers"], json!([["x-template", "from 0.3.0"]]), "{answer}");
}

#[test]
fn plugin_check_says_when_a_component_is_not_a_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let router = wasm_fixture("trap-router");
    let out = run(dir.path(), &["plugin", "check", router.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("it is not a plugin (it does not export gateway:api/plugin)"), "{}", stderr(&out));
    std::fs::write(dir.path().join("junk.wasm"), b"not wasm").unwrap();
    let out = run(dir.path(), &["plugin", "check", "junk.wasm"], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("compiling component junk.wasm"), "{}", stderr(&out));
}

/// `gateway plugin new` makes a project that builds with plain cargo for wasm32-wasip2 (only the
/// toolchain and crates.io: the kit and the contract come from the binary) and is a plugin
/// `gateway plugin check` accepts under its new name.
#[test]
fn plugin_new_scaffolds_a_plugin_that_builds_and_checks() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["plugin", "new", "my-header"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let project = dir.path().join("my-header");
    for file in ["Cargo.toml", "src/lib.rs", "pdk/src/lib.rs", "pdk/wit/plugin.wit", ".cargo/config.toml"] {
        assert!(project.join(file).is_file(), "{file} missing");
    }
    let again = run(dir.path(), &["plugin", "new", "my-header"], &[]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("already exists"), "{}", stderr(&again));
    let bad = run(dir.path(), &["plugin", "new", "My_Plugin"], &[]);
    assert!(stderr(&bad).contains("cannot be a plugin name"), "{}", stderr(&bad));

    // The components' target dir already holds wit-bindgen and serde built for wasm32-wasip2.
    let target = wasm_fixture("template").ancestors().nth(3).unwrap().to_path_buf();
    // The project lives outside this repository: build it with the pinned toolchain, which has the
    // wasm32-wasip2 target (.ci/setup adds it).
    let pinned = std::fs::read_to_string(gateway_tests::repo_root().join("rust-toolchain.toml")).unwrap();
    let channel = pinned.lines().find_map(|l| l.strip_prefix("channel = ")).unwrap().trim_matches('"').to_string();
    let build = cargo(&project, &target, &channel, &["build", "--release"]);
    assert!(build.status.success(), "{}", String::from_utf8_lossy(&build.stderr));
    let wasm = target.join("wasm32-wasip2/release/my_header.wasm");
    let out = run(dir.path(), &["plugin", "check", wasm.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).lines().any(|l| l == "name: my-header"), "{}", stdout(&out));

    // Its own tests (tests/plugin.rs, through the test kit and `gateway plugin run`) pass on the host.
    let test = cargo(&project, &target, &channel, &["test", "--target", "host-tuple"]);
    assert!(
        test.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
    assert!(
        String::from_utf8_lossy(&test.stdout).contains("test result: ok. 2 passed"),
        "{}",
        String::from_utf8_lossy(&test.stdout)
    );

    // Loaded through wasm_plugins_path + plugins and configured over the Admin API on one route,
    // it runs there and nowhere else.
    let echo = EchoServer::start();
    let node_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(node_dir.path().join("plugins")).unwrap();
    std::fs::copy(&wasm, node_dir.path().join("plugins/my-header.wasm")).unwrap();
    let node = traditional_with(node_dir.path(), &["my-header"]);
    let url = format!("http://{}", echo.addr);
    created(http_json(node.admin, "POST", "/services", &json!({"name": "s", "url": url})));
    created(http_json(node.admin, "POST", "/services/s/routes", &json!({"name": "a", "paths": ["/a"]})));
    created(http_json(node.admin, "POST", "/services/s/routes", &json!({"name": "b", "paths": ["/b"]})));
    let body = json!({"name": "my-header", "config": {"header_name": "X-Mine", "header_value": "scaffolded"}});
    created(http_json(node.admin, "POST", "/routes/a/plugins", &body));
    assert_eq!(upstream_header(&get(node.proxy, "/a", &[]), "x-mine").as_deref(), Some("scaffolded"));
    assert_eq!(upstream_header(&get(node.proxy, "/b", &[]), "x-mine"), None);

    // The same plugin in a DB-less node's declarative file.
    let yaml = format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: {url}\n  routes:\n  - name: a\n    paths: [/a]\n    plugins:\n    - name: my-header\n  - name: b\n    paths: [/b]\n"
    );
    let plugins = node_dir.path().join("plugins").display().to_string();
    let dbless =
        DbLess::start(&yaml, &[format!("wasm_plugins_path = {plugins}"), "plugins = bundled, my-header".into()]);
    assert_eq!(upstream_header(&get(dbless.proxy, "/a", &[]), "x-template").as_deref(), Some("template"));
    assert_eq!(upstream_header(&get(dbless.proxy, "/b", &[]), "x-template"), None);
}

/// cargo in `project` with the toolchain `channel`, the target dir `target`, and the gateway binary
/// under test for the test kit.
fn cargo(project: &std::path::Path, target: &std::path::Path, channel: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(project)
        .env("CARGO_TARGET_DIR", target)
        .env("RUSTUP_TOOLCHAIN", channel)
        .env("GATEWAY_BIN", gateway_tests::gateway_bin())
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap()
}

/// The unit tests inside the guest crates (the kit's configuration reading, correlation-id's ids,
/// request-termination's schema) run on the host, as a plugin author runs theirs.
#[test]
fn the_guest_crates_unit_tests_pass() {
    let root = gateway_tests::repo_root();
    let target = wasm_fixture("template").ancestors().nth(3).unwrap().to_path_buf();
    let pinned = std::fs::read_to_string(root.join("rust-toolchain.toml")).unwrap();
    let channel = pinned.lines().find_map(|l| l.strip_prefix("channel = ")).unwrap().trim_matches('"').to_string();
    let args = [
        "test",
        "--locked",
        "--target",
        "host-tuple",
        "-p",
        "gateway-pdk",
        "-p",
        "correlation-id",
        "-p",
        "request-termination",
        "-p",
        "key-auth",
        "-p",
        "basic-auth",
        "-p",
        "acl",
        "-p",
        "ip-restriction",
        "-p",
        "rate-limiting",
        "-p",
        "request-size-limiting",
        "-p",
        "cors",
        "-p",
        "jwt",
        "-p",
        "request-transformer",
        "-p",
        "response-transformer",
        "-p",
        "prometheus",
        "-p",
        "analytics",
    ];
    let out = cargo(&root.join("plugins"), &target, &channel, &args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.matches("test result: ok.").count() >= 15, "{text}");
}
