//! The rate-limiting half of the cut-down pair (see `../pair-shared/pair.rs`), as a component of
//! its own.

#[path = "../../pair-shared/pair.rs"]
#[expect(dead_code, reason = "the shared file holds both halves; its other half is pair-auth")]
mod pair;

use gateway_pdk::{Flow, Phase, Plugin, Request};

pub struct PairLimit(pair::Limit);

impl Plugin for PairLimit {
    type Config = pair::Config;
    const NAME: &'static str = "pair-limit";
    const PRIORITY: i32 = 910;
    const PHASES: &'static [Phase] = &[Phase::Access];

    fn configure(_config: pair::Config) -> Result<Self, String> {
        Ok(PairLimit(pair::Limit::default()))
    }

    fn access(&self, req: &Request) -> Result<Flow, String> {
        self.0.count(req)
    }
}

gateway_pdk::plugin!(PairLimit);
