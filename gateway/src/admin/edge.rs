//! Who may talk to the Admin API at all, decided before a request is read: the Host it was sent
//! to, and whether a browser sent it on behalf of another site.
//!
//! The Admin API has no authentication of its own, so a browser on the operator's machine is a way
//! in: a page on any site can make the browser send requests to `127.0.0.1:8001` (cross-site
//! requests, refused by `Origin` and `Sec-Fetch-Site`), or point one of its own names at 127.0.0.1
//! so that the requests look same-origin to the browser (DNS rebinding, refused because that name
//! is not one the Admin API answers to). The names it answers to: IP literals, `localhost`, the
//! host names in `admin_listen`, and those listed in `admin_allowed_hosts`.

use hyper::header::{HOST, HeaderMap, HeaderValue, ORIGIN};
use hyper::http::uri::Authority;
use serde_json::json;

use crate::catalog::ApiError;
use crate::conf::ListenSpec;

/// A request refused at the door.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EdgeError {
    #[error("the request has no Host")]
    NoHost,
    #[error("invalid Host {0:?}")]
    BadHost(String),
    #[error(
        "the Admin API does not answer to the name {0:?} (a guard against DNS rebinding): use an IP address or localhost, or add the name to admin_allowed_hosts"
    )]
    HostNotAllowed(String),
    #[error("cross-origin requests to the Admin API are refused (Origin {0:?})")]
    CrossOrigin(String),
    #[error("cross-site requests to the Admin API are refused (Sec-Fetch-Site: {0})")]
    CrossSite(String),
}

impl From<EdgeError> for ApiError {
    fn from(e: EdgeError) -> ApiError {
        let status = match e {
            EdgeError::NoHost | EdgeError::BadHost(_) => 400,
            _ => 403,
        };
        ApiError { status, body: json!({ "message": e.to_string() }) }
    }
}

/// The rules of one Admin API: the names it answers to and the largest body it reads.
#[derive(Debug, Clone)]
pub struct Edge {
    /// Lower-case names, each exact or `*.suffix`.
    names: Vec<String>,
    /// `nginx_admin_client_max_body_size`.
    pub max_body: usize,
    /// The longest pause between two reads of a body (`nginx_http_client_body_timeout`).
    pub body_timeout: std::time::Duration,
    /// Kong's `headers`: `Server` and `X-Kong-Admin-Latency` on every answer, or not.
    pub headers: crate::conf::ResponseHeaders,
}

impl Edge {
    /// The Admin API on `listen`, answering also to `allowed` names.
    pub fn new(listen: &[ListenSpec], allowed: &[String], max_body: usize) -> Edge {
        let mut names: Vec<String> = listen
            .iter()
            .map(|spec| spec.host.to_ascii_lowercase())
            .chain(allowed.iter().map(|n| n.to_ascii_lowercase()))
            .chain(["localhost".to_string()])
            .map(|n| n.trim_end_matches('.').to_string())
            .collect();
        names.sort();
        names.dedup();
        Edge {
            names,
            max_body,
            body_timeout: std::time::Duration::from_secs(60),
            headers: crate::conf::values::parse_headers("server_tokens, latency_tokens")
                .expect("Kong's default parses"),
        }
    }

    pub fn with_body_timeout(self, body_timeout: std::time::Duration) -> Edge {
        Edge { body_timeout, ..self }
    }

    pub fn with_headers(self, headers: crate::conf::ResponseHeaders) -> Edge {
        Edge { headers, ..self }
    }

    /// Admits a request whose target is `authority` (HTTP/2's `:authority`, or an absolute URI)
    /// with `headers`, or says why not.
    pub fn admit(&self, authority: Option<&Authority>, headers: &HeaderMap) -> Result<(), EdgeError> {
        let host = self.admit_host(authority, headers)?;
        if let Some(site) = headers.get("sec-fetch-site") {
            let site = header_text(site)?.to_ascii_lowercase();
            if site != "same-origin" && site != "none" {
                return Err(EdgeError::CrossSite(site));
            }
        }
        if let Some(origin) = headers.get(ORIGIN) {
            let origin = header_text(origin)?;
            if !same_origin(origin, host) {
                return Err(EdgeError::CrossOrigin(origin.to_string()));
            }
        }
        Ok(())
    }

    /// Admits a request by its Host alone (a page a person may reach by a link from anywhere, but
    /// not under another site's name), returning the Host it was sent to.
    pub fn admit_host<'h>(
        &self,
        authority: Option<&'h Authority>,
        headers: &'h HeaderMap,
    ) -> Result<&'h str, EdgeError> {
        let host_header = headers.get(HOST).map(header_text).transpose()?;
        let hosts: Vec<&str> = host_header.into_iter().chain(authority.map(Authority::as_str)).collect();
        let Some(&first) = hosts.first() else { return Err(EdgeError::NoHost) };
        for host in &hosts {
            let (name, _) = split(host).ok_or_else(|| EdgeError::BadHost(host.to_string()))?;
            if !self.answers_to(&name) {
                return Err(EdgeError::HostNotAllowed(name));
            }
        }
        Ok(first)
    }

    fn answers_to(&self, name: &str) -> bool {
        if name.parse::<std::net::IpAddr>().is_ok() {
            return true;
        }
        self.names.iter().any(|allowed| match allowed.strip_prefix("*.") {
            Some(suffix) => name.strip_suffix(suffix).is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            None => allowed == name,
        })
    }
}

fn header_text(value: &HeaderValue) -> Result<&str, EdgeError> {
    value.to_str().map_err(|_| EdgeError::BadHost(String::from_utf8_lossy(value.as_bytes()).into_owned()))
}

/// `name[:port]` or `[v6][:port]` → (lower-case name or address, port). `None` when it is neither.
fn split(host: &str) -> Option<(String, Option<u16>)> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (v6, port)
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok()?),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let valid = !name.is_empty()
        && (name.parse::<std::net::IpAddr>().is_ok()
            || name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            }));
    valid.then_some((name, port))
}

/// Whether `origin` (`scheme://host[:port]`) is the origin the request was sent to.
fn same_origin(origin: &str, host: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else { return false };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return false,
    };
    match (split(rest), split(host)) {
        (Some((a, pa)), Some((b, pb))) => a == b && pa.unwrap_or(default) == pb.unwrap_or(default),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge() -> Edge {
        let listen = crate::conf::listen::parse_listen_list("127.0.0.1:8001, admin.internal:8444 ssl").unwrap();
        Edge::new(&listen, &["gw.example.com".into(), "*.ops.example.com".into()], 1 << 20)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (hyper::header::HeaderName::from_static(k), HeaderValue::from_str(v).unwrap()))
            .collect()
    }

    fn admit(pairs: &[(&'static str, &str)]) -> Result<(), EdgeError> {
        edge().admit(None, &headers(pairs))
    }

    #[test]
    fn hosts_the_admin_api_answers_to() {
        for host in [
            "127.0.0.1:8001",
            "127.0.0.1",
            "[::1]:8001",
            "[::1]",
            "10.1.2.3:9",
            "localhost:8001",
            "LOCALHOST",
            "localhost.",
            "admin.internal:8444",
            "gw.example.com",
            "a.ops.example.com:1",
            "b.a.ops.example.com",
        ] {
            assert_eq!(admit(&[("host", host)]), Ok(()), "{host}");
        }
        for host in ["evil.test", "localhost.evil.test", "ops.example.com", "xops.example.com", "127.0.0.1.nip.io"] {
            assert!(matches!(admit(&[("host", host)]), Err(EdgeError::HostNotAllowed(_))), "{host}");
        }
        for host in ["", "evil.com#.example.com", "a b", "user@127.0.0.1", "[::1", "127.0.0.1:99999", "a..b"] {
            assert!(matches!(admit(&[("host", host)]), Err(EdgeError::BadHost(_))), "{host:?}");
        }
        assert_eq!(admit(&[]), Err(EdgeError::NoHost));
        // HTTP/2 sends :authority instead of Host; an absolute URI must agree with Host too.
        let authority: Authority = "evil.test:8001".parse().unwrap();
        assert!(edge().admit(Some(&authority), &HeaderMap::new()).is_err());
        assert!(edge().admit(Some(&authority), &headers(&[("host", "127.0.0.1")])).is_err());
        let authority: Authority = "localhost:8001".parse().unwrap();
        assert_eq!(edge().admit(Some(&authority), &HeaderMap::new()), Ok(()));
    }

    #[test]
    fn browsers_may_not_send_requests_for_other_sites() {
        let host = ("host", "127.0.0.1:8001");
        assert_eq!(admit(&[host, ("origin", "http://127.0.0.1:8001")]), Ok(()));
        assert_eq!(admit(&[host, ("sec-fetch-site", "same-origin")]), Ok(()));
        assert_eq!(admit(&[host, ("sec-fetch-site", "none")]), Ok(()));
        assert_eq!(admit(&[("host", "localhost"), ("origin", "http://localhost:80")]), Ok(()));
        for origin in ["http://evil.test", "null", "http://127.0.0.1:8002", "https://127.0.0.1", "file://"] {
            assert!(matches!(admit(&[host, ("origin", origin)]), Err(EdgeError::CrossOrigin(_))), "{origin}");
        }
        for site in ["cross-site", "same-site"] {
            assert_eq!(admit(&[host, ("sec-fetch-site", site)]), Err(EdgeError::CrossSite(site.into())));
        }
        assert_eq!(ApiError::from(EdgeError::CrossSite("cross-site".into())).status, 403);
        assert_eq!(ApiError::from(EdgeError::HostNotAllowed("x".into())).status, 403);
    }
}
