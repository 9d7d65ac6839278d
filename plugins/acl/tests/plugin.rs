//! acl alone, through the gateway's plugin host (`gateway plugin run`): what it does when no
//! authentication plugin ran, and its configuration checks. With consumers identified by key-auth
//! and basic-auth, see `gateway.rs`.

use gateway_plugin_test::{Plugin, Request};
use serde_json::{Value, json};

#[test]
fn without_an_authenticated_consumer_it_is_kongs_401() {
    let plugin = Plugin::built().unwrap();
    for config in [json!({"allow": ["admins"]}), json!({"deny": ["banned"]})] {
        let outcome = plugin.run(config, Request::get("/").header("X-Consumer-Groups", "admins")).unwrap();
        assert_eq!(outcome.error, None);
        let exit = outcome.exit.expect("the plugin answered");
        assert_eq!(exit.status, Some(401));
        assert_eq!(exit.header("content-type"), Some("application/json; charset=utf-8"));
        assert_eq!(exit.body.as_deref(), Some(r#"{"message":"Unauthorized"}"#));
        assert!(outcome.request.is_none());
    }
}

#[test]
fn check_config_refuses_what_kong_refuses_and_what_cannot_be_honoured() {
    let plugin = Plugin::built().unwrap();
    let errors = |config: Value| {
        plugin.check(config).unwrap().unwrap_err().into_iter().map(|e| (e.path, e.message)).collect::<Vec<_>>()
    };
    let one = |path: &str, message: &str| vec![(path.to_string(), message.to_string())];
    assert_eq!(
        errors(json!({})),
        one("", "at least one of these fields must be non-empty: 'config.allow', 'config.deny'")
    );
    assert_eq!(
        errors(json!({"allow": ["a"], "deny": ["b"]})),
        one("", "exactly one of these fields must be non-empty: 'config.allow', 'config.deny'")
    );
    assert_eq!(errors(json!({"deny": [""]})), one("deny[0]", "length must be at least 1"));
    assert_eq!(errors(json!({"allow": [1]})), one("allow[0]", "expected a string"));
    assert_eq!(errors(json!({"allow": ["a"], "blacklist": ["b"]})), one("blacklist", "unknown field"));
    let refused = errors(json!({"allow": ["a"], "always_use_authenticated_groups": true}));
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, "always_use_authenticated_groups");
    // Kong's export of a configuration, every field written out, reads back.
    let exported =
        json!({"allow": ["a"], "deny": null, "hide_groups_header": false, "always_use_authenticated_groups": false});
    assert_eq!(plugin.check(exported.clone()).unwrap().unwrap(), exported);
}
