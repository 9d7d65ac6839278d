//! Property tests for the declarative reader, fed hostile and random input: it never panics, every
//! refusal is a value with a path and a reason, and whatever it accepts reads back equal.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::*;

/// Words the reader knows, so random documents reach deep into it rather than stopping at
/// "unknown field".
const KEYS: &[&str] = &[
    "_format_version",
    "services",
    "routes",
    "consumers",
    "plugins",
    "upstreams",
    "targets",
    "certificates",
    "snis",
    "ca_certificates",
    "keyauth_credentials",
    "basicauth_credentials",
    "jwt_secrets",
    "acls",
    "id",
    "name",
    "host",
    "port",
    "path",
    "url",
    "protocol",
    "protocols",
    "paths",
    "hosts",
    "methods",
    "headers",
    "service",
    "route",
    "consumer",
    "upstream",
    "certificate",
    "username",
    "custom_id",
    "config",
    "enabled",
    "tags",
    "target",
    "weight",
    "strip_path",
    "regex_priority",
    "path_handling",
    "cert",
    "key",
    "instance_name",
    "minute",
    "retries",
    "password",
    "secret",
    "algorithm",
    "rsa_public_key",
    "group",
];

const TEXTS: &[&str] = &[
    "3.0",
    "s1",
    "r1",
    "alice",
    "a.test",
    "*.a.test",
    "/a",
    "~/(?<x>\\d+)",
    "http://a.test:81/v1",
    "http:a",
    "https",
    "http",
    "GET",
    "v1",
    "cors",
    "key-auth",
    "HS256",
    "RS256",
    "sha256$00000000000000000000000000000000$0000000000000000000000000000000000000000000000000000000000000000",
    "10.0.0.1:80",
    "3f0c8a52-61b1-4e8b-9d55-0c2a7a5f1e01",
    "",
    "%",
    "/%a\u{e9}",
    "..",
    "\u{0}",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![prop::sample::select(TEXTS).prop_map(str::to_string), "\\PC{0,12}"]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        prop_oneof![Just(0i64), Just(1), Just(80), Just(65536)].prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 96, 6, |inner| {
        let key = prop_oneof![prop::sample::select(KEYS).prop_map(str::to_string), text()];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..6).prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// A document with the right version and random entity lists.
fn document() -> impl Strategy<Value = Value> {
    let kinds = prop::sample::subsequence(&KEYS[1..14], 0..=4);
    (kinds, prop::collection::vec(json(), 4)).prop_map(|(kinds, values)| {
        let mut doc = Map::new();
        doc.insert("_format_version".into(), Value::String("3.0".into()));
        for (kind, value) in kinds.into_iter().zip(values) {
            let list = match value {
                Value::Array(items) => items,
                other => vec![other],
            };
            doc.insert(kind.to_string(), Value::Array(list));
        }
        Value::Object(doc)
    })
}

fn check(doc: &Value) {
    let plugins = plugins::testing::registry();
    match parse_value_with(doc, &plugins) {
        Ok(config) => {
            let again = parse_value_with(&to_declarative(&config), &plugins).expect("an accepted config reads back");
            assert_eq!(again, config);
            assert_eq!(config_hash(&again), config_hash(&config));
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in errors {
                assert!(!e.path.is_empty() && !e.message.is_empty(), "{e:?}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_documents_are_refused_or_read_back_equal(doc in document()) {
        check(&doc);
    }

    #[test]
    fn any_json_value_is_refused_or_read(doc in json()) {
        check(&doc);
    }

    #[test]
    fn any_text_is_refused_or_read(text in "\\PC{0,200}", is_json in any::<bool>()) {
        let _ = parse_str(&text, is_json, "fuzz.yml");
    }
}
