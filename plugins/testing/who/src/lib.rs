//! A stand-in for an auth plugin in the end-to-end tests (never bundled): in `access`, a request
//! with `X-Consumer-Id: <id>` becomes that consumer's (an unknown id fails the request).

use gateway_pdk::{Flow, Phase, Plugin, Request, host};
use serde::{Deserialize, Serialize};

#[derive(Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Who {}

impl Plugin for Who {
    type Config = Self;
    const NAME: &'static str = "who";
    const PRIORITY: i32 = 2000;
    const PHASES: &'static [Phase] = &[Phase::Access];

    fn configure(config: Self) -> Result<Self, String> {
        Ok(config)
    }

    fn access(&self, req: &Request) -> Result<Flow, String> {
        if let Some(id) = req.header("x-consumer-id") {
            host::set_consumer(&id, None)?;
        }
        Ok(Flow::Proceed)
    }
}

gateway_pdk::plugin!(Who);
