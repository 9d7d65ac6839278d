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

/// Kong's `set_consumer`: the request now belongs to `consumer`; with no `proof` it is the
/// anonymous consumer (`X-Anonymous-Consumer: true`). Headers a client sent under these names
/// are replaced or removed, so an upstream never trusts a forged one.
pub fn set_consumer(req: &Request, consumer: &ConsumerInfo, proof: Option<Proof<'_>>) -> Result<(), String> {
    host::set_consumer(&consumer.id, proof.map(|p| p.id.to_string()).as_deref())?;
    let headers = [
        (CONSUMER_ID, Some(consumer.id.as_str())),
        (CONSUMER_CUSTOM_ID, consumer.custom_id.as_deref()),
        (CONSUMER_USERNAME, consumer.username.as_deref()),
        (CREDENTIAL_IDENTIFIER, proof.map(|p| p.identifier)),
        (ANONYMOUS, proof.is_none().then_some("true")),
    ];
    // One call for the five (set, or removed when there is no value).
    let headers: Vec<(String, Option<String>)> =
        headers.iter().map(|(name, value)| (name.to_string(), value.map(str::to_string))).collect();
    req.set_headers(&headers)
}

/// The consumer `anonymous` names (an id or a username), as Kong's `anonymous` setting does.
pub fn anonymous_consumer(anonymous: &str) -> Option<ConsumerInfo> {
    host::find_consumer(anonymous)
}
