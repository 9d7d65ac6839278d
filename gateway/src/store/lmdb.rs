//! The embedded store: one LMDB environment under `prefix` (files 0600 in a 0700 directory), one
//! database of records keyed `<kind>/<id>`, each a JSON document. A batch is one write transaction.

use std::path::{Path, PathBuf};

use heed::types::{Bytes, Str};
use heed::{Database, Env, EnvOpenOptions};

pub use heed::Error as HeedError;

use super::{Change, Kind, Record, Store, StoreError};

pub struct LmdbStore {
    env: Env,
    records: Database<Str, Bytes>,
    path: PathBuf,
    map_size: u64,
}

impl LmdbStore {
    /// Opens (creating if needed) the store in directory `path`, at most `map_size` bytes.
    pub fn open(path: &Path, map_size: u64) -> Result<LmdbStore, StoreError> {
        let (env, records) = open_env(path, map_size, "records")?;
        Ok(LmdbStore { env, records, path: path.to_path_buf(), map_size })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, e: heed::Error) -> StoreError {
        match e {
            heed::Error::Mdb(heed::MdbError::MapFull) => StoreError::Full { map_size: self.map_size },
            other => StoreError::Io(other.to_string()),
        }
    }
}

/// An LMDB environment in directory `path` (made 0700; LMDB makes its files 0600) with one named
/// database of string keys and byte values.
pub(crate) fn open_env(path: &Path, map_size: u64, name: &str) -> Result<(Env, Database<Str, Bytes>), StoreError> {
    let (env, dbs) = open_databases(path, map_size, &[name])?;
    Ok((env, dbs[0].remap_key_type::<Str>()))
}

/// An LMDB environment in directory `path` (made 0700; LMDB makes its files 0600) with the named
/// databases of byte keys and values, in the order of `names`.
pub(crate) fn open_databases(
    path: &Path,
    map_size: u64,
    names: &[&str],
) -> Result<(Env, Vec<Database<Bytes, Bytes>>), StoreError> {
    let fail = |message: String| StoreError::Open { path: path.display().to_string(), message };
    crate::prefix::ensure(path).map_err(|e| fail(e.to_string()))?;
    let mut options = EnvOpenOptions::new();
    options
        .map_size(usize::try_from(map_size).unwrap_or(usize::MAX))
        .max_dbs(u32::try_from(names.len() + 1).unwrap_or(u32::MAX));
    // SAFETY: heed's `open` is unsafe because the map must not be modified behind LMDB's back.
    // Only this process opens the environment (LMDB's lock file guards other processes), heed
    // allows opening the same path twice in one process, and the files live in our 0700 prefix.
    #[allow(unsafe_code)]
    let env = unsafe { options.open(path) }.map_err(|e| fail(e.to_string()))?;
    let mut txn = env.write_txn().map_err(|e| fail(e.to_string()))?;
    let mut dbs = Vec::with_capacity(names.len());
    for name in names {
        dbs.push(env.create_database(&mut txn, Some(name)).map_err(|e| fail(e.to_string()))?);
    }
    txn.commit().map_err(|e| fail(e.to_string()))?;
    Ok((env, dbs))
}

fn key(kind: Kind, id: &uuid::Uuid) -> String {
    format!("{}/{id}", kind.name())
}

impl Store for LmdbStore {
    fn load(&self) -> Result<Vec<Record>, StoreError> {
        let txn = self.env.read_txn().map_err(|e| self.error(e))?;
        let mut out = Vec::new();
        for item in self.records.iter(&txn).map_err(|e| self.error(e))? {
            let (k, bytes) = item.map_err(|e| self.error(e))?;
            let corrupt = |message: String| StoreError::Corrupt { key: k.to_string(), message };
            let (kind_name, id) = k.split_once('/').ok_or_else(|| corrupt("not <kind>/<id>".into()))?;
            let kind = Kind::from_name(kind_name).ok_or_else(|| corrupt(format!("unknown kind {kind_name:?}")))?;
            let id = uuid::Uuid::parse_str(id).map_err(|e| corrupt(e.to_string()))?;
            let value = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
            out.push(Record { kind, id, value });
        }
        out.sort_by_key(|r| (r.kind, r.id));
        Ok(out)
    }

    fn commit(&self, changes: &[Change]) -> Result<(), StoreError> {
        let mut txn = self.env.write_txn().map_err(|e| self.error(e))?;
        for change in changes {
            match change {
                Change::Put(record) => {
                    let bytes = serde_json::to_vec(&record.value).expect("JSON values serialise");
                    // What `load` could not read back would stop the next start: refuse it now.
                    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                        let key = key(record.kind, &record.id);
                        return Err(StoreError::Unreadable { key, message: e.to_string() });
                    }
                    self.records.put(&mut txn, &key(record.kind, &record.id), &bytes).map_err(|e| self.error(e))?;
                }
                Change::Delete { kind, id } => {
                    self.records.delete(&mut txn, &key(*kind, id)).map_err(|e| self.error(e))?;
                }
            }
        }
        // Dropping the transaction on an error above aborts it: nothing of the batch is written.
        txn.commit().map_err(|e| self.error(e))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    fn record(kind: Kind, n: u128, value: serde_json::Value) -> Record {
        Record { kind, id: Uuid::from_u128(n), value }
    }

    #[test]
    fn batches_survive_a_reopen_and_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("entities.lmdb");
        {
            let store = LmdbStore::open(&path, 1 << 20).unwrap();
            store
                .commit(&[
                    Change::Put(record(Kind::Routes, 2, json!({"paths": ["/a"]}))),
                    Change::Put(record(Kind::Services, 1, json!({"host": "a.test"}))),
                ])
                .unwrap();
            store
                .commit(&[
                    Change::Delete { kind: Kind::Routes, id: Uuid::from_u128(2) },
                    Change::Put(record(Kind::Services, 3, json!({}))),
                ])
                .unwrap();
        }
        let store = LmdbStore::open(&path, 1 << 20).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(
            loaded,
            vec![record(Kind::Services, 1, json!({"host": "a.test"})), record(Kind::Services, 3, json!({}))]
        );
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o700);
        for file in ["data.mdb", "lock.mdb"] {
            assert_eq!(std::fs::metadata(path.join(file)).unwrap().permissions().mode() & 0o777, 0o600, "{file}");
        }
    }

    #[test]
    fn a_record_that_could_not_be_read_back_is_refused_with_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let store = LmdbStore::open(&path, 1 << 20).unwrap();
        let mut deep = json!(1);
        for _ in 0..200 {
            deep = json!([deep]);
        }
        let error = store
            .commit(&[Change::Put(record(Kind::Services, 1, json!({}))), Change::Put(record(Kind::Plugins, 2, deep))])
            .unwrap_err();
        assert!(matches!(error, StoreError::Unreadable { .. }), "{error}");
        drop(store);
        assert_eq!(LmdbStore::open(&path, 1 << 20).unwrap().load().unwrap(), vec![]);
    }

    #[test]
    fn a_full_store_refuses_the_whole_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = LmdbStore::open(&dir.path().join("s"), 64 * 1024).unwrap();
        store.commit(&[Change::Put(record(Kind::Services, 1, json!({"keep": true})))]).unwrap();
        let big = json!({"blob": "x".repeat(16 * 1024)});
        let batch: Vec<Change> = (10..30).map(|n| Change::Put(record(Kind::Services, n, big.clone()))).collect();
        let error = store.commit(&batch).unwrap_err();
        assert!(error.to_string().contains("the store is full: raise lmdb_map_size"), "{error}");
        assert_eq!(store.load().unwrap(), vec![record(Kind::Services, 1, json!({"keep": true}))]);
    }
}
