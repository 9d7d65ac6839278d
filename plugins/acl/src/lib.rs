//! Kong's `acl` plugin: after an authentication plugin has identified the consumer, lets the
//! request through only if the consumer is in one of the `allow` groups (or in none of the `deny`
//! groups), and tells the upstream the consumer's groups in `X-Consumer-Groups`. A consumer's groups
//! are its `acls` entities. Kong's 401 when no consumer is known, 403 when the groups say no.

use std::collections::HashSet;

use gateway_pdk::auth::CONSUMER_GROUPS;
use gateway_pdk::{FieldError, Flow, Phase, Plugin, Request, host};
use serde::{Deserialize, Serialize};

const FORBIDDEN: &str = "You cannot consume this service";
const EITHER: &str = "'config.allow', 'config.deny'";

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
    pub hide_groups_header: bool,
    /// Kong's groups set by other plugins (LDAP, OAuth2 …) in the request context; none here does.
    pub always_use_authenticated_groups: bool,
}

pub struct Acl {
    /// `deny` rather than `allow`.
    deny: bool,
    groups: HashSet<String>,
    hide_groups_header: bool,
}

impl Plugin for Acl {
    type Config = Config;
    const NAME: &'static str = "acl";
    const PRIORITY: i32 = 950;
    const PHASES: &'static [Phase] = &[Phase::Access];
    /// Kong's `no_consumer`.
    const CONSUMER_SCOPE: bool = false;

    fn validate(config: &Config) -> Vec<FieldError> {
        let mut errors = Vec::new();
        for (field, list) in [("allow", &config.allow), ("deny", &config.deny)] {
            for (i, group) in list.iter().flatten().enumerate() {
                if group.is_empty() {
                    errors.push(FieldError::new(format!("{field}[{i}]"), "length must be at least 1"));
                }
            }
        }
        if config.always_use_authenticated_groups {
            errors.push(FieldError::new(
                "always_use_authenticated_groups",
                "not supported: no plugin of this gateway sets authenticated groups, so only the consumer's groups are used",
            ));
        }
        let non_empty = |list: &Option<Vec<String>>| list.as_ref().is_some_and(|l| !l.is_empty());
        match (non_empty(&config.allow), non_empty(&config.deny)) {
            (false, false) => {
                errors.push(FieldError::new("", format!("at least one of these fields must be non-empty: {EITHER}")))
            }
            (true, true) => {
                errors.push(FieldError::new("", format!("exactly one of these fields must be non-empty: {EITHER}")))
            }
            _ => {}
        }
        errors
    }

    fn configure(config: Config) -> Result<Self, String> {
        let deny = config.deny.as_ref().is_some_and(|d| !d.is_empty());
        let groups = if deny { config.deny } else { config.allow };
        Ok(Acl {
            deny,
            groups: groups.unwrap_or_default().into_iter().collect(),
            hide_groups_header: config.hide_groups_header,
        })
    }

    fn access(&self, req: &Request) -> Result<Flow, String> {
        // The header is the gateway's to set: what a client sent under its name never reaches the
        // upstream (Kong leaves it in place when it does not set it).
        req.remove_header(CONSUMER_GROUPS);
        let authenticated = host::credential_id().is_some();
        // Kong's `kong.response.error(401)` (its text for the status) or its 403.
        let forbidden = || gateway_pdk::error_answer(req, 403, Some(FORBIDDEN), []);
        let refuse = || if authenticated { forbidden() } else { gateway_pdk::error_answer(req, 401, None, []) };
        let Some(consumer) = host::consumer() else { return refuse() };
        let groups = groups_of(&consumer.id);
        if groups.is_empty() && !self.deny {
            return refuse();
        }
        let in_group = groups.iter().any(|g| self.groups.contains(g));
        if in_group == self.deny {
            return forbidden();
        }
        if !self.hide_groups_header {
            req.set_header(CONSUMER_GROUPS, &groups.join(", "))?;
        }
        Ok(Flow::Proceed)
    }
}

/// The groups of the consumer's `acls`, in their order.
fn groups_of(consumer_id: &str) -> Vec<String> {
    host::consumer_credentials("acls", consumer_id).into_iter().filter_map(|acl| group_of(&acl.fields)).collect()
}

fn group_of(fields: &str) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(fields).ok()?.get("group")? {
        serde_json::Value::String(group) => Some(group.clone()),
        _ => None,
    }
}

gateway_pdk::plugin!(Acl);

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_pdk::config;
    use serde_json::{Value, json};

    fn check(json: Value) -> Result<Value, Vec<(String, String)>> {
        config::check::<Config>(&json.to_string(), <Acl as Plugin>::validate)
            .map(|filled| serde_json::from_str(&filled).unwrap())
            .map_err(|errors| errors.into_iter().map(|e| (e.path, e.message)).collect())
    }

    fn err(path: &str, message: &str) -> Result<Value, Vec<(String, String)>> {
        Err(vec![(path.to_string(), message.to_string())])
    }

    #[test]
    fn kongs_defaults() {
        assert_eq!(
            check(json!({"allow": ["a"]})).unwrap(),
            json!({"allow": ["a"], "deny": null, "hide_groups_header": false, "always_use_authenticated_groups": false})
        );
    }

    #[test]
    fn kongs_schema() {
        assert!(check(json!({"deny": ["a", "b"], "hide_groups_header": true})).is_ok());
        assert!(check(json!({"allow": ["a"], "deny": []})).is_ok());
        assert!(check(json!({"allow": null, "deny": ["a"], "always_use_authenticated_groups": false})).is_ok());
        let none = "at least one of these fields must be non-empty: 'config.allow', 'config.deny'";
        assert_eq!(check(json!({})), err("", none));
        assert_eq!(check(json!({"allow": [], "deny": null})), err("", none));
        let both = "exactly one of these fields must be non-empty: 'config.allow', 'config.deny'";
        assert_eq!(check(json!({"allow": ["a"], "deny": ["b"]})), err("", both));
        assert_eq!(check(json!({"allow": ["a", ""]})), err("allow[1]", "length must be at least 1"));
        assert_eq!(check(json!({"allow": "a"})), err("allow", "expected an array"));
        assert_eq!(check(json!({"whitelist": ["a"], "allow": ["a"]})), err("whitelist", "unknown field"));
        let refused = check(json!({"allow": ["a"], "always_use_authenticated_groups": true})).unwrap_err();
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].0, "always_use_authenticated_groups");
    }

    #[test]
    fn groups_come_from_the_acl_entities() {
        assert_eq!(group_of(r#"{"id":"x","consumer":{"id":"c"},"group":"admins"}"#).as_deref(), Some("admins"));
        assert_eq!(group_of(r#"{"group":1}"#), None);
        assert_eq!(group_of("not json"), None);
    }
}
