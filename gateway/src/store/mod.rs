//! Where a traditional node or a control plane keeps its entities. Callers see only [`Store`]: the
//! records of every kind, loaded at start, and atomic batches of changes. The embedded LMDB store
//! ([`lmdb::LmdbStore`]) is the one we ship; a PostgreSQL store can be added behind the same trait.
//!
//! A record is one entity in Kong's flat declarative shape (references as `{"id": …}`) plus its
//! `created_at` and `updated_at`, as JSON. Checking entities against each other (unique names,
//! references, delete rules) is the caller's job, done on the whole configuration before a batch is
//! written, so a store only has to make a batch all-or-nothing.

pub mod lmdb;

use serde_json::Value;
use uuid::Uuid;

pub use crate::entities::Kind;

/// One stored entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub kind: Kind,
    pub id: Uuid,
    pub value: Value,
}

/// One change in a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Put(Record),
    Delete { kind: Kind, id: Uuid },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store is full: raise lmdb_map_size (now {map_size} bytes)")]
    Full { map_size: u64 },
    #[error("the store at {path}: {message}")]
    Open { path: String, message: String },
    #[error("the store: {0}")]
    Io(String),
    #[error("the store holds a record it cannot read ({key}): {message}")]
    Corrupt { key: String, message: String },
    #[error("refusing to store {key}: it could not be read back ({message})")]
    Unreadable { key: String, message: String },
}

pub trait Store: Send + Sync {
    /// Every record, grouped by kind in [`Kind`] order, each kind by id.
    fn load(&self) -> Result<Vec<Record>, StoreError>;
    /// Applies the batch in one transaction: all of it or nothing.
    fn commit(&self, changes: &[Change]) -> Result<(), StoreError>;
}
