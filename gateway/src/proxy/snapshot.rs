//! One configuration version, compiled for serving: the entities, the loaded router, the balancers
//! and the TLS certificates. Built off the request path, swapped in whole, never mutated.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustls::sign::CertifiedKey;

use super::phases::PhaseRunner;
use crate::conf::vault::{Vaults, is_reference};
use crate::entities::Certificate;
use crate::entities::{Config, PathHandling, Protocol, Route, Service, config_hash};
use crate::tls::trust::UpstreamTls;
use crate::wasm::router::{self, CompiledRouter, RouterLoadError, RouterPool};

pub struct Snapshot {
    pub config: Config,
    pub hash: String,
    /// `None` for the empty configuration: every request gets 404.
    pub router: Option<RouterPool>,
    /// Route table positions as the router reports them, to the route and its service.
    pub routes: Vec<(Route, Option<Arc<Service>>)>,
    pub balancers: HashMap<String, Balancer>,
    pub certificates: Certificates,
    /// The TLS clients of `https` services with their own `ca_certificates` or
    /// `client_certificate`, by service id.
    pub upstream_tls: HashMap<uuid::Uuid, Arc<rustls::ClientConfig>>,
    /// Runs this version's plugins in the request's phases; `None` when no plugin is configured.
    pub phases: Option<Arc<dyn PhaseRunner>>,
    /// Per position in `routes`: the route's and its service's names in metrics (Kong's labels:
    /// the route's name, else its id; the service's name, else its host), made once per version.
    pub labels: Vec<(Arc<str>, Option<Arc<str>>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("route {route}: {field}: {message}")]
    Route { route: String, field: String, message: String },
    #[error(transparent)]
    Router(RouterLoadError),
    #[error("certificate {id}: {message}")]
    Certificate { id: uuid::Uuid, message: String },
    #[error("service {service}: upstream TLS: {message}")]
    ServiceTls { service: String, message: String },
}

impl Snapshot {
    pub fn empty() -> Snapshot {
        Snapshot {
            hash: crate::entities::EMPTY_HASH.into(),
            config: Config::default(),
            router: None,
            routes: Vec::new(),
            balancers: HashMap::new(),
            certificates: Certificates::default(),
            upstream_tls: HashMap::new(),
            phases: None,
            labels: Vec::new(),
        }
    }

    /// Compiles `config`. Blocking (loads wasm): call it off the async runtime.
    pub fn build(
        config: Config,
        component: &Arc<CompiledRouter>,
        instances: usize,
        tls: &UpstreamTls,
        vaults: &Vaults,
    ) -> Result<Snapshot, SnapshotError> {
        let services: HashMap<uuid::Uuid, Arc<Service>> =
            config.services.iter().map(|s| (s.id, Arc::new(s.clone()))).collect();
        // Routes of a disabled service are not served, as in Kong.
        let routes: Vec<(Route, Option<Arc<Service>>)> = config
            .routes
            .iter()
            .map(|r| (r.clone(), r.service.and_then(|s| services.get(&s.id).cloned())))
            .filter(|(_, service)| service.as_ref().is_none_or(|s| s.enabled))
            .collect();
        let table: Vec<router::RouteSpec> = routes.iter().map(|(r, s)| route_spec(r, s.as_deref())).collect();
        let router = if table.is_empty() {
            None
        } else {
            Some(component.load(table, instances).map_err(|e| match e {
                RouterLoadError::Refused(errors) if !errors.is_empty() => {
                    let first = &errors[0];
                    let route = &routes[first.route as usize].0;
                    SnapshotError::Route {
                        route: route.name.clone().unwrap_or_else(|| route.id.to_string()),
                        field: first.field.clone(),
                        message: first.message.clone(),
                    }
                }
                other => SnapshotError::Router(other),
            })?)
        };
        let mut balancers = HashMap::new();
        for upstream in &config.upstreams {
            let targets: Vec<(String, u32)> = config
                .targets
                .iter()
                .filter(|t| t.upstream.id == upstream.id && t.weight > 0)
                .map(|t| (t.target.clone(), t.weight))
                .collect();
            balancers.insert(upstream.name.clone(), Balancer::new(targets, upstream.slots));
        }
        let certificates = Certificates::from_config(&config, vaults)?;
        let upstream_tls = upstream_tls(&config, tls, vaults)?;
        let labels = routes
            .iter()
            .map(|(route, service)| {
                let route = route.name.clone().unwrap_or_else(|| route.id.to_string());
                let service = service.as_ref().map(|s| Arc::from(s.name.as_deref().unwrap_or(s.host.as_str())));
                (Arc::from(route), service)
            })
            .collect();
        Ok(Snapshot {
            hash: config_hash(&config),
            config,
            router,
            routes,
            balancers,
            certificates,
            upstream_tls,
            phases: None,
            labels,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.config.is_empty()
    }
}

fn route_spec(route: &Route, service: Option<&Service>) -> router::RouteSpec {
    router::RouteSpec {
        methods: route.methods.clone(),
        hosts: route.hosts.clone(),
        paths: route.paths.clone(),
        headers: route
            .headers
            .iter()
            .map(|(name, values)| router::HeaderRule { name: name.clone(), values: values.clone() })
            .collect(),
        snis: route.snis.clone(),
        regex_priority: route.regex_priority,
        strip_path: route.strip_path,
        path_handling: match route.path_handling {
            PathHandling::V0 => router::PathHandling::V0,
            PathHandling::V1 => router::PathHandling::V1,
        },
        service_path: service.and_then(|s| s.path.clone()),
    }
}

/// Weighted round-robin over an upstream's targets: each target appears in the cycle as many
/// times as its weight divided by the weights' greatest common divisor, interleaved. Like Kong's
/// balancer wheel, the cycle has at most `slots` entries (or one per target, if more): weights
/// whose reduced sum is larger are scaled down to fit (every target keeps at least one entry), so
/// memory never follows the weights (Kong allows 65535 each).
pub struct Balancer {
    cycle: Vec<u32>,
    targets: Vec<String>,
    next: AtomicUsize,
}

impl Balancer {
    pub fn new(targets: Vec<(String, u32)>, slots: u32) -> Balancer {
        let gcd = targets.iter().map(|(_, w)| *w).fold(0, gcd);
        let mut shares: Vec<u64> = targets.iter().map(|(_, w)| u64::from(w.checked_div(gcd).unwrap_or(0))).collect();
        let cap = u64::from(slots).max(targets.len() as u64);
        let total: u64 = shares.iter().sum();
        if total > cap {
            // Proportional shares of `cap`, at least one each (so the sum may pass `cap` by at
            // most the number of targets).
            for share in &mut shares {
                *share = (*share * cap / total).max(1);
            }
        }
        let max = shares.iter().copied().max().unwrap_or(0);
        let mut cycle = Vec::with_capacity(shares.iter().sum::<u64>() as usize);
        // Interleave: round r takes every target whose share is larger than r.
        for round in 0..max {
            for (i, &share) in shares.iter().enumerate() {
                if share > round {
                    cycle.push(i as u32);
                }
            }
        }
        Balancer { cycle, targets: targets.into_iter().map(|(t, _)| t).collect(), next: AtomicUsize::new(0) }
    }

    /// The next target, and how many distinct targets there are (for retries).
    pub fn next(&self) -> Option<&str> {
        if self.cycle.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.cycle.len();
        Some(&self.targets[self.cycle[i] as usize])
    }

    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Server certificates by SNI name: exact names, then `*.suffix` wildcards.
#[derive(Default)]
pub struct Certificates {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: Vec<(String, Arc<CertifiedKey>)>,
}

impl Certificates {
    fn from_config(config: &Config, vaults: &Vaults) -> Result<Certificates, SnapshotError> {
        let mut keys = HashMap::new();
        for cert in &config.certificates {
            let fail = |message| SnapshotError::Certificate { id: cert.id, message };
            let (pem, key) = resolved_pair(cert, vaults).map_err(fail)?;
            let key = certified_key(&pem, &key).map_err(fail)?;
            keys.insert(cert.id, Arc::new(key));
        }
        let mut out = Certificates::default();
        for sni in &config.snis {
            let Some(key) = keys.get(&sni.certificate.id) else { continue };
            match sni.name.strip_prefix('*') {
                Some(suffix) => out.wildcard.push((suffix.to_string(), key.clone())),
                None => {
                    out.exact.insert(sni.name.clone(), key.clone());
                }
            }
        }
        out.wildcard.sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        Ok(out)
    }

    pub fn lookup(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        let name = server_name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(key) = self.exact.get(&name) {
            return Some(key.clone());
        }
        self.wildcard.iter().find(|(suffix, _)| name.ends_with(suffix.as_str())).map(|(_, key)| key.clone())
    }
}

/// A rustls signing identity from PEM texts.
pub fn certified_key(cert_pem: &str, key_pem: &str) -> Result<CertifiedKey, String> {
    use crate::tls::PemSource;
    let chain = PemSource::Inline(cert_pem.to_string()).load_certs()?;
    let key = PemSource::Inline(key_pem.to_string()).load_key()?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| format!("unsupported key: {e}"))?;
    Ok(CertifiedKey::new(chain, signing))
}

/// A certificate's PEM pair, its vault references resolved on this node (a data plane reads its
/// own environment). A resolved pair is checked as a written one is when it was read; errors name
/// the reference, never the value.
fn resolved_pair<'c>(cert: &'c Certificate, vaults: &Vaults) -> Result<(Cow<'c, str>, Cow<'c, str>), String> {
    let read = |field: &str, value: &'c str| -> Result<Cow<'c, str>, String> {
        if is_reference(value) {
            vaults.value_of(value).map(Cow::Owned).map_err(|e| format!("{field} {value}: {e}"))
        } else {
            Ok(Cow::Borrowed(value))
        }
    };
    let (pem, key) = (read("cert", &cert.cert)?, read("key", &cert.key)?);
    if is_reference(&cert.cert) || is_reference(&cert.key) {
        crate::entities::validate::cert_pair(&pem, &key)
            .map_err(|e| format!("as resolved from the vault: {}", e.message))?;
    }
    Ok((pem, key))
}

/// Whether the route accepts the request's protocol.
pub fn accepts(route: &Route, tls: bool) -> bool {
    route.protocols.contains(&if tls { Protocol::Https } else { Protocol::Http })
}

/// The TLS clients of the services that name their own CA certificates or client certificate
/// (their references were checked when the configuration was read).
fn upstream_tls(
    config: &Config,
    tls: &UpstreamTls,
    vaults: &Vaults,
) -> Result<HashMap<uuid::Uuid, Arc<rustls::ClientConfig>>, SnapshotError> {
    let mut clients = HashMap::new();
    for service in &config.services {
        if service.ca_certificates.is_empty() && service.client_certificate.is_none() {
            continue;
        }
        let fail = |message: String| SnapshotError::ServiceTls {
            service: service.name.clone().unwrap_or_else(|| service.id.to_string()),
            message,
        };
        let cas: Vec<&str> = service
            .ca_certificates
            .iter()
            .map(|id| {
                config
                    .ca_certificates
                    .iter()
                    .find(|c| c.id == *id)
                    .map(|c| c.cert.as_str())
                    .ok_or_else(|| fail(format!("no ca_certificate {id}")))
            })
            .collect::<Result<_, _>>()?;
        let client = match service.client_certificate {
            None => None,
            Some(link) => {
                let cert = config
                    .certificates
                    .iter()
                    .find(|c| c.id == link.id)
                    .ok_or_else(|| fail(format!("no certificate {}", link.id)))?;
                Some(resolved_pair(cert, vaults).map_err(|e| fail(format!("client_certificate: {e}")))?)
            }
        };
        let client = client.as_ref().map(|(pem, key)| (pem.as_ref(), key.as_ref()));
        clients.insert(service.id, tls.for_service(&cas, client).map_err(fail)?);
    }
    Ok(clients)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_round_robin_follows_the_weights() {
        let b = Balancer::new(vec![("a".into(), 200), ("b".into(), 100)], 10000);
        let picks: Vec<&str> = (0..6).map(|_| b.next().unwrap()).collect();
        assert_eq!(picks, vec!["a", "b", "a", "a", "b", "a"]);
        assert!(Balancer::new(vec![], 10000).next().is_none());
    }

    #[test]
    fn the_cycle_is_bounded_by_slots_whatever_the_weights() {
        // Co-prime weights at Kong's maximum: a reduced sum of millions without the bound.
        let targets: Vec<(String, u32)> = (0..100).map(|i| (format!("t{i}"), 65535 - i)).collect();
        let b = Balancer::new(targets, 10000);
        assert!(b.cycle.len() <= 10000 + 100, "{}", b.cycle.len());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..b.cycle.len() {
            seen.insert(b.next().unwrap().to_string());
        }
        assert_eq!(seen.len(), 100, "every target keeps its turn");
        // Very uneven weights still give the light target a turn, and the heavy one most.
        let b = Balancer::new(vec![("heavy".into(), 65535), ("light".into(), 1)], 10);
        let picks: Vec<&str> = (0..b.cycle.len()).map(|_| b.next().unwrap()).collect();
        assert_eq!(picks.iter().filter(|p| **p == "light").count(), 1);
        assert_eq!(picks.iter().filter(|p| **p == "heavy").count(), 9, "65535/65536 of 10 slots");
    }
}
