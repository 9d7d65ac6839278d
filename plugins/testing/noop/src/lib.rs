//! A plugin that declares `access` and does nothing there (never bundled): the cost of a plugin
//! call itself, for the benchmarks. Its one field, `data`, takes any JSON and is kept as given (for
//! the tests of deeply nested configurations).

use gateway_pdk::{Phase, Plugin};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Noop {
    #[serde(default)]
    data: Option<serde_json::Value>,
}

impl Plugin for Noop {
    type Config = Self;
    const NAME: &'static str = "noop";
    const PRIORITY: i32 = 0;
    const PHASES: &'static [Phase] = &[Phase::Access];

    fn configure(config: Self) -> Result<Self, String> {
        Ok(config)
    }
}

gateway_pdk::plugin!(Noop);
