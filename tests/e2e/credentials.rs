//! Consumers' credentials through the Admin API, as Kong serves them: nested under a consumer
//! (`/consumers/{c}/key-auth`, `/basic-auth`, `/jwt`, `/acls`) and at the top level (`/key-auths`,
//! `/basic-auths`, `/jwts`, `/acls`); generated keys and secrets, hashed passwords, every error
//! class, the cascade when the consumer goes, and `/config` round trips.

use gateway_tests::{http_json, http_request, poll};
use serde_json::{Value, json};

use crate::admin::{get, start};

fn data(v: &Value) -> Vec<Value> {
    v["data"].as_array().cloned().unwrap_or_default()
}

#[test]
fn credentials_are_served_nested_and_top_level_with_kongs_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), &[]);
    let alice = http_json(node.admin, "POST", "/consumers", &json!({"username": "alice", "custom_id": "a-1"}));
    assert_eq!(alice.status, 201);
    let alice_id = alice.json()["id"].as_str().unwrap().to_string();
    let bob = http_json(node.admin, "POST", "/consumers", &json!({"username": "bob"}));
    assert_eq!(bob.status, 201);
    let bob_id = bob.json()["id"].as_str().unwrap().to_string();

    // key-auth: a key given, a key generated, a taken key (409), an unknown consumer (404), a bad
    // field (400).
    let given = http_json(node.admin, "POST", "/consumers/alice/key-auth", &json!({"key": "alice-key"}));
    assert_eq!(given.status, 201, "{given:?}");
    assert_eq!(given.json()["consumer"]["id"], alice_id);
    let generated = http_json(node.admin, "POST", &format!("/consumers/{alice_id}/key-auth"), &json!({}));
    assert_eq!(generated.status, 201, "{generated:?}");
    let key = generated.json()["key"].as_str().unwrap().to_string();
    assert!(key.len() == 32 && key.bytes().all(|b| b.is_ascii_alphanumeric()), "{key}");
    let taken = http_json(node.admin, "POST", "/consumers/bob/key-auth", &json!({"key": "alice-key"}));
    assert_eq!(taken.status, 409, "{taken:?}");
    assert_eq!(taken.json()["name"], "unique constraint violation");
    assert_eq!(taken.json()["fields"], json!({"key": "alice-key"}));
    assert_eq!(http_json(node.admin, "POST", "/consumers/nobody/key-auth", &json!({})).status, 404);
    let bad = http_json(node.admin, "POST", "/consumers/bob/key-auth", &json!({"key": 42, "colour": "red"}));
    assert_eq!(bad.status, 400, "{bad:?}");
    assert_eq!(bad.json()["name"], "schema violation");
    assert!(bad.json()["fields"]["key"].is_string() && bad.json()["fields"]["colour"].is_string(), "{bad:?}");
    for ttl in [json!(-1), json!(100_000_001), json!("10"), json!(1.5)] {
        let bad = http_json(node.admin, "POST", "/consumers/bob/key-auth", &json!({"ttl": ttl}));
        assert_eq!(
            (bad.status, bad.json()["fields"]["ttl"].as_str()),
            (400, Some("must be an integer between 0 and 100000000")),
            "{ttl}: {bad:?}"
        );
    }

    // Items by id or key, within the consumer; the top-level list has them all.
    assert_eq!(get(node.admin, "/consumers/alice/key-auth/alice-key").json()["key"], "alice-key");
    assert_eq!(get(node.admin, "/consumers/bob/key-auth/alice-key").status, 404, "not bob's");
    assert_eq!(data(&get(node.admin, "/consumers/alice/key-auth").json()).len(), 2);
    assert_eq!(data(&get(node.admin, "/key-auths").json()).len(), 2);
    let patched = http_json(
        node.admin,
        "PATCH",
        &format!("/key-auths/{}", given.json()["id"].as_str().unwrap()),
        &json!({"key": "renamed"}),
    );
    assert_eq!((patched.status, patched.json()["key"].clone()), (200, json!("renamed")));

    // basic-auth: the password is hashed when written and never shown in clear.
    let basic =
        http_json(node.admin, "POST", "/consumers/alice/basic-auth", &json!({"username": "al", "password": "s3cret"}));
    assert_eq!(basic.status, 201, "{basic:?}");
    let hashed = basic.json()["password"].as_str().unwrap().to_string();
    assert!(hashed.starts_with("sha256$") && !hashed.contains("s3cret"), "{hashed}");
    let missing = http_json(node.admin, "POST", "/consumers/bob/basic-auth", &json!({"username": "bo"}));
    assert_eq!((missing.status, missing.json()["fields"]["password"].clone()), (400, json!("required field missing")));
    let repassed = http_json(node.admin, "PATCH", "/consumers/alice/basic-auth/al", &json!({"password": "other"}));
    assert_eq!(repassed.status, 200, "{repassed:?}");
    let rehashed = repassed.json()["password"].as_str().unwrap().to_string();
    assert!(rehashed.starts_with("sha256$") && rehashed != hashed, "{rehashed}");
    // A password that looks like Kong's stored hash (40 hex digits, as `openssl rand -hex 20`
    // makes) is still a clear password when written here: hashed like any other.
    let hexlike = "0123456789abcdef0123456789abcdef01234567";
    let hexed =
        http_json(node.admin, "POST", "/consumers/bob/basic-auth", &json!({"username": "bo", "password": hexlike}));
    assert_eq!(hexed.status, 201, "{hexed:?}");
    assert!(hexed.json()["password"].as_str().unwrap().starts_with("sha256$"), "{hexed:?}");
    let put = http_json(node.admin, "PUT", "/consumers/bob/basic-auth/bo", &json!({"password": hexlike}));
    assert_eq!(put.status, 200, "{put:?}");
    assert!(put.json()["password"].as_str().unwrap().starts_with("sha256$"), "{put:?}");
    assert_eq!(http_request(node.admin, "DELETE", "/consumers/bob/basic-auth/bo", &[]).unwrap().status, 204);
    let untouched = http_json(node.admin, "PATCH", "/consumers/alice/basic-auth/al", &json!({"tags": ["t"]}));
    assert_eq!(
        untouched.json()["password"],
        json!(rehashed),
        "a PATCH without a password keeps the hash, unhashed again"
    );

    // Every kind's error classes: a taken unique field 409, an unknown consumer 404, a bad field 400.
    let taken = http_json(node.admin, "POST", "/consumers/bob/basic-auth", &json!({"username": "al", "password": "x"}));
    assert_eq!((taken.status, taken.json()["fields"].clone()), (409, json!({"username": "al"})), "{taken:?}");
    assert_eq!(http_json(node.admin, "POST", "/consumers/alice/jwt", &json!({"key": "alice-iss"})).status, 201);
    let taken = http_json(node.admin, "POST", "/consumers/bob/jwt", &json!({"key": "alice-iss"}));
    assert_eq!((taken.status, taken.json()["fields"].clone()), (409, json!({"key": "alice-iss"})), "{taken:?}");
    for path in ["/consumers/nobody/basic-auth", "/consumers/nobody/jwt", "/consumers/nobody/acls"] {
        let unknown = http_json(node.admin, "POST", path, &json!({"username": "u", "password": "p", "group": "g"}));
        assert_eq!(unknown.status, 404, "{path}: {unknown:?}");
    }
    for (path, body, field) in [
        ("/consumers/bob/basic-auth", json!({"username": 7, "password": "p"}), "username"),
        ("/consumers/bob/jwt", json!({"secret": ["not", "a", "string"]}), "secret"),
        ("/consumers/bob/acls", json!({}), "group"),
    ] {
        let bad = http_json(node.admin, "POST", path, &body);
        assert_eq!((bad.status, bad.json()["name"].as_str()), (400, Some("schema violation")), "{path}: {bad:?}");
        assert!(bad.json()["fields"][field].is_string(), "{path}: {bad:?}");
    }

    // jwt: key and secret generated; an asymmetric algorithm needs a usable public key.
    let jwt = http_json(node.admin, "POST", "/consumers/alice/jwt", &json!({}));
    assert_eq!(jwt.status, 201, "{jwt:?}");
    assert_eq!(jwt.json()["algorithm"], "HS256");
    assert_eq!(jwt.json()["secret"].as_str().unwrap().len(), 32);
    let rs =
        http_json(node.admin, "POST", "/consumers/alice/jwt", &json!({"algorithm": "RS256", "rsa_public_key": "nope"}));
    assert_eq!(rs.status, 400, "{rs:?}");
    assert!(rs.json()["fields"]["rsa_public_key"].as_str().unwrap().starts_with("invalid key"), "{rs:?}");
    let unsupported = http_json(node.admin, "POST", "/consumers/alice/jwt", &json!({"algorithm": "EdDSA"}));
    assert_eq!(unsupported.status, 400, "{unsupported:?}");
    assert_eq!(data(&get(node.admin, "/jwts").json()).len(), 2);

    // acls: by group within the consumer; a group twice for one consumer is a clash.
    assert_eq!(http_json(node.admin, "POST", "/consumers/alice/acls", &json!({"group": "gold"})).status, 201);
    assert_eq!(http_json(node.admin, "POST", "/consumers/bob/acls", &json!({"group": "gold"})).status, 201);
    assert_eq!(http_json(node.admin, "POST", "/consumers/alice/acls", &json!({"group": "gold"})).status, 409);
    assert_eq!(get(node.admin, "/consumers/alice/acls/gold").json()["group"], "gold");
    assert_eq!(data(&get(node.admin, "/acls").json()).len(), 2);
    // A group names an ACL only within its consumer: at the top level, only the id does (both
    // consumers have `gold`).
    assert_eq!(get(node.admin, "/acls/gold").status, 404);
    assert_eq!(http_request(node.admin, "DELETE", "/acls/gold", &[]).unwrap().status, 204, "nothing named so");
    let bobs_gold = get(node.admin, "/consumers/bob/acls/gold").json()["id"].as_str().unwrap().to_string();
    assert_eq!(get(node.admin, &format!("/acls/{bobs_gold}")).json()["consumer"]["id"], bob_id);
    // Kong's `/{credentials}/{id}/consumer`: the consumer a credential belongs to.
    assert_eq!(get(node.admin, &format!("/acls/{bobs_gold}/consumer")).json()["username"], "bob");
    assert_eq!(get(node.admin, "/key-auths/renamed/consumer").json()["id"], alice_id);
    assert_eq!(get(node.admin, "/basic-auths/al/consumer").json()["username"], "alice");
    assert_eq!(get(node.admin, "/key-auths/nothing/consumer").status, 404);
    let write = http_json(node.admin, "PATCH", "/key-auths/renamed/consumer", &json!({"username": "x"}));
    assert_eq!(write.status, 405, "{write:?}");
    assert_eq!(data(&get(node.admin, "/acls").json()).len(), 2, "both groups are still there");

    // `/config` carries them; into a fresh node, the same configuration: the hash is not hashed
    // again, the generated key is kept.
    let exported = get(node.admin, "/config").json();
    let yaml = exported["config"].as_str().unwrap().to_string();
    assert!(yaml.contains("keyauth_credentials") && yaml.contains(&key) && !yaml.contains("s3cret"), "{yaml}");
    let other_dir = tempfile::tempdir().unwrap();
    let other = start(other_dir.path(), &[]);
    let imported = gateway_tests::http_send(
        other.admin,
        "POST",
        "/config",
        &[("Content-Type", "text/yaml")],
        Some(yaml.as_bytes()),
    )
    .unwrap();
    assert_eq!(imported.status, 201, "{imported:?}");
    assert_eq!(imported.json()["configuration_hash"], exported["configuration_hash"]);
    assert_eq!(get(other.admin, "/consumers/alice/basic-auth/al").json()["password"], json!(rehashed));
    assert_eq!(get(other.admin, &format!("/key-auths/{key}")).json()["key"], json!(key), "by key at the top level too");
    assert_eq!(get(other.admin, &format!("/consumers/alice/key-auth/{key}")).json()["key"], json!(key));

    // Kong's `no_consumer`: an authentication plugin (or cors) cannot be scoped to a consumer.
    let nested = http_json(node.admin, "POST", "/consumers/bob/plugins", &json!({"name": "key-auth"}));
    assert_eq!(nested.status, 400, "{nested:?}");
    assert!(
        nested.json()["fields"]["consumer"].as_str().unwrap().contains("cannot be applied to a consumer"),
        "{nested:?}"
    );
    let flat = http_json(node.admin, "POST", "/plugins", &json!({"name": "cors", "consumer": {"username": "bob"}}));
    assert_eq!(flat.status, 400, "{flat:?}");
    assert!(flat.json()["fields"]["consumer"].is_string(), "{flat:?}");
    let limit = http_json(
        node.admin,
        "POST",
        "/consumers/bob/plugins",
        &json!({"name": "rate-limiting", "config": {"minute": 5}}),
    );
    assert_eq!(limit.status, 201, "a rate limit per consumer is fine: {limit:?}");

    // Deleting the consumer deletes its credentials, of every kind.
    assert_eq!(http_request(node.admin, "DELETE", "/consumers/alice", &[]).unwrap().status, 204);
    assert!(data(&get(node.admin, "/key-auths").json()).is_empty());
    assert!(data(&get(node.admin, "/basic-auths").json()).is_empty());
    assert!(data(&get(node.admin, "/jwts").json()).is_empty());
    assert_eq!(data(&get(node.admin, "/acls").json()).len(), 1, "bob's stays");
}

/// Kong's `ttl` on keys: given in seconds, shown as the seconds left, and once it runs out the key
/// neither authenticates nor is listed, and another may take it.
#[test]
fn a_key_with_a_ttl_stops_working_when_it_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), &[]);
    assert_eq!(http_json(node.admin, "POST", "/consumers", &json!({"username": "tmp"})).status, 201);
    assert_eq!(
        http_json(node.admin, "POST", "/services", &json!({"name": "s", "url": "http://127.0.0.1:9"})).status,
        201
    );
    assert_eq!(http_json(node.admin, "POST", "/services/s/routes", &json!({"name": "r", "paths": ["/r"]})).status, 201);
    for plugin in [json!({"name": "key-auth"}), json!({"name": "request-termination", "config": {"status_code": 200}})]
    {
        assert_eq!(http_json(node.admin, "POST", "/routes/r/plugins", &plugin).status, 201);
    }
    let forever = http_json(node.admin, "POST", "/consumers/tmp/key-auth", &json!({"key": "lasting", "ttl": 0}));
    assert_eq!((forever.status, forever.json().get("ttl").cloned()), (201, None), "0: it never expires");
    let through = |key: &str| http_request(node.proxy, "GET", "/r", &[("apikey", key)]).unwrap().status;
    poll("the route's plugins to be ready", gateway_tests::DEADLINE, || (through("lasting") == 200).then_some(()));
    // A form's ttl is a number too, as in Kong.
    let formed = gateway_tests::http_form(node.admin, "POST", "/consumers/tmp/key-auth", "key=formed&ttl=3600");
    assert_eq!(formed.status, 201, "{formed:?}");
    assert!(formed.json()["ttl"].as_i64().is_some_and(|left| (3598..=3600).contains(&left)), "{formed:?}");

    let key = http_json(node.admin, "POST", "/consumers/tmp/key-auth", &json!({"key": "brief", "ttl": 4}));
    assert_eq!(key.status, 201, "{key:?}");
    let left = key.json()["ttl"].as_i64().unwrap();
    assert!((3..=4).contains(&left), "the seconds left: {key:?}");
    assert_eq!(through("brief"), 200, "it works while it lasts");

    poll("the key to run out", gateway_tests::DEADLINE, || (through("brief") == 401).then_some(()));
    assert_eq!(get(node.admin, "/key-auths/brief").status, 404);
    assert_eq!(data(&get(node.admin, "/consumers/tmp/key-auth").json()).len(), 2, "the lasting and the formed");
    assert_eq!(through("lasting"), 200);
    // The next write sweeps it from the store and the configuration.
    let expired_id = key.json()["id"].as_str().unwrap().to_string();
    assert_eq!(http_json(node.admin, "PATCH", "/consumers/tmp", &json!({"tags": ["t"]})).status, 200);
    let exported = get(node.admin, "/config").json()["config"].as_str().unwrap().to_string();
    assert!(!exported.contains(&expired_id), "{exported}");
    let again = http_json(node.admin, "POST", "/consumers/tmp/key-auth", &json!({"key": "brief"}));
    assert_eq!(again.status, 201, "the expired key's value is free again: {again:?}");
    assert_eq!(through("brief"), 200);
}
