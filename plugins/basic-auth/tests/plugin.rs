//! basic-auth on real requests, through the gateway's plugin host (`gateway plugin run`).
//! Run: `cargo build --release --target wasm32-wasip2 -p basic-auth`, then
//! `cargo test --target <host> -p basic-auth` with `GATEWAY_BIN` set.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gateway_plugin_test::{Outcome, Plugin, Request};
use serde_json::{Value, json};

const ALICE: &str = "6f3c2a5e-1b7d-4c11-9a8e-0d2b4e6f8a01";
const ALICE_CRED: &str = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e01";
const BOB: &str = "7a4d3b6f-2c8e-4d22-8b9f-1e3c5f7a9b02";
const ANON: &str = "9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a502";

fn consumers() -> Value {
    json!([
        {"id": ALICE, "username": "alice", "custom_id": "cust-1",
         "basicauth_credentials": [{"id": ALICE_CRED, "username": "alice-login", "password": "s3cret:with colon"}]},
        {"id": BOB, "username": "bob",
         "basicauth_credentials": [{"username": "bob-login", "password": "hunter2"}]},
        {"id": ANON, "username": "anonymous-user"},
    ])
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

fn alice() -> String {
    basic("alice-login", "s3cret:with colon")
}

fn run(config: Value, request: Request) -> Outcome {
    let outcome = Plugin::built().unwrap().run_with_consumers(config, request, consumers()).unwrap();
    assert_eq!(outcome.error, None, "{outcome:?}");
    outcome
}

fn exit_of(outcome: &Outcome) -> (u16, Value, Option<&str>) {
    let exit = outcome.exit.as_ref().expect("the plugin answered");
    (exit.status.unwrap(), exit.error_json(), exit.header("www-authenticate"))
}

fn kongs_401(outcome: &Outcome) {
    assert_eq!(exit_of(outcome), (401, json!({"message": "Unauthorized"}), Some(r#"Basic realm="service""#)));
    assert!(outcome.request.is_none() && outcome.consumer.is_none());
}

fn assert_alice(outcome: &Outcome) {
    assert!(outcome.exit.is_none(), "{outcome:?}");
    assert_eq!(outcome.consumer.as_deref(), Some(ALICE));
    assert_eq!(outcome.credential.as_deref(), Some(ALICE_CRED));
    assert_eq!(outcome.upstream_header("x-consumer-id"), Some(ALICE));
    assert_eq!(outcome.upstream_header("x-consumer-username"), Some("alice"));
    assert_eq!(outcome.upstream_header("x-consumer-custom-id"), Some("cust-1"));
    assert_eq!(outcome.upstream_header("x-credential-identifier"), Some("alice-login"), "Kong sends the username");
    assert_eq!(outcome.upstream_header("x-anonymous-consumer"), None);
}

#[test]
fn no_credentials_is_kongs_401() {
    kongs_401(&run(json!({}), Request::get("/")));
}

#[test]
fn bad_credentials_are_kongs_401() {
    for value in [
        basic("alice-login", "wrong"),
        basic("alice-login", "s3cret"),
        basic("nobody", "s3cret:with colon"),
        basic("", "s3cret:with colon"),
        "Basic !!not-base64!!".into(),
        format!("Basic {}", STANDARD.encode("no-colon")),
        format!("Bearer {}", STANDARD.encode("alice-login:s3cret:with colon")),
        "Basic".into(),
    ] {
        kongs_401(&run(json!({}), Request::get("/").header("Authorization", &value)));
    }
}

#[test]
fn good_credentials_pass_with_the_consumer_headers_upstream() {
    let request = Request::get("/").header("Authorization", &alice()).header("X-Anonymous-Consumer", "true");
    let outcome = run(json!({}), request);
    assert_alice(&outcome);
    assert_eq!(outcome.upstream_header("authorization"), Some(alice().as_str()), "kept without hide_credentials");
    let lower = alice().replacen("Basic", "basic", 1);
    assert_alice(&run(json!({}), Request::get("/").header("authorization", &lower)));
}

#[test]
fn proxy_authorization_comes_first_as_in_kong() {
    let bob = basic("bob-login", "hunter2");
    let outcome =
        run(json!({}), Request::get("/").header("Proxy-Authorization", &alice()).header("Authorization", &bob));
    assert_alice(&outcome);
    // An unknown username there falls back to Authorization...
    let unknown = basic("nobody", "x");
    assert_alice(&run(
        json!({}),
        Request::get("/").header("Proxy-Authorization", &unknown).header("Authorization", &alice()),
    ));
    // ...but a known one with the wrong password fails, whatever Authorization holds.
    let wrong = basic("bob-login", "wrong");
    kongs_401(&run(
        json!({}),
        Request::get("/").header("Proxy-Authorization", &wrong).header("Authorization", &alice()),
    ));
    assert_alice(&run(json!({}), Request::get("/").header("Proxy-Authorization", &alice())));
}

#[test]
fn hide_credentials_strips_the_headers_read() {
    let config = json!({"hide_credentials": true});
    let outcome = run(config.clone(), Request::get("/").header("Authorization", &alice()).header("Other", "x"));
    assert_alice(&outcome);
    assert_eq!(outcome.upstream_header("authorization"), None);
    assert_eq!(outcome.upstream_header("other"), Some("x"));
    // Proved by Proxy-Authorization: the upstream's own Authorization is left alone, as in Kong.
    let bearer = "Bearer upstream-token";
    let outcome =
        run(config, Request::get("/").header("Proxy-Authorization", &alice()).header("Authorization", bearer));
    assert_alice(&outcome);
    assert_eq!(outcome.upstream_header("proxy-authorization"), None);
    assert_eq!(outcome.upstream_header("authorization"), Some(bearer));
}

#[test]
fn anonymous_by_id_or_username_carries_on_without_good_credentials() {
    for anonymous in [ANON, "anonymous-user"] {
        for request in [Request::get("/"), Request::get("/").header("Authorization", &basic("alice-login", "nope"))] {
            let outcome = run(json!({"anonymous": anonymous}), request.header("X-Consumer-Custom-ID", "forged"));
            assert!(outcome.exit.is_none(), "{outcome:?}");
            assert_eq!(outcome.consumer.as_deref(), Some(ANON));
            assert_eq!(outcome.credential, None);
            assert_eq!(outcome.upstream_header("x-consumer-id"), Some(ANON));
            assert_eq!(outcome.upstream_header("x-consumer-username"), Some("anonymous-user"));
            assert_eq!(outcome.upstream_header("x-consumer-custom-id"), None);
            assert_eq!(outcome.upstream_header("x-anonymous-consumer"), Some("true"));
        }
    }
    assert_alice(&run(json!({"anonymous": ANON}), Request::get("/").header("Authorization", &alice())));
}

#[test]
fn an_anonymous_consumer_that_does_not_exist_is_kongs_500() {
    let outcome = run(json!({"anonymous": "ghost"}), Request::get("/"));
    assert_eq!(
        exit_of(&outcome),
        (500, json!({"message": "anonymous consumer ghost is configured but doesn't exist"}), None)
    );
}

#[test]
fn the_realm_is_configurable() {
    let outcome = run(json!({"realm": "my \"api\""}), Request::get("/"));
    assert_eq!(exit_of(&outcome).2, Some(r#"Basic realm="my \"api\"""#));
}

#[test]
fn check_config_refuses_what_kong_refuses() {
    let plugin = Plugin::built().unwrap();
    let errors = |config: Value| {
        plugin.check(config).unwrap().unwrap_err().into_iter().map(|e| (e.path, e.message)).collect::<Vec<_>>()
    };
    let one = |path: &str, message: &str| vec![(path.to_string(), message.to_string())];
    assert_eq!(errors(json!({"realm": null})), one("realm", "required field missing"));
    assert_eq!(errors(json!({"realm": ""})), one("realm", "length must be at least 1"));
    assert_eq!(errors(json!({"realm": "a\r\nX: y"})), one("realm", "must not contain control characters"));
    assert_eq!(errors(json!({"anonymous": ""})), one("anonymous", "length must be at least 1"));
    assert_eq!(errors(json!({"hide_credentials": null})), one("hide_credentials", "required field missing"));
    assert_eq!(errors(json!({"brute_force_protection": {}})), one("brute_force_protection", "unknown field"));
    let filled = plugin.check(json!({})).unwrap().unwrap();
    assert_eq!(filled, json!({"anonymous": null, "hide_credentials": false, "realm": "service"}));
}
