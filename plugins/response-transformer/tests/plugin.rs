//! The response-transformer plugin on real responses, through the gateway's plugin host
//! (`gateway plugin run`): each header operation, each JSON operation on bodies sent in chunks,
//! the bodies it leaves alone, and the configurations refused.
//! Run: `cargo build --release --target wasm32-wasip2 -p response-transformer && cargo test --target host-tuple -p response-transformer`.

use gateway_plugin_test::{Message, Plugin, Request};
use serde_json::{Value, json};

/// The response the client gets when the upstream answers with `headers` and `chunks`.
fn respond(config: Value, headers: &[(&str, &str)], chunks: &[&str]) -> Message {
    let input = json!({
        "config": config,
        "request": Request::get("/").input(),
        "upstream": {"status": 200, "headers": headers, "chunks": chunks},
    });
    let outcome = Plugin::built().unwrap().run_input(input).unwrap();
    assert!(outcome.config_errors.is_empty(), "{:?}", outcome.config_errors);
    assert_eq!(outcome.error, None);
    outcome.response.unwrap()
}

fn values<'a>(message: &'a Message, name: &str) -> Vec<&'a str> {
    message.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
}

fn body_json(message: &Message) -> Value {
    serde_json::from_str(message.body.as_deref().unwrap()).unwrap()
}

const JSON: (&str, &str) = ("Content-Type", "application/json; charset=utf-8");

#[test]
fn header_operations_in_kongs_order() {
    let config = json!({
        "remove": {"headers": ["x-internal", "x-absent"]},
        "rename": {"headers": ["x-old:x-new", "x-missing:x-nothing"]},
        "replace": {"headers": ["x-replaced:new", "x-not-there:value"]},
        "add": {"headers": ["x-added:added", "x-kept:ignored", "x-internal:again"]},
        "append": {"headers": ["x-kept:second", "x-list:one"]},
    });
    let headers = [
        ("X-Internal", "i"),
        ("X-Old", "o1"),
        ("X-Old", "o2"),
        ("X-Replaced", "before"),
        ("X-Kept", "first"),
        ("Content-Length", "2"),
    ];
    let res = respond(config, &headers, &["ok"]);
    assert_eq!(values(&res, "x-internal"), Vec::<&str>::new(), "add looks at the headers as they came, as Kong");
    assert_eq!(values(&res, "x-old"), Vec::<&str>::new());
    assert_eq!(values(&res, "x-new"), ["o1", "o2"]);
    assert_eq!(values(&res, "x-nothing"), Vec::<&str>::new());
    assert_eq!(values(&res, "x-replaced"), ["new"]);
    assert_eq!(values(&res, "x-not-there"), Vec::<&str>::new());
    assert_eq!(values(&res, "x-added"), ["added"]);
    assert_eq!(values(&res, "x-kept"), ["first", "second"]);
    assert_eq!(values(&res, "x-list"), ["one"]);
    assert_eq!(values(&res, "content-length"), ["2"], "kept: no JSON edits");
    assert_eq!(res.body.as_deref(), Some("ok"));
}

/// Kong's response headers are set through `ngx.header`, which reads `_` in a name as `-`.
#[test]
fn underscores_in_configured_names_are_dashes() {
    let config = json!({
        "remove": {"headers": ["x_powered_by"]},
        "rename": {"headers": ["x_old:x_new"]},
        "replace": {"headers": ["x_replaced:new"]},
        "add": {"headers": ["x_added:added"]},
        "append": {"headers": ["x_list:one"]},
    });
    let headers = [("X-Powered-By", "php"), ("X-Old", "o"), ("X-Replaced", "before")];
    let res = respond(config, &headers, &["ok"]);
    assert_eq!(values(&res, "x-powered-by"), Vec::<&str>::new(), "{res:?}");
    assert_eq!((values(&res, "x-old"), values(&res, "x-new")), (vec![], vec!["o"]), "{res:?}");
    assert_eq!(values(&res, "x-replaced"), ["new"]);
    assert_eq!(values(&res, "x-added"), ["added"]);
    assert_eq!(values(&res, "x-list"), ["one"]);
    assert!(res.headers.iter().all(|(n, _)| !n.contains('_')), "{res:?}");
}

#[test]
fn json_operations_on_a_body_sent_in_chunks() {
    let config = json!({
        "remove": {"json": ["secret"]},
        "rename": {"json": ["old:new"]},
        "replace": {"json": ["count:7", "missing:x"], "json_types": ["number"]},
        "add": {"json": ["flag:true", "count:99", "note:hello"], "json_types": ["boolean", "number"]},
        "append": {"json": ["list:b", "text:more"]},
    });
    let body = json!({"secret": "s", "old": 1, "count": 3, "list": ["a"], "text": "t"}).to_string();
    let (a, rest) = body.split_at(7);
    let (b, c) = rest.split_at(9);
    let res = respond(config, &[JSON, ("Content-Length", &body.len().to_string())], &[a, b, c]);
    assert_eq!(
        body_json(&res),
        json!({"new": 1, "count": 7, "flag": true, "note": "hello", "list": ["a", "b"], "text": ["t", "more"]})
    );
    assert_eq!(values(&res, "content-length"), Vec::<&str>::new(), "the body changed length");
}

#[test]
fn json_types_make_numbers_and_booleans() {
    let config = json!({"add": {"json": ["n:12.5", "b:true", "s:12", "bad:abc"], "json_types": ["number", "boolean", "string", "number"]}});
    let res = respond(config, &[("Content-Type", "application/problem+json")], &["{}"]);
    assert_eq!(body_json(&res), json!({"n": 12.5, "b": true, "s": "12"}));
}

/// Written as Kong's cjson writes numbers: a typed client reading `limit` as an integer gets one.
#[test]
fn numbers_are_written_as_kong_writes_them() {
    let config = json!({"add": {"json": ["limit:1e3", "mask:0x1F", "tiny:0.00001"], "json_types": ["number", "number", "number"]}});
    let res = respond(config, &[JSON], &["{}"]);
    assert_eq!(res.body.as_deref(), Some(r#"{"limit":1000,"mask":31,"tiny":1e-05}"#));
}

#[test]
fn other_bodies_pass_unedited() {
    let config = json!({"add": {"json": ["a:b"]}});
    let html = respond(config.clone(), &[("Content-Type", "text/html"), ("Content-Length", "8")], &["<p>", "hi</p>"]);
    assert_eq!(html.body.as_deref(), Some("<p>hi</p>"));
    assert_eq!(values(&html, "content-length"), ["8"]);
    let array = respond(config.clone(), &[JSON], &["[1,", "2]"]);
    assert_eq!(array.body.as_deref(), Some("[1,2]"));
    let broken = respond(config.clone(), &[JSON], &["{\"a\":"]);
    assert_eq!(broken.body.as_deref(), Some("{\"a\":"));
    let untyped = respond(config, &[], &["{}"]);
    assert_eq!(untyped.body.as_deref(), Some("{}"), "no Content-Type: not JSON");
    let headers_only = respond(json!({"add": {"headers": ["x-a:b"]}}), &[JSON], &["{\"k\":", "1}"]);
    assert_eq!(headers_only.body.as_deref(), Some("{\"k\":1}"), "no JSON edits: the body streams");
}

#[test]
fn configurations_kong_refuses_are_refused() {
    let plugin = Plugin::built().unwrap();
    let refused = |config: Value| plugin.check(config).unwrap().unwrap_err();
    let errors = refused(json!({"add": {"json": ["no-colon"]}}));
    assert_eq!((errors[0].path.as_str(), errors[0].message.as_str()), ("add.json[0]", "invalid value: no-colon"));
    let errors = refused(json!({"rename": {"headers": ["x-a:x b"]}}));
    assert_eq!(
        (errors[0].path.as_str(), errors[0].message.as_str()),
        ("rename.headers[0]", "'x b' is not a valid header")
    );
    let errors = refused(json!({"append": {"json_types": ["object"]}}));
    assert_eq!(errors[0].path, "append.json_types[0]");
    let errors = refused(json!({"replace": {"body": ["a:b"]}}));
    assert_eq!((errors[0].path.as_str(), errors[0].message.as_str()), ("replace.body", "unknown field"));
}

/// A JSON body too large to edit fails the response rather than go out with what `remove` was to
/// take out of it.
#[test]
fn a_json_body_over_the_cap_is_not_sent_unedited() {
    let filler = "x".repeat(1 << 20);
    let first = format!("{{\"internal_id\":\"secret\",\"a\":\"{filler}\",");
    let second = format!("\"b\":\"{filler}\",");
    let third = format!("\"c\":\"{filler}\"}}");
    let input = json!({
        "config": {"remove": {"json": ["internal_id"]}},
        "request": Request::get("/").input(),
        "upstream": {"status": 200, "headers": [JSON], "chunks": [first, second, third]},
    });
    let outcome = Plugin::built().unwrap().run_input(input).unwrap();
    let error = outcome.error.expect("the response fails");
    assert!(error.contains("too large to transform"), "{error}");
    let body = outcome.response.and_then(|r| r.body).unwrap_or_default();
    assert!(!body.contains("secret"), "nothing of the body went out: {} bytes", body.len());
}
