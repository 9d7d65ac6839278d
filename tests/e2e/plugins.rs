//! The plugin platform with the real binary: `gateway plugin check` on the template plugin (built
//! from plugins/template with the pdk, against wit/plugin.wit) and on a component that is not a
//! plugin.

use gateway_tests::{run, stderr, stdout, wasm_fixture};

#[test]
fn plugin_check_reads_the_template_plugins_metadata_and_checks_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let template = wasm_fixture("template");
    let template = template.to_str().unwrap();
    let out = run(dir.path(), &["plugin", "check", template], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for line in ["name: template", "version: 0.1.0", "priority: 1000", "phases: access", "protocols: http, https"] {
        assert!(text.lines().any(|l| l == line), "{line:?} missing in:\n{text}");
    }

    // Its check-config fills in defaults, and names the field at fault.
    let out = run(dir.path(), &["plugin", "check", template, "--config", r#"{"header_value":"v1"}"#], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(r#"config: {"header_name":"X-Template","header_value":"v1"}"#), "{}", stdout(&out));
    let out = run(dir.path(), &["plugin", "check", template, "--config", r#"{"header_name":"not a name"}"#], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("config.header_name: must be a header name"), "{}", stderr(&out));
    let out = run(dir.path(), &["plugin", "check", template, "--config", "{"], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("config: "), "{}", stderr(&out));
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
