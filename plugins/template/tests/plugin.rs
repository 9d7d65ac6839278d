//! The plugin on real requests, through the gateway's plugin host (`gateway plugin run`).
//! Run: `cargo build --release && cargo test --target host-tuple`.

use gateway_plugin_test::{Plugin, Request};
use serde_json::json;

#[test]
fn it_adds_the_configured_header_upstream() {
    let plugin = Plugin::built().unwrap();
    let outcome = plugin.run(json!({"header_value": "hello"}), Request::get("/")).unwrap();
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.upstream_header("x-template"), Some("hello"));
}

#[test]
fn a_bad_header_name_is_refused() {
    let plugin = Plugin::built().unwrap();
    let errors = plugin.check(json!({"header_name": "not a name"})).unwrap().unwrap_err();
    assert_eq!(errors[0].path, "header_name");
}
