//! request-size-limiting on real requests, through the gateway's plugin host (`gateway plugin run`).

use gateway_plugin_test::{Outcome, Plugin, Request};
use serde_json::{Value, json};

fn run(config: Value, request: Request) -> Outcome {
    let outcome = Plugin::built().unwrap().run(config, request).unwrap();
    assert_eq!(outcome.error, None);
    outcome
}

fn post(body_len: usize) -> Request {
    Request::new("POST", "/upload").body(&"x".repeat(body_len))
}

fn answer(outcome: &Outcome) -> (u16, Value) {
    let exit = outcome.exit.as_ref().expect("the plugin answered");
    (exit.status.unwrap(), exit.error_json())
}

const TEN_BYTES: fn() -> Value = || json!({"allowed_payload_size": 10, "size_unit": "bytes"});

#[test]
fn a_content_length_over_the_limit_gets_kongs_413() {
    let outcome = run(TEN_BYTES(), post(11).header("Content-Length", "11"));
    assert_eq!(answer(&outcome), (413, json!({"message": "Request size limit exceeded"})));
    let outcome =
        run(json!({"allowed_payload_size": 1, "size_unit": "kilobytes"}), post(0).header("Content-Length", "1025"));
    assert_eq!(answer(&outcome).0, 413);
}

#[test]
fn a_content_length_within_the_limit_passes_without_reading_the_body() {
    let outcome = run(TEN_BYTES(), post(10).header("Content-Length", "10"));
    assert!(outcome.exit.is_none());
    assert_eq!(outcome.request.as_ref().unwrap().body.as_deref(), Some("xxxxxxxxxx"));
    // The declared length decides: the body is not read to measure it.
    assert!(run(TEN_BYTES(), post(50).header("Content-Length", "10")).exit.is_none());
    // Judged by the header alone: a megabyte default passes any small declared size.
    assert!(run(json!({}), post(0).header("Content-Length", "134217728")).exit.is_none());
    assert_eq!(answer(&run(json!({}), post(0).header("Content-Length", "134217729"))).0, 413);
}

#[test]
fn a_body_without_content_length_is_read_up_to_the_limit() {
    let outcome = run(TEN_BYTES(), post(11).header("Transfer-Encoding", "chunked"));
    assert_eq!(answer(&outcome), (413, json!({"message": "Request size limit exceeded"})));
    let outcome = run(TEN_BYTES(), post(10).header("Transfer-Encoding", "chunked"));
    assert!(outcome.exit.is_none(), "{outcome:?}");
    assert_eq!(outcome.request.as_ref().unwrap().body.as_deref(), Some("xxxxxxxxxx"), "the body still goes upstream");
    assert!(run(TEN_BYTES(), Request::get("/")).exit.is_none(), "no body at all");
}

#[test]
fn expect_100_continue_gets_417() {
    let outcome = run(TEN_BYTES(), post(0).header("Content-Length", "11").header("Expect", "100-Continue"));
    assert_eq!(answer(&outcome), (417, json!({"message": "Request size limit exceeded"})));
}

#[test]
fn require_content_length_answers_411_unless_chunked() {
    let config = json!({"allowed_payload_size": 10, "size_unit": "bytes", "require_content_length": true});
    let outcome = run(config.clone(), post(5));
    assert_eq!(answer(&outcome), (411, json!({"message": "A valid Content-Length header is required"})));
    assert_eq!(answer(&run(config.clone(), post(5).header("Content-Length", "five"))).0, 411);
    assert!(run(config.clone(), post(5).header("Content-Length", "5")).exit.is_none());
    assert!(run(config.clone(), post(5).header("Transfer-Encoding", "chunked")).exit.is_none());
    assert_eq!(answer(&run(config, post(50).header("Transfer-Encoding", "chunked"))).0, 413);
}

#[test]
fn bad_configurations_are_refused_at_write_time() {
    let plugin = Plugin::built().unwrap();
    let errors = plugin.check(json!({"size_unit": "gigabytes", "allowed_payload_size": "big"})).unwrap().unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["allowed_payload_size", "size_unit"]);
    assert_eq!(plugin.check(json!({"max_size": 1})).unwrap().unwrap_err()[0].path, "max_size");
    assert_eq!(
        plugin.check(json!({})).unwrap().unwrap(),
        json!({"allowed_payload_size": 128, "size_unit": "megabytes", "require_content_length": false})
    );
}
