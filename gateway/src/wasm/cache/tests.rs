use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use super::*;
use crate::wasm::{WasmRuntime, bundled, health};

/// A small real component: the bundled health probe.
const WASM: &[u8] = bundled::HEALTH;

fn runtime(prefix: &Path) -> WasmRuntime {
    WasmRuntime::with_cache(prefix).unwrap()
}

fn lookup(runtime: &WasmRuntime, wasm: &[u8]) -> Lookup {
    let cache = runtime.cache().expect("the cache is on");
    cache.lookup(runtime.engine(), &Sha256::digest(wasm).into(), &cache.entry_path(wasm))
}

fn rejected(runtime: &WasmRuntime, wasm: &[u8]) -> Rejected {
    match lookup(runtime, wasm) {
        Lookup::Rejected(reason) => reason,
        Lookup::Hit(_) => panic!("the entry was used"),
        Lookup::Miss => panic!("no entry was found"),
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Compiles into a fresh prefix; returns the runtime and the entry's path.
fn cached() -> (tempfile::TempDir, WasmRuntime, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let runtime = runtime(tmp.path());
    runtime.compile("health", WASM).unwrap();
    let entry = runtime.cache().unwrap().entry_path(WASM);
    assert!(entry.is_file(), "the compile wrote {}", entry.display());
    (tmp, runtime, entry)
}

#[test]
fn a_compiled_component_is_cached_private_and_used_by_the_next_runtime() {
    let (tmp, _first, entry) = cached();
    assert_eq!(mode(&tmp.path().join(DIR)), 0o700);
    assert_eq!(mode(&entry), 0o600);

    let second = runtime(tmp.path());
    assert!(matches!(lookup(&second, WASM), Lookup::Hit(_)));
    // The component from the cache runs.
    let report = health::probe_bytes(&second, WASM).unwrap();
    assert_eq!(report.name, "health");
    let names: Vec<_> = std::fs::read_dir(tmp.path().join(DIR)).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "one entry, no temporary files left: {names:?}");
}

#[test]
fn without_an_entry_it_is_a_miss() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(lookup(&runtime(tmp.path()), WASM), Lookup::Miss));
}

#[test]
fn a_corrupt_entry_is_refused_and_rewritten() {
    let (tmp, _first, entry) = cached();
    let mut bytes = std::fs::read(&entry).unwrap();
    let last = bytes.len() - 100;
    bytes[last] ^= 0x40;
    std::fs::write(&entry, &bytes).unwrap();
    let second = runtime(tmp.path());
    assert_eq!(rejected(&second, WASM), Rejected::Digest);

    // compile() removes it, compiles again and writes a good entry.
    health::probe_bytes(&second, WASM).unwrap();
    assert_ne!(std::fs::read(&entry).unwrap(), bytes);
    assert!(matches!(lookup(&second, WASM), Lookup::Hit(_)));
}

#[test]
fn a_truncated_entry_is_refused() {
    let (tmp, _first, entry) = cached();
    let bytes = std::fs::read(&entry).unwrap();
    for keep in [0, 7, HEADER - 1, HEADER, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&entry, &bytes[..keep]).unwrap();
        let reason = rejected(&runtime(tmp.path()), WASM);
        if keep == 0 || keep == 7 || keep == HEADER - 1 {
            assert!(matches!(reason, Rejected::Length { .. }), "{keep} bytes: {reason}");
        } else {
            assert_eq!(reason, Rejected::Length { size: keep as u64, expected: bytes.len() as u64 }, "{keep} bytes");
        }
    }
    let mut longer = bytes.clone();
    longer.extend_from_slice(b"trailing");
    std::fs::write(&entry, &longer).unwrap();
    assert!(matches!(rejected(&runtime(tmp.path()), WASM), Rejected::Length { .. }));
}

#[test]
fn a_foreign_file_is_refused_before_wasmtime_sees_it() {
    let (tmp, first, entry) = cached();
    // wasmtime's own precompiled format, without our header: refused for its magic.
    let cwasm = first.engine().precompile_component(WASM).unwrap();
    std::fs::write(&entry, &cwasm).unwrap();
    assert_eq!(rejected(&runtime(tmp.path()), WASM), Rejected::Magic);

    std::fs::write(&entry, b"#!/bin/sh\necho hello\n").unwrap();
    assert_eq!(rejected(&runtime(tmp.path()), WASM), Rejected::Magic);
}

#[test]
fn an_entry_for_other_wasm_or_another_engine_is_refused() {
    let (tmp, first, entry) = cached();
    let good = std::fs::read(&entry).unwrap();

    // The same bytes under the name of other wasm (a renamed or copied entry).
    let other = bundled::ROUTER;
    let other_entry = first.cache().unwrap().entry_path(other);
    OpenOptions::new().write(true).create_new(true).mode(0o600).open(&other_entry).unwrap().write_all(&good).unwrap();
    assert_eq!(rejected(&runtime(tmp.path()), other), Rejected::Content);

    // An entry whose header names another engine (settings, target or wasmtime version).
    let mut foreign = good.clone();
    foreign[8] ^= 1;
    std::fs::write(&entry, &foreign).unwrap();
    assert_eq!(rejected(&runtime(tmp.path()), WASM), Rejected::Engine);

    // Engines configured differently have different keys.
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    let plain = Engine::new(&config).unwrap();
    assert_ne!(engine_key(&plain), engine_key(first.engine()));
}

#[test]
fn an_entry_others_could_have_written_is_refused() {
    let (tmp, _first, entry) = cached();
    for loose in [0o644, 0o660, 0o602] {
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(loose)).unwrap();
        assert_eq!(rejected(&runtime(tmp.path()), WASM), Rejected::Mode { mode: loose });
    }
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o600)).unwrap();

    // A symbolic link, even to a good entry of ours.
    let elsewhere = tmp.path().join("elsewhere.cwasm");
    std::fs::rename(&entry, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &entry).unwrap();
    assert_eq!(rejected(&runtime(tmp.path()), WASM), Rejected::NotAFile);
    std::fs::remove_file(&entry).unwrap();
    std::fs::rename(&elsewhere, &entry).unwrap();

    // Another user's file (only root can make one here).
    if rustix::process::geteuid().is_root() {
        std::os::unix::fs::chown(&entry, Some(65534), None).unwrap();
        assert_eq!(rejected(&runtime(tmp.path()), WASM), Rejected::NotOurs { owner: 65534, ours: 0 });
    }
}

#[test]
fn a_cache_directory_that_is_not_private_and_ours_is_not_used() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(DIR);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    runtime(tmp.path());
    assert_eq!(mode(&dir), 0o700, "our own directory is made private");

    std::fs::remove_dir(&dir).unwrap();
    let target = tmp.path().join("target");
    std::fs::create_dir(&target).unwrap();
    std::os::unix::fs::symlink(&target, &dir).unwrap();
    let engine = Engine::default();
    assert!(matches!(CompileCache::open(tmp.path(), &engine), Err(CacheDirError::NotADirectory { .. })));
    let linked = runtime(tmp.path());
    assert!(linked.cache().is_none(), "the cache is off");
    linked.compile("health", WASM).unwrap();

    if rustix::process::geteuid().is_root() {
        std::fs::remove_file(&dir).unwrap();
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
        assert!(matches!(CompileCache::open(tmp.path(), &engine), Err(CacheDirError::NotOurs { owner: 65534, .. })));
    }
}

#[test]
fn a_cache_that_cannot_be_written_still_compiles() {
    let tmp = tempfile::tempdir().unwrap();
    let runtime = runtime(tmp.path());
    // A directory where the entry should go: the rename fails even for root.
    let entry = runtime.cache().unwrap().entry_path(WASM);
    std::fs::create_dir(&entry).unwrap();
    health::probe_bytes(&runtime, WASM).unwrap();
    assert!(entry.is_dir());
    let names: Vec<_> = std::fs::read_dir(tmp.path().join(DIR)).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "no temporary file left behind: {names:?}");
}

#[test]
fn pruning_keeps_what_this_process_used_and_the_newest_others() {
    let (tmp, runtime, entry) = cached();
    let cache = runtime.cache().unwrap();
    let dir = tmp.path().join(DIR);
    let ours = entry.file_name().unwrap().to_str().unwrap().split_once('-').unwrap().1.to_string();
    let old = SystemTime::now() - Duration::from_secs(7200);
    let touch = |name: &str, age: Duration| {
        let file = File::create(dir.join(name)).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    };
    for i in 0..KEEP + 5 {
        touch(&format!("{i:064x}-{ours}"), Duration::from_secs(60 * (i as u64 + 1)));
    }
    touch(&format!("{:064x}-00000000deadbeef{SUFFIX}", 1), Duration::ZERO);
    touch(&format!("{TEMP_PREFIX}1-0-stale"), Duration::from_secs(7200));
    touch(&format!("{TEMP_PREFIX}1-1-fresh"), Duration::ZERO);
    touch("README", Duration::ZERO);
    // The entry this process used is the oldest of all, and still kept.
    File::options().write(true).open(&entry).unwrap().set_modified(old).unwrap();

    cache.prune();
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    let mut expected: Vec<String> = (0..KEEP).map(|i| format!("{i:064x}-{ours}")).collect();
    expected.push(entry.file_name().unwrap().to_str().unwrap().into());
    expected.push(format!("{TEMP_PREFIX}1-1-fresh"));
    expected.push("README".into());
    expected.sort();
    assert_eq!(names, expected);
}
