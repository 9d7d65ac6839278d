//! The shared route-matching cases (`tests/data/router-cases.json`): read here natively, by the
//! gateway through the router component, and by the end-to-end proxy tests.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{PathHandling, RouteSpec};

/// The cases file, as the repository holds it.
pub const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/router-cases.json");

#[derive(Debug, Deserialize)]
pub struct File {
    pub cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
pub struct Case {
    pub name: String,
    pub rule: String,
    pub routes: Vec<CaseRoute>,
    pub request: CaseRequest,
    pub expect: Expect,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CaseRoute {
    pub name: String,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub snis: Vec<String>,
    #[serde(default)]
    pub protocols: Vec<String>,
    #[serde(default)]
    pub regex_priority: i32,
    pub strip_path: Option<bool>,
    pub path_handling: Option<String>,
    pub service_path: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CaseRequest {
    pub method: String,
    pub host: String,
    pub path: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub sni: Option<String>,
    pub port: Option<u16>,
}

#[derive(Debug, Deserialize)]
pub struct Expect {
    pub route: Option<String>,
    pub upstream_path: Option<String>,
    pub captures: Option<BTreeMap<String, String>>,
}

pub fn load() -> Vec<Case> {
    let text = std::fs::read_to_string(FILE).unwrap_or_else(|e| panic!("reading {FILE}: {e}"));
    let file: File = serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {FILE}: {e}"));
    file.cases
}

impl Case {
    /// The port the request arrives on (8000 unless the case says otherwise).
    pub fn port(&self) -> u16 {
        self.request.port.unwrap_or(8000)
    }
}

impl CaseRoute {
    /// Hosts with `${port}` and `${other_port}` filled in for a request arriving on `port`.
    pub fn hosts_for(&self, port: u16) -> Vec<String> {
        self.hosts
            .iter()
            .map(|h| h.replace("${port}", &port.to_string()).replace("${other_port}", &(port + 1).to_string()))
            .collect()
    }

    pub fn spec(&self, port: u16) -> RouteSpec {
        RouteSpec {
            methods: self.methods.clone(),
            hosts: self.hosts_for(port),
            paths: self.paths.clone(),
            headers: self.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            snis: self.snis.clone(),
            regex_priority: self.regex_priority,
            strip_path: self.strip_path.unwrap_or(true),
            path_handling: if self.path_handling.as_deref() == Some("v1") {
                PathHandling::V1
            } else {
                PathHandling::V0
            },
            service_path: self.service_path.clone(),
        }
    }
}

/// What a router answered in a case: route index, upstream path, captures.
pub type Answer = (u32, String, Vec<(String, String)>);

/// What went wrong in one case, given the router's answer. Empty when the answer is right.
pub fn mismatches(case: &Case, got: Option<Answer>) -> Vec<String> {
    let got_name = got.as_ref().map(|(route, ..)| case.routes[*route as usize].name.clone());
    let mut wrong = Vec::new();
    if got_name != case.expect.route {
        wrong.push(format!("route {got_name:?}, expected {:?}", case.expect.route));
    }
    if let (Some((_, path, _)), Some(want)) = (&got, &case.expect.upstream_path)
        && path != want
    {
        wrong.push(format!("upstream path {path:?}, expected {want:?}"));
    }
    if let (Some((.., captures)), Some(want)) = (&got, &case.expect.captures) {
        let captures: BTreeMap<String, String> = captures.iter().cloned().collect();
        if &captures != want {
            wrong.push(format!("captures {captures:?}, expected {want:?}"));
        }
    }
    wrong
}
