//! What Kong's authentication plugins do once they know who the client is: associate the request
//! with the consumer (and the credential that proved it, if any), and tell the upstream in Kong's
//! headers. Shared by `key-auth`, `basic-auth` and `jwt`.

use crate::gateway::api::types::ConsumerInfo;
use crate::{Request, host};

pub const CONSUMER_ID: &str = "X-Consumer-ID";
pub const CONSUMER_CUSTOM_ID: &str = "X-Consumer-Custom-ID";
pub const CONSUMER_USERNAME: &str = "X-Consumer-Username";
pub const CREDENTIAL_IDENTIFIER: &str = "X-Credential-Identifier";
pub const ANONYMOUS: &str = "X-Anonymous-Consumer";
pub const CONSUMER_GROUPS: &str = "X-Consumer-Groups";

/// The credential that identified the consumer: its id (what later plugins see as the request's
/// credential) and what Kong's plugin sends upstream in `X-Credential-Identifier` (key-auth: the
/// id; basic-auth: the username; jwt: the key).
#[derive(Debug, Clone, Copy)]
pub struct Proof<'a> {
    pub id: &'a str,
    pub identifier: &'a str,
}

/// Kong's `set_consumer`: the request now belongs to the consumer with this id; with no `proof`
/// it is the anonymous consumer (`X-Anonymous-Consumer: true`). The host sets Kong's upstream
/// headers from the consumer it holds, replacing or removing any a client sent under these names,
/// so an upstream never trusts a forged one (one host call: `host.authenticate`).
pub fn set_consumer(req: &Request, consumer_id: &str, proof: Option<Proof<'_>>) -> Result<(), String> {
    let proof =
        proof.map(|p| crate::gateway::api::types::Proof { id: p.id.to_string(), identifier: p.identifier.to_string() });
    host::authenticate(req, consumer_id, proof.as_ref())
}

/// Kong's key-auth in one host call: the credential of `kind` (`keyauth_credentials`) whose key is
/// `key`, if there is one, proves the consumer it belongs to, as [`set_consumer`] does with the
/// credential's id as the identifier. Returns whether one did; nothing is changed when none does.
/// Nothing but the answer crosses back, so nothing is allocated here.
pub fn authenticate_key(req: &Request, kind: &str, key: &str) -> Result<bool, String> {
    host::authenticate_key(req, kind, key)
}

/// The consumer `anonymous` names (an id or a username), as Kong's `anonymous` setting does.
pub fn anonymous_consumer(anonymous: &str) -> Option<ConsumerInfo> {
    host::find_consumer(anonymous)
}
