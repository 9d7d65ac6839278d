//! Kong's everyday pair cut down to the common path of the bundled `key-auth` and `rate-limiting`
//! (one key in `apikey`; one hourly limit per consumer, with Kong's headers): the same host calls
//! and about the same guest work, as two components (`pair-auth`, `pair-limit`) or as one
//! (`pair-fused`). For one measurement (the plugin benchmark's `split` and `fused` routes): what
//! running a chain of plugins in one component would save. Never bundled.

use std::cell::RefCell;

use gateway_pdk::{Flow, Request, auth, host, push_int, uuid_string};

/// The hourly limit.
const LIMIT: i64 = 1_000_000_000;

/// key-auth's common path: `None` when the request's one `apikey` is a known key (the consumer
/// is then set, with Kong's headers), else the 401.
pub fn authenticate(req: &Request) -> Result<Option<Flow>, String> {
    let values = req.header_values("apikey");
    if let [key] = values.as_slice()
        && auth::authenticate_key(req, "keyauth_credentials", key)?
    {
        return Ok(None);
    }
    gateway_pdk::error_answer(req, 401, Some("Unauthorized"), []).map(Some)
}

/// rate-limiting's common path, its headers' strings kept from request to request.
#[derive(Default)]
pub struct Limit {
    headers: RefCell<Vec<(String, String)>>,
}

impl Limit {
    pub fn count(&self, req: &Request) -> Result<Flow, String> {
        let ids = host::ids();
        let entity = ids.plugin.map(uuid_string).unwrap_or_default();
        let identifier = ids.consumer.map(uuid_string).unwrap_or_else(|| req.client_ip());
        let now = i64::try_from(ids.now_ms / 1000).unwrap_or(i64::MAX);
        let start = now - now % 3600;
        let mut key = String::with_capacity(64 + entity.len() + identifier.len());
        key.push_str("pair:hour:");
        push_int(&mut key, start);
        key.push(':');
        key.push_str(&entity);
        key.push('|');
        key.push_str(&identifier);
        let window = u32::try_from(start + 3600 - now).unwrap_or(3600);
        let remaining = (LIMIT - host::incr(&key, 1, window)).max(0);
        let mut headers = self.headers.borrow_mut();
        if headers.is_empty() {
            for name in [
                "X-RateLimit-Limit-Hour",
                "X-RateLimit-Remaining-Hour",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
            ] {
                headers.push((name.to_string(), String::new()));
            }
        }
        for (i, value) in [LIMIT, remaining, LIMIT, remaining, start + 3600 - now].into_iter().enumerate() {
            headers[i].1.clear();
            push_int(&mut headers[i].1, value);
        }
        host::set_response_headers(&headers)?;
        Ok(Flow::Proceed)
    }
}

/// No configuration.
#[derive(Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}
