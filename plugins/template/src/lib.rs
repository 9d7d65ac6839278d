//! The template plugin: adds a header, `X-Template: template` by default, to every request it sees
//! before it goes upstream. `gateway plugin new NAME` starts from this file.

use gateway_pdk::{Flow, HeaderName, Phase, Plugin, Request};
use serde::{Deserialize, Serialize};

/// The plugin's `config` (what it does not give comes from `Default`), and a configured instance.
#[derive(Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
struct AddHeader {
    header_name: HeaderName,
    header_value: String,
}

impl Default for AddHeader {
    fn default() -> Self {
        AddHeader { header_name: HeaderName::from_static("X-Template"), header_value: "template".into() }
    }
}

impl Plugin for AddHeader {
    type Config = Self;
    const NAME: &'static str = "template";
    const PRIORITY: i32 = 1000;
    const PHASES: &'static [Phase] = &[Phase::Access];

    fn configure(config: Self) -> Result<Self, String> {
        Ok(config)
    }

    fn access(&self, req: &Request) -> Result<Flow, String> {
        req.set_header(&self.header_name, &self.header_value)?;
        Ok(Flow::Proceed)
    }
}

gateway_pdk::plugin!(AddHeader);
