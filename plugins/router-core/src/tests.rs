//! The shared matching cases (`tests/data/router-cases.json`) run natively, plus unit checks.

use serde::Deserialize;

use super::*;

#[derive(Deserialize)]
struct File {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    routes: Vec<CaseRoute>,
    request: CaseRequest,
    expect: Expect,
}

#[derive(Deserialize)]
struct CaseRoute {
    name: String,
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, Vec<String>>,
    #[serde(default)]
    snis: Vec<String>,
    #[serde(default)]
    regex_priority: i32,
    strip_path: Option<bool>,
    path_handling: Option<String>,
    service_path: Option<String>,
}

#[derive(Deserialize)]
struct CaseRequest {
    method: String,
    host: String,
    path: String,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    sni: Option<String>,
    port: Option<u16>,
}

#[derive(Deserialize)]
struct Expect {
    route: Option<String>,
    upstream_path: Option<String>,
    captures: Option<std::collections::BTreeMap<String, String>>,
}

#[test]
fn every_shared_case() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/router-cases.json")).unwrap();
    let file: File = serde_json::from_str(&text).unwrap();
    assert!(file.cases.len() >= 60);
    let mut failures = Vec::new();
    for case in &file.cases {
        let port = case.request.port.unwrap_or(8000);
        let specs: Vec<RouteSpec> = case
            .routes
            .iter()
            .map(|r| RouteSpec {
                methods: r.methods.clone(),
                hosts: r
                    .hosts
                    .iter()
                    .map(|h| h.replace("${port}", &port.to_string()).replace("${other_port}", &(port + 1).to_string()))
                    .collect(),
                paths: r.paths.clone(),
                headers: r.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                snis: r.snis.clone(),
                regex_priority: r.regex_priority,
                strip_path: r.strip_path.unwrap_or(true),
                path_handling: if r.path_handling.as_deref() == Some("v1") {
                    PathHandling::V1
                } else {
                    PathHandling::V0
                },
                service_path: r.service_path.clone(),
            })
            .collect();
        let router = Router::new(&specs).unwrap_or_else(|e| panic!("{}: {e:?}", case.name));
        let headers: Vec<(String, Vec<u8>)> =
            case.request.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone().into_bytes())).collect();
        let req = Request {
            method: &case.request.method,
            host: &case.request.host,
            port,
            path: &case.request.path,
            headers: &headers,
            sni: case.request.sni.as_deref(),
        };
        let got = router.route(&req);
        let got_name = got.as_ref().map(|m| case.routes[m.route as usize].name.clone());
        let mut wrong = Vec::new();
        if got_name != case.expect.route {
            wrong.push(format!("route {got_name:?}, expected {:?}", case.expect.route));
        }
        if let (Some(m), Some(want)) = (&got, &case.expect.upstream_path)
            && &m.upstream_path != want
        {
            wrong.push(format!("upstream path {:?}, expected {want:?}", m.upstream_path));
        }
        if let (Some(m), Some(want)) = (&got, &case.expect.captures) {
            let captures: std::collections::BTreeMap<String, String> = m.captures.iter().cloned().collect();
            if &captures != want {
                wrong.push(format!("captures {captures:?}, expected {want:?}"));
            }
        }
        if !wrong.is_empty() {
            failures.push(format!("{}: {}", case.name, wrong.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn normalisation() {
    assert_eq!(normalize_path("/a/b/../c/./d"), "/a/c/d");
    assert_eq!(normalize_path("/%7e%41%2f"), "/~A%2F");
    assert_eq!(normalize_path("//a//b/"), "/a/b/");
    assert_eq!(normalize_path("/a/.."), "/");
    assert_eq!(normalize_path("/%zz/%4"), "/%zz/%4");
    assert_eq!(normalize_path("/caf%c3%a9"), "/caf%C3%A9");
}

#[test]
fn configured_paths_are_checked() {
    assert!(check_path("/ok").is_ok());
    assert!(check_path("~/ok/\\d+").is_ok());
    assert_eq!(check_path("no-slash").unwrap_err(), "must start with / or ~/");
    assert_eq!(check_path("~no-slash").unwrap_err(), "must start with / or ~/");
    assert!(check_path("/a//b").unwrap_err().starts_with("non-normalized path"));
    assert!(check_path("/a/../b").unwrap_err().contains("\"/b\""));
    assert!(check_path("~/(unclosed").unwrap_err().starts_with("invalid regex"));
}

#[test]
fn bad_tables_report_every_route_and_field() {
    let bad = |paths: &[&str], hosts: &[&str]| RouteSpec {
        methods: vec![],
        hosts: hosts.iter().map(|s| s.to_string()).collect(),
        paths: paths.iter().map(|s| s.to_string()).collect(),
        headers: vec![("x".into(), vec!["~*(".into()])],
        snis: vec![],
        regex_priority: 0,
        strip_path: true,
        path_handling: PathHandling::V0,
        service_path: None,
    };
    let errors = Router::new(&[bad(&["/ok", "~/("], &["a.*.b"])]).err().unwrap();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, vec!["hosts[0]", "headers.x[0]", "paths[1]"]);
}

#[test]
fn host_patterns() {
    assert!(HostPattern::parse("*.a.*", true).is_err());
    assert!(HostPattern::parse("a.*.b", true).is_err());
    assert!(HostPattern::parse("a:99999", true).is_err());
    assert_eq!(split_host_port("[::1]:80"), ("::1", Some("80")));
    assert_eq!(split_host_port("a.test"), ("a.test", None));
}
