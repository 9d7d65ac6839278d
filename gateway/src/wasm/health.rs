//! The host end of the `health-probe` world: at start-up the node instantiates the bundled `health`
//! component and checks its answer, so a broken engine or embedding fails the start, not a request.

use std::time::{Duration, Instant};

use wasmtime::Store;

use super::sandbox::Sandbox;
use super::{WasmError, WasmRuntime, bundled, chain};

wasmtime::component::bindgen!({ world: "health-probe", path: "../wit" });

const COMPONENT: &str = "health";

/// What the probe learned.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    pub name: String,
    pub version: String,
    /// Compile, instantiate and call, together.
    pub elapsed: Duration,
}

/// The answer the WIT contract documents for `challenge`.
pub fn expected_answer(challenge: u64) -> u64 {
    challenge.rotate_left(17) ^ 0x5851_f42d_4c95_7f2d
}

/// Compiles, instantiates and calls the bundled `health` component once.
pub fn probe(runtime: &WasmRuntime) -> Result<ProbeReport, WasmError> {
    probe_bytes(runtime, bundled::HEALTH)
}

pub fn probe_bytes(runtime: &WasmRuntime, wasm: &[u8]) -> Result<ProbeReport, WasmError> {
    let started = Instant::now();
    let engine = runtime.engine();
    let component = runtime.compile(COMPONENT, wasm)?;
    let instantiate = |e: wasmtime::Error| WasmError::Instantiate { component: COMPONENT.into(), cause: chain(&e) };
    let linker = Sandbox::linker(engine).map_err(instantiate)?;
    let mut store = Store::new(engine, Sandbox::new());
    store.limiter(|s| &mut s.limits);
    store.set_epoch_deadline(WasmRuntime::deadline_ticks(Duration::from_secs(1)));
    let probe = HealthProbe::instantiate(&mut store, &component, &linker).map_err(instantiate)?;

    let challenge = challenge();
    let status = probe.gateway_api_health().call_check(&mut store, challenge).map_err(|e| WasmError::Call {
        component: COMPONENT.into(),
        function: "check".into(),
        cause: chain(&e),
    })?;
    if status.answer != expected_answer(challenge) {
        return Err(WasmError::WrongAnswer {
            component: COMPONENT.into(),
            detail: format!("challenge {challenge:#x} got {:#x}", status.answer),
        });
    }
    Ok(ProbeReport { name: status.name, version: status.version, elapsed: started.elapsed() })
}

/// A challenge that differs from run to run, so only a component that computes can answer it.
fn challenge() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_component_answers_the_challenge() {
        let runtime = WasmRuntime::new().unwrap();
        let report = probe(&runtime).unwrap();
        assert_eq!(report.name, "health");
        assert_eq!(report.version, env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn bytes_that_are_not_a_component_fail_to_compile_with_a_reason() {
        let runtime = WasmRuntime::new().unwrap();
        let err = probe_bytes(&runtime, b"not wasm").unwrap_err();
        assert!(matches!(err, WasmError::Compile { .. }), "{err}");
    }
}
