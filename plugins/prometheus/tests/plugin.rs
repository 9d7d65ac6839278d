//! prometheus through the gateway's plugin host (`gateway plugin run`): Kong's fields and defaults,
//! and a request it leaves alone.

use gateway_plugin_test::{Plugin, Request};
use serde_json::json;

#[test]
fn kongs_fields_default_to_false_and_others_are_refused() {
    let plugin = Plugin::built().unwrap();
    let outcome = plugin.run(json!({"per_consumer": true}), Request::new("GET", "/")).unwrap();
    assert_eq!(outcome.error, None);
    let config = outcome.config.unwrap();
    assert_eq!(config["per_consumer"], true);
    for field in [
        "status_code_metrics",
        "ai_metrics",
        "latency_metrics",
        "bandwidth_metrics",
        "upstream_health_metrics",
        "wasm_metrics",
    ] {
        assert_eq!(config[field], false, "{field}");
    }
    assert!(outcome.exit.is_none());
    let refused = plugin.run(json!({"per_consumer": "yes", "scrape_path": "/x"}), Request::new("GET", "/")).unwrap();
    let paths: Vec<&str> = refused.config_errors.iter().map(|e| e.path.as_str()).collect();
    assert!(!paths.is_empty(), "{refused:?}");
}
