//! acl through the gateway's plugin host (`gateway plugin run`): with a consumer an earlier
//! authentication plugin identified (`Plugin::run_as`), without one, and its configuration checks.
//! Behind key-auth on the real binary: the e2e test `bundled_plugins`.

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
        assert_eq!(exit.error_json(), json!({"message": "Unauthorized"}));
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

fn consumers() -> Value {
    json!([
        {"username": "alice", "acls": [{"group": "users"}, {"group": "admins"}]},
        {"username": "dave", "acls": [{"group": "banned"}, {"group": "users"}]},
        {"username": "carol"},
    ])
}

#[test]
fn allow_and_deny_go_by_the_consumers_groups_and_the_upstream_sees_them() {
    let plugin = Plugin::built().unwrap();
    let run = |config: Value, who: &str| plugin.run_as(config, Request::get("/"), consumers(), who, None).unwrap();

    let admins = run(json!({"allow": ["admins"]}), "alice");
    assert_eq!(admins.error, None);
    let groups = admins.upstream_header("x-consumer-groups").expect("groups upstream");
    let mut groups: Vec<&str> = groups.split(", ").collect();
    groups.sort_unstable();
    assert_eq!(groups, ["admins", "users"]);

    for (config, who) in [(json!({"allow": ["admins"]}), "dave"), (json!({"deny": ["banned"]}), "dave")] {
        let refused = run(config, who);
        let exit = refused.exit.expect("refused");
        assert_eq!(exit.status, Some(403));
        assert_eq!(exit.error_json(), json!({"message": "You cannot consume this service"}));
    }
    assert!(run(json!({"deny": ["banned"]}), "alice").request.is_some());
    // No groups at all: not in any allow list (Kong: 403 when a credential identified the
    // consumer, 401 when none did); not in a deny list either.
    let with_credential =
        plugin.run_as(json!({"allow": ["users"]}), Request::get("/"), consumers(), "carol", Some("cred")).unwrap();
    assert_eq!(with_credential.exit.and_then(|e| e.status), Some(403));
    assert_eq!(run(json!({"allow": ["users"]}), "carol").exit.and_then(|e| e.status), Some(401));
    assert!(run(json!({"deny": ["banned"]}), "carol").request.is_some());

    let hidden = run(json!({"allow": ["users"], "hide_groups_header": true}), "alice");
    assert_eq!(hidden.upstream_header("x-consumer-groups"), None);
}

#[test]
fn a_clients_own_groups_header_never_reaches_the_upstream() {
    let plugin = Plugin::built().unwrap();
    let forged = Request::get("/").header("X-Consumer-Groups", "admins");
    let outcome = plugin
        .run_as(json!({"deny": ["banned"], "hide_groups_header": true}), forged, consumers(), "carol", None)
        .unwrap();
    assert!(outcome.request.is_some(), "{outcome:?}");
    assert_eq!(outcome.upstream_header("x-consumer-groups"), None);
}
