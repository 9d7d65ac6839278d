//! The jwt plugin on real requests, through the gateway's plugin host (`gateway plugin run`), with
//! tokens signed here: HS256 with a shared secret, RS256 and ES256 with keys generated per run.
//! Run: `cargo build --release --target wasm32-wasip2 -p jwt && cargo test --target host-tuple -p jwt`.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gateway_plugin_test::{Outcome, Plugin, Request};
use hmac::{Hmac, Mac};
use p256::pkcs8::EncodePublicKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{Value, json};
use sha2::Sha256;

const ALICE: &str = "2e1fcd8f-5cba-4c64-9a5f-2a2b3b0c1d01";
const BOB: &str = "2e1fcd8f-5cba-4c64-9a5f-2a2b3b0c1d02";
const CAROL: &str = "2e1fcd8f-5cba-4c64-9a5f-2a2b3b0c1d03";
const GUEST: &str = "2e1fcd8f-5cba-4c64-9a5f-2a2b3b0c1d04";
const ALICE_SECRET_ID: &str = "7c0d1a52-6a0e-4b8e-8f7e-1c1c1c1c1c01";
const SECRET: &str = "alice's shared secret";

struct Keys {
    rsa: rsa::pkcs1v15::SigningKey<Sha256>,
    rsa_pem: String,
    other_rsa: rsa::pkcs1v15::SigningKey<Sha256>,
    ec: p256::ecdsa::SigningKey,
    ec_pem: String,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut rng = rand::thread_rng();
        let private = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let rsa_pem = private.to_public_key().to_public_key_pem(Default::default()).unwrap();
        let other = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let ec = p256::ecdsa::SigningKey::random(&mut rng);
        let ec_pem = ec.verifying_key().to_public_key_pem(Default::default()).unwrap();
        Keys {
            rsa: rsa::pkcs1v15::SigningKey::new(private),
            rsa_pem,
            other_rsa: rsa::pkcs1v15::SigningKey::new(other),
            ec,
            ec_pem,
        }
    })
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with these claims, signed by `sign` over `header.claims`.
fn token(alg: &str, claims: Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        b64(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = sign(input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

fn hs256(secret: &[u8]) -> impl Fn(&[u8]) -> Vec<u8> {
    let secret = secret.to_vec();
    move |input| {
        let mut mac = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
        mac.update(input);
        mac.finalize().into_bytes().to_vec()
    }
}

fn rs256(key: &'static rsa::pkcs1v15::SigningKey<Sha256>) -> impl Fn(&[u8]) -> Vec<u8> {
    move |input| key.sign(input).to_vec()
}

fn es256(input: &[u8]) -> Vec<u8> {
    let signature: p256::ecdsa::Signature = keys().ec.sign(input);
    signature.to_bytes().to_vec()
}

fn alice_token(claims: Value) -> String {
    token("HS256", claims, hs256(SECRET.as_bytes()))
}

fn consumers() -> Value {
    let keys = keys();
    json!([
        {"id": ALICE, "username": "alice", "custom_id": "a-1",
         "jwt_secrets": [{"id": ALICE_SECRET_ID, "key": "alice-key", "secret": SECRET}]},
        {"id": BOB, "username": "bob",
         "jwt_secrets": [{"key": "bob-rsa", "algorithm": "RS256", "rsa_public_key": keys.rsa_pem},
                         {"key": "bob-b64", "secret": b64(b"raw secret bytes")}]},
        {"id": CAROL, "username": "carol",
         "jwt_secrets": [{"key": "carol-ec", "algorithm": "ES256", "rsa_public_key": keys.ec_pem}]},
        {"id": GUEST, "username": "guest"},
    ])
}

fn run(config: Value, request: Request) -> Outcome {
    let outcome = Plugin::built().unwrap().run_with_consumers(config, request, consumers()).unwrap();
    assert!(outcome.config_errors.is_empty(), "{:?}", outcome.config_errors);
    outcome
}

fn bearer(token: &str) -> Request {
    Request::get("/").header("Authorization", &format!("Bearer {token}"))
}

/// The 401 the plugin answered: its body and `WWW-Authenticate`.
fn denied(outcome: &Outcome) -> (Value, String) {
    assert_eq!(outcome.error, None);
    let exit = outcome.exit.as_ref().unwrap_or_else(|| panic!("not denied: {outcome:?}"));
    assert_eq!(exit.status, Some(401), "{exit:?}");
    assert_eq!(exit.header("content-type"), Some("application/json; charset=utf-8"));
    let body = serde_json::from_str(exit.body.as_deref().unwrap()).unwrap();
    (body, exit.header("www-authenticate").unwrap_or_default().to_string())
}

fn message(outcome: &Outcome) -> String {
    let (body, challenge) = denied(outcome);
    assert_eq!(challenge, r#"Bearer error="invalid_token""#);
    body["message"].as_str().unwrap().to_string()
}

fn assert_passed_as(outcome: &Outcome, consumer: &str, username: &str, key: &str) {
    assert_eq!(outcome.error, None);
    assert!(outcome.exit.is_none(), "denied: {:?}", outcome.exit);
    assert_eq!(outcome.consumer.as_deref(), Some(consumer));
    assert_eq!(outcome.upstream_header("x-consumer-id"), Some(consumer));
    assert_eq!(outcome.upstream_header("x-consumer-username"), Some(username));
    assert_eq!(outcome.upstream_header("x-credential-identifier"), Some(key));
    assert_eq!(outcome.upstream_header("x-anonymous-consumer"), None);
}

#[test]
fn a_good_hs256_token_identifies_the_consumer() {
    let token = alice_token(json!({"iss": "alice-key", "exp": now() + 3600}));
    let request = bearer(&token).header("X-Consumer-Username", "forged").header("X-Anonymous-Consumer", "true");
    let outcome = run(json!({"claims_to_verify": ["exp"]}), request);
    assert_passed_as(&outcome, ALICE, "alice", "alice-key");
    assert_eq!(outcome.upstream_header("x-consumer-custom-id"), Some("a-1"));
    assert_eq!(outcome.credential.as_deref(), Some(ALICE_SECRET_ID));
    assert_eq!(outcome.upstream_header("authorization"), Some(format!("Bearer {token}").as_str()));
    assert_eq!(outcome.shared.get("authenticated_jwt_token"), Some(&token));
}

#[test]
fn the_token_is_found_in_the_query_a_cookie_or_a_named_header() {
    let token = alice_token(json!({"iss": "alice-key"}));
    let outcome = run(json!({}), Request::get(&format!("/?jwt={token}")));
    assert_passed_as(&outcome, ALICE, "alice", "alice-key");

    let config = json!({"uri_param_names": ["t"], "cookie_names": ["session"], "header_names": ["x_token"]});
    let cookie = Request::get("/").header("Cookie", &format!("theme=dark; session={token}"));
    assert_passed_as(&run(config.clone(), cookie), ALICE, "alice", "alice-key");
    let header = Request::get("/").header("X-Token", &format!("bearer {token}"));
    assert_passed_as(&run(config.clone(), header), ALICE, "alice", "alice-key");
    let query = Request::get(&format!("/?t={token}"));
    assert_passed_as(&run(config.clone(), query), ALICE, "alice", "alice-key");
    // Not where it is configured to look.
    let (body, challenge) = denied(&run(config, bearer(&token)));
    assert_eq!((body, challenge.as_str()), (json!({"message": "Unauthorized"}), "Bearer"));
}

#[test]
fn no_token_is_unauthorized_with_a_bare_challenge() {
    let (body, challenge) = denied(&run(json!({}), Request::get("/")));
    assert_eq!(body, json!({"message": "Unauthorized"}));
    assert_eq!(challenge, "Bearer");
    let (_, challenge) = denied(&run(json!({"realm": "api"}), Request::get("/")));
    assert_eq!(challenge, r#"Bearer realm="api""#);
    let (_, challenge) = denied(&run(json!({"realm": "api"}), bearer("x")));
    assert_eq!(challenge, r#"Bearer realm="api", error="invalid_token""#);
    let basic = Request::get("/").header("Authorization", "Basic YTpi");
    assert_eq!(denied(&run(json!({}), basic)).0, json!({"message": "Unauthorized"}));
}

#[test]
fn an_expired_token_is_refused() {
    let config = json!({"claims_to_verify": ["exp"]});
    let expired = alice_token(json!({"iss": "alice-key", "exp": now() - 10}));
    let (body, challenge) = denied(&run(config.clone(), bearer(&expired)));
    assert_eq!(body, json!({"exp": "token expired"}));
    assert_eq!(challenge, r#"Bearer error="invalid_token""#);
    // Unchecked unless configured, as in Kong.
    assert_passed_as(&run(json!({}), bearer(&expired)), ALICE, "alice", "alice-key");
    let early = alice_token(json!({"iss": "alice-key", "nbf": now() + 600, "exp": "tomorrow"}));
    let (body, _) = denied(&run(json!({"claims_to_verify": ["exp", "nbf"]}), bearer(&early)));
    assert_eq!(body, json!({"exp": "must be a number", "nbf": "token not valid yet"}));
}

#[test]
fn a_token_living_beyond_maximum_expiration_is_refused() {
    let config = json!({"claims_to_verify": ["exp"], "maximum_expiration": 600});
    let long = alice_token(json!({"iss": "alice-key", "exp": now() + 3600}));
    assert_eq!(denied(&run(config.clone(), bearer(&long))).0, json!({"exp": "exceeds maximum allowed expiration"}));
    let short = alice_token(json!({"iss": "alice-key", "exp": now() + 60}));
    assert_passed_as(&run(config, bearer(&short)), ALICE, "alice", "alice-key");
    // Without claims_to_verify (Kong takes that configuration) the limit still holds, and a token
    // without `exp` exceeds it, as in Kong.
    let config = json!({"maximum_expiration": 600});
    assert_eq!(denied(&run(config.clone(), bearer(&long))).0, json!({"exp": "exceeds maximum allowed expiration"}));
    let endless = alice_token(json!({"iss": "alice-key"}));
    assert_eq!(denied(&run(config.clone(), bearer(&endless))).0, json!({"exp": "exceeds maximum allowed expiration"}));
    assert_passed_as(&run(config, bearer(&short)), ALICE, "alice", "alice-key");
}

#[test]
fn a_wrong_signature_is_refused() {
    let forged = token("HS256", json!({"iss": "alice-key"}), hs256(b"guessed secret"));
    assert_eq!(message(&run(json!({}), bearer(&forged))), "Invalid signature");
    // The claims changed after signing.
    let good = alice_token(json!({"iss": "alice-key", "admin": false}));
    let mut parts: Vec<&str> = good.split('.').collect();
    let tampered = b64(json!({"iss": "alice-key", "admin": true}).to_string().as_bytes());
    parts[1] = &tampered;
    assert_eq!(message(&run(json!({}), bearer(&parts.join(".")))), "Invalid signature");
}

#[test]
fn an_unknown_key_or_none_is_refused() {
    let unknown = alice_token(json!({"iss": "nobody"}));
    assert_eq!(message(&run(json!({}), bearer(&unknown))), "No credentials found for given 'iss'");
    let missing = alice_token(json!({"sub": "alice"}));
    assert_eq!(message(&run(json!({}), bearer(&missing))), "No mandatory 'iss' in claims");
    let empty = alice_token(json!({"iss": ""}));
    assert_eq!(message(&run(json!({}), bearer(&empty))), "Invalid 'iss' in claims");
    let by_kid = alice_token(json!({"kid": "alice-key"}));
    assert_passed_as(&run(json!({"key_claim_name": "kid"}), bearer(&by_kid)), ALICE, "alice", "alice-key");
}

#[test]
fn the_tokens_algorithm_must_be_its_secrets() {
    // Signed with HS256 over bob's public key text, the classic confusion attack.
    let confused = token("HS256", json!({"iss": "bob-rsa"}), hs256(keys().rsa_pem.as_bytes()));
    assert_eq!(message(&run(json!({}), bearer(&confused))), "Invalid algorithm");
    let rs_for_alice = token("RS256", json!({"iss": "alice-key"}), rs256(&keys().rsa));
    assert_eq!(message(&run(json!({}), bearer(&rs_for_alice))), "Invalid algorithm");
    let none = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(br#"{"iss":"alice-key"}"#));
    assert_eq!(message(&run(json!({}), bearer(&none))), "Bad token; invalid alg");
}

#[test]
fn rs256_tokens() {
    let good = token("RS256", json!({"iss": "bob-rsa", "exp": now() + 60}), rs256(&keys().rsa));
    assert_passed_as(&run(json!({"claims_to_verify": ["exp"]}), bearer(&good)), BOB, "bob", "bob-rsa");
    let other_key = token("RS256", json!({"iss": "bob-rsa"}), rs256(&keys().other_rsa));
    assert_eq!(message(&run(json!({}), bearer(&other_key))), "Invalid signature");
    let expired = token("RS256", json!({"iss": "bob-rsa", "exp": now() - 60}), rs256(&keys().rsa));
    assert_eq!(denied(&run(json!({"claims_to_verify": ["exp"]}), bearer(&expired))).0, json!({"exp": "token expired"}));
}

#[test]
fn es256_tokens() {
    let good = token("ES256", json!({"iss": "carol-ec"}), es256);
    assert_passed_as(&run(json!({}), bearer(&good)), CAROL, "carol", "carol-ec");
    let tampered = token("ES256", json!({"iss": "carol-ec"}), |input| {
        let mut signature = es256(input);
        signature[10] ^= 1;
        signature
    });
    assert_eq!(message(&run(json!({}), bearer(&tampered))), "Invalid signature");
    let der = token("ES256", json!({"iss": "carol-ec"}), |input| {
        let signature: p256::ecdsa::Signature = keys().ec.sign(input);
        signature.to_der().as_bytes().to_vec()
    });
    assert_eq!(message(&run(json!({}), bearer(&der))), "Invalid signature");
}

#[test]
fn base64_secrets() {
    let signed = token("HS256", json!({"iss": "bob-b64"}), hs256(b"raw secret bytes"));
    assert_passed_as(&run(json!({"secret_is_base64": true}), bearer(&signed)), BOB, "bob", "bob-b64");
    assert_eq!(message(&run(json!({}), bearer(&signed))), "Invalid signature");
}

#[test]
fn bad_and_multiple_tokens() {
    assert_eq!(message(&run(json!({}), bearer("not-a-token"))), "Bad token; invalid JSON");
    let one = alice_token(json!({"iss": "alice-key"}));
    let two = alice_token(json!({"iss": "alice-key", "n": 2}));
    let both = Request::get(&format!("/?jwt={two}")).header("Authorization", &format!("Bearer {one}"));
    assert_eq!(message(&run(json!({}), both)), "Multiple tokens provided");
    let same = Request::get(&format!("/?jwt={one}")).header("Authorization", &format!("Bearer {one}"));
    assert_passed_as(&run(json!({}), same), ALICE, "alice", "alice-key");
    assert_eq!(message(&run(json!({}), Request::get("/?jwt"))), "Unrecognizable token");
}

#[test]
fn anonymous_lets_failures_through_as_the_configured_consumer() {
    let outcome = run(json!({"anonymous": "guest"}), Request::get("/").header("X-Credential-Identifier", "forged"));
    assert!(outcome.exit.is_none(), "{outcome:?}");
    assert_eq!(outcome.consumer.as_deref(), Some(GUEST));
    assert_eq!(outcome.upstream_header("x-anonymous-consumer"), Some("true"));
    assert_eq!(outcome.upstream_header("x-consumer-username"), Some("guest"));
    assert_eq!(outcome.upstream_header("x-credential-identifier"), None);
    let by_id = run(json!({"anonymous": GUEST}), bearer("garbage"));
    assert_eq!(by_id.consumer.as_deref(), Some(GUEST));
    // A good token still identifies its consumer.
    let good = alice_token(json!({"iss": "alice-key"}));
    assert_passed_as(&run(json!({"anonymous": "guest"}), bearer(&good)), ALICE, "alice", "alice-key");

    let missing = run(json!({"anonymous": "nobody"}), Request::get("/"));
    let exit = missing.exit.unwrap();
    assert_eq!(exit.status, Some(500));
    assert_eq!(exit.error_json(), json!({"message": "anonymous consumer nobody is configured but doesn't exist"}));
}

#[test]
fn preflight_requests_pass_when_configured() {
    let options = || Request::new("OPTIONS", "/");
    assert!(run(json!({"run_on_preflight": false}), options()).exit.is_none());
    assert_eq!(denied(&run(json!({}), options())).0, json!({"message": "Unauthorized"}));
}

#[test]
fn kongs_schema_is_checked_at_write_time() {
    let plugin = Plugin::built().unwrap();
    let errors = plugin.check(json!({"maximum_expiration": 60, "claims_to_verify": ["nbf"]})).unwrap().unwrap_err();
    assert_eq!((errors[0].path.as_str(), errors[0].message.as_str()), ("claims_to_verify", "expected to contain: exp"));
    let errors = plugin.check(json!({"claims_to_verify": ["iat"]})).unwrap().unwrap_err();
    assert_eq!(errors[0].path, "claims_to_verify[0]");
    let errors = plugin.check(json!({"algorithm": "HS256"})).unwrap().unwrap_err();
    assert_eq!((errors[0].path.as_str(), errors[0].message.as_str()), ("algorithm", "unknown field"));
    let filled = plugin.check(json!({})).unwrap().unwrap();
    assert_eq!(filled["uri_param_names"], json!(["jwt"]));
    assert_eq!(filled["header_names"], json!(["authorization"]));
}
