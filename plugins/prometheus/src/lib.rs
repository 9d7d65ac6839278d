//! Kong's `prometheus` plugin, as configuration. Kong needs the plugin enabled to count requests
//! for its `/metrics`; this gateway's host counts every proxied request whatever plugins run
//! (docs/telemetry.md) and serves Kong's metric names on the status listener's `/metrics`. So a
//! Kong configuration with `prometheus` loads, its fields are checked as Kong checks them, and the
//! plugin runs in no phase: it costs requests nothing.
//!
//! The flags choose what Kong exports; the gateway exports all of it: a series Kong would leave
//! out is more than asked, never less.

use gateway_pdk::{Phase, Plugin};
use serde::{Deserialize, Serialize};

/// Kong's fields, each a boolean defaulting to false.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    per_consumer: bool,
    status_code_metrics: bool,
    ai_metrics: bool,
    latency_metrics: bool,
    bandwidth_metrics: bool,
    upstream_health_metrics: bool,
    wasm_metrics: bool,
}

struct Prometheus;

impl Plugin for Prometheus {
    type Config = Config;
    const NAME: &'static str = "prometheus";
    const PRIORITY: i32 = 13;
    const PHASES: &'static [Phase] = &[];

    fn configure(_config: Config) -> Result<Self, String> {
        Ok(Prometheus)
    }
}

gateway_pdk::plugin!(Prometheus);
