//! The resolver against a small name server on a loopback UDP socket (the end-to-end tests use
//! dnsmasq): what is asked, what is cached and for how long.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::*;

/// A name server answering from a table, counting the questions it gets; it can be slowed down
/// and stopped.
struct Server {
    address: SocketAddr,
    asked: Arc<Mutex<Vec<(String, RecordType)>>>,
    task: tokio::task::JoinHandle<()>,
}

type Table = HashMap<(String, RecordType), Vec<RData>>;

impl Server {
    async fn start(table: Table, ttl: u32, delay: Duration) -> Server {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        let socket = Arc::new(socket);
        let task = tokio::spawn(async move {
            let mut buffer = [0u8; 2048];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buffer).await else { return };
                let query = Message::from_vec(&buffer[..n]).unwrap();
                let question = query.queries[0].clone();
                let name = question.name().to_ascii().trim_end_matches('.').to_string();
                log.lock().unwrap().push((name.clone(), question.query_type()));
                let mut response = Message::response(query.metadata.id, OpCode::Query);
                response.add_query(question.clone());
                let known = table.keys().any(|(n, _)| *n == name);
                if !known {
                    response.metadata.response_code = ResponseCode::NXDomain;
                }
                for data in table.get(&(name.clone(), question.query_type())).into_iter().flatten() {
                    response.add_answer(Record::from_rdata(question.name().clone(), ttl, data.clone()));
                }
                let socket = socket.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = socket.send_to(&response.to_vec().unwrap(), peer).await;
                });
            }
        });
        Server { address, asked, task }
    }

    fn asked(&self) -> Vec<(String, RecordType)> {
        self.asked.lock().unwrap().clone()
    }

    fn stop(&self) {
        self.task.abort();
    }
}

fn a(ip: &str) -> RData {
    RData::A(A(ip.parse().unwrap()))
}

fn table(entries: Vec<(&str, RecordType, Vec<RData>)>) -> Table {
    entries.into_iter().map(|(name, kind, data)| ((name.to_string(), kind), data)).collect()
}

fn resolver(server: &Server, settings: Settings) -> Arc<Resolver> {
    let resolv = system::ResolvConf {
        nameservers: vec![server.address],
        search: Vec::new(),
        ndots: 1,
        timeout: Duration::from_millis(300),
        attempts: 1,
    };
    Arc::new(Resolver::with(settings, resolv, HashMap::new()))
}

fn settings() -> Settings {
    Settings { hostsfile: None, ..Settings::default() }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn answers_are_cached_for_their_ttl_and_addresses_taken_in_turn() {
    let server =
        Server::start(table(vec![("up.test", RecordType::A, vec![a("10.0.0.1"), a("10.0.0.2")])]), 1, Duration::ZERO)
            .await;
    let dns = resolver(&server, settings());
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(dns.resolve("Up.Test.", 80).await.unwrap());
    }
    let one: SocketAddr = "10.0.0.1:80".parse().unwrap();
    let two: SocketAddr = "10.0.0.2:80".parse().unwrap();
    assert_eq!(seen, vec![one, two, one, two]);
    // Kong's order: SRV first (not found, cached too), then A; then nothing until the TTL ends.
    assert_eq!(server.asked(), vec![("up.test".into(), RecordType::SRV), ("up.test".into(), RecordType::A)]);
    // Past the TTL the stale answer is served at once and one refresh asks again (LAST: A only).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    dns.resolve("up.test", 80).await.unwrap();
    wait_until("the refresh asked", || server.asked().len() == 3).await;
    assert_eq!(server.asked()[2], ("up.test".into(), RecordType::A));
}

#[tokio::test]
async fn a_stale_answer_is_served_while_the_name_server_is_down_until_stale_ttl() {
    let server = Server::start(table(vec![("up.test", RecordType::A, vec![a("10.0.0.9")])]), 0, Duration::ZERO).await;
    let dns = resolver(
        &server,
        Settings {
            order: vec![Kind::A],
            valid_ttl: Some(Duration::from_millis(100)),
            stale_ttl: Duration::from_millis(700),
            error_ttl: Duration::from_millis(50),
            ..settings()
        },
    );
    let expected: SocketAddr = "10.0.0.9:443".parse().unwrap();
    assert_eq!(dns.resolve("up.test", 443).await.unwrap(), expected);
    server.stop();
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Stale: served, and the failed refresh keeps it.
    assert_eq!(dns.resolve("up.test", 443).await.unwrap(), expected);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(dns.resolve("up.test", 443).await.unwrap(), expected);
    // Past stale_ttl the name server must answer, and it cannot.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let error = dns.resolve("up.test", 443).await.unwrap_err();
    assert!(!error.is_not_found(), "{error}");
}

#[tokio::test]
async fn unknown_names_and_missing_types_are_not_found_and_cached_for_not_found_ttl() {
    let server = Server::start(table(vec![("up.test", RecordType::AAAA, vec![])]), 5, Duration::ZERO).await;
    let dns = resolver(&server, Settings { order: vec![Kind::A], ..settings() });
    for name in ["missing.test", "up.test"] {
        let error = dns.resolve(name, 80).await.unwrap_err();
        assert_eq!(error, DnsError::NotFound { name: name.into() });
        dns.resolve(name, 80).await.unwrap_err();
    }
    assert_eq!(server.asked().len(), 2, "each asked once: {:?}", server.asked());
}

#[tokio::test]
async fn srv_records_give_the_target_and_port_by_priority_and_weight() {
    let target = |name: &str| Name::from_ascii(name).unwrap();
    let server = Server::start(
        table(vec![
            (
                "svc.test",
                RecordType::SRV,
                vec![
                    RData::SRV(SRV::new(1, 3, 8001, target("one.test."))),
                    RData::SRV(SRV::new(1, 1, 8002, target("two.test."))),
                    RData::SRV(SRV::new(9, 100, 8009, target("backup.test."))),
                ],
            ),
            ("one.test", RecordType::A, vec![a("10.0.0.1")]),
            ("two.test", RecordType::A, vec![a("10.0.0.2")]),
            ("alias.test", RecordType::CNAME, vec![RData::CNAME(CNAME(target("one.test.")))]),
        ]),
        60,
        Duration::ZERO,
    )
    .await;
    let dns = resolver(&server, settings());
    let mut counts: HashMap<SocketAddr, usize> = HashMap::new();
    for _ in 0..8 {
        *counts.entry(dns.resolve("svc.test", 1).await.unwrap()).or_default() += 1;
    }
    assert_eq!(counts[&"10.0.0.1:8001".parse().unwrap()], 6);
    assert_eq!(counts[&"10.0.0.2:8002".parse().unwrap()], 2);
    assert_eq!(counts.len(), 2, "the backup priority is not used: {counts:?}");
    // CNAME, last in Kong's order, leads to another name.
    assert_eq!(dns.resolve("alias.test", 7).await.unwrap(), "10.0.0.1:7".parse().unwrap());
}

#[tokio::test]
async fn concurrent_misses_wait_for_one_query_unless_no_sync() {
    let records = || table(vec![("up.test", RecordType::A, vec![a("10.0.0.1")])]);
    for (no_sync, expected) in [(false, 1), (true, 8)] {
        let server = Server::start(records(), 60, Duration::from_millis(100)).await;
        let dns = resolver(&server, Settings { order: vec![Kind::A], no_sync, ..settings() });
        let lookups: Vec<_> = (0..8)
            .map(|_| {
                let dns = dns.clone();
                tokio::spawn(async move { dns.resolve("up.test", 80).await })
            })
            .collect();
        for lookup in lookups {
            lookup.await.unwrap().unwrap();
        }
        assert_eq!(server.asked().len(), expected, "no_sync = {no_sync}");
    }
}

#[tokio::test]
async fn the_cache_keeps_at_most_cache_size_answers_dropping_the_least_recently_used() {
    let names = ["a.test", "b.test", "c.test"];
    let server = Server::start(
        table(names.iter().map(|n| (*n, RecordType::A, vec![a("10.0.0.1")])).collect()),
        60,
        Duration::ZERO,
    )
    .await;
    let dns = resolver(&server, Settings { order: vec![Kind::A], cache_size: 2, ..settings() });
    dns.resolve("a.test", 1).await.unwrap();
    dns.resolve("b.test", 1).await.unwrap();
    dns.resolve("a.test", 1).await.unwrap();
    dns.resolve("c.test", 1).await.unwrap(); // evicts b
    assert_eq!(dns.cached_answers(), 2);
    dns.resolve("a.test", 1).await.unwrap();
    assert_eq!(server.asked().len(), 3, "a stayed cached: {:?}", server.asked());
    dns.resolve("b.test", 1).await.unwrap();
    assert_eq!(server.asked().len(), 4, "b was asked again");
}

#[tokio::test]
async fn literals_and_the_hosts_file_need_no_name_server() {
    let dns = Arc::new(Resolver::with(
        Settings { hostsfile: None, nameservers: vec!["127.0.0.1:9".parse().unwrap()], ..Settings::default() },
        system::ResolvConf::default(),
        system::parse_hosts("::1 local.test\n127.0.0.2 local.test\n"),
    ));
    assert_eq!(dns.resolve("[::1]", 80).await.unwrap(), "[::1]:80".parse().unwrap());
    assert_eq!(dns.resolve("10.1.2.3", 80).await.unwrap(), "10.1.2.3:80".parse().unwrap());
    // A before AAAA in the order: the IPv4 address.
    assert_eq!(dns.resolve("LOCAL.test", 80).await.unwrap().ip(), "127.0.0.2".parse::<IpAddr>().unwrap());
}

#[test]
fn orders_are_read_as_kong_reads_them() {
    assert_eq!(Kind::parse_list("LAST,SRV,A,CNAME", true).unwrap(), vec![Kind::Last, Kind::Srv, Kind::A, Kind::Cname]);
    assert_eq!(Kind::parse_list(" aaaa , a ", true).unwrap(), vec![Kind::Aaaa, Kind::A]);
    assert!(Kind::parse_list("A,A", true).unwrap_err().contains("twice"));
    assert!(Kind::parse_list("LAST", true).is_err());
    assert!(Kind::parse_list("MX", true).unwrap_err().contains("MX"));
    assert!(Kind::parse_list("LAST,A", false).is_err(), "resolver_family has no LAST");
    assert_eq!(Kind::parse_list("A,SRV", false).unwrap(), vec![Kind::A, Kind::Srv]);
}
