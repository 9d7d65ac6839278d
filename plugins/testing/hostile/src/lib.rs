//! A misbehaving plugin for the end-to-end tests of the host's fault handling (never bundled). In
//! `access`, by its `mode`: `trap` panics (a trap: components abort on panic), `loop` never returns
//! (the call deadline must stop it), `grow` allocates until the memory cap stops it, each only for a
//! request with `x-hostile: <mode>`, so the rest pass; `always` traps on every call.

use std::hint::black_box;

use gateway_pdk::{Flow, Phase, Plugin, Request};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Hostile {
    mode: Mode,
}

#[derive(Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    Trap,
    Loop,
    Grow,
    Always,
}

impl Plugin for Hostile {
    type Config = Self;
    const NAME: &'static str = "hostile";
    const PRIORITY: i32 = 10;
    const PHASES: &'static [Phase] = &[Phase::Access];

    fn configure(config: Self) -> Result<Self, String> {
        Ok(config)
    }

    fn access(&self, req: &Request) -> Result<Flow, String> {
        let asked = |mode: &str| req.header("x-hostile").is_some_and(|v| v == mode);
        match self.mode {
            Mode::Always => panic!("hostile plugin: trapping on every call"),
            Mode::Trap if asked("trap") => panic!("hostile plugin: trap requested"),
            Mode::Loop if asked("loop") => {
                let mut spins = 0u64;
                loop {
                    spins = black_box(spins.wrapping_add(1));
                }
            }
            Mode::Grow if asked("grow") => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![0xa5; 1 << 20]);
                    black_box(&hoard);
                }
            }
            _ => Ok(Flow::Proceed),
        }
    }
}

gateway_pdk::plugin!(Hostile);
