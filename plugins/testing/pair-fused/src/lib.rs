//! Both halves of the cut-down pair (see `../pair-shared/pair.rs`) in one component and one call:
//! authentication, then the limit, as the two plugins run in Kong's order.

#[path = "../../pair-shared/pair.rs"]
mod pair;

use gateway_pdk::{Flow, Phase, Plugin, Request};

pub struct PairFused(pair::Limit);

impl Plugin for PairFused {
    type Config = pair::Config;
    const NAME: &'static str = "pair-fused";
    const PRIORITY: i32 = 1250;
    const PHASES: &'static [Phase] = &[Phase::Access];

    fn configure(_config: pair::Config) -> Result<Self, String> {
        Ok(PairFused(pair::Limit::default()))
    }

    fn access(&self, req: &Request) -> Result<Flow, String> {
        match pair::authenticate(req)? {
            Some(refused) => Ok(refused),
            None => self.0.count(req),
        }
    }
}

gateway_pdk::plugin!(PairFused);
