//! key-auth on real requests, through the gateway's plugin host (`gateway plugin run`).
//! Run: `cargo build --release --target wasm32-wasip2 -p key-auth`, then
//! `cargo test --target <host> -p key-auth` with `GATEWAY_BIN` set.

use gateway_plugin_test::{Outcome, Plugin, Request};
use serde_json::{Value, json};

const ALICE: &str = "6f3c2a5e-1b7d-4c11-9a8e-0d2b4e6f8a01";
const ALICE_KEY: &str = "0b7c5d2e-3f4a-4b6c-8d9e-1f2a3b4c5d01";
const ANON: &str = "9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a502";

fn consumers() -> Value {
    json!([
        {"id": ALICE, "username": "alice", "custom_id": "cust-1",
         "keyauth_credentials": [{"id": ALICE_KEY, "key": "alice-key"}]},
        {"id": ANON, "username": "anonymous-user"},
    ])
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

fn assert_alice(outcome: &Outcome) {
    assert_eq!(outcome.exit.as_ref().map(|e| e.status), None, "{outcome:?}");
    assert_eq!(outcome.consumer.as_deref(), Some(ALICE));
    assert_eq!(outcome.credential.as_deref(), Some(ALICE_KEY));
    assert_eq!(outcome.upstream_header("x-consumer-id"), Some(ALICE));
    assert_eq!(outcome.upstream_header("x-consumer-username"), Some("alice"));
    assert_eq!(outcome.upstream_header("x-consumer-custom-id"), Some("cust-1"));
    assert_eq!(outcome.upstream_header("x-credential-identifier"), Some(ALICE_KEY));
    assert_eq!(outcome.upstream_header("x-anonymous-consumer"), None);
}

#[test]
fn no_key_is_refused_with_kongs_401() {
    let outcome = run(json!({}), Request::get("/"));
    assert_eq!(exit_of(&outcome), (401, json!({"message": "No API key found in request"}), Some("Key")));
    assert!(outcome.request.is_none(), "nothing goes upstream");
    assert_eq!(outcome.consumer, None);
}

#[test]
fn an_empty_key_is_no_key() {
    let outcome = run(json!({}), Request::get("/?apikey="));
    assert_eq!(exit_of(&outcome).1, json!({"message": "No API key found in request"}));
}

#[test]
fn a_bad_key_is_refused_with_kongs_401() {
    let outcome = run(json!({}), Request::get("/").header("apikey", "nope"));
    assert_eq!(exit_of(&outcome), (401, json!({"message": "Unauthorized"}), Some("Key")));
    let outcome = run(json!({"realm": "my \"api\""}), Request::get("/?apikey=nope"));
    assert_eq!(exit_of(&outcome).2, Some(r#"Key realm="my \"api\"""#));
}

#[test]
fn a_repeated_key_is_refused_as_a_duplicate() {
    let outcome = run(json!({}), Request::get("/").header("apikey", "alice-key").header("apikey", "alice-key"));
    assert_eq!(exit_of(&outcome), (401, json!({"message": "Duplicate API key found"}), Some("Key")));
    let outcome = run(json!({}), Request::get("/?apikey=alice-key&apikey=x"));
    assert_eq!(exit_of(&outcome).1, json!({"message": "Duplicate API key found"}));
}

#[test]
fn a_good_key_in_a_header_passes_with_the_consumer_headers_upstream() {
    let request = Request::get("/")
        .header("ApiKey", "alice-key")
        .header("X-Anonymous-Consumer", "true")
        .header("X-Consumer-Groups", "forged");
    let outcome = run(json!({}), request);
    assert_alice(&outcome);
    assert_eq!(outcome.upstream_header("apikey"), Some("alice-key"), "kept without hide_credentials");
}

#[test]
fn a_good_key_in_the_query_passes() {
    let outcome = run(json!({}), Request::get("/path?a=1&apikey=alice-key"));
    assert_alice(&outcome);
    assert_eq!(outcome.request.unwrap().query.as_deref(), Some("a=1&apikey=alice-key"));
}

#[test]
fn key_names_are_tried_in_order_and_read_as_kong_reads_header_names() {
    let config = json!({"key_names": ["x_api_key", "apikey"]});
    assert_alice(&run(config.clone(), Request::get("/").header("X-Api-Key", "alice-key")));
    assert_alice(&run(config.clone(), Request::get("/").header("apikey", "alice-key")));
    let both = run(config, Request::get("/").header("x-api-key", "wrong").header("apikey", "alice-key"));
    assert_eq!(exit_of(&both).1, json!({"message": "Unauthorized"}));
}

#[test]
fn places_that_are_turned_off_are_not_searched() {
    let no_header = json!({"key_in_header": false});
    assert_eq!(exit_of(&run(no_header.clone(), Request::get("/").header("apikey", "alice-key"))).0, 401);
    assert_alice(&run(no_header, Request::get("/?apikey=alice-key")));
    let no_query = json!({"key_in_query": false});
    assert_eq!(exit_of(&run(no_query.clone(), Request::get("/?apikey=alice-key"))).0, 401);
    assert_alice(&run(no_query, Request::get("/").header("apikey", "alice-key")));
    let json_body =
        Request::new("POST", "/").header("Content-Type", "application/json").body(r#"{"apikey":"alice-key"}"#);
    assert_eq!(exit_of(&run(json!({}), json_body)).0, 401, "key_in_body is off by default");
}

#[test]
fn hide_credentials_strips_the_key_from_the_header_and_the_query() {
    let config = json!({"hide_credentials": true});
    let outcome = run(config.clone(), Request::get("/").header("apikey", "alice-key").header("other", "x"));
    assert_alice(&outcome);
    assert_eq!(outcome.upstream_header("apikey"), None);
    assert_eq!(outcome.upstream_header("other"), Some("x"));
    let outcome = run(config.clone(), Request::get("/?a=%41&apikey=alice-key&b=2"));
    assert_alice(&outcome);
    assert_eq!(outcome.request.unwrap().query.as_deref(), Some("a=%41&b=2"));
    // Also for a key that does not pass, as in Kong.
    let outcome = run(json!({"hide_credentials": true, "anonymous": "anonymous-user"}), Request::get("/?apikey=bad"));
    assert_eq!(outcome.request.unwrap().query.as_deref(), Some(""));
}

#[test]
fn a_key_in_a_form_body() {
    let form =
        |body: &str| Request::new("POST", "/").header("Content-Type", "application/x-www-form-urlencoded").body(body);
    let outcome = run(json!({"key_in_body": true}), form("a=1&apikey=alice-key"));
    assert_alice(&outcome);
    assert_eq!(outcome.request.unwrap().body.as_deref(), Some("a=1&apikey=alice-key"));
    let outcome = run(json!({"key_in_body": true, "hide_credentials": true}), form("a=1&apikey=alice-key&b=%20"));
    assert_alice(&outcome);
    assert_eq!(outcome.request.unwrap().body.as_deref(), Some("a=1&b=%20"));
    let outcome = run(json!({"key_in_body": true}), form("apikey=x&apikey=alice-key"));
    assert_eq!(exit_of(&outcome).1, json!({"message": "Duplicate API key found"}));
}

#[test]
fn a_key_in_a_json_body() {
    let body =
        |body: &str| Request::new("POST", "/").header("Content-Type", "application/json; charset=utf-8").body(body);
    assert_alice(&run(json!({"key_in_body": true}), body(r#"{"apikey": "alice-key", "n": 1}"#)));
    let outcome = run(
        json!({"key_in_body": true, "hide_credentials": true}),
        body(r#"{"n": 1e400, "apikey": "alice-key", "s": "x"}"#),
    );
    assert_alice(&outcome);
    assert_eq!(outcome.request.unwrap().body.as_deref(), Some(r#"{"n":1e400,"s":"x"}"#));
    let outcome = run(json!({"key_in_body": true}), body(r#"{"apikey": ["alice-key"]}"#));
    assert_eq!(exit_of(&outcome).1, json!({"message": "Duplicate API key found"}));
    let outcome = run(json!({"key_in_body": true}), body(r#"{"apikey": "alice-key""#));
    assert_eq!(exit_of(&outcome).1, json!({"message": "No API key found in request"}), "a body that does not parse");
    let deep = format!(r#"{{"a":{}{},"apikey":"alice-key"}}"#, "[".repeat(30_000), "]".repeat(30_000));
    assert_alice(&run(json!({"key_in_body": true}), body(&deep)));
}

#[test]
fn a_key_in_a_multipart_body() {
    let body = "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n\
                --XyZ\r\nContent-Disposition: form-data; name=\"apikey\"\r\n\r\nalice-key\r\n\
                --XyZ--\r\n";
    let request = || Request::new("POST", "/").header("Content-Type", "multipart/form-data; boundary=XyZ").body(body);
    assert_alice(&run(json!({"key_in_body": true}), request()));
    let outcome = run(json!({"key_in_body": true, "hide_credentials": true}), request());
    assert_alice(&outcome);
    assert_eq!(
        outcome.request.unwrap().body.as_deref(),
        Some("--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XyZ--\r\n")
    );
}

#[test]
fn a_key_in_a_header_also_leaves_the_body_when_hidden() {
    let request = Request::new("POST", "/")
        .header("apikey", "alice-key")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("apikey=alice-key&a=1");
    let outcome = run(json!({"key_in_body": true, "hide_credentials": true}), request.clone());
    assert_alice(&outcome);
    assert_eq!(outcome.upstream_header("apikey"), None);
    assert_eq!(outcome.request.unwrap().body.as_deref(), Some("a=1"));
    let outcome = run(json!({"key_in_body": true}), request);
    assert_eq!(outcome.request.unwrap().body.as_deref(), Some("apikey=alice-key&a=1"), "read only to hide");
}

#[test]
fn a_body_that_is_too_large_holds_no_key() {
    let big = format!("apikey=alice-key&pad={}", "x".repeat(70_000));
    let request = Request::new("POST", "/").header("Content-Type", "application/x-www-form-urlencoded").body(&big);
    let outcome = run(json!({"key_in_body": true}), request);
    assert_eq!(exit_of(&outcome).1, json!({"message": "No API key found in request"}));
}

#[test]
fn a_body_of_another_type_is_not_read() {
    let request = Request::new("POST", "/").header("Content-Type", "text/plain").body("apikey=alice-key");
    assert_eq!(exit_of(&run(json!({"key_in_body": true}), request)).0, 401);
}

#[test]
fn anonymous_by_id_or_username_carries_on_without_a_good_key() {
    for anonymous in [ANON, "anonymous-user"] {
        for request in [Request::get("/"), Request::get("/").header("apikey", "bad")] {
            let outcome = run(json!({"anonymous": anonymous}), request.header("X-Credential-Identifier", "forged"));
            assert_eq!(outcome.exit.as_ref().map(|e| e.status), None, "{outcome:?}");
            assert_eq!(outcome.consumer.as_deref(), Some(ANON));
            assert_eq!(outcome.credential, None);
            assert_eq!(outcome.upstream_header("x-consumer-id"), Some(ANON));
            assert_eq!(outcome.upstream_header("x-consumer-username"), Some("anonymous-user"));
            assert_eq!(outcome.upstream_header("x-anonymous-consumer"), Some("true"));
            assert_eq!(outcome.upstream_header("x-credential-identifier"), None);
        }
    }
    assert_alice(&run(json!({"anonymous": ANON}), Request::get("/").header("apikey", "alice-key")));
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
fn preflight_requests_pass_when_told_not_to_run_on_them() {
    let outcome = run(json!({"run_on_preflight": false}), Request::new("OPTIONS", "/"));
    assert!(outcome.exit.is_none() && outcome.request.is_some());
    assert_eq!(exit_of(&run(json!({}), Request::new("OPTIONS", "/"))).0, 401);
    assert_eq!(exit_of(&run(json!({"run_on_preflight": false}), Request::get("/"))).0, 401);
}

#[test]
fn check_config_refuses_what_kong_refuses() {
    let plugin = Plugin::built().unwrap();
    let errors = |config: Value| {
        plugin.check(config).unwrap().unwrap_err().into_iter().map(|e| (e.path, e.message)).collect::<Vec<_>>()
    };
    let one = |path: &str, message: &str| vec![(path.to_string(), message.to_string())];
    assert_eq!(errors(json!({"key_names": null})), one("key_names", "required field missing"));
    assert_eq!(
        errors(json!({"key_names": ["a b"]})),
        one("key_names[0]", "bad header name 'a b', allowed characters are A-Z, a-z, 0-9, '_', and '-'")
    );
    assert_eq!(errors(json!({"anonymous": ""})), one("anonymous", "length must be at least 1"));
    assert_eq!(errors(json!({"realm": "x\ny"})), one("realm", "must not contain control characters"));
    assert_eq!(errors(json!({"key_in_body": "yes"})), one("key_in_body", "expected a boolean"));
    assert_eq!(errors(json!({"key_in_cookie": true})), one("key_in_cookie", "unknown field"));
    let filled = plugin.check(json!({})).unwrap().unwrap();
    assert_eq!(filled["key_names"], json!(["apikey"]));
    // A configuration as Kong exports it, every field written out, reads back unchanged.
    assert_eq!(plugin.check(filled.clone()).unwrap().unwrap(), filled);
}
