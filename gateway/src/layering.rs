//! The layering rules of design.md ("arrows point down only"), checked on the source text so a
//! lower part that starts importing a higher one fails `cargo test`, not a later review.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `src/<part>`, or the one file `src/<part>.rs`.
fn sources(part: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    let mut stack = vec![root.join(part)];
    let file = root.join(format!("{part}.rs"));
    if file.is_file() {
        found.push(file);
    }
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    assert!(!found.is_empty(), "no sources for {part}");
    found
}

/// The lines of `part` that name `crate::<other>` for any of `forbidden`.
fn reaches(part: &str, forbidden: &[&str]) -> Vec<String> {
    let mut bad = Vec::new();
    for file in sources(part) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for other in forbidden {
                if line.contains(&format!("crate::{other}")) {
                    bad.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    bad
}

#[test]
fn tls_uses_no_other_part() {
    let parts = ["conf", "certs", "cluster", "proxy", "node", "admin", "entities", "catalog", "store", "wasm"];
    let bad = reaches("tls", &parts);
    assert!(bad.is_empty(), "tls/ must stay the lowest layer:\n{}", bad.join("\n"));
}

#[test]
fn certs_and_conf_do_not_form_a_cycle() {
    let bad = reaches("certs", &["conf", "node", "cluster", "proxy"]);
    assert!(bad.is_empty(), "certs/ sits under conf/:\n{}", bad.join("\n"));
}

#[test]
fn the_cluster_and_the_proxy_do_not_reach_up() {
    let mut bad = reaches("cluster", &["node", "admin"]);
    bad.extend(reaches("proxy", &["cluster", "node", "admin"]));
    bad.extend(reaches("server", &["node", "proxy", "admin", "cluster"]));
    bad.extend(reaches("store", &["node", "catalog", "admin"]));
    bad.extend(reaches("telemetry", &["node", "admin", "proxy", "server", "cluster", "catalog", "metrics"]));
    bad.extend(reaches("io", &["node", "proxy", "admin", "cluster", "server"]));
    bad.extend(reaches("console", &["node", "proxy", "cluster", "server", "store", "wasm", "catalog", "telemetry"]));
    for part in ["admin", "proxy", "cluster", "conf", "catalog", "server", "logs"] {
        bad.extend(reaches(part, &["console"]));
    }
    bad.extend(reaches("workers", &["node", "proxy", "admin", "cluster", "server", "wasm", "conf", "entities"]));
    bad.extend(reaches(
        "logs",
        &["node", "proxy", "admin", "cluster", "server", "wasm", "conf", "entities", "catalog"],
    ));
    assert!(bad.is_empty(), "a lower layer imports a higher one:\n{}", bad.join("\n"));
}
