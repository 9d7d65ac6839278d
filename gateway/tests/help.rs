//! `--help` works on every command. (Being an integration test of this package, it also makes
//! `cargo test --workspace` build the `gateway` binary that the end-to-end tests in `tests/` run.)

use std::process::Command;

#[test]
fn every_command_has_help() {
    for args in [
        &[][..],
        &["start"],
        &["check"],
        &["hybrid"],
        &["hybrid", "gen_cert"],
        &["config"],
        &["config", "parse"],
        &["version"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_gateway")).args(args).arg("--help").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?} --help failed: {}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("Usage: gateway"), "{args:?}: {text}");
    }
}

#[test]
fn version_prints_the_crate_version() {
    let out = Command::new(env!("CARGO_BIN_EXE_gateway")).arg("version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("gateway {}\n", env!("CARGO_PKG_VERSION")));
}
