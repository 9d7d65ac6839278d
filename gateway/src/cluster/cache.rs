//! A data plane's cache of the last configuration it applied: `<prefix>/dbless.lmdb`, holding the
//! declarative document and its hash, written in one transaction per applied configuration. At
//! start a cache that cannot be opened or whose hash does not verify is moved aside
//! (`dbless.lmdb.corrupt-<unix time>`) and replaced by an empty one: a bad cache never stops a node.
//! A configuration that uses plugins the node does not run (any more) is kept but not served.

use std::path::{Path, PathBuf};

use heed::types::{Bytes, Str};
use heed::{Database, Env};
use serde_json::Value;

use crate::entities::{Config, ErrorKind, PluginRegistry, config_hash, parse_value_with};
use crate::store::StoreError;
use crate::store::lmdb::open_env;

/// The cache's directory under `prefix`.
pub const CACHE_DIR: &str = "dbless.lmdb";

pub struct ConfigCache {
    env: Env,
    db: Database<Str, Bytes>,
    map_size: u64,
}

/// What reading the cache found.
enum Found {
    Config(Box<Config>, String),
    Empty,
    NotRunnable(Vec<String>),
}

/// What opening the cache found.
pub enum Cached {
    /// A configuration whose hash verified.
    Config(Box<Config>, String),
    /// Nothing cached yet.
    Empty,
    /// A configuration using plugins this node does not run: not served, but kept (it is fine
    /// once the node runs them again).
    NotRunnable { plugins: Vec<String> },
    /// The cache was unusable and was moved to this path; the new cache is empty.
    MovedAside { to: PathBuf, why: String },
}

impl ConfigCache {
    /// Opens the cache in `prefix`, setting aside one that is unusable.
    /// Plugin entities are checked against `plugins`, the node's plugins.
    pub fn open(prefix: &Path, map_size: u64, plugins: &PluginRegistry) -> Result<(ConfigCache, Cached), StoreError> {
        let path = prefix.join(CACHE_DIR);
        match Self::try_open(&path, map_size, plugins) {
            Ok((cache, Found::Config(config, hash))) => Ok((cache, Cached::Config(config, hash))),
            Ok((cache, Found::Empty)) => Ok((cache, Cached::Empty)),
            Ok((cache, Found::NotRunnable(plugins))) => Ok((cache, Cached::NotRunnable { plugins })),
            Err(why) => {
                let stamp =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                let mut to = prefix.join(format!("{CACHE_DIR}.corrupt-{stamp}"));
                for n in 1.. {
                    if !to.exists() {
                        break;
                    }
                    to = prefix.join(format!("{CACHE_DIR}.corrupt-{stamp}-{n}"));
                }
                std::fs::rename(&path, &to).map_err(|e| StoreError::Open {
                    path: path.display().to_string(),
                    message: format!("{why}; moving it to {} failed: {e}", to.display()),
                })?;
                let (cache, _) = Self::try_open(&path, map_size, plugins)
                    .map_err(|message| StoreError::Open { path: path.display().to_string(), message })?;
                Ok((cache, Cached::MovedAside { to, why }))
            }
        }
    }

    fn try_open(path: &Path, map_size: u64, plugins: &PluginRegistry) -> Result<(ConfigCache, Found), String> {
        let (env, db) = open_env(path, map_size, "config").map_err(|e| e.to_string())?;
        let cache = ConfigCache { env, db, map_size };
        match cache.read(plugins) {
            Ok(found) => Ok((cache, found)),
            Err(why) => {
                // Close the map before the directory is moved, so a new one opens fresh.
                let ConfigCache { env, .. } = cache;
                env.prepare_for_closing().wait();
                Err(why)
            }
        }
    }

    fn read(&self, plugins: &PluginRegistry) -> Result<Found, String> {
        let txn = self.env.read_txn().map_err(|e| e.to_string())?;
        let doc = self.db.get(&txn, "config").map_err(|e| e.to_string())?;
        let hash = self.db.get(&txn, "hash").map_err(|e| e.to_string())?;
        let (doc, hash) = match (doc, hash) {
            (None, None) => return Ok(Found::Empty),
            (Some(doc), Some(hash)) => (doc, hash),
            _ => return Err("it holds a configuration without its hash, or a hash without a configuration".into()),
        };
        let hash = std::str::from_utf8(hash).map_err(|_| "its hash is not text".to_string())?.to_string();
        let doc: Value = serde_json::from_slice(doc).map_err(|e| format!("its configuration is not JSON: {e}"))?;
        let config = match parse_value_with(&doc, plugins) {
            Ok(config) => config,
            Err(errors) => {
                let mut missing: Vec<String> = errors
                    .iter()
                    .filter_map(|e| match &e.kind {
                        ErrorKind::PluginNotRunnable { plugin } => Some(plugin.clone()),
                        _ => None,
                    })
                    .collect();
                if missing.len() == errors.len() {
                    missing.sort();
                    missing.dedup();
                    return Ok(Found::NotRunnable(missing));
                }
                return Err(format!("its configuration is invalid ({} errors)", errors.len()));
            }
        };
        let actual = config_hash(&config);
        if actual != hash {
            return Err(format!("its configuration hashes to {actual}, not the stored {hash}"));
        }
        Ok(Found::Config(Box::new(config), hash))
    }

    /// Keeps `doc` (a declarative document) and its hash, in one transaction.
    pub fn save(&self, doc: &Value, hash: &str) -> Result<(), StoreError> {
        let fail = |e: heed::Error| match e {
            heed::Error::Mdb(heed::MdbError::MapFull) => StoreError::Full { map_size: self.map_size },
            other => StoreError::Io(other.to_string()),
        };
        let bytes = serde_json::to_vec(doc).expect("JSON values serialise");
        let mut txn = self.env.write_txn().map_err(fail)?;
        self.db.put(&mut txn, "config", &bytes).map_err(fail)?;
        self.db.put(&mut txn, "hash", hash.as_bytes()).map_err(fail)?;
        txn.commit().map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entities::to_declarative;

    fn sample() -> Config {
        crate::entities::parse_str(
            "_format_version: '3.0'\nservices:\n- {name: s, host: a.test, routes: [{paths: [/a]}]}\n",
            false,
            "t",
        )
        .unwrap()
    }

    #[test]
    fn a_saved_config_comes_back_verified() {
        let dir = tempfile::tempdir().unwrap();
        let config = sample();
        let hash = config_hash(&config);
        {
            let (cache, found) = ConfigCache::open(dir.path(), 1 << 24, PluginRegistry::bundled()).unwrap();
            assert!(matches!(found, Cached::Empty));
            cache.save(&to_declarative(&config), &hash).unwrap();
        }
        let (_, found) = ConfigCache::open(dir.path(), 1 << 24, PluginRegistry::bundled()).unwrap();
        let Cached::Config(back, back_hash) = found else { panic!("expected the cached config") };
        assert_eq!((*back, back_hash), (config, hash));
    }

    #[test]
    fn a_config_with_plugins_this_node_does_not_run_is_kept_but_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let registry = crate::entities::plugins::testing::registry();
        let yaml = "_format_version: '3.0'\nplugins:\n- {name: cors}\n- {name: key-auth}\n";
        let config = crate::entities::parse_str_with(yaml, false, "t", &registry).unwrap();
        let hash = config_hash(&config);
        {
            let (cache, _) = ConfigCache::open(dir.path(), 1 << 24, &registry).unwrap();
            cache.save(&to_declarative(&config), &hash).unwrap();
        }
        let (_, found) = ConfigCache::open(dir.path(), 1 << 24, PluginRegistry::bundled()).unwrap();
        match found {
            Cached::NotRunnable { plugins } => assert_eq!(plugins, ["cors", "key-auth"]),
            _ => panic!("expected NotRunnable"),
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "nothing was moved aside");
        let (_, found) = ConfigCache::open(dir.path(), 1 << 24, &registry).unwrap();
        assert!(matches!(found, Cached::Config(_, h) if h == hash), "served again once the plugins are back");
    }

    #[test]
    fn a_wrong_hash_or_garbage_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (cache, _) = ConfigCache::open(dir.path(), 1 << 24, PluginRegistry::bundled()).unwrap();
            cache.save(&to_declarative(&sample()), &"0".repeat(32)).unwrap();
        }
        let (_, found) = ConfigCache::open(dir.path(), 1 << 24, PluginRegistry::bundled()).unwrap();
        let Cached::MovedAside { to, why } = found else { panic!("expected the cache to be set aside") };
        assert!(why.contains("hashes to"), "{why}");
        assert!(to.is_dir());

        std::fs::write(dir.path().join(CACHE_DIR).join("data.mdb"), vec![0x5a; 64 * 1024]).unwrap();
        let (cache, found) = ConfigCache::open(dir.path(), 1 << 24, PluginRegistry::bundled()).unwrap();
        assert!(matches!(found, Cached::MovedAside { .. }));
        cache.save(&to_declarative(&sample()), &config_hash(&sample())).unwrap();
    }
}

#[cfg(test)]
mod thread_tests {
    use super::*;

    #[test]
    fn saving_from_another_thread_works() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().to_path_buf();
        let (cache, _) = std::thread::spawn(move || ConfigCache::open(&p, 1 << 24, PluginRegistry::bundled()).unwrap())
            .join()
            .unwrap();
        let cache = std::sync::Arc::new(cache);
        let c = cache.clone();
        let doc = serde_json::json!({"_format_version": "3.0"});
        std::thread::spawn(move || c.save(&doc, "x")).join().unwrap().unwrap();
    }
}
