//! The smallest real component: proves at every start that the host can instantiate and call a
//! component built from `plugins/` against the contracts in `wit/`.

wit_bindgen::generate!({ world: "health-probe", path: "../../wit" });

/// Set by gateway/build.rs to a digest of `wit/`: reading it makes cargo rebuild this component when
/// the contract changes (the macro above does not tell cargo it read those files).
const _WIT_DIGEST: Option<&str> = option_env!("GATEWAY_WIT_HASH");

use exports::gateway::api::health::{Guest, Status};

struct Health;

impl Guest for Health {
    fn check(challenge: u64) -> Status {
        Status {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            answer: challenge.rotate_left(17) ^ 0x5851_f42d_4c95_7f2d,
        }
    }
}

export!(Health);
