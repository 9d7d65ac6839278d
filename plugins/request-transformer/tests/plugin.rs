//! The request-transformer plugin on real requests, through the gateway's plugin host
//! (`gateway plugin run`): each operation on headers, query strings, JSON, form and multipart bodies, the
//! method and path changes, templates, and the configurations refused.
//! Run: `cargo build --release --target wasm32-wasip2 -p request-transformer && cargo test --target host-tuple -p request-transformer`.

use gateway_plugin_test::{Message, Plugin, Request};
use serde_json::{Value, json};

/// The request as it went upstream.
fn upstream(config: Value, request: Request) -> Message {
    let outcome = Plugin::built().unwrap().run(config, request).unwrap();
    assert!(outcome.config_errors.is_empty(), "{:?}", outcome.config_errors);
    assert_eq!(outcome.error, None);
    outcome.request.unwrap_or_else(|| panic!("not sent upstream: {:?}", outcome.exit))
}

fn values<'a>(message: &'a Message, name: &str) -> Vec<&'a str> {
    message.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
}

fn json_body(message: &Message) -> Value {
    serde_json::from_str(message.body.as_deref().unwrap()).unwrap()
}

#[test]
fn header_operations_in_kongs_order() {
    let config = json!({
        "remove": {"headers": ["x-secret", "x-absent"]},
        "rename": {"headers": ["x-old:x-new", "x-missing:x-nothing"]},
        "replace": {"headers": ["x-replaced:new", "x-not-there:value"]},
        "add": {"headers": ["x-added:added", "x-kept:ignored", "x-secret:again"]},
        "append": {"headers": ["x-kept:second", "x-list:one"]},
    });
    let request = Request::get("/")
        .header("X-Secret", "s")
        .header("X-Old", "o1")
        .header("X-Old", "o2")
        .header("X-Replaced", "before")
        .header("X-Kept", "first");
    let sent = upstream(config, request);
    assert_eq!(values(&sent, "x-secret"), ["again"], "removed, then added back");
    assert_eq!(values(&sent, "x-old"), Vec::<&str>::new());
    assert_eq!(values(&sent, "x-new"), ["o1", "o2"], "renamed with every value");
    assert_eq!(values(&sent, "x-nothing"), Vec::<&str>::new());
    assert_eq!(values(&sent, "x-replaced"), ["new"]);
    assert_eq!(values(&sent, "x-not-there"), Vec::<&str>::new(), "replace only what is there");
    assert_eq!(values(&sent, "x-added"), ["added"]);
    assert_eq!(values(&sent, "x-kept"), ["first", "second"], "add keeps, append adds");
    assert_eq!(values(&sent, "x-list"), ["one"]);
}

#[test]
fn templates_read_the_request_as_it_came() {
    let config = json!({
        "remove": {"headers": ["x-user"]},
        "replace": {"headers": ["x-role:role=$(headers.x_role)"]},
        "add": {
            "headers": ["x-from-user:$(headers[\"X-User\"])", "x-q:$(query_params.q)", "x-none:[$(headers.x_none)]",
                        "x-literal:$('$(headers.x_user)')"],
            "querystring": ["user:$(headers.x-user)".replace("x-user", "x_user")],
        },
    });
    let request = Request::get("/?q=search+me").header("X-User", "alice").header("X-Role", "admin");
    let sent = upstream(config, request);
    assert_eq!(sent.header("x-user"), None);
    assert_eq!(sent.header("x-from-user"), Some("alice"), "a removed header still renders");
    assert_eq!(sent.header("x-role"), Some("role=admin"), "a replaced header renders its old value");
    assert_eq!(sent.header("x-q"), Some("search me"));
    assert_eq!(sent.header("x-none"), Some("[]"));
    assert_eq!(sent.header("x-literal"), Some("$(headers.x_user)"));
    assert_eq!(sent.query.as_deref(), Some("q=search+me&user=alice"));
}

/// What follows a `:` in a `remove` entry is never read (Kong renders it and ignores it), so a
/// value the config check let through cannot break the plugin when it loads.
#[test]
fn remove_entries_ignore_their_values() {
    let config = json!({"remove": {"headers": ["x-secret:$(uri_captures.x)"], "querystring": ["token:$(nope"]}});
    let sent = upstream(config, Request::get("/?token=t&keep=1").header("X-Secret", "s"));
    assert_eq!(values(&sent, "x-secret"), Vec::<&str>::new());
    assert_eq!(sent.query.as_deref(), Some("keep=1"));
}

#[test]
fn query_string_operations() {
    let config = json!({
        "remove": {"querystring": ["token"]},
        "rename": {"querystring": ["old:new"]},
        "replace": {"querystring": ["page:1", "absent:x"]},
        "add": {"querystring": ["added:a b", "keep:ignored"]},
        "append": {"querystring": ["keep:2", "list:x"]},
    });
    let sent = upstream(config, Request::get("/?token=t&old=o&page=9&page=8&keep=1&raw=%7e+x"));
    assert_eq!(sent.query.as_deref(), Some("new=o&page=1&keep=1&raw=%7e+x&added=a%20b&keep=2&list=x"));
    // Untouched without query string operations, however it is written.
    let sent = upstream(json!({"add": {"headers": ["x:y"]}}), Request::get("/?expected=$&+,/:;?@"));
    assert_eq!(sent.query.as_deref(), Some("expected=$&+,/:;?@"));
}

#[test]
fn json_body_operations() {
    let config = json!({
        "remove": {"body": ["password"]},
        "rename": {"body": ["user:username", "off:renamed"]},
        "replace": {"body": ["role:guest", "flag:x", "missing:x"]},
        "add": {"body": ["added:yes", "role:ignored", "flag:added-over-false"]},
        "append": {"body": ["tags:new", "one:two", "fresh:v"]},
    });
    let body = json!({"password": "p", "user": "alice", "off": false, "role": "admin", "flag": false,
                      "tags": ["a"], "one": "1", "n": 5});
    let request = Request::new("POST", "/").header("Content-Type", "application/json").body(&body.to_string());
    let sent = upstream(config.clone(), request);
    assert_eq!(
        json_body(&sent),
        json!({"username": "alice", "off": false, "role": "guest", "flag": "added-over-false", "added": "yes",
               "tags": ["a", "new"], "one": ["1", "two"], "fresh": ["v"], "n": 5})
    );
    // An empty body gets what add and append make; one that is not JSON is left alone.
    let empty = Request::new("POST", "/").header("Content-Type", "application/json");
    assert_eq!(
        json_body(&upstream(config.clone(), empty)),
        json!({"added": "yes", "flag": "added-over-false",
        "role": "ignored", "tags": ["new"], "one": ["two"], "fresh": ["v"]})
    );
    let broken = Request::new("POST", "/").header("Content-Type", "application/json").body("{not json");
    assert_eq!(upstream(config.clone(), broken).body.as_deref(), Some("{not json"));
    let array = Request::new("POST", "/").header("Content-Type", "application/json").body("[1,2]");
    assert_eq!(upstream(config, array).body.as_deref(), Some("[1,2]"));
}

/// One of each body edit.
fn body_edits() -> Value {
    json!({
        "remove": {"body": ["password"]},
        "rename": {"body": ["user:username"]},
        "replace": {"body": ["role:guest"]},
        "add": {"body": ["added:a b", "role:ignored"]},
        "append": {"body": ["tag:new"]},
    })
}

#[test]
fn form_body_operations() {
    let config = body_edits();
    let request = Request::new("POST", "/")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("password=p&user=alice&role=admin&tag=old&other=%7E");
    let sent = upstream(config, request);
    assert_eq!(sent.body.as_deref(), Some("username=alice&role=guest&tag=old&other=%7E&added=a%20b&tag=new"));
}

/// Kong's multipart edits: rename first, then remove, replace, add (and append, which Kong leaves
/// out for multipart); parts left alone, files too, keep their bytes.
#[test]
fn multipart_body_operations() {
    let config = body_edits();
    let part = |head: &str, value: &str| format!("--b\r\n{head}\r\n\r\n{value}\r\n");
    let field = |name: &str| format!("Content-Disposition: form-data; name=\"{name}\"");
    let file = "Content-Disposition: form-data; name=\"doc\"; filename=\"a.txt\"\r\nContent-Type: text/plain";
    let body = [
        part(&field("password"), "p"),
        part(&field("user"), "alice"),
        part(&field("role"), "admin"),
        part(file, "line1\r\nline2"),
        "--b--\r\n".to_string(),
    ]
    .concat();
    let request = Request::new("POST", "/").header("Content-Type", "multipart/form-data; boundary=b").body(&body);
    let sent = upstream(config.clone(), request);
    let expected = [
        part(file, "line1\r\nline2"),
        part(&field("username"), "alice"),
        part(&field("role"), "guest"),
        part(&field("added"), "a b"),
        part(&field("tag"), "new"),
        "--b--\r\n".to_string(),
    ]
    .concat();
    assert_eq!(sent.body.as_deref(), Some(expected.as_str()));

    // A body that is not the multipart its Content-Type says is refused, not sent unedited.
    let broken = Request::new("POST", "/")
        .header("Content-Type", "multipart/form-data; boundary=b")
        .body("--b\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\np");
    let outcome = Plugin::built().unwrap().run(config.clone(), broken).unwrap();
    let exit = outcome.exit.expect("answered by the plugin");
    assert_eq!(exit.status, Some(400));
    assert_eq!(exit.body.as_deref(), Some(r#"{"message":"Invalid multipart/form-data body"}"#));
    let no_boundary = Request::new("POST", "/").header("Content-Type", "multipart/form-data").body("x");
    assert_eq!(Plugin::built().unwrap().run(config, no_boundary).unwrap().exit.unwrap().status, Some(400));
}

#[test]
fn other_bodies_are_left_alone() {
    let config = json!({"remove": {"body": ["password"]}, "add": {"body": ["x:y"]}});
    let text = Request::new("POST", "/").header("Content-Type", "text/plain").body("password=p");
    assert_eq!(upstream(config, text).body.as_deref(), Some("password=p"));
}

#[test]
fn the_method_and_path_change() {
    let config = json!({"http_method": "GET", "replace": {"uri": "/v2/users/$(headers.x_user)"}});
    let request = Request::new("POST", "/v1/me?a=1")
        .header("X-User", "alice")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("b=2&a=3");
    let sent = upstream(config, request);
    assert_eq!(sent.method.as_deref(), Some("GET"));
    assert_eq!(sent.path.as_deref(), Some("/v2/users/alice"));
    assert_eq!(sent.query.as_deref(), Some("a=1&b=2&a=3"), "a form body's fields join the query for GET");
    let put = upstream(json!({"http_method": "PUT"}), Request::new("POST", "/"));
    assert_eq!(put.method.as_deref(), Some("PUT"));
    // The new path goes upstream escaped as Kong's set_path escapes it, whatever a template put in.
    let config = json!({"replace": {"uri": "/a b/\u{e9}/$(headers.x_user)"}});
    let sent = upstream(config, Request::get("/").header("X-User", "x\"y"));
    assert_eq!(sent.path.as_deref(), Some("/a%20b/%C3%A9/x%22y"));
}

#[test]
fn configurations_kong_refuses_or_lua_needs_are_refused() {
    let plugin = Plugin::built().unwrap();
    let refused = |config: Value| plugin.check(config).unwrap().unwrap_err();
    let errors = refused(json!({"http_method": "HELLO!"}));
    assert_eq!((errors[0].path.as_str(), errors[0].message.as_str()), ("http_method", "invalid value: HELLO!"));
    let errors = refused(json!({"add": {"querystring": ["p:"]}}));
    assert_eq!((errors[0].path.as_str(), errors[0].message.as_str()), ("add.querystring[0]", "key 'p' has no value"));
    let errors = refused(json!({"replace": {"uri": "/$(uri_captures.id)"}}));
    assert_eq!(errors[0].path, "replace.uri");
    let errors = refused(json!({"rename": {"headers": ["x-a:x b"]}}));
    assert_eq!(
        (errors[0].path.as_str(), errors[0].message.as_str()),
        ("rename.headers[0]", "'x b' is not a valid header")
    );
    let filled = plugin.check(json!({})).unwrap().unwrap();
    assert_eq!(filled["replace"], json!({"body": [], "headers": [], "querystring": [], "uri": null}));
}
