//! Kong's everyday plugins, bundled as wasm components, through the real binary: one declarative
//! file with consumers, their credentials and the plugins, served by a DB-less node and by a data
//! plane fed the same file by its control plane, each answering every case as Kong does.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use gateway_tests::{DbLess, EchoServer, Exchange, http_send, poll};
use serde_json::{Value, json};

use crate::hybrid::{SYNC_DEADLINE, cluster_dir, start_cp, start_dp};

/// JWTs for the tests, signed with `openssl` (HS256 with a secret, RS256 with a key file).
struct Tokens {
    rsa_key: std::path::PathBuf,
    rsa_public: String,
}

fn b64url(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl runs");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

impl Tokens {
    fn new(dir: &Path) -> Tokens {
        let rsa_key = dir.join("jwt-rsa.key");
        openssl(
            &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", rsa_key.to_str().unwrap()],
            b"",
        );
        let rsa_public =
            String::from_utf8(openssl(&["pkey", "-in", rsa_key.to_str().unwrap(), "-pubout"], b"")).unwrap();
        Tokens { rsa_key, rsa_public }
    }

    fn now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
    }

    fn hs256(&self, secret: &str, claims: Value) -> String {
        let signing =
            format!("{}.{}", b64url(br#"{"alg":"HS256","typ":"JWT"}"#), b64url(claims.to_string().as_bytes()));
        let sig = openssl(&["dgst", "-sha256", "-hmac", secret, "-binary"], signing.as_bytes());
        format!("{signing}.{}", b64url(&sig))
    }

    fn rs256(&self, claims: Value) -> String {
        let signing =
            format!("{}.{}", b64url(br#"{"alg":"RS256","typ":"JWT"}"#), b64url(claims.to_string().as_bytes()));
        let sig = openssl(&["dgst", "-sha256", "-sign", self.rsa_key.to_str().unwrap(), "-binary"], signing.as_bytes());
        format!("{signing}.{}", b64url(&sig))
    }
}

/// The declarative file: every bundled plugin on a route of its own, and three consumers.
fn kong_yml(echo: SocketAddr, tokens: &Tokens) -> String {
    let rsa_public: String = tokens.rsa_public.lines().map(|l| format!("\n        {l}")).collect();
    format!(
        r#"_format_version: "3.0"
services:
- name: s
  url: http://{echo}
  routes:
  - {{name: key, paths: [/key], plugins: [{{name: key-auth}}]}}
  - {{name: key-hidden, paths: [/key-hidden], plugins: [{{name: key-auth, config: {{hide_credentials: true}}}}]}}
  - {{name: key-anon, paths: [/key-anon], plugins: [{{name: key-auth, config: {{anonymous: guest}}}}]}}
  - {{name: basic, paths: [/basic], plugins: [{{name: basic-auth}}]}}
  - {{name: basic-hidden, paths: [/basic-hidden], plugins: [{{name: basic-auth, config: {{hide_credentials: true}}}}]}}
  - {{name: basic-anon, paths: [/basic-anon], plugins: [{{name: basic-auth, config: {{anonymous: guest}}}}]}}
  - {{name: jwt, paths: [/jwt], plugins: [{{name: jwt, config: {{claims_to_verify: [exp]}}}}]}}
  - name: gold
    paths: [/gold]
    plugins: [{{name: key-auth}}, {{name: acl, config: {{allow: [gold]}}}}]
  - name: not-silver
    paths: [/not-silver]
    plugins: [{{name: key-auth}}, {{name: acl, config: {{deny: [silver]}}}}]
  - name: limited
    paths: [/limited]
    plugins: [{{name: key-auth}}, {{name: rate-limiting, config: {{hour: 3, limit_by: consumer}}}}]
  - {{name: scoped, paths: [/scoped], plugins: [{{name: key-auth}}]}}
  # As Kong exports a local rate-limiting: the deprecated redis_* fields filled in from redis.
  - name: limited-ip
    paths: [/limited-ip]
    plugins:
    - name: rate-limiting
      config: {{hour: 2, limit_by: ip, redis_port: 6379, redis_timeout: 2000, redis_database: 0, redis_ssl: false,
        redis_ssl_verify: false, redis_host: null}}
  - name: rl-header
    paths: [/rl-header]
    plugins: [{{name: rate-limiting, config: {{hour: 1, limit_by: header, header_name: X-Client}}}}]
  - {{name: rl-service, paths: [/rl-service], plugins: [{{name: rate-limiting, config: {{hour: 2, limit_by: service}}}}]}}
  - name: rl-path
    paths: [/rl-path]
    plugins: [{{name: rate-limiting, config: {{hour: 2, limit_by: path, path: /rl-path}}}}]
  - name: rl-hidden
    paths: [/rl-hidden]
    plugins: [{{name: rate-limiting, config: {{hour: 5, hide_client_headers: true}}}}]
  - {{name: per-second, paths: [/per-second], plugins: [{{name: rate-limiting, config: {{second: 1}}}}]}}
  - name: limited-then-terminated
    paths: [/limited-then-terminated]
    plugins:
    - {{name: rate-limiting, config: {{minute: 5, limit_by: ip}}}}
    - {{name: request-termination, config: {{status_code: 503, message: closed}}}}
  - name: ip
    paths: [/ip]
    plugins: [{{name: ip-restriction, config: {{allow: [10.0.0.0/8, "2001:db8::/32"]}}}}]
  - name: ip-deny
    paths: [/ip-deny]
    # As Kong exports it: its default protocols name tcp and tls.
    plugins:
    - name: ip-restriction
      protocols: [grpc, grpcs, http, https, tcp, tls]
      config: {{deny: [10.1.2.3, "2001:db8::1"], status: 451, message: Go away}}
  - name: size
    paths: [/size]
    plugins: [{{name: request-size-limiting, config: {{allowed_payload_size: 1, size_unit: kilobytes}}}}]
  - name: size-strict
    paths: [/size-strict]
    plugins:
    - {{name: request-size-limiting, config: {{allowed_payload_size: 1, size_unit: kilobytes, require_content_length: true}}}}
  - name: cors
    paths: [/cors]
    plugins:
    - name: cors
      config: {{origins: ["https://a.example"], credentials: true, max_age: 600, exposed_headers: [X-Exposed]}}
  - name: cors-regex
    paths: [/cors-regex]
    plugins: [{{name: cors, config: {{origins: ['[a-z]+\.example\.org']}}}}]
  - name: cors-continue
    paths: [/cors-continue]
    plugins: [{{name: cors, config: {{origins: ["https://a.example"], preflight_continue: true}}}}]
  - name: rt
    paths: [/rt]
    plugins:
    - name: request-transformer
      config:
        remove: {{headers: [x-drop], querystring: [drop], body: [secret]}}
        rename: {{headers: ["x-old:x-new"], querystring: ["old:new"], body: ["user:username"]}}
        replace: {{headers: ["x-rep:new"], querystring: ["rep:new"], body: ["role:guest"]}}
        add: {{headers: ["x-added:yes"], querystring: ["added:1"], body: ["added:b"]}}
        append: {{headers: ["x-app:2"], querystring: ["app:2"], body: ["tag:new"]}}
  - name: rt-method
    paths: [/rt-method]
    plugins:
    - {{name: request-transformer, config: {{http_method: GET, replace: {{uri: /elsewhere}}}}}}
  - name: rt-host
    paths: [/rt-host]
    plugins: [{{name: request-transformer, config: {{replace: {{headers: ["host:api.internal.example"]}}}}}}]
  - name: ordered
    paths: [/ordered]
    plugins:
    - {{name: request-transformer, config: {{remove: {{headers: [apikey]}}}}}}
    - {{name: key-auth}}
    - {{name: cors, config: {{origins: ["https://a.example"]}}}}
  - name: resp
    paths: [/resp]
    plugins:
    - name: response-transformer
      config:
        remove: {{headers: [x-r-remove], json: [port]}}
        rename: {{headers: ["x-r-old:x-r-new"], json: ["body_len:received"]}}
        replace: {{headers: ["x-r-rep:new"], json: ["method:replaced"]}}
        add: {{headers: ["x-resp:added", "transfer-encoding:gzip"], json: ["extra:1"], json_types: [number]}}
        append: {{headers: ["x-r-app:2"], json: ["path:more"]}}
  - name: resp-headers
    paths: [/resp-headers]
    plugins: [{{name: response-transformer, config: {{add: {{headers: ["x-resp:added"]}}}}}}]
consumers:
- username: alice
  custom_id: a-1
  keyauth_credentials: [{{key: alice-key}}]
  basicauth_credentials: [{{username: alice, password: s3cret}}]
  jwt_secrets: [{{key: alice-iss, secret: alice-secret}}]
  acls: [{{group: gold}}]
- username: bob
  keyauth_credentials: [{{key: bob-key}}]
  jwt_secrets:
  - key: bob-iss
    algorithm: RS256
    rsa_public_key: |{rsa_public}
  acls: [{{group: silver}}]
  plugins: [{{name: rate-limiting, route: scoped, config: {{hour: 1}}}}]
- username: guest
- username: carol
keyauth_credentials:
- {{key: carol-key, consumer: carol}}
- {{key: "carol-clé", consumer: carol}}
"#
    )
}

/// What the node needs besides the file: the client address from `X-Forwarded-For`, so one test
/// client can be many.
fn extra() -> Vec<String> {
    vec!["trusted_ips = 127.0.0.1/32, ::1/128".into(), "real_ip_header = X-Forwarded-For".into()]
}

fn send(proxy: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Exchange {
    http_send(proxy, method, path, headers, body.map(str::as_bytes)).unwrap()
}

fn chunked(proxy: SocketAddr, path: &str, chunks: &[String]) -> Exchange {
    let chunks: Vec<&str> = chunks.iter().map(String::as_str).collect();
    gateway_tests::http_send_chunked(proxy, path, &chunks).unwrap()
}

fn get(proxy: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Exchange {
    send(proxy, "GET", path, headers, None)
}

fn message(reply: &Exchange) -> Value {
    reply.json()["message"].clone()
}

/// What the upstream saw of header `name`.
fn upstream(reply: &Exchange, name: &str) -> Option<String> {
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()["headers"][name].as_str().map(str::to_string)
}

/// Every case, asserted against the node at `proxy` (a fresh one: the rate limits start at zero).
fn answers_as_kong(proxy: SocketAddr, tokens: &Tokens) {
    // key-auth: none, bad, good (the upstream sees who), in the query, hidden, anonymous.
    let none = get(proxy, "/key", &[]);
    assert_eq!((none.status, message(&none)), (401, json!("No API key found in request")), "{none:?}");
    assert_eq!(none.header("www-authenticate"), Some("Key"));
    let bad = get(proxy, "/key", &[("apikey", "nope")]);
    assert_eq!((bad.status, message(&bad)), (401, json!("Unauthorized")), "{bad:?}");
    let good = get(proxy, "/key", &[("apikey", "alice-key")]);
    assert_eq!(upstream(&good, "x-consumer-username").as_deref(), Some("alice"));
    assert_eq!(upstream(&good, "x-consumer-custom-id").as_deref(), Some("a-1"));
    assert!(upstream(&good, "x-consumer-id").is_some_and(|id| id.len() == 36));
    assert!(upstream(&good, "x-credential-identifier").is_some());
    assert_eq!(upstream(&good, "x-anonymous-consumer"), None);
    assert_eq!(upstream(&good, "apikey").as_deref(), Some("alice-key"), "kept unless hide_credentials");
    let query = get(proxy, "/key?apikey=bob-key", &[]);
    assert_eq!(upstream(&query, "x-consumer-username").as_deref(), Some("bob"));
    let hidden = get(proxy, "/key-hidden?apikey=alice-key&x=1", &[]);
    assert_eq!(upstream(&hidden, "x-consumer-username").as_deref(), Some("alice"));
    assert_eq!(hidden.json()["path"], "/?x=1", "the key left the query (the route path is stripped)");
    let hidden = get(proxy, "/key-hidden", &[("apikey", "alice-key")]);
    assert_eq!(upstream(&hidden, "apikey"), None, "the key left the headers");
    let anon = get(proxy, "/key-anon", &[]);
    assert_eq!(upstream(&anon, "x-consumer-username").as_deref(), Some("guest"));
    assert_eq!(upstream(&anon, "x-anonymous-consumer").as_deref(), Some("true"));
    let top_level = get(proxy, "/key", &[("apikey", "carol-key")]);
    assert_eq!(upstream(&top_level, "x-consumer-username").as_deref(), Some("carol"), "a top-level credential");
    let utf8 = get(proxy, "/key", &[("apikey", "carol-clé")]);
    assert_eq!(
        upstream(&utf8, "x-consumer-username").as_deref(),
        Some("carol"),
        "a key in UTF-8, read as Kong reads it"
    );
    let forged = get(
        proxy,
        "/key",
        &[("apikey", "bob-key"), ("X-Consumer-Username", "alice"), ("X_Consumer_Username", "alice"), ("X_Other", "1")],
    );
    assert_eq!(upstream(&forged, "x-consumer-username").as_deref(), Some("bob"), "a client cannot forge who it is");
    assert_eq!(
        upstream(&forged, "x_consumer_username"),
        None,
        "not with underscores either (HTTP_X_CONSUMER_USERNAME)"
    );
    assert_eq!(upstream(&forged, "x_other").as_deref(), Some("1"), "other underscored headers go through");

    // basic-auth.
    let basic = |user_pass: &str| {
        let encoded = openssl(&["base64", "-A"], user_pass.as_bytes());
        let value = format!("Basic {}", String::from_utf8(encoded).unwrap());
        get(proxy, "/basic", &[("Authorization", &value)])
    };
    let good = basic("alice:s3cret");
    assert_eq!(upstream(&good, "x-consumer-username").as_deref(), Some("alice"));
    let wrong = basic("alice:guess");
    assert_eq!((wrong.status, message(&wrong)), (401, json!("Unauthorized")), "{wrong:?}");
    assert_eq!(wrong.header("www-authenticate"), Some(r#"Basic realm="service""#));
    assert_eq!(get(proxy, "/basic", &[]).status, 401);
    let encoded = String::from_utf8(openssl(&["base64", "-A"], b"alice:s3cret")).unwrap();
    let hidden = get(proxy, "/basic-hidden", &[("Authorization", &format!("Basic {encoded}"))]);
    assert_eq!(upstream(&hidden, "x-consumer-username").as_deref(), Some("alice"));
    assert_eq!(upstream(&hidden, "authorization"), None, "hide_credentials");
    let anon = get(proxy, "/basic-anon", &[]);
    assert_eq!(upstream(&anon, "x-consumer-username").as_deref(), Some("guest"));
    assert_eq!(upstream(&anon, "x-anonymous-consumer").as_deref(), Some("true"));

    // jwt: HS256 and RS256, good, expired, wrong signature, unknown key.
    let exp = Tokens::now() + 600;
    let bearer = |token: String| get(proxy, "/jwt", &[("Authorization", &format!("Bearer {token}"))]);
    let good = bearer(tokens.hs256("alice-secret", json!({"iss": "alice-iss", "exp": exp})));
    assert_eq!(upstream(&good, "x-consumer-username").as_deref(), Some("alice"));
    let good = bearer(tokens.rs256(json!({"iss": "bob-iss", "exp": exp})));
    assert_eq!(upstream(&good, "x-consumer-username").as_deref(), Some("bob"));
    let in_query =
        get(proxy, &format!("/jwt?jwt={}", tokens.hs256("alice-secret", json!({"iss": "alice-iss", "exp": exp}))), &[]);
    assert_eq!(upstream(&in_query, "x-consumer-username").as_deref(), Some("alice"));
    let expired = bearer(tokens.hs256("alice-secret", json!({"iss": "alice-iss", "exp": Tokens::now() - 60})));
    assert_eq!((expired.status, expired.json()["exp"].clone()), (401, json!("token expired")), "{expired:?}");
    let forged = bearer(tokens.hs256("not-the-secret", json!({"iss": "alice-iss", "exp": exp})));
    assert_eq!((forged.status, message(&forged)), (401, json!("Invalid signature")), "{forged:?}");
    let unknown = bearer(tokens.hs256("x", json!({"iss": "nobody", "exp": exp})));
    assert_eq!(
        (unknown.status, message(&unknown)),
        (401, json!("No credentials found for given 'iss'")),
        "{unknown:?}"
    );
    // RS256 too: expired, a signature over other claims, a key no consumer has.
    let expired = bearer(tokens.rs256(json!({"iss": "bob-iss", "exp": Tokens::now() - 60})));
    assert_eq!((expired.status, expired.json()["exp"].clone()), (401, json!("token expired")), "{expired:?}");
    let signed = tokens.rs256(json!({"iss": "bob-iss", "exp": exp}));
    let (head, rest) = signed.split_once('.').unwrap();
    let signature = rest.split_once('.').unwrap().1;
    let other_claims = b64url(json!({"iss": "bob-iss", "exp": exp, "admin": true}).to_string().as_bytes());
    let forged = bearer(format!("{head}.{other_claims}.{signature}"));
    assert_eq!((forged.status, message(&forged)), (401, json!("Invalid signature")), "{forged:?}");
    let unknown = bearer(tokens.rs256(json!({"iss": "nobody", "exp": exp})));
    assert_eq!(
        (unknown.status, message(&unknown)),
        (401, json!("No credentials found for given 'iss'")),
        "{unknown:?}"
    );
    let confused = bearer(tokens.hs256(&tokens.rsa_public, json!({"iss": "bob-iss", "exp": exp})));
    assert_eq!((confused.status, message(&confused)), (401, json!("Invalid algorithm")), "{confused:?}");
    let no_exp = bearer(tokens.hs256("alice-secret", json!({"iss": "alice-iss"})));
    assert_eq!((no_exp.status, no_exp.json()["exp"].clone()), (401, json!("must be a number")), "{no_exp:?}");
    assert_eq!(get(proxy, "/jwt", &[]).status, 401);

    // acl: allow and deny by group; the upstream sees the groups.
    let gold = get(proxy, "/gold", &[("apikey", "alice-key")]);
    assert_eq!(upstream(&gold, "x-consumer-groups").as_deref(), Some("gold"));
    let refused = get(proxy, "/gold", &[("apikey", "bob-key")]);
    assert_eq!((refused.status, message(&refused)), (403, json!("You cannot consume this service")), "{refused:?}");
    assert_eq!(get(proxy, "/not-silver", &[("apikey", "alice-key")]).status, 200);
    assert_eq!(get(proxy, "/not-silver", &[("apikey", "bob-key")]).status, 403);

    // rate-limiting: per consumer, then per ip, each counted on its own.
    for i in 1..=3 {
        let ok = get(proxy, "/limited", &[("apikey", "alice-key")]);
        assert_eq!(ok.status, 200, "request {i}: {ok:?}");
        assert_eq!(ok.header("x-ratelimit-limit-hour"), Some("3"));
        assert_eq!(ok.header("ratelimit-remaining"), Some((3 - i).to_string().as_str()));
    }
    let limited = get(proxy, "/limited", &[("apikey", "alice-key")]);
    assert_eq!((limited.status, message(&limited)), (429, json!("API rate limit exceeded")), "{limited:?}");
    assert_eq!(limited.header("x-ratelimit-remaining-hour"), Some("0"));
    assert!(limited.header("retry-after").and_then(|v| v.parse::<u64>().ok()).is_some_and(|s| s <= 3600));
    assert!(limited.header("ratelimit-reset").is_some());
    assert_eq!(get(proxy, "/limited", &[("apikey", "bob-key")]).status, 200, "bob has his own count");
    // A limit scoped to one consumer on a route applies once key-auth has said who it is.
    for _ in 0..3 {
        let alice = get(proxy, "/scoped", &[("apikey", "alice-key")]);
        assert_eq!((alice.status, alice.header("x-ratelimit-limit-hour")), (200, None), "not alice's: {alice:?}");
    }
    let first = get(proxy, "/scoped", &[("apikey", "bob-key")]);
    assert_eq!((first.status, first.header("x-ratelimit-limit-hour")), (200, Some("1")), "{first:?}");
    assert_eq!(get(proxy, "/scoped", &[("apikey", "bob-key")]).status, 429, "bob's second in the hour");
    for _ in 0..2 {
        assert_eq!(get(proxy, "/limited-ip", &[("X-Forwarded-For", "10.9.9.9")]).status, 200);
    }
    assert_eq!(get(proxy, "/limited-ip", &[("X-Forwarded-For", "10.9.9.9")]).status, 429);
    assert_eq!(get(proxy, "/limited-ip", &[("X-Forwarded-For", "10.9.9.10")]).status, 200, "another address");
    // limit_by header: each X-Client value its own count.
    assert_eq!(get(proxy, "/rl-header", &[("X-Client", "c1")]).status, 200);
    assert_eq!(get(proxy, "/rl-header", &[("X-Client", "c1")]).status, 429);
    assert_eq!(get(proxy, "/rl-header", &[("X-Client", "c2")]).status, 200, "another header value");
    // limit_by service: one count, whoever sends.
    assert_eq!(get(proxy, "/rl-service", &[("X-Forwarded-For", "10.7.0.1")]).status, 200);
    assert_eq!(get(proxy, "/rl-service", &[("X-Forwarded-For", "10.7.0.2")]).status, 200);
    assert_eq!(get(proxy, "/rl-service", &[("X-Forwarded-For", "10.7.0.3")]).status, 429, "the service's third");
    // limit_by path: the path as the router normalises it (as Kong's get_path() does), so other
    // spellings of it from other addresses share its count.
    assert_eq!(get(proxy, "/rl-path", &[("X-Forwarded-For", "10.8.0.1")]).status, 200);
    assert_eq!(get(proxy, "//rl-path", &[("X-Forwarded-For", "10.8.0.2")]).status, 200);
    assert_eq!(get(proxy, "/%72l-path", &[("X-Forwarded-For", "10.8.0.3")]).status, 429, "the path's third");
    // hide_client_headers: counted, not told.
    let quiet = get(proxy, "/rl-hidden", &[]);
    assert_eq!(quiet.status, 200);
    assert!(quiet.headers.iter().all(|(n, _)| !n.to_ascii_lowercase().contains("ratelimit")), "{quiet:?}");
    // A window that ends lets requests through again.
    let mut limited = false;
    for _ in 0..50 {
        if get(proxy, "/per-second", &[]).status == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "two requests within one second get a 429");
    poll("the next second's window to let a request through", gateway_tests::DEADLINE, || {
        (get(proxy, "/per-second", &[]).status == 200).then_some(())
    });

    // Its headers are set ahead in `access` (as Kong's are): a later plugin's own answer carries
    // them too (request-termination runs after it).
    let closed = get(proxy, "/limited-then-terminated", &[]);
    assert_eq!((closed.status, message(&closed)), (503, json!("closed")), "{closed:?}");
    assert_eq!(closed.header("x-ratelimit-limit-minute"), Some("5"), "{closed:?}");
    assert_eq!(closed.header("ratelimit-remaining"), Some("4"), "{closed:?}");

    // ip-restriction, v4 and v6.
    let from = |path: &str, ip: &str| get(proxy, path, &[("X-Forwarded-For", ip)]);
    assert_eq!(from("/ip", "10.1.2.3").status, 200);
    assert_eq!(from("/ip", "2001:db8::7").status, 200);
    let outside = from("/ip", "192.0.2.1");
    assert_eq!((outside.status, message(&outside)), (403, json!("IP address not allowed: 192.0.2.1")), "{outside:?}");
    assert_eq!(from("/ip", "2001:db9::1").status, 403);
    let denied = from("/ip-deny", "2001:db8::1");
    assert_eq!((denied.status, message(&denied)), (451, json!("Go away")), "{denied:?}");
    assert_eq!(from("/ip-deny", "10.1.2.4").status, 200);

    // request-size-limiting.
    assert_eq!(send(proxy, "POST", "/size", &[], Some(&"x".repeat(1000))).status, 200);
    let large = send(proxy, "POST", "/size", &[], Some(&"x".repeat(2000)));
    assert_eq!((large.status, message(&large)), (413, json!("Request size limit exceeded")), "{large:?}");

    // A chunked body is measured as it comes (no Content-Length to judge by); with
    // require_content_length, a request with neither gets Kong's 411.
    assert_eq!(chunked(proxy, "/size", &["x".repeat(500), "y".repeat(400)]).status, 200);
    let large = chunked(proxy, "/size", &["x".repeat(800), "y".repeat(800)]);
    assert_eq!((large.status, message(&large)), (413, json!("Request size limit exceeded")), "{large:?}");
    let lengthless = get(proxy, "/size-strict", &[]);
    assert_eq!(
        (lengthless.status, message(&lengthless)),
        (411, json!("A valid Content-Length header is required")),
        "{lengthless:?}"
    );
    assert_eq!(chunked(proxy, "/size-strict", &["x".repeat(10)]).status, 200, "chunked is a length");
    assert_eq!(send(proxy, "POST", "/size-strict", &[], Some("x")).status, 200);

    // cors: a preflight answered by the gateway, a simple request decorated.
    let preflight = send(
        proxy,
        "OPTIONS",
        "/cors",
        &[("Origin", "https://a.example"), ("Access-Control-Request-Method", "PUT")],
        None,
    );
    assert_eq!(preflight.status, 200, "{preflight:?}");
    assert_eq!(preflight.header("access-control-allow-origin"), Some("https://a.example"));
    assert_eq!(preflight.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(preflight.header("access-control-max-age"), Some("600"));
    assert!(preflight.header("access-control-allow-methods").is_some_and(|m| m.contains("PUT")));
    let simple = get(proxy, "/cors", &[("Origin", "https://a.example")]);
    assert_eq!(simple.header("access-control-allow-origin"), Some("https://a.example"));
    assert_eq!(simple.header("access-control-expose-headers"), Some("X-Exposed"));
    let other = get(proxy, "/cors", &[("Origin", "https://evil.example")]);
    assert_eq!(other.status, 200);
    assert_ne!(other.header("access-control-allow-origin"), Some("https://evil.example"));

    // An origin matched by a regex (against the host); a preflight passed on to the upstream.
    let matched = get(proxy, "/cors-regex", &[("Origin", "https://api.example.org")]);
    assert_eq!(matched.header("access-control-allow-origin"), Some("https://api.example.org"), "{matched:?}");
    let unmatched = get(proxy, "/cors-regex", &[("Origin", "https://api.example.com")]);
    assert_eq!(unmatched.header("access-control-allow-origin"), None, "{unmatched:?}");
    let continued = send(
        proxy,
        "OPTIONS",
        "/cors-continue",
        &[("Origin", "https://a.example"), ("Access-Control-Request-Method", "PUT")],
        None,
    );
    assert_eq!((continued.status, continued.json()["method"].as_str()), (200, Some("OPTIONS")), "{continued:?}");

    // request-transformer: each operation, on headers, the query string and the body.
    let rt = send(
        proxy,
        "POST",
        "/rt?drop=1&keep=2&old=o&rep=r&app=1",
        &[("x-drop", "1"), ("x-old", "moved"), ("x-rep", "old"), ("x-app", "1"), ("Content-Type", "application/json")],
        Some(r#"{"a":1,"secret":"s","user":"alice","role":"admin","tag":"old"}"#),
    );
    assert_eq!(upstream(&rt, "x-drop"), None);
    assert_eq!(upstream(&rt, "x-new").as_deref(), Some("moved"));
    assert_eq!(upstream(&rt, "x-old"), None);
    assert_eq!(upstream(&rt, "x-rep").as_deref(), Some("new"));
    assert_eq!(upstream(&rt, "x-added").as_deref(), Some("yes"));
    assert_eq!(upstream(&rt, "x-app").as_deref(), Some("1, 2"));
    let path = rt.json()["path"].as_str().unwrap().to_string();
    let (_, query) = path.split_once('?').unwrap();
    let mut args: Vec<&str> = query.split('&').collect();
    args.sort_unstable();
    assert_eq!(args, ["added=1", "app=1", "app=2", "keep=2", "new=o", "rep=new"], "{path}");
    let sent: Value = serde_json::from_str(rt.json()["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent, json!({"a": 1, "username": "alice", "role": "guest", "tag": ["old", "new"], "added": "b"}));
    // The method and the path: a form body's fields go to the query of a GET, as in Kong.
    let moved =
        send(proxy, "POST", "/rt-method", &[("Content-Type", "application/x-www-form-urlencoded")], Some("a=1&b=two"));
    assert_eq!(
        (moved.json()["method"].as_str(), moved.json()["path"].as_str()),
        (Some("GET"), Some("/elsewhere?a=1&b=two"))
    );
    let multipart = "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XyZ--\r\n";
    let rt = send(proxy, "POST", "/rt", &[("Content-Type", "multipart/form-data; boundary=XyZ")], Some(multipart));
    assert_eq!(
        rt.json()["body"].as_str(),
        Some(
            "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n\
             --XyZ\r\nContent-Disposition: form-data; name=\"added\"\r\n\r\nb\r\n\
             --XyZ\r\nContent-Disposition: form-data; name=\"tag\"\r\n\r\nnew\r\n--XyZ--\r\n"
        ),
        "{rt:?}"
    );
    // A Host a plugin sets is the Host sent upstream (Kong's `upstream_host`), where the service's
    // host would go otherwise.
    let moved_host = get(proxy, "/rt-host", &[]);
    assert_eq!(upstream(&moved_host, "host").as_deref(), Some("api.internal.example"), "{moved_host:?}");
    // Set to the value the client sent, it is still the Host sent upstream (set, not changed).
    let same_host = get(proxy, "/rt-host", &[("Host", "api.internal.example")]);
    assert_eq!(upstream(&same_host, "host").as_deref(), Some("api.internal.example"), "{same_host:?}");
    assert_ne!(upstream(&get(proxy, "/rt", &[]), "host").as_deref(), Some("api.internal.example"));
    let broken = send(proxy, "POST", "/rt", &[("Content-Type", "multipart/form-data; boundary=XyZ")], Some("--XyZ"));
    assert_eq!((broken.status, message(&broken)), (400, json!("Invalid multipart/form-data body")), "{broken:?}");

    // Kong's priorities, whatever the order configured: cors (2000) answers a preflight before
    // key-auth (1250) asks for a key; request-transformer (801) edits what key-auth let through.
    let preflight = send(
        proxy,
        "OPTIONS",
        "/ordered",
        &[("Origin", "https://a.example"), ("Access-Control-Request-Method", "GET")],
        None,
    );
    assert_eq!(preflight.status, 200, "{preflight:?}");
    let through = get(proxy, "/ordered", &[("apikey", "alice-key")]);
    assert_eq!(upstream(&through, "x-consumer-username").as_deref(), Some("alice"));
    assert_eq!(upstream(&through, "apikey"), None, "removed after key-auth read it");
    assert_eq!(get(proxy, "/ordered", &[]).status, 401);

    // response-transformer: each operation on the upstream's headers and its JSON body (and the
    // body's length with it).
    let resp = get(
        proxy,
        "/resp",
        &[
            ("X-Echo-Set-X-R-Remove", "1"),
            ("X-Echo-Set-X-R-Old", "moved"),
            ("X-Echo-Set-X-R-Rep", "old"),
            ("X-Echo-Set-X-R-App", "1"),
        ],
    );
    assert_eq!(resp.status, 200, "{resp:?}");
    let values = |name: &str| -> Vec<&str> {
        resp.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    };
    assert!(values("x-r-remove").is_empty() && values("x-r-old").is_empty(), "{resp:?}");
    assert_eq!(values("x-r-new"), ["moved"]);
    assert_eq!(values("x-r-rep"), ["new"]);
    assert_eq!(values("x-resp"), ["added"]);
    assert_eq!(values("x-r-app"), ["1", "2"]);
    // A body the plugin edits goes out without the upstream's Content-Length; one it leaves
    // alone (no JSON edits: `pass-body`) keeps it, as Kong keeps it.
    assert!(values("content-length").is_empty(), "{resp:?}");
    let untouched = get(proxy, "/resp-headers", &[]);
    assert_eq!((untouched.status, untouched.header("x-resp")), (200, Some("added")), "{untouched:?}");
    assert_eq!(untouched.header("content-length"), Some(untouched.body.len().to_string().as_str()), "{untouched:?}");
    // The framing stays the gateway's: a Transfer-Encoding set by a plugin is dropped, as Kong's
    // set_header drops it.
    assert!(values("transfer-encoding").iter().all(|v| v.eq_ignore_ascii_case("chunked")), "{resp:?}");
    let body = resp.json();
    assert_eq!(body.get("port"), None, "{body}");
    assert_eq!(body.get("body_len"), None, "{body}");
    assert_eq!((&body["received"], &body["method"], &body["extra"]), (&json!(0), &json!("replaced"), &json!(1)));
    assert_eq!(body["path"], json!(["/", "more"]));
    assert!(values("content-length").is_empty() || values("content-length") == [resp.body.len().to_string()]);
}

#[test]
fn a_dbless_node_and_a_data_plane_fed_the_same_file_answer_as_kong() {
    let echo = EchoServer::start();
    let dir = cluster_dir();
    let tokens = Tokens::new(dir.path());
    let yaml = kong_yml(echo.addr, &tokens);

    let node = DbLess::start(&yaml, &extra());
    answers_as_kong(node.proxy, &tokens);

    let cp = start_cp(dir.path(), gateway_tests::free_port());
    let posted =
        http_send(cp.admin, "POST", "/config", &[("Content-Type", "text/yaml")], Some(yaml.as_bytes())).unwrap();
    assert_eq!(posted.status, 201, "{posted:?}");
    let dp = start_dp(dir.path(), "dp", cp.cluster, &extra());
    poll("the data plane to serve the file", SYNC_DEADLINE, || {
        (get(dp.proxy, "/key", &[]).status == 401).then_some(())
    });
    answers_as_kong(dp.proxy, &tokens);
}

/// An upstream that answers every request with a JSON object naming the request's path, sent in
/// two chunks with a pause between them, so responses of concurrent requests interleave.
fn chunked_json_upstream() -> SocketAddr {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or_default().to_string();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                        line.clear();
                    }
                    let body = json!({ "path": path, "pad": "x".repeat(512) }).to_string();
                    let (first, second) = body.split_at(body.len() / 2);
                    let stream = reader.get_mut();
                    let head =
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                    let chunk = |s: &str| format!("{:x}\r\n{s}\r\n", s.len());
                    if stream.write_all(format!("{head}{}", chunk(first)).as_bytes()).is_err() {
                        return;
                    }
                    stream.flush().ok();
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    if stream.write_all(format!("{}0\r\n\r\n", chunk(second)).as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn a_body_filter_keeps_each_responses_state_under_concurrent_requests() {
    let upstream = chunked_json_upstream();
    let yaml = format!(
        "_format_version: \"3.0\"\nservices:\n- name: s\n  url: http://{upstream}\n  routes:\n  - name: r\n    paths: [/r]\n    strip_path: false\n    plugins:\n    - name: response-transformer\n      config: {{add: {{json: [\"edited:yes\"]}}, remove: {{json: [pad]}}}}\n"
    );
    let node = DbLess::start(&yaml, &[]);
    let replies: Vec<Exchange> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16).map(|i| scope.spawn(move || get(node.proxy, &format!("/r/{i}"), &[]))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.json(), json!({"path": format!("/r/{i}"), "edited": "yes"}), "{reply:?}");
    }
}
