//! One DNS question to the name servers: over UDP, again over TCP when the answer was truncated,
//! each name server tried in turn for the configured number of rounds. Answers are read with
//! `hickory-proto`'s message codec; only an answer to the question asked is believed.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{DnsError, Kind, Records, Srv};

/// Where and how to ask.
#[derive(Debug, Clone)]
pub struct Servers {
    pub addresses: Vec<SocketAddr>,
    pub timeout: Duration,
    pub attempts: usize,
}

/// What a name server said about one name and type.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Records, and the smallest TTL among them (and the aliases that led to them).
    Found(Records, u32),
    /// NXDOMAIN, or no record of the type.
    NotFound,
}

/// Asks the servers about `name` and `kind`, trying each in turn for `attempts` rounds. A server
/// that answers (records, NXDOMAIN, or an empty answer) ends the search; a failure moves on.
pub async fn ask(servers: &Servers, name: &str, kind: Kind) -> Result<Outcome, DnsError> {
    let question = Name::from_ascii(name).map_err(|_| DnsError::BadName { name: name.to_string() })?;
    let mut last = DnsError::NoServers;
    for _round in 0..servers.attempts.max(1) {
        for &server in &servers.addresses {
            match tokio::time::timeout(servers.timeout, exchange(server, &question, kind)).await {
                Ok(Ok(message)) => match read(&message, kind) {
                    Ok(outcome) => return Ok(outcome),
                    Err(error) => last = error,
                },
                Ok(Err(error)) => last = error,
                Err(_) => last = DnsError::Timeout { server, after: servers.timeout },
            }
        }
    }
    Err(last)
}

/// One exchange with one server: UDP, and TCP when the UDP answer was truncated.
async fn exchange(server: SocketAddr, name: &Name, kind: Kind) -> Result<Message, DnsError> {
    let mut query = Message::query();
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(name.clone(), kind.record_type()));
    let id = query.metadata.id;
    let bytes = query.to_vec().map_err(|e| DnsError::Malformed { server, reason: e.to_string() })?;
    let io = |source: std::io::Error| DnsError::Io { server, reason: source.to_string() };

    let local: SocketAddr = match server.ip() {
        IpAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = tokio::net::UdpSocket::bind(local).await.map_err(io)?;
    socket.connect(server).await.map_err(io)?;
    socket.send(&bytes).await.map_err(io)?;
    let mut buffer = vec![0u8; 4096];
    let message = loop {
        let n = socket.recv(&mut buffer).await.map_err(io)?;
        // Anything that is not the answer to this question (a late answer to an earlier one, or
        // noise) is dropped, and the wait goes on.
        match Message::from_vec(&buffer[..n]) {
            Ok(message) if answers(&message, id, name, kind) => break message,
            _ => continue,
        }
    };
    if !message.metadata.truncation {
        return Ok(message);
    }
    let mut stream = tokio::net::TcpStream::connect(server).await.map_err(io)?;
    let length = u16::try_from(bytes.len()).map_err(|_| DnsError::BadName { name: name.to_string() })?;
    let mut framed = length.to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    stream.write_all(&framed).await.map_err(io)?;
    let length = stream.read_u16().await.map_err(io)?;
    let mut answer = vec![0u8; usize::from(length)];
    stream.read_exact(&mut answer).await.map_err(io)?;
    match Message::from_vec(&answer) {
        Ok(message) if answers(&message, id, name, kind) => Ok(message),
        Ok(_) => Err(DnsError::Malformed { server, reason: "the TCP answer is not for the question asked".into() }),
        Err(e) => Err(DnsError::Malformed { server, reason: e.to_string() }),
    }
}

/// Whether `message` is a response to the question `id` asked about `name` and `kind`.
fn answers(message: &Message, id: u16, name: &Name, kind: Kind) -> bool {
    message.metadata.id == id
        && message.metadata.message_type == hickory_proto::op::MessageType::Response
        && message.queries.len() == 1
        && message.queries[0].query_type() == kind.record_type()
        && same_name(message.queries[0].name(), name)
}

/// Whether two names are the same, whatever their case and trailing dot.
fn same_name(a: &Name, b: &Name) -> bool {
    a.to_ascii().trim_end_matches('.').eq_ignore_ascii_case(b.to_ascii().trim_end_matches('.'))
}

/// The records of type `kind` in an answer (the aliases a recursive server followed included),
/// or why there are none.
fn read(message: &Message, kind: Kind) -> Result<Outcome, DnsError> {
    match message.metadata.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => return Ok(Outcome::NotFound),
        code => return Err(DnsError::Server { code: u16::from(code), meaning: code.to_string() }),
    }
    let mut ttl = u32::MAX;
    let mut addresses = Vec::new();
    let mut services = Vec::new();
    let mut alias = None;
    for record in &message.answers {
        let wanted = record.record_type() == kind.record_type();
        if wanted || record.record_type() == RecordType::CNAME {
            ttl = ttl.min(record.ttl);
        }
        if !wanted {
            continue;
        }
        match &record.data {
            RData::A(a) => addresses.push(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => addresses.push(IpAddr::V6(aaaa.0)),
            RData::SRV(srv) => services.push(Srv {
                priority: srv.priority,
                weight: srv.weight,
                port: srv.port,
                target: srv.target.to_ascii().trim_end_matches('.').to_ascii_lowercase(),
            }),
            RData::CNAME(cname) => alias = Some(cname.0.to_ascii().trim_end_matches('.').to_ascii_lowercase()),
            _ => {}
        }
    }
    let records = match kind {
        Kind::A | Kind::Aaaa if !addresses.is_empty() => Records::Addresses(addresses),
        Kind::Srv if !services.is_empty() => Records::Services(services),
        Kind::Cname => match alias {
            Some(alias) => Records::Alias(alias),
            None => return Ok(Outcome::NotFound),
        },
        _ => return Ok(Outcome::NotFound),
    };
    Ok(Outcome::Found(records, ttl))
}
