//! ip-restriction on real requests, through the gateway's plugin host (`gateway plugin run`).

use gateway_plugin_test::{Outcome, Plugin, Request};
use serde_json::{Value, json};

fn run(config: Value, ip: &str) -> Outcome {
    let outcome = Plugin::built().unwrap().run(config, Request::get("/").client_ip(ip)).unwrap();
    assert_eq!(outcome.error, None);
    outcome
}

fn passed(outcome: &Outcome) -> bool {
    outcome.exit.is_none() && outcome.request.is_some()
}

fn refused_body(outcome: &Outcome) -> Value {
    outcome.exit.as_ref().expect("the plugin answered").error_json()
}

#[test]
fn an_ipv4_client_on_the_deny_list_gets_kongs_403() {
    let config = json!({"deny": ["10.0.0.0/8", "192.168.1.1"]});
    for ip in ["10.1.2.3", "192.168.1.1"] {
        let outcome = run(config.clone(), ip);
        assert_eq!(outcome.status(), Some(403), "{ip}");
        assert_eq!(refused_body(&outcome), json!({"message": format!("IP address not allowed: {ip}")}));
    }
    assert!(passed(&run(config.clone(), "11.0.0.1")));
    assert!(passed(&run(config, "192.168.1.2")));
}

#[test]
fn an_ipv4_client_off_the_allow_list_is_refused() {
    let config = json!({"allow": ["127.0.0.0/24"]});
    assert!(passed(&run(config.clone(), "127.0.0.9")));
    assert_eq!(run(config, "127.0.1.1").status(), Some(403));
}

#[test]
fn ipv6_allow_and_deny() {
    let allow = json!({"allow": ["2001:db8::/32", "::1"]});
    assert!(passed(&run(allow.clone(), "2001:db8:1::5")));
    assert!(passed(&run(allow.clone(), "::1")));
    let outcome = run(allow, "2001:db9::1");
    assert_eq!(outcome.status(), Some(403));
    assert_eq!(refused_body(&outcome), json!({"message": "IP address not allowed: 2001:db9::1"}));
    let deny = json!({"deny": ["fe80::/10"]});
    assert_eq!(run(deny.clone(), "fe80::1").status(), Some(403));
    assert!(passed(&run(deny, "2001:db8::1")));
}

#[test]
fn an_ipv4_mapped_ipv6_client_is_its_ipv4_address() {
    assert_eq!(run(json!({"deny": ["10.0.0.1"]}), "::ffff:10.0.0.1").status(), Some(403));
    assert!(passed(&run(json!({"allow": ["::ffff:10.0.0.0/104"]}), "10.0.0.1")));
}

#[test]
fn deny_wins_over_allow() {
    let config = json!({"allow": ["10.0.0.0/8"], "deny": ["10.0.0.5"]});
    assert_eq!(run(config.clone(), "10.0.0.5").status(), Some(403));
    assert!(passed(&run(config, "10.0.0.6")));
}

#[test]
fn status_and_message_are_configurable() {
    let outcome = run(json!({"deny": ["0.0.0.0/0"], "status": 401, "message": "Forbidden here"}), "1.2.3.4");
    assert_eq!(outcome.status(), Some(401));
    assert_eq!(refused_body(&outcome), json!({"message": "Forbidden here"}));
}

#[test]
fn a_client_without_an_ip_address_is_refused() {
    let outcome = run(json!({"allow": ["0.0.0.0/0", "::/0"]}), "unix:");
    assert_eq!(outcome.status(), Some(403));
    assert_eq!(
        refused_body(&outcome),
        json!({"message": "Cannot identify the client IP address, unix domain sockets are not supported."})
    );
}

#[test]
fn bad_configurations_are_refused_at_write_time() {
    let plugin = Plugin::built().unwrap();
    let refused = |config: Value| -> Vec<(String, String)> {
        let errors = plugin.check(config).unwrap().unwrap_err();
        errors.into_iter().map(|e| (e.path, e.message)).collect()
    };
    let one = |path: &str, message: &str| vec![(path.to_string(), message.to_string())];
    assert_eq!(
        refused(json!({"allow": ["10.0.0.0/8", "not-an-ip"]})),
        one("allow[1]", "invalid ip or cidr range: 'not-an-ip'")
    );
    assert_eq!(refused(json!({"deny": ["::1/200"]})), one("deny[0]", "invalid ip or cidr range: '::1/200'"));
    assert_eq!(refused(json!({"deny": ["10.0.0.1/08"]})), one("deny[0]", "invalid ip or cidr range: '10.0.0.1/08'"));
    let errors = plugin.check(json!({})).unwrap().unwrap_err();
    assert_eq!(errors[0].message, "at least one of these fields must be non-empty: 'config.allow', 'config.deny'");
    let errors = plugin.check(json!({"deny": ["::1"], "status": 302})).unwrap().unwrap_err();
    assert_eq!(errors[0].path, "status");
    let errors = plugin.check(json!({"deny": ["::1"], "blacklist": ["::2"]})).unwrap().unwrap_err();
    assert_eq!(errors[0].path, "blacklist");
    let filled = plugin.check(json!({"deny": ["::1"]})).unwrap().unwrap();
    assert_eq!(filled, json!({"allow": null, "deny": ["::1"], "status": null, "message": null}));
}
