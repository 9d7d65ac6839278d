//! Kong's DNS settings: the `dns_*` keys, or the `resolver_*` keys of Kong's newer client when
//! `new_dns_client = on`, as one [`crate::dns::Settings`].

use std::time::Duration;

use super::values::{parse_bool, parse_existing_file, parse_integer};
use super::{Checker, Origin, Warning};
use crate::dns::{Kind, Settings, system};

/// The keys of each client, for the warning when the other one is in use.
const LEGACY: &[&str] = &[
    "dns_resolver",
    "dns_hostsfile",
    "dns_order",
    "dns_valid_ttl",
    "dns_stale_ttl",
    "dns_cache_size",
    "dns_not_found_ttl",
    "dns_error_ttl",
    "dns_no_sync",
];
const NEW: &[&str] = &[
    "resolver_address",
    "resolver_hosts_file",
    "resolver_family",
    "resolver_valid_ttl",
    "resolver_error_ttl",
    "resolver_stale_ttl",
    "resolver_lru_cache_size",
];

impl Checker<'_> {
    pub(super) fn dns(&mut self) -> Settings {
        // Kong's file documents these two defaults as `<...>` (unset); uncommented, they mean it.
        for key in ["resolver_address", "resolver_valid_ttl"] {
            if self.value(key).is_some_and(|v| v.starts_with('<') && v.ends_with('>')) {
                self.raw.remove(key);
            }
        }
        let new_client = self.required("new_dns_client", parse_bool);
        let (unused, switch) = if new_client { (LEGACY, "off") } else { (NEW, "on") };
        // Kong's defaults in the unused set (as in Kong's own file, uncommented) say nothing.
        for key in unused {
            let default = super::keys::find(key).and_then(|k| k.default);
            if !matches!(self.origin(key), Origin::Default) && self.value(key).as_deref() != default {
                self.warnings.push(Warning {
                    origin: self.origin(key),
                    message: format!("{key} has no effect unless new_dns_client = {switch}"),
                });
            }
        }
        if new_client {
            let family = self.required("resolver_family", |v| Kind::parse_list(v, false));
            let error_ttl = self.required("resolver_error_ttl", parse_ttl);
            Settings {
                nameservers: self.optional("resolver_address", parse_nameservers).unwrap_or_default(),
                hostsfile: Some(self.required("resolver_hosts_file", parse_existing_file)),
                // A before AAAA whatever the list's order, as Kong's new client does.
                order: [Kind::Srv, Kind::A, Kind::Aaaa].into_iter().filter(|k| family.contains(k)).collect(),
                srv_only_for_service_names: true,
                valid_ttl: self.optional("resolver_valid_ttl", parse_ttl),
                stale_ttl: self.required("resolver_stale_ttl", parse_ttl),
                not_found_ttl: error_ttl,
                error_ttl,
                cache_size: self.required("resolver_lru_cache_size", parse_cache_size),
                no_sync: false,
            }
        } else {
            Settings {
                nameservers: self.optional("dns_resolver", parse_nameservers).unwrap_or_default(),
                hostsfile: Some(self.required("dns_hostsfile", parse_existing_file)),
                order: self.required("dns_order", |v| Kind::parse_list(v, true)),
                srv_only_for_service_names: false,
                valid_ttl: self.optional("dns_valid_ttl", parse_ttl),
                stale_ttl: self.required("dns_stale_ttl", parse_ttl),
                not_found_ttl: self.required("dns_not_found_ttl", parse_ttl),
                error_ttl: self.required("dns_error_ttl", parse_ttl),
                cache_size: self.required("dns_cache_size", parse_cache_size),
                no_sync: self.required("dns_no_sync", parse_bool),
            }
        }
    }
}

/// `dns_resolver` / `resolver_address`: name servers, `ip[:port]` each, comma-separated.
pub fn parse_nameservers(v: &str) -> Result<Vec<std::net::SocketAddr>, String> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(system::parse_nameserver).collect()
}

/// A TTL in seconds (fractions allowed), zero or more.
pub fn parse_ttl(v: &str) -> Result<Duration, String> {
    let secs: f64 = v.parse().map_err(|_| "must be a number of seconds".to_string())?;
    if !(secs.is_finite() && secs >= 0.0) {
        return Err("must be a number of seconds, zero or more".into());
    }
    Duration::try_from_secs_f64(secs).map_err(|_| "is too large".to_string())
}

fn parse_cache_size(v: &str) -> Result<usize, String> {
    parse_integer(v, 1).map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nameserver_lists_and_ttls_read_as_kong_writes_them() {
        assert_eq!(
            parse_nameservers("8.8.8.8, [::1]:53,10.0.0.1:5353").unwrap(),
            vec!["8.8.8.8:53".parse().unwrap(), "[::1]:53".parse().unwrap(), "10.0.0.1:5353".parse().unwrap()]
        );
        assert!(parse_nameservers("8.8.8.8, dns.example").unwrap_err().contains("dns.example"));
        assert_eq!(parse_ttl("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_ttl("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_ttl("-1").is_err());
        assert!(parse_ttl("NaN").is_err());
        assert!(parse_cache_size("0").is_err());
    }

    proptest! {
        #[test]
        fn any_value_is_read_or_refused_without_panicking(v in "\\PC{0,60}") {
            let _ = parse_nameservers(&v);
            let _ = parse_ttl(&v);
            let _ = parse_cache_size(&v);
            let _ = Kind::parse_list(&v, true);
            let _ = Kind::parse_list(&v, false);
        }
    }
}
