//! Every kind of entity and the one descriptor that says how it relates to the others: its names
//! (URL segment, declarative key, store key), the fields that name one entity (in URLs and in
//! references), and the entities it points at, with what happens to it when they go. The store,
//! the catalog, the Admin API and the declarative reader all read these descriptors, so adding a
//! kind is one variant here (the compiler then asks for its descriptor) plus its type and reader.

use std::fmt;

/// An entity kind. The order is a declarative document's: parents before the entities that
/// point at them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Services,
    Routes,
    Consumers,
    Plugins,
    Upstreams,
    Targets,
    Certificates,
    Snis,
    CaCertificates,
    KeyauthCredentials,
    BasicauthCredentials,
    JwtSecrets,
    Acls,
}

/// What happens to an entity when the entity it points at is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    /// It is deleted too.
    Cascade,
    /// The delete is refused while it exists.
    Restrict,
}

/// A field that points at an entity of another kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// The field's name (`service`), also the parent's segment in nested endpoints.
    pub field: &'static str,
    pub to: Kind,
    pub on_delete: OnDelete,
}

/// Where a kind's key fields are unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyScope {
    /// In the whole configuration (a key-auth `key`, a service `name`): a top-level URL may name
    /// the entity by one.
    Whole,
    /// Only within the parent (an ACL's `group` per consumer, a target per upstream): only a URL
    /// under the parent may name the entity by one; at the top level, only the id does.
    Parent,
}

#[derive(Debug)]
pub struct Descriptor {
    /// The plural name: declarative key, store key prefix, and the URL segment unless
    /// `endpoints` says otherwise.
    pub name: &'static str,
    /// The Admin API's segments when they are not `name` (Kong's `admin_api_name` and
    /// `admin_api_nested_name`): the top-level list, and the list nested in the parent.
    pub endpoints: Option<(&'static str, &'static str)>,
    /// The fields besides `id` whose value names one entity, in the order a bare string
    /// reference or a URL tries them (Kong's unique fields and endpoint key).
    pub keys: &'static [&'static str],
    /// Whether `keys` name one entity in the whole configuration or only within its parent.
    pub key_scope: KeyScope,
    /// Whether its entities may expire (Kong's `ttl = true`): `ttl` is then when, in seconds since
    /// the Unix epoch, as Kong's DB-less configurations hold it.
    pub ttl: bool,
    /// The fields that point at other entities. Each gives a nested endpoint
    /// (`/services/{id}/routes` from the routes' `service` link).
    pub links: &'static [Link],
}

impl Kind {
    pub const ALL: [Kind; 13] = [
        Kind::Services,
        Kind::Routes,
        Kind::Consumers,
        Kind::Plugins,
        Kind::Upstreams,
        Kind::Targets,
        Kind::Certificates,
        Kind::Snis,
        Kind::CaCertificates,
        Kind::KeyauthCredentials,
        Kind::BasicauthCredentials,
        Kind::JwtSecrets,
        Kind::Acls,
    ];

    pub fn descriptor(self) -> &'static Descriptor {
        use Kind::*;
        use OnDelete::*;
        match self {
            Services => &Descriptor {
                name: "services",
                endpoints: None,
                keys: &["name"],
                key_scope: KeyScope::Whole,
                ttl: false,
                links: &[],
            },
            Routes => &Descriptor {
                name: "routes",
                endpoints: None,
                keys: &["name"],
                key_scope: KeyScope::Whole,
                ttl: false,
                links: &[Link { field: "service", to: Services, on_delete: Restrict }],
            },
            Consumers => &Descriptor {
                name: "consumers",
                endpoints: None,
                keys: &["username", "custom_id"],
                key_scope: KeyScope::Whole,
                ttl: false,
                links: &[],
            },
            Plugins => &Descriptor {
                name: "plugins",
                endpoints: None,
                keys: &["instance_name"],
                key_scope: KeyScope::Whole,
                ttl: false,
                links: &[
                    Link { field: "service", to: Services, on_delete: Cascade },
                    Link { field: "route", to: Routes, on_delete: Cascade },
                    Link { field: "consumer", to: Consumers, on_delete: Cascade },
                ],
            },
            Upstreams => &Descriptor {
                name: "upstreams",
                endpoints: None,
                keys: &["name"],
                key_scope: KeyScope::Whole,
                ttl: false,
                links: &[],
            },
            Targets => &Descriptor {
                name: "targets",
                endpoints: None,
                keys: &["target"],
                key_scope: KeyScope::Parent,
                ttl: false,
                links: &[Link { field: "upstream", to: Upstreams, on_delete: Cascade }],
            },
            Certificates => &Descriptor {
                name: "certificates",
                endpoints: None,
                keys: &[],
                key_scope: KeyScope::Whole,
                ttl: false,
                links: &[],
            },
            Snis => &Descriptor {
                name: "snis",
                endpoints: None,
                keys: &["name"],
                key_scope: KeyScope::Whole,
                ttl: false,
                links: &[Link { field: "certificate", to: Certificates, on_delete: Cascade }],
            },
            CaCertificates => &Descriptor {
                name: "ca_certificates",
                endpoints: None,
                keys: &[],
                key_scope: KeyScope::Whole,
                ttl: false,
                links: &[],
            },
            KeyauthCredentials => &Descriptor {
                name: "keyauth_credentials",
                endpoints: Some(("key-auths", "key-auth")),
                keys: &["key"],
                key_scope: KeyScope::Whole,
                ttl: true,
                links: &[Link { field: "consumer", to: Consumers, on_delete: Cascade }],
            },
            BasicauthCredentials => &Descriptor {
                name: "basicauth_credentials",
                endpoints: Some(("basic-auths", "basic-auth")),
                keys: &["username"],
                key_scope: KeyScope::Whole,
                ttl: false,
                links: &[Link { field: "consumer", to: Consumers, on_delete: Cascade }],
            },
            JwtSecrets => &Descriptor {
                name: "jwt_secrets",
                endpoints: Some(("jwts", "jwt")),
                keys: &["key"],
                key_scope: KeyScope::Whole,
                ttl: false,
                links: &[Link { field: "consumer", to: Consumers, on_delete: Cascade }],
            },
            Acls => &Descriptor {
                name: "acls",
                endpoints: None,
                keys: &["group"],
                key_scope: KeyScope::Parent,
                ttl: false,
                links: &[Link { field: "consumer", to: Consumers, on_delete: Cascade }],
            },
        }
    }

    pub fn name(self) -> &'static str {
        self.descriptor().name
    }

    /// The kind whose plural name is `name`.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The Admin API's top-level segment for this kind (`/key-auths`).
    pub fn endpoint(self) -> &'static str {
        self.descriptor().endpoints.map_or(self.name(), |(top, _)| top)
    }

    /// The Admin API's segment for this kind nested in its parent (`/consumers/{c}/key-auth`).
    pub fn nested_endpoint(self) -> &'static str {
        self.descriptor().endpoints.map_or(self.name(), |(_, nested)| nested)
    }

    /// The kind served at the top-level segment `segment`.
    pub fn from_endpoint(segment: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.endpoint() == segment)
    }

    /// The kind served at the nested segment `segment`.
    pub fn from_nested_endpoint(segment: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.nested_endpoint() == segment)
    }

    /// The link of this kind that points at `parent` (`routes` → `services`: `service`).
    pub fn link_to(self, parent: Kind) -> Option<&'static Link> {
        self.descriptor().links.iter().find(|l| l.to == parent)
    }

    /// Whether `field` of this kind points at another entity.
    pub fn is_link(self, field: &str) -> bool {
        self.descriptor().links.iter().any(|l| l.field == field)
    }

    /// The entities that point at this kind: (their kind, their link).
    pub fn dependents(self) -> impl Iterator<Item = (Kind, &'static Link)> {
        Kind::ALL
            .into_iter()
            .flat_map(|k| k.descriptor().links.iter().map(move |l| (k, l)))
            .filter(move |(_, l)| l.to == self)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_parents_come_first() {
        for (i, kind) in Kind::ALL.into_iter().enumerate() {
            assert_eq!(Kind::from_name(kind.name()), Some(kind));
            assert_eq!(Kind::ALL.iter().position(|k| *k == kind), Some(i));
            for link in kind.descriptor().links {
                assert!(link.to < kind, "{kind} links to {} which comes later", link.to);
            }
        }
        assert_eq!(Kind::from_name("nope"), None);
    }

    #[test]
    fn dependents_follow_the_links() {
        let of = |k: Kind| k.dependents().map(|(k, l)| (k, l.field, l.on_delete)).collect::<Vec<_>>();
        assert_eq!(
            of(Kind::Services),
            vec![(Kind::Routes, "service", OnDelete::Restrict), (Kind::Plugins, "service", OnDelete::Cascade)]
        );
        assert_eq!(of(Kind::Certificates), vec![(Kind::Snis, "certificate", OnDelete::Cascade)]);
        assert!(of(Kind::Plugins).is_empty());
        assert_eq!(Kind::Plugins.link_to(Kind::Consumers).map(|l| l.field), Some("consumer"));
    }
}
