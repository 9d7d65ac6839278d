//! cors on real requests, through the gateway's plugin host (`gateway plugin run`).

use gateway_plugin_test::{Outcome, Plugin, Request};
use serde_json::{Value, json};

const DEFAULT_METHODS: &str = "GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT";

fn run(config: Value, request: Request) -> Outcome {
    let outcome = Plugin::built().unwrap().run(config, request).unwrap();
    assert_eq!(outcome.error, None);
    outcome
}

fn preflight(origin: &str) -> Request {
    Request::new("OPTIONS", "/api").header("Origin", origin).header("Access-Control-Request-Method", "POST")
}

fn header_values<'a>(outcome: &'a Outcome, name: &str) -> Vec<&'a str> {
    let response = outcome.response.as_ref().unwrap();
    response.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
}

#[test]
fn a_preflight_is_answered_by_the_plugin_with_kongs_defaults() {
    let outcome = run(json!({}), preflight("http://example.test"));
    let exit = outcome.exit.as_ref().expect("answered by the plugin");
    assert_eq!(exit.status, Some(200));
    assert_eq!(exit.body.as_deref(), Some(""));
    assert_eq!(exit.header("Access-Control-Allow-Origin"), Some("*"));
    assert_eq!(exit.header("Access-Control-Allow-Methods"), Some(DEFAULT_METHODS));
    assert_eq!(exit.header("Access-Control-Allow-Credentials"), None);
    assert_eq!(exit.header("Access-Control-Max-Age"), None);
    assert_eq!(exit.header("Vary"), None);
    assert_eq!(outcome.status(), Some(200));
    assert_eq!(header_values(&outcome, "access-control-allow-origin"), ["*"], "header_filter adds nothing");
}

#[test]
fn a_preflight_with_every_setting() {
    let config = json!({
        "origins": ["http://a.test", "https://(.*\\.)?example\\.test"],
        "methods": ["GET", "POST"], "headers": ["origin", "type", "accepts"],
        "max_age": 23, "credentials": true, "private_network": true
    });
    let request = preflight("https://api.example.test").header("Access-Control-Request-Private-Network", "true");
    let outcome = run(config, request);
    let exit = outcome.exit.as_ref().unwrap();
    assert_eq!(exit.status, Some(200));
    assert_eq!(exit.header("Access-Control-Allow-Origin"), Some("https://api.example.test"));
    assert_eq!(exit.header("Access-Control-Allow-Methods"), Some("GET,POST"));
    assert_eq!(exit.header("Access-Control-Allow-Headers"), Some("origin,type,accepts"));
    assert_eq!(exit.header("Access-Control-Max-Age"), Some("23"));
    assert_eq!(exit.header("Access-Control-Allow-Credentials"), Some("true"));
    assert_eq!(exit.header("Access-Control-Allow-Private-Network"), Some("true"));
    assert_eq!(exit.header("Vary"), Some("Origin"));
}

#[test]
fn a_preflight_echoes_the_requested_headers_when_none_are_configured() {
    let outcome = run(json!({}), preflight("http://a.test").header("Access-Control-Request-Headers", "origin,accepts"));
    assert_eq!(outcome.exit.as_ref().unwrap().header("Access-Control-Allow-Headers"), Some("origin,accepts"));
}

#[test]
fn a_preflight_from_an_origin_not_allowed_gets_no_allow_origin() {
    let outcome = run(json!({"origins": ["http://a.test", "http://b.test"]}), preflight("http://evil.test"));
    let exit = outcome.exit.as_ref().unwrap();
    assert_eq!(exit.status, Some(200));
    assert_eq!(exit.header("Access-Control-Allow-Origin"), None);
    assert_eq!(exit.header("Vary"), Some("Origin"));
}

#[test]
fn preflight_continue_hands_the_preflight_to_the_upstream() {
    let outcome = Plugin::built()
        .unwrap()
        .run_upstream(json!({"preflight_continue": true}), preflight("http://a.test"), 204, &[("Allow", "GET")], "")
        .unwrap();
    assert!(outcome.exit.is_none());
    assert_eq!(outcome.request.as_ref().unwrap().method.as_deref(), Some("OPTIONS"));
    assert_eq!(outcome.status(), Some(204));
    assert!(header_values(&outcome, "access-control-allow-origin").is_empty(), "the upstream's answer stands");
}

#[test]
fn an_options_request_without_a_request_method_is_not_a_preflight() {
    let request = Request::new("OPTIONS", "/").header("Origin", "http://a.test");
    let outcome = run(json!({}), request);
    assert!(outcome.exit.is_none());
    assert_eq!(outcome.response_header("Access-Control-Allow-Origin"), Some("*"));
}

#[test]
fn a_simple_request_gets_the_headers_from_header_filter() {
    let config = json!({"origins": ["http://a.test", "http://b.test:8080"], "exposed_headers": ["x-auth-token"], "credentials": true});
    let outcome = run(config.clone(), Request::get("/").header("Origin", "http://b.test:8080"));
    assert!(outcome.exit.is_none());
    assert_eq!(outcome.response_header("Access-Control-Allow-Origin"), Some("http://b.test:8080"));
    assert_eq!(outcome.response_header("Access-Control-Expose-Headers"), Some("x-auth-token"));
    assert_eq!(outcome.response_header("Access-Control-Allow-Credentials"), Some("true"));
    assert_eq!(outcome.response_header("Vary"), Some("Origin"));
    // The default port is normalised away.
    let outcome = run(config, Request::get("/").header("Origin", "http://a.test:80"));
    assert_eq!(outcome.response_header("Access-Control-Allow-Origin"), Some("http://a.test"));
}

#[test]
fn an_origin_not_allowed_loses_the_upstreams_allow_origin() {
    let outcome = Plugin::built()
        .unwrap()
        .run_upstream(
            json!({"origins": ["http://a.test", "http://b.test"]}),
            Request::get("/").header("Origin", "http://evil.test"),
            200,
            &[("Access-Control-Allow-Origin", "http://evil.test"), ("Vary", "Accept-Encoding")],
            "ok",
        )
        .unwrap();
    assert!(header_values(&outcome, "access-control-allow-origin").is_empty());
    assert_eq!(header_values(&outcome, "vary"), ["Accept-Encoding", "Origin"], "Vary is added to, not replaced");
}

#[test]
fn credentials_with_any_origin_allow_the_request_origin() {
    let outcome = run(json!({"credentials": true}), Request::get("/").header("Origin", "http://a.test"));
    assert_eq!(outcome.response_header("Access-Control-Allow-Origin"), Some("http://a.test"));
    assert_eq!(outcome.response_header("Access-Control-Allow-Credentials"), Some("true"));
    assert_eq!(outcome.response_header("Vary"), Some("Origin"));
    let outcome = run(json!({"origins": ["*"]}), Request::get("/").header("Origin", "http://a.test"));
    assert_eq!(outcome.response_header("Access-Control-Allow-Origin"), Some("*"));
    assert_eq!(outcome.response_header("Vary"), None);
}

#[test]
fn a_single_plain_origin_is_sent_whatever_the_request() {
    let outcome = run(json!({"origins": ["http://a.test"]}), Request::get("/").header("Origin", "http://evil.test"));
    assert_eq!(outcome.response_header("Access-Control-Allow-Origin"), Some("http://a.test"));
}

#[test]
fn without_an_origin_allow_origin_absent_decides() {
    let outcome = run(json!({}), Request::get("/"));
    assert_eq!(outcome.response_header("Access-Control-Allow-Origin"), Some("*"));
    let outcome = run(json!({"allow_origin_absent": false}), Request::get("/"));
    assert_eq!(outcome.response_header("Access-Control-Allow-Origin"), None);
}

#[test]
fn bad_configurations_are_refused_at_write_time() {
    let plugin = Plugin::built().unwrap();
    let errors = plugin.check(json!({"origins": ["http://(unclosed"]})).unwrap().unwrap_err();
    assert_eq!(errors[0].path, "origins[0]");
    assert_eq!(errors[0].message, "'http://(unclosed' is not a valid regex");
    assert_eq!(plugin.check(json!({"methods": ["GET", "PURGE"]})).unwrap().unwrap_err()[0].path, "methods[1]");
    assert_eq!(plugin.check(json!({"exposed_headers": ["a\nb"]})).unwrap().unwrap_err()[0].path, "exposed_headers[0]");
    assert_eq!(plugin.check(json!({"origin": ["*"]})).unwrap().unwrap_err()[0].path, "origin");
}
