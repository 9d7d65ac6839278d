//! Host functions linked by hand over the generated ones. `bindgen!` lifts every `string` a
//! plugin passes into a host `String` (an allocation and a copy each, freed when the call ends);
//! these read the strings where they lie in the plugin's memory instead. They are the host
//! functions Kong's everyday pair calls on every request (key-auth's `authenticate-key`,
//! rate-limiting's `incr` and `set-response-headers`), and each does what its generated twin in
//! `Host for Sandbox` does, through the same code: that twin stays (the trait needs it) and is
//! shadowed here at link time.

use std::borrow::Cow;

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, WasmList, WasmStr};

use super::{RequestHandle, Sandbox, ahead_header, counter_window};

/// The plugin contract's version (`package gateway:api@…` in `wit/plugin.wit`): the host
/// interface is linked under its name with this version, and plugins built against an earlier
/// 0.3 release find it by semver.
pub(super) const API_VERSION: &str = "0.3.5";

/// Defines the hand-linked functions over the generated ones in `linker`, which must hold the
/// plugin world's imports already.
pub(super) fn link_by_hand(linker: &mut Linker<Sandbox>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut host = linker.instance(&format!("gateway:api/host@{API_VERSION}"))?;
    host.func_wrap("incr", |store: StoreContextMut<'_, Sandbox>, (key, delta, window): (WasmStr, i64, u32)| {
        let key = key.to_str(&store)?;
        Ok((store.data().plugin.shared.incr(&key, delta, counter_window(window)),))
    })?;
    host.func_wrap(
        "authenticate-key",
        |mut store: StoreContextMut<'_, Sandbox>, (req, kind, key): (Resource<RequestHandle>, WasmStr, WasmStr)| {
            let found = store.data().plugin.call.key_owner(&kind.to_str(&store)?, &key.to_str(&store)?);
            Ok((match found {
                Some(found) => store.data_mut().authenticate_by_key(&req, found),
                None => Ok(false),
            },))
        },
    )?;
    host.func_wrap(
        "set-response-headers",
        |mut store: StoreContextMut<'_, Sandbox>, (headers,): (WasmList<(WasmStr, WasmStr)>,)| {
            if let Err(e) = store.data().plugin.call.may_set_ahead(headers.len()) {
                return Ok((Err(e),));
            }
            // Checked into a list of the call's own, taken out of the store while the plugin's
            // strings are read from it; all or none.
            let mut ahead = std::mem::take(&mut store.data_mut().plugin.call.response_headers);
            let before = ahead.len();
            let mut check = || -> wasmtime::Result<Result<(), String>> {
                for i in 0..headers.len() {
                    let (name, value) = headers.get(&mut store, i).expect("an index below the list's length")?;
                    if let Err(e) = ahead_header(&text(&name, &store)?, &text(&value, &store)?).map(|h| ahead.push(h)) {
                        return Ok(Err(e));
                    }
                }
                Ok(Ok(()))
            };
            let outcome = check();
            if !matches!(outcome, Ok(Ok(()))) {
                ahead.truncate(before);
            }
            store.data_mut().plugin.call.response_headers = ahead;
            Ok((outcome?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// A string the plugin passed, read in its memory.
fn text<'a>(s: &WasmStr, store: &'a StoreContextMut<'_, Sandbox>) -> wasmtime::Result<Cow<'a, str>> {
    s.to_str(store)
}

#[cfg(test)]
mod tests {
    use crate::wasm::WasmRuntime;
    use crate::wasm::plugin_run::{RunInput, RunOutput, run};

    /// The probe test plugin run on one request with `config`, `consumers` known.
    fn probe(config: serde_json::Value, consumers: serde_json::Value) -> RunOutput {
        let exe = std::env::current_exe().unwrap();
        let target = exe.ancestors().find(|d| d.join("CACHEDIR.TAG").is_file()).unwrap();
        let wasm = std::fs::read(target.join("wasm-plugins/wasm32-wasip2/release/probe.wasm")).unwrap();
        let input: RunInput =
            serde_json::from_value(serde_json::json!({ "config": config, "consumers": consumers })).unwrap();
        run(&WasmRuntime::new().unwrap(), "probe", &wasm, input).unwrap()
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Through a real component: what the plugin passes is read in its memory, and each function
    /// answers as its generated twin would.
    #[test]
    fn the_functions_linked_by_hand_do_what_the_contract_says() {
        let out = probe(
            serde_json::json!({"response_headers": [["X-One", "1"], ["RateLimit-Limit", "5"]], "counter": "c"}),
            serde_json::json!([]),
        );
        let (request, response) = (out.request.unwrap(), out.response.unwrap());
        assert_eq!(header(&response.headers, "x-one"), Some("1"));
        assert_eq!(header(&response.headers, "ratelimit-limit"), Some("5"));
        assert_eq!(header(&request.headers, "x-probe-refused"), None);
        assert_eq!(header(&request.headers, "x-probe-count"), Some("1"));

        // All or none: one bad value refuses the whole call, with the header's name.
        let out =
            probe(serde_json::json!({"response_headers": [["X-One", "1"], ["X-Bad", "a\nb"]]}), serde_json::json!([]));
        let (request, response) = (out.request.unwrap(), out.response.unwrap());
        assert_eq!(header(&response.headers, "x-one"), None);
        assert_eq!(header(&request.headers, "x-probe-refused"), Some("x-bad: the value is not a valid header value"));
        let out = probe(serde_json::json!({"response_headers": [["Bad Name", "1"]]}), serde_json::json!([]));
        assert!(header(&out.request.unwrap().headers, "x-probe-refused").unwrap().contains("is not a header name"));

        let consumers = serde_json::json!([{"username": "alice", "keyauth_credentials": [{"key": "k-1"}]}]);
        let out = probe(serde_json::json!({"key": "k-1"}), consumers.clone());
        let request = out.request.unwrap();
        assert_eq!(header(&request.headers, "x-probe-key"), Some("found"));
        assert_eq!(header(&request.headers, "x-consumer-username"), Some("alice"));
        assert!(out.consumer.is_some());
        let out = probe(serde_json::json!({"key": "k-2"}), consumers);
        let request = out.request.unwrap();
        assert_eq!(header(&request.headers, "x-probe-key"), Some("unknown"));
        assert_eq!(header(&request.headers, "x-consumer-username"), None);
        assert!(out.consumer.is_none());
    }
    #[test]
    fn the_version_linked_by_hand_is_the_contracts() {
        let wit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit/plugin.wit")).unwrap();
        let package = wit.lines().find(|l| l.starts_with("package ")).unwrap();
        assert_eq!(package, format!("package gateway:api@{};", super::API_VERSION));
    }
}
