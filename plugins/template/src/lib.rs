//! The template plugin: adds a header, `X-Template: <value>` by default, to every request it sees
//! before it goes upstream. `gateway plugin new NAME` starts from this file.

use gateway_pdk::{Descriptor, FieldError, Flow, Phase, Plugin, Protocol, Request};

struct AddHeader {
    name: String,
    value: String,
}

impl Plugin for AddHeader {
    fn descriptor() -> Descriptor {
        Descriptor {
            name: "template".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            priority: 1000,
            phases: vec![Phase::Access],
            protocols: vec![Protocol::Http, Protocol::Https],
        }
    }

    fn check_config(config: &str) -> Result<String, Vec<FieldError>> {
        let (name, value) = fields(config)?;
        Ok(serde_json::json!({ "header_name": name, "header_value": value }).to_string())
    }

    fn configure(config: &str) -> Result<Self, String> {
        let (name, value) = fields(config).map_err(|e| e[0].message.clone())?;
        Ok(AddHeader { name, value })
    }

    fn access(&self, req: &Request) -> Result<Flow, String> {
        req.set_header(&self.name, &self.value)?;
        Ok(Flow::Proceed)
    }
}

/// `header_name` and `header_value` from the JSON config, with their defaults.
fn fields(config: &str) -> Result<(String, String), Vec<FieldError>> {
    let error = |path: &str, message: &str| vec![FieldError { path: path.into(), message: message.into() }];
    let config: serde_json::Value = serde_json::from_str(config).map_err(|e| error("config", &e.to_string()))?;
    let text = |key: &str, default: &str| match config.get(key) {
        None | Some(serde_json::Value::Null) => Ok(default.to_string()),
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(error(&format!("config.{key}"), "expected a string")),
    };
    let name = text("header_name", "X-Template")?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(error("config.header_name", "must be a header name"));
    }
    Ok((name, text("header_value", "template")?))
}

gateway_pdk::plugin!(AddHeader);
