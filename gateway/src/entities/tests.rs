use super::*;

fn parse(yaml: &str) -> Result<Config, Vec<String>> {
    match parse_str_with(yaml, false, "kong.yml", &plugins::testing::registry()) {
        Ok(config) => Ok(config),
        Err(DeclarativeError::Invalid { errors, .. }) => Err(errors.iter().map(ToString::to_string).collect()),
        Err(other) => Err(vec![other.to_string()]),
    }
}

fn errors(yaml: &str) -> Vec<String> {
    parse(yaml).expect_err("expected the file to be rejected")
}

const GOOD: &str = r#"
_format_version: "3.0"
services:
- name: users
  url: http://users.internal:8080/v1
  routes:
  - name: users-api
    paths: [/users]
    methods: [GET, POST]
    plugins:
    - name: rate-limiting
      config: {minute: 5}
  plugins:
  - name: key-auth
- name: orders
  host: orders-lb
  port: 80
routes:
- name: orders-api
  paths: ["~/orders/(?<id>\\d+)"]
  service: orders
  headers:
    x-version: [v1, "~*^v2"]
- name: orphan
  hosts: ["*.example.com"]
consumers:
- username: alice
  plugins:
  - name: rate-limiting
    config: {minute: 1}
plugins:
- name: cors
  route: orders-api
upstreams:
- name: orders-lb
  targets:
  - target: 127.0.0.1:9001
    weight: 10
  - target: 127.0.0.1
targets:
- target: 127.0.0.1:9003
  upstream: orders-lb
"#;

#[test]
fn a_file_with_nested_and_flat_entities_parses() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.services.len(), 2);
    assert_eq!(c.routes.len(), 3);
    assert_eq!(c.plugins.len(), 4);
    assert_eq!(c.targets.len(), 3);
    let users = c.services.iter().find(|s| s.name.as_deref() == Some("users")).unwrap();
    assert_eq!((users.host.as_str(), users.port, users.path.as_deref()), ("users.internal", 8080, Some("/v1")));
    assert_eq!((users.retries, users.connect_timeout, users.enabled), (5, 60_000, true));
    let api = c.routes.iter().find(|r| r.name.as_deref() == Some("users-api")).unwrap();
    assert_eq!(api.service, Some(Ref { id: users.id }));
    assert!(api.strip_path && !api.preserve_host);
    assert_eq!(api.protocols, vec![Protocol::Http, Protocol::Https]);
    let orders = c.services.iter().find(|s| s.name.as_deref() == Some("orders")).unwrap();
    let orders_api = c.routes.iter().find(|r| r.name.as_deref() == Some("orders-api")).unwrap();
    assert_eq!(orders_api.service, Some(Ref { id: orders.id }));
    let orphan = c.routes.iter().find(|r| r.name.as_deref() == Some("orphan")).unwrap();
    assert_eq!(orphan.service, None);
    let cors = c.plugins.iter().find(|p| p.name == "cors").unwrap();
    assert_eq!(cors.route, Some(Ref { id: orders_api.id }));
    let alice = &c.consumers[0];
    assert!(c.plugins.iter().any(|p| p.consumer == Some(Ref { id: alice.id })));
    assert!(c.targets.iter().any(|t| t.target == "127.0.0.1:8000" && t.weight == 100));
}

#[test]
fn the_same_file_gives_the_same_ids_and_hash() {
    let a = parse(GOOD).unwrap();
    let b = parse(GOOD).unwrap();
    assert_eq!(a, b);
    assert_eq!(config_hash(&a), config_hash(&b));
    assert_eq!(config_hash(&a).len(), 32);
    assert!(config_hash(&a).bytes().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn order_in_the_file_does_not_change_the_config() {
    let one = "_format_version: '3.0'\nservices:\n- {name: a, host: a.test}\n- {name: b, host: b.test}\n";
    let two = "_format_version: '3.0'\nservices:\n- {name: b, host: b.test}\n- {name: a, host: a.test}\n";
    assert_eq!(config_hash(&parse(one).unwrap()), config_hash(&parse(two).unwrap()));
}

#[test]
fn route_order_is_kept_because_it_breaks_ties() {
    let one = parse("_format_version: '3.0'\nroutes:\n- {name: a, paths: [/x]}\n- {name: b, paths: [/x]}\n").unwrap();
    let two = parse("_format_version: '3.0'\nroutes:\n- {name: b, paths: [/x]}\n- {name: a, paths: [/x]}\n").unwrap();
    assert_eq!(one.routes[0].name.as_deref(), Some("a"));
    assert_eq!(two.routes[0].name.as_deref(), Some("b"));
    assert_ne!(config_hash(&one), config_hash(&two));
}

#[test]
fn a_change_changes_the_hash() {
    let one = parse("_format_version: '3.0'\nservices:\n- {name: a, host: a.test}\n").unwrap();
    let two = parse("_format_version: '3.0'\nservices:\n- {name: a, host: a.test, retries: 4}\n").unwrap();
    assert_ne!(config_hash(&one), config_hash(&two));
}

#[test]
fn the_empty_config_hashes_to_zeros() {
    assert_eq!(config_hash(&parse("_format_version: '3.0'\n").unwrap()), EMPTY_HASH);
}

#[test]
fn exporting_and_reading_back_gives_the_same_config() {
    let config = parse(GOOD).unwrap();
    let exported = to_declarative(&config);
    let again = parse_value_with(&exported, &plugins::testing::registry()).unwrap();
    assert_eq!(again, config);
}

#[test]
fn json_files_parse_too() {
    let c =
        parse_str(r#"{"_format_version":"3.0","services":[{"name":"a","host":"a.test"}]}"#, true, "kong.json").unwrap();
    assert_eq!(c.services.len(), 1);
}

#[test]
fn every_error_is_reported_with_its_entity_path() {
    let errs = errors(
        r#"
_format_version: "3.0"
services:
- name: ok
  host: ok.test
- name: bad name
  host: h
  port: 0
- name: s3
  host: s3.test
  routes:
  - name: r
    paths: [/a, b, "~/(", /x//y]
    methods: [get]
    hosts: ["*.a.*"]
    headers: {host: [x]}
    protocols: [http, tcp]
    https_redirect_status_code: 200
    bogus: 1
routes:
- name: norule
  service: missing
"#,
    );
    let expected = [
        "services[1].name: invalid value: it must only contain alphanumeric and '., -, _, ~' characters",
        "services[1].port: value should be between 1 and 65535",
        "services[2].routes[0].paths[1]: must start with / or ~/",
        "services[2].routes[0].paths[2]: invalid regex",
        "services[2].routes[0].paths[3]: non-normalized path",
        "services[2].routes[0].methods[0]: invalid value: get",
        "services[2].routes[0].hosts[0]: only one wildcard is allowed",
        "services[2].routes[0].headers.host: cannot contain 'host' header",
        "services[2].routes[0].protocols[1]: protocol \"tcp\" is not supported yet",
        "services[2].routes[0].https_redirect_status_code: expected one of: 426, 301, 302, 307, 308",
        "services[2].routes[0].bogus: unknown field",
        "routes[0]: must set one of 'methods', 'hosts', 'headers', 'paths', 'snis'",
        "routes[0].service: no service with name \"missing\"",
    ];
    for e in expected {
        assert!(errs.iter().any(|got| got.starts_with(e)), "missing `{e}` in {errs:#?}");
    }
    assert_eq!(errs.len(), expected.len(), "{errs:#?}");
}

#[test]
fn unique_names_are_enforced_naming_both_places() {
    let errs = errors("_format_version: '3.0'\nservices:\n- {name: a, host: x}\n- {name: a, host: y}\n");
    assert_eq!(errs, vec!["services[1].name: service name \"a\" is already used at services[0]"]);
}

#[test]
fn identical_unnamed_routes_are_reported() {
    let errs = errors("_format_version: '3.0'\nroutes:\n- {paths: [/a]}\n- {paths: [/a]}\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("routes[1]: duplicates routes[0]"), "{errs:?}");
}

#[test]
fn format_version_is_required() {
    assert_eq!(errors("services: []\n"), vec!["_format_version: required field missing (use \"3.0\")"]);
    assert!(errors("_format_version: '0.1'\n")[0].contains("unsupported version"));
    assert!(errors("_format_version: 1.1\n")[0].contains("_format_version"), "a number, not the string Kong wants");
}

#[test]
fn a_snis_route_needs_https() {
    let errs = errors("_format_version: '3.0'\nroutes:\n- {name: r, snis: [a.test], protocols: [http]}\n");
    assert_eq!(errs, vec!["routes[0].snis: 'snis' can only be set when 'protocols' includes 'https'"]);
}

#[test]
fn url_and_host_conflict() {
    let errs = errors("_format_version: '3.0'\nservices:\n- {name: a, url: 'http://a.test', host: b}\n");
    assert_eq!(errs, vec!["services[0].host: cannot be set together with url"]);
}

#[test]
fn certificates_must_match_their_keys() {
    let a = crate::certs::cluster_pair(1).unwrap();
    let b = crate::certs::cluster_pair(1).unwrap();
    let doc = serde_json::json!({
        "_format_version": "3.0",
        "certificates": [
            {"cert": a.cert_pem, "key": a.key_pem, "snis": ["a.test"]},
            {"cert": b.cert_pem, "key": a.key_pem, "snis": [{"name": "b.test"}]},
        ]
    });
    let errs: Vec<String> = parse_value(&doc).unwrap_err().iter().map(ToString::to_string).collect();
    assert_eq!(errs, vec!["certificates[1]: certificate does not match key"]);
}

#[test]
fn an_x509_v1_certificate_is_accepted_and_a_bad_part_is_named() {
    let (cert, key) = (include_str!("testdata/v1.crt"), include_str!("testdata/v1.key"));
    let doc = serde_json::json!({"_format_version": "3.0", "certificates": [{"cert": cert, "key": key, "snis": ["v1.test"]}]});
    assert_eq!(parse_value(&doc).unwrap().certificates.len(), 1);
    let doc = serde_json::json!({"_format_version": "3.0", "certificates": [
        {"cert": "junk", "key": key},
        {"cert": cert, "key": "junk", "id": "00000000-0000-4000-8000-000000000001"},
        {"cert": cert, "key": key, "cert_alt": cert, "key_alt": key, "id": "00000000-0000-4000-8000-000000000002"},
    ]});
    let errs: Vec<String> = parse_value(&doc).unwrap_err().iter().map(ToString::to_string).collect();
    assert_eq!(
        errs,
        vec![
            "certificates[0].cert: invalid certificate: no PEM certificate found",
            "certificates[1].key: invalid key: no PEM private key found",
            "certificates[2]: certificate and alternative certificate need to have different type (e.g. RSA and ECDSA), the provided certificates were both of the same type",
        ]
    );
}

#[test]
fn a_services_upstream_tls_fields_are_read_checked_and_exported() {
    let (cert, key) = (include_str!("testdata/v1.crt"), include_str!("testdata/v1.key"));
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_pem = params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().pem();
    let (ca, client) = ("00000000-0000-4000-8000-0000000000ca", "00000000-0000-4000-8000-0000000000c1");
    let doc = |service: serde_json::Value| {
        serde_json::json!({
            "_format_version": "3.0",
            "ca_certificates": [{"id": ca, "cert": ca_pem}],
            "certificates": [{"id": client, "cert": cert, "key": key}],
            "services": [service],
        })
    };
    let good = doc(serde_json::json!({
        "name": "s", "url": "https://up.test", "tls_verify": true, "tls_verify_depth": null,
        "ca_certificates": [ca], "client_certificate": {"id": client},
    }));
    let config = parse_value(&good).unwrap();
    let service = &config.services[0];
    assert_eq!(service.tls_verify, Some(true));
    assert_eq!(service.ca_certificates, vec![uuid::Uuid::parse_str(ca).unwrap()]);
    assert_eq!(service.client_certificate.map(|r| r.id.to_string()).as_deref(), Some(client));
    assert_eq!(parse_value(&to_declarative(&config)).unwrap(), config);

    let refused = |service: serde_json::Value| -> Vec<String> {
        parse_value(&doc(service)).unwrap_err().iter().map(ToString::to_string).collect()
    };
    assert_eq!(
        refused(serde_json::json!({"url": "http://up.test", "client_certificate": {"id": client}, "tls_verify": true})),
        vec![
            "services[0].client_certificate: value must be null unless protocol is https",
            "services[0].tls_verify: value must be null unless protocol is https",
        ]
    );
    assert_eq!(
        refused(serde_json::json!({
            "url": "https://up.test", "tls_verify": false, "tls_verify_depth": 1,
            "ca_certificates": ["00000000-0000-4000-8000-000000000bad", "x"],
            "client_certificate": {"id": "00000000-0000-4000-8000-000000000bad"},
        })),
        vec![
            "services[0].tls_verify: upstream certificates are always verified here: false is not supported",
            "services[0].tls_verify_depth: not supported yet: the chain depth is not limited; leave it null",
            "services[0].ca_certificates[1]: expected a valid UUID",
            "services[0].client_certificate: no certificate with id 00000000-0000-4000-8000-000000000bad",
            "services[0].ca_certificates[0]: no ca_certificate with id 00000000-0000-4000-8000-000000000bad",
        ]
    );
    // An empty list on an http service is Kong's unset.
    assert!(parse_value(&doc(serde_json::json!({"url": "http://up.test", "ca_certificates": []}))).is_ok());
}

#[test]
fn certificate_fields_may_be_vault_references_checked_only_for_their_form() {
    let doc = |cert: &str, key: &str| serde_json::json!({"_format_version": "3.0", "certificates": [{"cert": cert, "key": key, "snis": ["v.test"]}]});
    let config = parse_value(&doc("{vault://env/tls-cert}", "{vault://env/tls/key}")).unwrap();
    assert_eq!(config.certificates[0].cert, "{vault://env/tls-cert}", "kept as written");
    let key = include_str!("testdata/v1.key");
    let errs: Vec<String> =
        parse_value(&doc("{vault://env}", key)).unwrap_err().iter().map(ToString::to_string).collect();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("certificates[0].cert: `{vault://env}` is not a vault reference"), "{errs:?}");
    let errs: Vec<String> =
        parse_value(&doc("{vault://aws/cert}", key)).unwrap_err().iter().map(ToString::to_string).collect();
    assert_eq!(errs, vec!["certificates[0].cert: {vault://aws/cert}: only the env vault is available here, not `aws`"]);
}

#[test]
fn yaml_syntax_errors_name_the_file_and_line() {
    let err = parse_str("_format_version: '3.0'\nservices: [\n", false, "kong.yml").unwrap_err().to_string();
    assert!(err.starts_with("declarative config kong.yml is not valid YAML"), "{err}");
    assert!(err.contains("line"), "{err}");
}

#[test]
fn a_plugin_the_node_cannot_run_is_refused_wherever_it_is_written() {
    // The bundled set is empty: any plugin entity names something no node runs, and storing it
    // would leave its route open (a fail-open).
    let yaml = "_format_version: '3.0'\nplugins:\n- name: key-auth\nservices:\n- name: s\n  host: s.test\n  plugins: [{name: x}]\n";
    let errs: Vec<String> = match parse_str(yaml, false, "kong.yml") {
        Err(DeclarativeError::Invalid { errors, .. }) => errors.iter().map(ToString::to_string).collect(),
        other => panic!("accepted or failed otherwise: {other:?}"),
    };
    assert_eq!(
        errs,
        vec![
            "services[0].plugins[0].name: plugin 'x' not enabled; add it to the 'plugins' configuration property",
            "plugins[0].name: plugin 'key-auth' not enabled; add it to the 'plugins' configuration property",
        ]
    );
    // A registry that has the plugin accepts it; one restricted by the `plugins` setting does not.
    let registry = plugins::testing::registry();
    assert!(parse_str_with(yaml.replace("name: x", "name: cors").as_str(), false, "k", &registry).is_ok());
    let only_cors = registry.only(&["cors".to_string()]);
    let err = parse_str_with("_format_version: '3.0'\nplugins: [{name: key-auth}]\n", false, "k", &only_cors);
    assert!(err.unwrap_err().to_string().contains("plugin 'key-auth' not enabled"));
}

#[test]
fn unknown_plugin_config_fields_are_refused() {
    let errs =
        errors("_format_version: '3.0'\nplugins:\n- {name: rate-limiting, config: {minute: 5, hour: 1, minutes: 2}}\n");
    assert_eq!(errs, vec!["plugins[0].config.hour: unknown field", "plugins[0].config.minutes: unknown field"]);
    let errs = errors("_format_version: '3.0'\nplugins:\n- {name: rate-limiting, config: {minute: x}}\n");
    assert_eq!(errs, vec!["plugins[0].config.minute: expected an integer"]);
}

#[test]
fn dynamic_plugin_ordering_is_refused_but_kongs_exported_null_is_read() {
    assert!(parse("_format_version: '3.0'\nplugins:\n- {name: cors, ordering: null}\n").is_ok());
    let errs = errors("_format_version: '3.0'\nplugins:\n- {name: cors, ordering: {before: {access: [key-auth]}}}\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("plugins[0].ordering: dynamic plugin ordering is not supported"), "{errs:?}");
}

#[test]
fn references_take_any_unique_field_of_the_entity_they_name() {
    let pair = crate::certs::cluster_pair(1).unwrap();
    let cert_id = "3f0c8a52-61b1-4e8b-9d55-0c2a7a5f1e01";
    let doc = serde_json::json!({
        "_format_version": "3.0",
        "services": [{"name": "s1", "host": "a.test"}],
        "routes": [
            {"name": "r1", "paths": ["/a"], "service": {"name": "s1"}},
            {"name": "r2", "paths": ["/b"], "service": "s1"},
        ],
        "consumers": [{"username": "alice"}, {"custom_id": "c-2"}],
        "plugins": [
            {"name": "cors", "consumer": {"username": "alice"}, "route": {"name": "r1"}},
            {"name": "cors", "consumer": {"custom_id": "c-2"}, "service": "s1"},
            {"name": "key-auth", "consumer": "alice"},
        ],
        "certificates": [{"id": cert_id, "cert": pair.cert_pem, "key": pair.key_pem}],
        "snis": [{"name": "a.test", "certificate": {"id": cert_id}}, {"name": "b.test", "certificate": cert_id}],
    });
    let c = parse_value_with(&doc, &plugins::testing::registry()).unwrap();
    let s1 = c.services[0].id;
    assert!(c.routes.iter().all(|r| r.service == Some(Ref { id: s1 })));
    let alice = c.consumers.iter().find(|x| x.username.as_deref() == Some("alice")).unwrap().id;
    let c2 = c.consumers.iter().find(|x| x.custom_id.as_deref() == Some("c-2")).unwrap().id;
    assert_eq!(c.plugins.iter().filter(|p| p.consumer == Some(Ref { id: alice })).count(), 2);
    assert!(c.plugins.iter().any(|p| p.consumer == Some(Ref { id: c2 }) && p.service == Some(Ref { id: s1 })));
    assert!(c.snis.iter().all(|s| s.certificate.id.to_string() == cert_id));
}

#[test]
fn a_reference_to_nothing_is_a_typed_error() {
    let doc = serde_json::json!({
        "_format_version": "3.0",
        "routes": [{"paths": ["/a"], "service": {"name": "nope"}}],
        "plugins": [
            {"name": "cors", "consumer": {"username": "bob"}},
            {"name": "key-auth", "service": {"id": "3f0c8a52-61b1-4e8b-9d55-0c2a7a5f1e09"}},
            {"name": "rate-limiting", "consumer": {"name": "bob"}},
        ],
        "snis": [{"name": "a.test", "certificate": "by-name"}],
    });
    let errs = parse_value_with(&doc, &plugins::testing::registry()).unwrap_err();
    let kinds: Vec<(String, ErrorKind)> = errs.into_iter().map(|e| (e.path, e.kind)).collect();
    let reference = |to, by, value: &str| ErrorKind::Reference { to, by, value: value.to_string() };
    assert_eq!(
        kinds,
        vec![
            ("plugins[2].consumer.name".to_string(), ErrorKind::Field),
            ("snis[0].certificate".to_string(), ErrorKind::Field),
            ("routes[0].service".to_string(), reference(Kind::Services, "name", "nope")),
            ("plugins[0].consumer".to_string(), reference(Kind::Consumers, "username", "bob")),
            ("plugins[1].service".to_string(), reference(Kind::Services, "id", "3f0c8a52-61b1-4e8b-9d55-0c2a7a5f1e09")),
        ]
    );
}

#[test]
fn a_unique_clash_is_a_typed_error_naming_the_first_entity() {
    let doc = serde_json::json!({"_format_version": "3.0", "consumers": [{"username": "a"}, {"username": "a", "custom_id": "x"}]});
    let errs = parse_value(&doc).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].path, "consumers[1].username");
    assert_eq!(errs[0].kind, ErrorKind::Unique { field: "username".into(), first: "consumers[0]".into() });
}

const RSA_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo
4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u
+qKhbwKfBstIs+bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyeh
kd3qqGElvW/VDL5AaWTg0nLVkjRo9z+40RQzuVaE8AkAFmxZzow3x+VJYKdjykkJ
0iT9wCS0DRTXu269V264Vf/3jvredZiKRkgwlL9xNAwxXFg0x/XFw005UWVRIkdg
cKWTjpBP2dPwVZ4WWC+9aGVd+Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbc
mwIDAQAB
-----END PUBLIC KEY-----";

#[test]
fn credentials_nested_in_consumers_and_at_the_top_level_parse() {
    let config = parse(&format!(
        r#"
_format_version: "3.0"
consumers:
- username: alice
  custom_id: a-1
  keyauth_credentials:
  - key: alice-key
  basicauth_credentials:
  - username: alice
    password: s3cret
  jwt_secrets:
  - key: alice-iss
    secret: shh
  acls:
  - group: gold
- username: bob
keyauth_credentials:
- consumer: bob
  key: bob-key
- consumer: {{username: bob}}
jwt_secrets:
- consumer: bob
  key: bob-iss
  algorithm: RS256
  rsa_public_key: |
{}
acls:
- consumer: bob
  group: gold
- consumer: bob
  group: silver
"#,
        RSA_PUBLIC.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
    ))
    .unwrap();
    let alice = config.consumers.iter().find(|c| c.username.as_deref() == Some("alice")).unwrap().id;
    let bob = config.consumers.iter().find(|c| c.username.as_deref() == Some("bob")).unwrap().id;
    assert_eq!(config.keyauth_credentials.len(), 3);
    let key_of = |key: &str| config.keyauth_credentials.iter().find(|k| k.key == key).unwrap().consumer.id;
    assert_eq!(key_of("alice-key"), alice);
    assert_eq!(key_of("bob-key"), bob);
    let generated = config.keyauth_credentials.iter().find(|k| k.key != "alice-key" && k.key != "bob-key").unwrap();
    assert_eq!(generated.key.len(), 32, "a key left out is generated");
    let basic = &config.basicauth_credentials[0];
    assert!(secrets::verify_password(&basic.password, "s3cret"), "{}", basic.password);
    assert_eq!(config.jwt_secrets.len(), 2);
    let rs = config.jwt_secrets.iter().find(|j| j.key == "bob-iss").unwrap();
    assert_eq!((rs.algorithm, rs.consumer.id), (JwtAlgorithm::RS256, bob));
    assert_eq!(rs.secret.len(), 32, "a secret left out is generated");
    assert_eq!(config.acls.iter().filter(|a| a.consumer.id == bob).count(), 2);
    assert_eq!(config.credentials().count(), 9);

    // Exported and read back: the same configuration, the password not hashed twice.
    let again = parse_value_with(&to_declarative(&config), &plugins::testing::registry()).unwrap();
    assert_eq!(again, config);
}

#[test]
fn credential_errors_name_the_entity_and_field() {
    let errs = errors(
        r#"
_format_version: "3.0"
consumers:
- username: alice
  keyauth_credentials:
  - key: same
  - key: same
  - key: ""
  - key: k
    ttl: -60
  basicauth_credentials:
  - username: alice
  jwt_secrets:
  - key: j
    algorithm: PS256
  - key: r
    algorithm: RS256
  - key: r2
    algorithm: ES256
    rsa_public_key: "not a key"
  acls:
  - group: gold
  - group: gold
  - {}
keyauth_credentials:
- key: orphan
- consumer: nobody
  key: nobody-key
"#,
    );
    let want = [
        "consumers[0].keyauth_credentials[1].key: keyauth_credential key \"same\" is already used at consumers[0].keyauth_credentials[0]",
        "consumers[0].keyauth_credentials[2].key: length must be at least 1",
        "consumers[0].keyauth_credentials[3].ttl: value should be between 0 and",
        "consumers[0].basicauth_credentials[0].password: required field missing",
        "consumers[0].jwt_secrets[0].algorithm: expected one of",
        "consumers[0].jwt_secrets[1].rsa_public_key: required field missing (algorithm RS256)",
        "consumers[0].jwt_secrets[2].rsa_public_key: invalid key",
        "consumers[0].acls[1].group: acl group \"gold of consumer",
        "consumers[0].acls[2].group: required field missing",
        "keyauth_credentials[0].consumer: required field missing",
        "keyauth_credentials[1].consumer: no consumer with username \"nobody\"",
    ];
    for w in want {
        assert!(errs.iter().any(|e| e.starts_with(w)), "missing {w:?} in {errs:#?}");
    }
}

#[test]
fn jwt_public_keys_must_fit_their_algorithm() {
    assert_eq!(validate::jwt_public_key(RSA_PUBLIC, JwtAlgorithm::RS512), Ok(()));
    let err = validate::jwt_public_key(RSA_PUBLIC, JwtAlgorithm::ES256).unwrap_err();
    assert!(err.contains("not a public key ES256"), "{err}");
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap().public_key_pem();
    assert_eq!(validate::jwt_public_key(&ec, JwtAlgorithm::ES256), Ok(()));
    assert!(validate::jwt_public_key(&ec, JwtAlgorithm::ES384).is_err(), "a P-256 key cannot verify ES384");
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap().public_key_pem();
    assert_eq!(validate::jwt_public_key(&p384, JwtAlgorithm::ES384), Ok(()));
    assert!(
        validate::jwt_public_key("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", JwtAlgorithm::RS256)
            .is_err()
    );
}

#[test]
fn deleting_a_consumer_cascades_to_its_credentials() {
    use crate::entities::OnDelete;
    for kind in [Kind::KeyauthCredentials, Kind::BasicauthCredentials, Kind::JwtSecrets, Kind::Acls] {
        let link = kind.link_to(Kind::Consumers).unwrap();
        assert_eq!((link.field, link.on_delete), ("consumer", OnDelete::Cascade));
    }
    assert_eq!(Kind::from_endpoint("key-auths"), Some(Kind::KeyauthCredentials));
    assert_eq!(Kind::from_nested_endpoint("key-auth"), Some(Kind::KeyauthCredentials));
    assert_eq!(Kind::from_nested_endpoint("jwt"), Some(Kind::JwtSecrets));
    assert_eq!(Kind::from_endpoint("acls"), Some(Kind::Acls));
    assert_eq!(Kind::from_endpoint("keyauth_credentials"), None);
}

#[test]
fn older_formats_read_as_kong_3_reads_them_regex_paths_marked() {
    let older = |version: &str| {
        format!(
            "_format_version: \"{version}\"\nroutes:\n- {{name: top, paths: [/regex.+, /prefix, /a/./b//c]}}\nservices:\n- name: s\n  host: s.test\n  routes:\n  - {{name: nested, paths: ['/users/(?<id>\\d+)$', /plain]}}\n"
        )
    };
    for version in ["1.1", "2.1"] {
        let config = parse(&older(version)).unwrap_or_else(|e| panic!("{version}: {e:?}"));
        let paths = |name: &str| config.routes.iter().find(|r| r.name.as_deref() == Some(name)).unwrap().paths.clone();
        assert_eq!(paths("top"), vec!["~/regex.+", "/prefix", "/a/b/c"], "{version}");
        assert_eq!(paths("nested"), vec!["~/users/(?<id>\\d+)$", "/plain"], "{version}");
    }
    // 3.0 paths are taken as written: the same regex-looking path stays a plain prefix.
    let current = parse(&older("3.0").replace("/a/./b//c", "/ok").replace("'/users/(?<id>\\d+)$', ", "")).unwrap();
    assert!(current.routes.iter().all(|r| r.paths.iter().all(|p| !p.starts_with('~'))), "3.0 is not migrated");
    let refused = errors("_format_version: \"4.0\"\n");
    assert!(refused[0].contains("unsupported version \"4.0\": expected one of: 1.1, 2.1, 3.0"), "{refused:?}");
    assert_eq!(declarative::percent_decoded_regex("/a%2Eb%2fc%41%zz"), "/a\\.b%2Fc%41%zz".replace("%41", "A"));
}
