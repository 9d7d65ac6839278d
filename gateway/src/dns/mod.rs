//! The proxy's own caching resolver for upstream host names, with Kong's DNS settings
//! (`dns_*`, or `resolver_*` with `new_dns_client = on`).
//!
//! - A name is looked up as the record types of `dns_order` in turn (`LAST` is the type that
//!   last worked for it): `SRV` gives a target name and port (lowest priority, spread by
//!   weight), `A`/`AAAA` addresses (taken in turn), `CNAME` another name. The hosts file is read
//!   once at start and wins over DNS.
//! - Each answer is cached for its TTL (or `dns_valid_ttl`); "no such name" and empty answers for
//!   `dns_not_found_ttl`, errors for `dns_error_ttl`. Past its TTL, an answer is still served for
//!   `dns_stale_ttl` while one query refreshes it in the background, so known upstreams keep
//!   working through a DNS outage. A failed refresh keeps the old answer and is tried again
//!   after `dns_error_ttl`.
//! - Concurrent misses for one name and type wait for a single query (unless `dns_no_sync`).
//! - At most `dns_cache_size` answers are kept; the least recently used goes first.
//!
//! A hit costs a hash lookup under a read lock; only misses and refreshes talk to a name server.

pub mod system;
mod wire;

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

/// A record type of `dns_order` / `resolver_family`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The type that last worked for the name (`dns_order` only).
    Last,
    Srv,
    A,
    Aaaa,
    Cname,
}

impl Kind {
    fn record_type(self) -> RecordType {
        match self {
            Kind::Srv => RecordType::SRV,
            Kind::A | Kind::Last => RecordType::A,
            Kind::Aaaa => RecordType::AAAA,
            Kind::Cname => RecordType::CNAME,
        }
    }

    fn slot(self) -> usize {
        match self {
            Kind::Srv => 0,
            Kind::A | Kind::Last => 1,
            Kind::Aaaa => 2,
            Kind::Cname => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Last => "LAST",
            Kind::Srv => "SRV",
            Kind::A => "A",
            Kind::Aaaa => "AAAA",
            Kind::Cname => "CNAME",
        }
    }

    /// `dns_order` or `resolver_family`: comma-separated types, case-insensitive, each once.
    /// `LAST` is allowed only in `dns_order`.
    pub fn parse_list(v: &str, last_allowed: bool) -> Result<Vec<Kind>, String> {
        let mut kinds = Vec::new();
        for word in v.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let kind = match word.to_ascii_uppercase().as_str() {
                "LAST" if last_allowed => Kind::Last,
                "SRV" => Kind::Srv,
                "A" => Kind::A,
                "AAAA" => Kind::Aaaa,
                "CNAME" if last_allowed => Kind::Cname,
                _ => {
                    let allowed = if last_allowed { "LAST, SRV, A, AAAA, CNAME" } else { "A, AAAA, SRV" };
                    return Err(format!("{word} is not a record type here: use {allowed}"));
                }
            };
            if kinds.contains(&kind) {
                return Err(format!("{word} is listed twice"));
            }
            kinds.push(kind);
        }
        if kinds.iter().all(|k| *k == Kind::Last) {
            return Err("must name at least one record type (A, AAAA, SRV, CNAME)".into());
        }
        Ok(kinds)
    }
}

/// Kong's DNS settings, as the node's configuration gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Name servers; empty: those of `/etc/resolv.conf`.
    pub nameservers: Vec<SocketAddr>,
    /// The hosts file, read once at start; `None`: none.
    pub hostsfile: Option<PathBuf>,
    /// The record types tried, in order.
    pub order: Vec<Kind>,
    /// `resolver_family`: SRV is asked only for names of the `_service._proto.name` form.
    pub srv_only_for_service_names: bool,
    /// Overrides every answer's TTL.
    pub valid_ttl: Option<Duration>,
    pub stale_ttl: Duration,
    pub not_found_ttl: Duration,
    pub error_ttl: Duration,
    pub cache_size: usize,
    /// Every miss asks on its own, rather than waiting for a query already under way.
    pub no_sync: bool,
}

impl Default for Settings {
    /// Kong's defaults.
    fn default() -> Self {
        Settings {
            nameservers: Vec::new(),
            hostsfile: Some(PathBuf::from("/etc/hosts")),
            order: vec![Kind::Last, Kind::Srv, Kind::A, Kind::Cname],
            srv_only_for_service_names: false,
            valid_ttl: None,
            stale_ttl: Duration::from_secs(3600),
            not_found_ttl: Duration::from_secs(30),
            error_ttl: Duration::from_secs(1),
            cache_size: 10_000,
            no_sync: false,
        }
    }
}

/// Why a name could not be resolved. The not-found case is the client-visible 503 ("name
/// resolution failed"); the others are the name servers' or the network's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("{name}: no such name, or no record of the types tried")]
    NotFound { name: String },
    #[error("dns server error: {code} {meaning}")]
    Server { code: u16, meaning: String },
    #[error("name server {server} did not answer within {after:?}")]
    Timeout { server: SocketAddr, after: Duration },
    #[error("name server {server}: {reason}")]
    Io { server: SocketAddr, reason: String },
    #[error("name server {server} sent an answer that cannot be read: {reason}")]
    Malformed { server: SocketAddr, reason: String },
    #[error("{name} is not a valid host name")]
    BadName { name: String },
    #[error("{name}: more than {MAX_DEPTH} aliases or SRV targets in a row")]
    TooDeep { name: String },
    #[error("no name server is configured")]
    NoServers,
}

impl DnsError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, DnsError::NotFound { .. })
    }
}

/// Aliases and SRV targets followed for one name at most.
const MAX_DEPTH: usize = 6;

/// A SRV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// The records of one answer.
#[derive(Debug, Clone)]
pub enum Records {
    Addresses(Vec<IpAddr>),
    Services(Vec<Srv>),
    Alias(String),
}

/// What a cached answer says.
#[derive(Debug, Clone)]
enum Answer {
    Found(Arc<Records>),
    NotFound,
    Failed(DnsError),
}

struct Entry {
    answer: Answer,
    /// Fresh until then.
    expires: Instant,
    /// Served (if found) until then while a refresh runs.
    stale_until: Instant,
    /// The resolver's use counter when it was last read (for least-recently-used eviction).
    used: AtomicU64,
    /// Which record comes next (addresses and SRV targets are taken in turn).
    next: AtomicUsize,
    /// A refresh is under way.
    refreshing: AtomicBool,
    /// No refresh before this many milliseconds after the resolver's epoch (after a failed one).
    refresh_after: AtomicU64,
}

/// The answers per name, one slot per record type.
#[derive(Default)]
struct Name {
    slots: [Option<Entry>; 4],
    /// The type that last gave an answer (`LAST`).
    last: Option<Kind>,
}

#[derive(Default)]
struct Cache {
    names: HashMap<String, Name>,
    entries: usize,
}

/// What one lookup of one name gave: where to go next.
enum Step {
    Address(IpAddr),
    /// A SRV target, and its port (0: keep the one asked for).
    Target(String, u16),
    Alias(String),
}

/// Whose turn it is to ask about one name and type.
type Turn = Arc<tokio::sync::Mutex<()>>;

/// The caching resolver. One per node, shared by every proxy worker.
pub struct Resolver {
    settings: Settings,
    servers: wire::Servers,
    search: Vec<String>,
    ndots: usize,
    hosts: HashMap<String, Vec<IpAddr>>,
    cache: RwLock<Cache>,
    /// Queries under way, for `no_sync = off`.
    inflight: Mutex<HashMap<(String, Kind), Turn>>,
    uses: AtomicU64,
    epoch: Instant,
}

impl Resolver {
    /// A resolver with `settings`, reading `/etc/resolv.conf` (for the search list, `ndots`,
    /// timeouts, and the name servers unless `settings` names some) and the hosts file.
    pub fn new(settings: Settings) -> Result<Resolver, String> {
        let resolv = match std::fs::read_to_string("/etc/resolv.conf") {
            Ok(text) => system::parse_resolv_conf(&text),
            Err(_) => system::ResolvConf::default(),
        };
        let hosts = match &settings.hostsfile {
            Some(path) => system::parse_hosts(
                &std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            ),
            None => HashMap::new(),
        };
        Ok(Resolver::with(settings, resolv, hosts))
    }

    /// A resolver from what [`Resolver::new`] reads.
    pub fn with(settings: Settings, resolv: system::ResolvConf, hosts: HashMap<String, Vec<IpAddr>>) -> Resolver {
        let addresses = if settings.nameservers.is_empty() { resolv.nameservers } else { settings.nameservers.clone() };
        Resolver {
            servers: wire::Servers { addresses, timeout: resolv.timeout, attempts: resolv.attempts },
            search: resolv.search,
            ndots: resolv.ndots,
            hosts,
            settings,
            cache: RwLock::default(),
            inflight: Mutex::default(),
            uses: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Where to connect for `host` and `port`: an IP literal as it is; a name from the hosts
    /// file or DNS (a SRV record may change the port).
    pub async fn resolve(self: &Arc<Self>, host: &str, port: u16) -> Result<SocketAddr, DnsError> {
        let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let mut name: Cow<'_, str> = normalise(host);
        let mut port = port;
        for _ in 0..MAX_DEPTH {
            if let Some(addresses) = self.hosts.get(name.as_ref()) {
                return Ok(SocketAddr::new(self.host_address(addresses), port));
            }
            match self.lookup(&name).await? {
                Step::Address(ip) => return Ok(SocketAddr::new(ip, port)),
                Step::Target(target, target_port) => {
                    name = Cow::Owned(target);
                    if target_port != 0 {
                        port = target_port;
                    }
                }
                Step::Alias(alias) => name = Cow::Owned(alias),
            }
        }
        Err(DnsError::TooDeep { name: host.to_string() })
    }

    /// A hosts-file name's address: IPv4 first when `A` comes before `AAAA` in the order.
    fn host_address(&self, addresses: &[IpAddr]) -> IpAddr {
        let at = |kind| self.settings.order.iter().position(|k| *k == kind).unwrap_or(usize::MAX);
        let v6_first = at(Kind::Aaaa) < at(Kind::A);
        addresses.iter().copied().find(|ip| ip.is_ipv6() == v6_first).unwrap_or(addresses[0])
    }

    /// The first record type of the order that has an answer for `name`. Not found only when
    /// every type said so; else the first error.
    async fn lookup(self: &Arc<Self>, name: &str) -> Result<Step, DnsError> {
        let last = if self.settings.order.contains(&Kind::Last) {
            self.cache.read().expect("the DNS cache lock is never poisoned").names.get(name).and_then(|n| n.last)
        } else {
            None
        };
        let mut failure = None;
        let kinds = last.into_iter().chain(self.settings.order.iter().copied().filter(|k| *k != Kind::Last));
        for (i, kind) in kinds.enumerate() {
            if i > 0 && Some(kind) == last {
                continue;
            }
            if kind == Kind::Srv && self.settings.srv_only_for_service_names && !name.starts_with('_') {
                continue;
            }
            match self.answer(name, kind).await {
                Ok(Some(step)) => {
                    if last != Some(kind) && self.settings.order.contains(&Kind::Last) {
                        let mut cache = self.cache.write().expect("the DNS cache lock is never poisoned");
                        if let Some(entry) = cache.names.get_mut(name) {
                            entry.last = Some(kind);
                        }
                    }
                    return Ok(step);
                }
                Ok(None) => {}
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
        Err(failure.unwrap_or_else(|| DnsError::NotFound { name: name.to_string() }))
    }

    /// `name`'s `kind` records from the cache (fresh, or stale while a refresh runs), else from
    /// the name servers. `None`: there are none.
    async fn answer(self: &Arc<Self>, name: &str, kind: Kind) -> Result<Option<Step>, DnsError> {
        if let Some(answer) = self.cached(name, kind, true) {
            return answer;
        }
        let _turn = if self.settings.no_sync {
            None
        } else {
            let turn = self
                .inflight
                .lock()
                .expect("the DNS in-flight lock is never poisoned")
                .entry((name.to_string(), kind))
                .or_default()
                .clone();
            let guard = turn.lock_owned().await;
            // Whoever went first may have answered it.
            if let Some(answer) = self.cached(name, kind, false) {
                return answer;
            }
            Some(guard)
        };
        let outcome = self.ask(name, kind).await;
        let answer = self.store(name, kind, outcome);
        self.inflight.lock().expect("the DNS in-flight lock is never poisoned").remove(&(name.to_string(), kind));
        self.step(name, kind, &answer)
    }

    /// The cached answer, if it may be used now (a stale found one only when `stale` allows,
    /// which also starts its refresh).
    fn cached(self: &Arc<Self>, name: &str, kind: Kind, stale: bool) -> Option<Result<Option<Step>, DnsError>> {
        let now = Instant::now();
        let cache = self.cache.read().expect("the DNS cache lock is never poisoned");
        let entry = cache.names.get(name)?.slots[kind.slot()].as_ref()?;
        entry.used.store(self.uses.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        if now >= entry.expires {
            let Answer::Found(_) = entry.answer else { return None };
            if !stale || now >= entry.stale_until {
                return None;
            }
            let due = self.millis(now) >= entry.refresh_after.load(Ordering::Relaxed);
            if due && !entry.refreshing.swap(true, Ordering::AcqRel) {
                let this = self.clone();
                let name = name.to_string();
                tokio::spawn(async move { this.refresh(name, kind).await });
            }
        }
        Some(pick(entry, &entry.answer, name))
    }

    /// Asks again for a stale answer. A failure keeps the stale one (tried again after
    /// `error_ttl`); a new answer, found or not, replaces it.
    async fn refresh(self: Arc<Self>, name: String, kind: Kind) {
        let outcome = self.ask(&name, kind).await;
        if let Err(error) = &outcome {
            tracing::warn!(name = %name, kind = kind.name(), %error, "refreshing a DNS answer failed; serving the stale one");
            let cache = self.cache.read().expect("the DNS cache lock is never poisoned");
            if let Some(entry) = cache.names.get(&name).and_then(|n| n.slots[kind.slot()].as_ref()) {
                let after = self.millis(Instant::now() + self.settings.error_ttl);
                entry.refresh_after.store(after, Ordering::Relaxed);
                entry.refreshing.store(false, Ordering::Release);
            }
            return;
        }
        self.store(&name, kind, outcome);
    }

    /// Asks the name servers, trying the search list as the C library does: a name with fewer
    /// dots than `ndots` with the suffixes first, any other name as it is first. The first
    /// candidate with records wins; with none, the name as it is decides.
    async fn ask(&self, name: &str, kind: Kind) -> Result<wire::Outcome, DnsError> {
        if self.search.is_empty() {
            return wire::ask(&self.servers, name, kind).await;
        }
        let suffixed = self.search.iter().map(|suffix| format!("{name}.{suffix}"));
        let dots = name.matches('.').count();
        let candidates: Vec<String> = if dots < self.ndots {
            suffixed.chain(std::iter::once(name.to_string())).collect()
        } else {
            std::iter::once(name.to_string()).chain(suffixed).collect()
        };
        let mut as_is = None;
        for candidate in &candidates {
            let outcome = wire::ask(&self.servers, candidate, kind).await;
            if let Ok(wire::Outcome::Found(..)) = outcome {
                return outcome;
            }
            if candidate == name {
                as_is = Some(outcome);
            }
        }
        as_is.expect("the name itself is a candidate")
    }

    /// Keeps an outcome for as long as Kong's settings say, making room when the cache is full.
    fn store(&self, name: &str, kind: Kind, outcome: Result<wire::Outcome, DnsError>) -> Answer {
        let now = Instant::now();
        let s = &self.settings;
        let (answer, ttl, stale) = match outcome {
            Ok(wire::Outcome::Found(records, ttl)) => (
                Answer::Found(Arc::new(records)),
                s.valid_ttl.unwrap_or(Duration::from_secs(u64::from(ttl))),
                s.stale_ttl,
            ),
            Ok(wire::Outcome::NotFound) => (Answer::NotFound, s.not_found_ttl, Duration::ZERO),
            Err(error) => (Answer::Failed(error), s.error_ttl, Duration::ZERO),
        };
        let expires = now + ttl;
        let entry = Entry {
            answer: answer.clone(),
            expires,
            stale_until: expires + stale,
            used: AtomicU64::new(self.uses.fetch_add(1, Ordering::Relaxed)),
            next: AtomicUsize::new(0),
            refreshing: AtomicBool::new(false),
            refresh_after: AtomicU64::new(0),
        };
        let mut cache = self.cache.write().expect("the DNS cache lock is never poisoned");
        let is_new = cache.names.get(name).is_none_or(|n| n.slots[kind.slot()].is_none());
        if is_new {
            while cache.entries >= s.cache_size.max(1) && cache.evict_one() {}
            cache.entries += 1;
        }
        cache.names.entry(name.to_string()).or_default().slots[kind.slot()] = Some(entry);
        answer
    }

    /// The step a freshly stored answer gives.
    fn step(&self, name: &str, kind: Kind, answer: &Answer) -> Result<Option<Step>, DnsError> {
        let cache = self.cache.read().expect("the DNS cache lock is never poisoned");
        match cache.names.get(name).and_then(|n| n.slots[kind.slot()].as_ref()) {
            Some(entry) => pick(entry, answer, name),
            // Evicted at once (a cache of size 1 under load): take the first record.
            None => pick(&Entry::detached(), answer, name),
        }
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// How many answers are cached.
    pub fn cached_answers(&self) -> usize {
        self.cache.read().expect("the DNS cache lock is never poisoned").entries
    }
}

impl Entry {
    fn detached() -> Entry {
        let now = Instant::now();
        Entry {
            answer: Answer::NotFound,
            expires: now,
            stale_until: now,
            used: AtomicU64::new(0),
            next: AtomicUsize::new(0),
            refreshing: AtomicBool::new(false),
            refresh_after: AtomicU64::new(0),
        }
    }
}

impl Cache {
    /// Drops the least recently used answer. `false` when there is none.
    fn evict_one(&mut self) -> bool {
        let oldest = self
            .names
            .iter()
            .flat_map(|(name, n)| {
                n.slots.iter().enumerate().filter_map(move |(slot, e)| {
                    e.as_ref().map(|e| (e.used.load(Ordering::Relaxed), name.clone(), slot))
                })
            })
            .min_by_key(|(used, _, _)| *used);
        let Some((_, name, slot)) = oldest else { return false };
        if let Some(n) = self.names.get_mut(&name) {
            n.slots[slot] = None;
            if n.slots.iter().all(Option::is_none) {
                self.names.remove(&name);
            }
        }
        self.entries -= 1;
        true
    }
}

/// The next record of an answer: addresses in turn; among SRV records of the lowest priority,
/// each in turn as often as its weight (a weight of 0 counts as 1).
fn pick(entry: &Entry, answer: &Answer, name: &str) -> Result<Option<Step>, DnsError> {
    let records = match answer {
        Answer::Found(records) => records,
        Answer::NotFound => return Ok(None),
        Answer::Failed(error) => return Err(error.clone()),
    };
    let turn = entry.next.fetch_add(1, Ordering::Relaxed);
    Ok(Some(match records.as_ref() {
        Records::Addresses(addresses) => Step::Address(addresses[turn % addresses.len()]),
        Records::Services(services) => {
            let best = services.iter().map(|s| s.priority).min().unwrap_or(0);
            let total: usize =
                services.iter().filter(|s| s.priority == best).map(|s| usize::from(s.weight.max(1))).sum();
            let mut at = turn % total.max(1);
            let chosen = services
                .iter()
                .filter(|s| s.priority == best)
                .find(|s| {
                    let weight = usize::from(s.weight.max(1));
                    if at < weight {
                        return true;
                    }
                    at -= weight;
                    false
                })
                .ok_or_else(|| DnsError::NotFound { name: name.to_string() })?;
            Step::Target(chosen.target.clone(), chosen.port)
        }
        Records::Alias(alias) => Step::Alias(alias.clone()),
    }))
}

/// A host name as the cache keys it: lower case, without a trailing dot (no copy when it is so
/// already).
fn normalise(host: &str) -> Cow<'_, str> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

#[cfg(test)]
mod tests;
