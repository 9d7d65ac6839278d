//! A plugin that declares `access` and does nothing there (never bundled): the cost of a plugin
//! call itself, for the benchmarks. Its one field, `data`, takes any JSON and is kept as given (for
//! the tests of deeply nested configurations). With `host_calls: true` its `access` makes four
//! host calls that do next to nothing (`ids`, `monotonic-ns`, `now`, `credential-id`): what a
//! crossing to the host costs, for the benchmarks.

use gateway_pdk::{Flow, Phase, Plugin, Request, host};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Noop {
    #[serde(default)]
    data: Option<serde_json::Value>,
    /// Left out of the configuration as shown when false, so the fixture's configurations read
    /// back as they were written.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    host_calls: bool,
}

impl Plugin for Noop {
    type Config = Self;
    const NAME: &'static str = "noop";
    const PRIORITY: i32 = 0;
    const PHASES: &'static [Phase] = &[Phase::Access];

    fn configure(config: Self) -> Result<Self, String> {
        Ok(config)
    }

    fn access(&self, _req: &Request) -> Result<Flow, String> {
        if self.host_calls {
            std::hint::black_box((host::ids(), host::monotonic_ns(), host::now(), host::credential_id()));
        }
        Ok(Flow::Proceed)
    }
}

gateway_pdk::plugin!(Noop);
