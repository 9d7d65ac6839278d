//! The key-auth half of the cut-down pair (see `../pair-shared/pair.rs`), as a component of its own.

#[path = "../../pair-shared/pair.rs"]
#[expect(dead_code, reason = "the shared file holds both halves; its other half is pair-limit")]
mod pair;

use gateway_pdk::{Flow, Phase, Plugin, Request};

pub struct PairAuth;

impl Plugin for PairAuth {
    type Config = pair::Config;
    const NAME: &'static str = "pair-auth";
    const PRIORITY: i32 = 1250;
    const PHASES: &'static [Phase] = &[Phase::Access];

    fn configure(_config: pair::Config) -> Result<Self, String> {
        Ok(PairAuth)
    }

    fn access(&self, req: &Request) -> Result<Flow, String> {
        Ok(pair::authenticate(req)?.unwrap_or(Flow::Proceed))
    }
}

gateway_pdk::plugin!(PairAuth);
