//! `gateway plugin new NAME`: a new plugin project in `NAME/`, made from the template plugin, with
//! the plugin development kit and the WIT contract copied in from this binary, so it builds
//! anywhere with only the Rust toolchain, its `wasm32-wasip2` target and crates.io.

use std::path::{Path, PathBuf};

use crate::certs::{GenCertError, write_new};

const PDK_LIB: &str = include_str!("../../../plugins/pdk/src/lib.rs");
const PDK_CONFIG: &str = include_str!("../../../plugins/pdk/src/config.rs");
const PDK_AUTH: &str = include_str!("../../../plugins/pdk/src/auth.rs");
const TEMPLATE_LIB: &str = include_str!("../../../plugins/template/src/lib.rs");
const TEMPLATE_TESTS: &str = include_str!("../../../plugins/template/tests/plugin.rs");
const TESTKIT_LIB: &str = include_str!("../../../plugins/testkit/src/lib.rs");
const CONTRACT: &str = include_str!("../../../wit/plugin.wit");
/// The versions the gateway's own plugins are built and tested with.
const LOCK: &str = include_str!("../../../plugins/Cargo.lock");

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "{0:?} cannot be a plugin name: use lower-case letters, digits and '-', starting with a letter (at most 64)"
    )]
    Name(String),
    #[error("{} already exists. Will not overwrite it.", .0.display())]
    Exists(PathBuf),
    #[error("creating {}: {source}", path.display())]
    Create { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Write(#[from] GenCertError),
}

/// Kong's plugin names: lower-case letters, digits and dashes.
pub fn valid_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
}

/// The files of a new plugin `name`, by path relative to its directory.
pub fn files(name: &str) -> Vec<(&'static str, String)> {
    let version = env!("CARGO_PKG_VERSION");
    let manifest = format!(
        "[package]\n\
         name = \"{name}\"\n\
         description = \"A gateway plugin\"\n\
         version = \"0.1.0\"\n\
         edition = \"2024\"\n\
         publish = false\n\n\
         [lib]\n\
         crate-type = [\"cdylib\"]\n\n\
         [dependencies]\n\
         gateway-pdk = {{ path = \"pdk\" }}\n\
         serde = {{ version = \"1\", features = [\"derive\"] }}\n\n\
         [dev-dependencies]\n\
         gateway-plugin-test = {{ path = \"testkit\" }}\n\
         serde_json = \"1\"\n\n\
         # A project of its own, not part of an enclosing workspace.\n\
         [workspace]\n\
         members = [\".\", \"pdk\", \"testkit\"]\n\n\
         [profile.release]\n\
         opt-level = 3\n\
         lto = true\n\
         codegen-units = 1\n\
         strip = true\n\
         panic = \"abort\"\n"
    );
    let pdk_manifest = format!(
        "[package]\n\
         name = \"gateway-pdk\"\n\
         description = \"The gateway plugin development kit, as gateway {version} ships it\"\n\
         version = \"{version}\"\n\
         edition = \"2024\"\n\
         publish = false\n\n\
         [dependencies]\n\
         serde = {{ version = \"1\", features = [\"derive\"] }}\n\
         serde_json = \"1\"\n\
         serde_path_to_error = \"0.1\"\n\
         wit-bindgen = {{ version = \"0.61\", default-features = false, features = [\"macros\", \"realloc\"] }}\n"
    );
    let testkit_manifest = format!(
        "[package]\n\
         name = \"gateway-plugin-test\"\n\
         description = \"Test a plugin from cargo test with `gateway plugin run`, as gateway {version} ships it\"\n\
         version = \"{version}\"\n\
         edition = \"2024\"\n\
         publish = false\n\n\
         [dependencies]\n\
         serde = {{ version = \"1\", features = [\"derive\"] }}\n\
         serde_json = \"1\"\n"
    );
    let lib = TEMPLATE_LIB
        .replace("NAME: &'static str = \"template\";", &format!("NAME: &'static str = \"{name}\";"))
        .replace("The template plugin", &format!("The {name} plugin (made from the template)"))
        .replace("`gateway plugin new NAME` starts from this file.", "Change it to do what your plugin does.");
    let readme = format!(
        "# {name}\n\n\
         A plugin for gateway {version}, made by `gateway plugin new {name}`.\n\n\
         ```sh\n\
         cargo build --release                      # target/wasm32-wasip2/release/{file}.wasm\n\
         gateway plugin check target/wasm32-wasip2/release/{file}.wasm\n\
         cargo test --target host-tuple             # tests/plugin.rs, through `gateway plugin run`\n\
         ```\n\n\
         Then copy it to the gateway's `wasm_plugins_path` as `{name}.wasm` and add `{name}` to `plugins`.\n\
         `pdk/` is the plugin development kit and `pdk/wit/plugin.wit` the contract; keep both as they are.\n",
        file = name.replace('-', "_")
    );
    vec![
        ("Cargo.toml", manifest),
        ("Cargo.lock", LOCK.to_string()),
        (".cargo/config.toml", "[build]\ntarget = \"wasm32-wasip2\"\n".to_string()),
        ("src/lib.rs", lib),
        ("README.md", readme),
        ("pdk/Cargo.toml", pdk_manifest),
        ("pdk/src/lib.rs", PDK_LIB.replace("path: \"../../wit\"", "path: \"wit\"")),
        ("pdk/src/config.rs", PDK_CONFIG.to_string()),
        ("pdk/src/auth.rs", PDK_AUTH.to_string()),
        ("pdk/wit/plugin.wit", CONTRACT.to_string()),
        ("tests/plugin.rs", TEMPLATE_TESTS.to_string()),
        ("testkit/Cargo.toml", testkit_manifest),
        ("testkit/src/lib.rs", TESTKIT_LIB.to_string()),
    ]
}

/// Writes plugin `name` into `parent/name`, which must not exist.
pub fn new(parent: &Path, name: &str) -> Result<PathBuf, ScaffoldError> {
    if !valid_name(name) {
        return Err(ScaffoldError::Name(name.to_string()));
    }
    let root = parent.join(name);
    if root.exists() {
        return Err(ScaffoldError::Exists(root));
    }
    for (relative, text) in files(name) {
        let path = root.join(relative);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| ScaffoldError::Create { path: dir.to_path_buf(), source })?;
        }
        write_new(&path, text.as_bytes(), 0o644)?;
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_are_kongs() {
        for good in ["my-plugin", "a", "rate-limiting2"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "My", "-a", "a-", "a_b", "a b", "../x", &"a".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_scaffold_names_the_plugin_and_points_the_pdk_at_its_own_contract() {
        let files = files("my-header");
        let get = |p: &str| files.iter().find(|(path, _)| *path == p).map(|(_, t)| t.clone()).unwrap();
        assert!(get("src/lib.rs").contains("const NAME: &'static str = \"my-header\";"));
        assert!(get("pdk/src/config.rs").contains("pub fn check"));
        assert!(get("pdk/src/lib.rs").contains("path: \"wit\""));
        assert!(get("pdk/wit/plugin.wit").contains("world plugin-component"));
        assert!(get("Cargo.toml").contains("name = \"my-header\""));
    }

    #[test]
    fn an_existing_directory_is_never_touched() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("taken")).unwrap();
        assert!(matches!(new(dir.path(), "taken"), Err(ScaffoldError::Exists(_))));
        assert!(matches!(new(dir.path(), "Bad"), Err(ScaffoldError::Name(_))));
        let root = new(dir.path(), "fresh").unwrap();
        assert!(root.join("pdk/wit/plugin.wit").is_file());
    }
}
