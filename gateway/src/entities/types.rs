//! The entities as the gateway holds them once validated: every reference resolved to an id, every
//! default filled in. They serialise to Kong's flattened declarative shape (`service: {id: …}`).

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::kind::Kind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Http,
    Https,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Https => "https",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Protocol::Http => 80,
            Protocol::Https => 443,
        }
    }
}

/// The protocols a plugin entity may apply to (Kong's plugin `protocols`): the request kinds a
/// plugin runs on. Kong's default is `grpc, grpcs, http, https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginProtocol {
    Grpc,
    Grpcs,
    Http,
    Https,
    Tcp,
    Tls,
    Udp,
    Ws,
    Wss,
}

impl PluginProtocol {
    pub const ALL: [PluginProtocol; 9] = [
        PluginProtocol::Grpc,
        PluginProtocol::Grpcs,
        PluginProtocol::Http,
        PluginProtocol::Https,
        PluginProtocol::Tcp,
        PluginProtocol::Tls,
        PluginProtocol::Udp,
        PluginProtocol::Ws,
        PluginProtocol::Wss,
    ];

    /// Kong's default for a plugin entity's `protocols`.
    pub const DEFAULT: [PluginProtocol; 4] =
        [PluginProtocol::Grpc, PluginProtocol::Grpcs, PluginProtocol::Http, PluginProtocol::Https];

    pub fn as_str(self) -> &'static str {
        match self {
            PluginProtocol::Grpc => "grpc",
            PluginProtocol::Grpcs => "grpcs",
            PluginProtocol::Http => "http",
            PluginProtocol::Https => "https",
            PluginProtocol::Tcp => "tcp",
            PluginProtocol::Tls => "tls",
            PluginProtocol::Udp => "udp",
            PluginProtocol::Ws => "ws",
            PluginProtocol::Wss => "wss",
        }
    }

    pub fn parse(v: &str) -> Option<PluginProtocol> {
        PluginProtocol::ALL.into_iter().find(|p| p.as_str() == v)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a service path and the rest of a request path are joined (Kong's `path_handling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PathHandling {
    V0,
    V1,
}

/// A foreign key, serialised as Kong does: `{"id": "…"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Ref {
    pub id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    pub id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub protocol: Protocol,
    pub host: String,
    pub port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub retries: u32,
    pub connect_timeout: u32,
    pub write_timeout: u32,
    pub read_timeout: u32,
    pub enabled: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Kong's `tls_verify`: `true` or unset, both meaning verified (upstream certificates are
    /// always verified here; `false` is refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_verify: Option<bool>,
    /// CA certificates (ids) that verify the upstream instead of `lua_ssl_trusted_certificate`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ca_certificates: Vec<Uuid>,
    /// The certificate presented to the upstream when it asks for one (instead of `client_ssl_cert`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<Ref>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    pub id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub protocols: Vec<Protocol>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub snis: Vec<String>,
    pub strip_path: bool,
    pub preserve_host: bool,
    pub regex_priority: i32,
    pub path_handling: PathHandling,
    pub https_redirect_status_code: u16,
    pub request_buffering: bool,
    pub response_buffering: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<Ref>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Consumer {
    pub id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plugin {
    pub id: Uuid,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_name: Option<String>,
    pub config: Value,
    pub enabled: bool,
    pub protocols: Vec<PluginProtocol>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<Ref>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<Ref>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<Ref>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Upstream {
    pub id: Uuid,
    pub name: String,
    pub algorithm: String,
    pub slots: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub id: Uuid,
    pub upstream: Ref,
    /// `host:port`.
    pub target: String,
    pub weight: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

#[derive(Clone, PartialEq, Serialize)]
pub struct Certificate {
    pub id: Uuid,
    pub cert: String,
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_alt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_alt: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate").field("id", &self.id).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sni {
    pub id: Uuid,
    pub name: String,
    pub certificate: Ref,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// A CA certificate (Kong's `ca_certificates`): trusted for upstream TLS and client verification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaCertificate {
    pub id: Uuid,
    pub cert: String,
    /// SHA-256 of the certificate's DER, hex, as Kong computes it.
    pub cert_digest: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// A consumer's key (Kong's `keyauth_credentials`, for `key-auth`).
#[derive(Clone, PartialEq, Serialize)]
pub struct KeyauthCredential {
    pub id: Uuid,
    pub consumer: Ref,
    pub key: String,
    /// When the key stops working, in seconds since the Unix epoch: Kong's `ttl` as its exports
    /// and DB-less configurations write it (the Admin API takes and shows seconds from now).
    #[serde(rename = "ttl", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// A consumer's username and password (Kong's `basicauth_credentials`, for `basic-auth`). The
/// password is kept only as its salted hash ([`super::secrets::hash_password`]).
#[derive(Clone, PartialEq, Serialize)]
pub struct BasicauthCredential {
    pub id: Uuid,
    pub consumer: Ref,
    pub username: String,
    pub password: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// The signature algorithms a `jwt_secrets` entity may name (Kong's, less those not implemented,
/// which are refused rather than accepted and never verified).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum JwtAlgorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    ES256,
    ES384,
}

impl JwtAlgorithm {
    pub const ALL: [JwtAlgorithm; 8] = [
        JwtAlgorithm::HS256,
        JwtAlgorithm::HS384,
        JwtAlgorithm::HS512,
        JwtAlgorithm::RS256,
        JwtAlgorithm::RS384,
        JwtAlgorithm::RS512,
        JwtAlgorithm::ES256,
        JwtAlgorithm::ES384,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::HS256 => "HS256",
            JwtAlgorithm::HS384 => "HS384",
            JwtAlgorithm::HS512 => "HS512",
            JwtAlgorithm::RS256 => "RS256",
            JwtAlgorithm::RS384 => "RS384",
            JwtAlgorithm::RS512 => "RS512",
            JwtAlgorithm::ES256 => "ES256",
            JwtAlgorithm::ES384 => "ES384",
        }
    }

    pub fn parse(v: &str) -> Option<JwtAlgorithm> {
        JwtAlgorithm::ALL.into_iter().find(|a| a.as_str() == v)
    }

    /// Whether tokens are verified with `rsa_public_key` rather than `secret`.
    pub fn is_asymmetric(self) -> bool {
        !matches!(self, JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512)
    }
}

/// A consumer's JWT issuer key and what verifies its tokens (Kong's `jwt_secrets`).
#[derive(Clone, PartialEq, Serialize)]
pub struct JwtSecret {
    pub id: Uuid,
    pub consumer: Ref,
    /// Matched against the token's `iss` (or `key_claim_name`).
    pub key: String,
    pub secret: String,
    pub algorithm: JwtAlgorithm,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rsa_public_key: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// A consumer's membership of an ACL group (Kong's `acls`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Acl {
    pub id: Uuid,
    pub consumer: Ref,
    pub group: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

macro_rules! redacted_debug {
    ($($t:ty => $($field:ident),*;)*) => {$(
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t)).field("id", &self.id).field("consumer", &self.consumer)
                    $(.field(stringify!($field), &self.$field))*
                    .finish_non_exhaustive()
            }
        }
    )*};
}

// Keys, passwords and secrets never reach a log through `{:?}`.
redacted_debug! {
    KeyauthCredential => ;
    BasicauthCredential => username;
    JwtSecret => algorithm;
}

/// A credential of any kind, as plugins look it up (see [`Config::credentials`]).
pub struct CredentialRef<'a> {
    pub kind: Kind,
    pub id: Uuid,
    pub consumer: Uuid,
    /// What the kind is looked up by (`key`, `username`); acls have none.
    pub key: Option<&'a str>,
    /// The entity as JSON.
    pub fields: Value,
    /// When it stops working (seconds since the Unix epoch), if it does.
    pub expires_at: Option<i64>,
}

/// A whole, valid configuration. Each list is sorted by id, so equal configurations are equal
/// values whatever order their source listed them in; except routes, which keep their order, since
/// it breaks ties between routes of equal priority.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Config {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Service>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub consumers: Vec<Consumer>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<Plugin>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<Upstream>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<Target>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<Certificate>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub snis: Vec<Sni>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ca_certificates: Vec<CaCertificate>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keyauth_credentials: Vec<KeyauthCredential>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub basicauth_credentials: Vec<BasicauthCredential>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub jwt_secrets: Vec<JwtSecret>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub acls: Vec<Acl>,
}

impl Config {
    pub fn is_empty(&self) -> bool {
        self == &Config::default()
    }

    pub fn service(&self, id: Uuid) -> Option<&Service> {
        self.services.iter().find(|s| s.id == id)
    }

    pub fn upstream_named(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| u.name == name)
    }

    /// Entity counts by kind, for status and logs.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        Kind::ALL.into_iter().map(|kind| (kind.name(), self.len_of(kind))).collect()
    }

    /// How many entities of `kind` there are.
    pub fn len_of(&self, kind: Kind) -> usize {
        match kind {
            Kind::Services => self.services.len(),
            Kind::Routes => self.routes.len(),
            Kind::Consumers => self.consumers.len(),
            Kind::Plugins => self.plugins.len(),
            Kind::Upstreams => self.upstreams.len(),
            Kind::Targets => self.targets.len(),
            Kind::Certificates => self.certificates.len(),
            Kind::Snis => self.snis.len(),
            Kind::CaCertificates => self.ca_certificates.len(),
            Kind::KeyauthCredentials => self.keyauth_credentials.len(),
            Kind::BasicauthCredentials => self.basicauth_credentials.len(),
            Kind::JwtSecrets => self.jwt_secrets.len(),
            Kind::Acls => self.acls.len(),
        }
    }

    /// Every consumer credential, of every kind.
    pub fn credentials(&self) -> impl Iterator<Item = CredentialRef<'_>> {
        fn json<T: Serialize>(entity: &T) -> Value {
            serde_json::to_value(entity).expect("entities serialise")
        }
        let keys = self.keyauth_credentials.iter().map(|c| CredentialRef {
            kind: Kind::KeyauthCredentials,
            id: c.id,
            consumer: c.consumer.id,
            key: Some(&c.key),
            fields: json(c),
            expires_at: c.expires_at,
        });
        let basic = self.basicauth_credentials.iter().map(|c| CredentialRef {
            kind: Kind::BasicauthCredentials,
            id: c.id,
            consumer: c.consumer.id,
            key: Some(&c.username),
            fields: json(c),
            expires_at: None,
        });
        let jwt = self.jwt_secrets.iter().map(|c| CredentialRef {
            kind: Kind::JwtSecrets,
            id: c.id,
            consumer: c.consumer.id,
            key: Some(&c.key),
            fields: json(c),
            expires_at: None,
        });
        let acls = self.acls.iter().map(|c| CredentialRef {
            kind: Kind::Acls,
            id: c.id,
            consumer: c.consumer.id,
            key: None,
            fields: json(c),
            expires_at: None,
        });
        keys.chain(basic).chain(jwt).chain(acls)
    }

    /// The entity of `kind` with `id`, as JSON (Kong's flat declarative shape).
    pub fn entity_json(&self, kind: Kind, id: Uuid) -> Option<Value> {
        fn find<T: Serialize>(items: &[T], id: Uuid, get: impl Fn(&T) -> Uuid) -> Option<Value> {
            items.iter().find(|e| get(e) == id).map(|e| serde_json::to_value(e).expect("entities serialise"))
        }
        match kind {
            Kind::Services => find(&self.services, id, |e| e.id),
            Kind::Routes => find(&self.routes, id, |e| e.id),
            Kind::Consumers => find(&self.consumers, id, |e| e.id),
            Kind::Plugins => find(&self.plugins, id, |e| e.id),
            Kind::Upstreams => find(&self.upstreams, id, |e| e.id),
            Kind::Targets => find(&self.targets, id, |e| e.id),
            Kind::Certificates => find(&self.certificates, id, |e| e.id),
            Kind::Snis => find(&self.snis, id, |e| e.id),
            Kind::CaCertificates => find(&self.ca_certificates, id, |e| e.id),
            Kind::KeyauthCredentials => find(&self.keyauth_credentials, id, |e| e.id),
            Kind::BasicauthCredentials => find(&self.basicauth_credentials, id, |e| e.id),
            Kind::JwtSecrets => find(&self.jwt_secrets, id, |e| e.id),
            Kind::Acls => find(&self.acls, id, |e| e.id),
        }
    }
}
