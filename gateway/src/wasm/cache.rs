//! Compiled components kept on disk in `<prefix>/wasm-cache/`, so a node compiles each component
//! once, not at every start (cranelift takes seconds on the router; loading a precompiled entry
//! takes milliseconds). Loading compiled code trusts its bytes as machine code, so an entry is used
//! only if the file is ours (owner, mode, a plain file in a private directory) and intact (its
//! recorded digests and key match); anything else is a miss: the entry is removed and rewritten.
//! docs/security.md has the threat model.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The cache's directory under the prefix.
pub const DIR: &str = "wasm-cache";
/// Entries of this engine kept besides those this process used (newest first).
const KEEP: usize = 16;
/// No entry is larger than this (the router's compiled code is a few MiB); a bigger file is not read.
const MAX_ENTRY: u64 = 256 << 20;
/// A temporary file older than this is a leftover of a crashed writer.
const STALE_TEMP: Duration = Duration::from_secs(3600);
const SUFFIX: &str = ".cwasm";
const TEMP_PREFIX: &str = ".tmp-";

/// `magic | engine key | wasm digest | payload length (u64 LE) | payload digest | payload`.
const MAGIC: &[u8; 8] = b"gwcwasm\x01";
const HEADER: usize = 8 + 32 + 32 + 8 + 32;

/// Why an entry on disk was not used. Each is a miss; none is an error of the node.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Rejected {
    #[error("it is not a regular file")]
    NotAFile,
    #[error("it belongs to uid {owner}, not to this process's uid {ours}")]
    NotOurs { owner: u32, ours: u32 },
    #[error("its mode {mode:o} lets others read or write it")]
    Mode { mode: u32 },
    #[error("it is {size} bytes, more than any entry")]
    TooLarge { size: u64 },
    #[error("it is not a cache entry of this gateway")]
    Magic,
    #[error("it was compiled by another engine or build")]
    Engine,
    #[error("it was compiled from other wasm")]
    Content,
    #[error("it is truncated or has trailing bytes ({size} bytes, its header says {expected})")]
    Length { size: u64, expected: u64 },
    #[error("its compiled code does not match its digest")]
    Digest,
    #[error("wasmtime refused it: {0}")]
    Deserialize(String),
}

/// What [`CompileCache::lookup`] found.
pub enum Lookup {
    Hit(Component),
    Miss,
    Rejected(Rejected),
}

/// The cache directory of one engine.
pub struct CompileCache {
    dir: PathBuf,
    /// The engine's compatibility hash, through SHA-256: entries of other engines never match.
    engine_key: [u8; 32],
    euid: u32,
    /// Entry names this process used or wrote: never pruned while it runs.
    used: Mutex<HashSet<String>>,
    temp_counter: AtomicU64,
}

/// Why the cache directory cannot be used (the node then compiles without a cache).
#[derive(Debug, thiserror::Error)]
pub enum CacheDirError {
    #[error("cannot create {}: {source}", path.display())]
    Create { path: PathBuf, source: std::io::Error },
    #[error("{} is not a directory (a symbolic link is not followed)", path.display())]
    NotADirectory { path: PathBuf },
    #[error("{} belongs to uid {owner}, not to this process's uid {ours}", path.display())]
    NotOurs { path: PathBuf, owner: u32, ours: u32 },
    #[error("cannot make {} private (mode 0700): {source}", path.display())]
    Chmod { path: PathBuf, source: std::io::Error },
}

/// The cache's directory in a node's prefix when `wasm_cache_path` is unset.
pub fn default_dir(prefix: &Path) -> PathBuf {
    prefix.join(DIR)
}

impl CompileCache {
    /// Opens (creating it 0700 when missing) the cache directory `<prefix>/wasm-cache` for `engine`.
    pub fn open(prefix: &Path, engine: &Engine) -> Result<CompileCache, CacheDirError> {
        CompileCache::open_dir(&default_dir(prefix), engine)
    }

    /// The cache in `dir` itself (`wasm_cache_path`), made 0700 when missing.
    pub fn open_dir(dir: &Path, engine: &Engine) -> Result<CompileCache, CacheDirError> {
        let dir = dir.to_path_buf();
        let euid = rustix::process::geteuid().as_raw();
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(CacheDirError::Create { path: dir, source }),
        }
        let meta =
            std::fs::symlink_metadata(&dir).map_err(|source| CacheDirError::Create { path: dir.clone(), source })?;
        if !meta.file_type().is_dir() {
            return Err(CacheDirError::NotADirectory { path: dir });
        }
        if meta.uid() != euid {
            return Err(CacheDirError::NotOurs { path: dir, owner: meta.uid(), ours: euid });
        }
        if meta.mode() & 0o777 != 0o700 {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|source| CacheDirError::Chmod { path: dir.clone(), source })?;
        }
        Ok(CompileCache {
            dir,
            engine_key: engine_key(engine),
            euid,
            used: Mutex::new(HashSet::new()),
            temp_counter: AtomicU64::new(0),
        })
    }

    /// The file an entry for `wasm` lives in.
    pub fn entry_path(&self, wasm: &[u8]) -> PathBuf {
        self.dir.join(self.entry_name(&Sha256::digest(wasm).into()))
    }

    fn entry_name(&self, wasm_digest: &[u8; 32]) -> String {
        format!("{}-{}{SUFFIX}", hex(wasm_digest), &hex(&self.engine_key)[..16])
    }

    /// The compiled component for `wasm`: from the cache when an intact entry of ours is there,
    /// else compiled now and written to the cache (a failed write is only logged).
    pub fn compile(&self, engine: &Engine, name: &str, wasm: &[u8]) -> wasmtime::Result<Component> {
        let started = Instant::now();
        let digest: [u8; 32] = Sha256::digest(wasm).into();
        let entry = self.entry_name(&digest);
        self.used.lock().unwrap_or_else(|p| p.into_inner()).insert(entry.clone());
        let path = self.dir.join(&entry);
        match self.lookup(engine, &digest, &path) {
            Lookup::Hit(component) => {
                tracing::info!(
                    component = %name,
                    elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "component loaded from the compile cache"
                );
                return Ok(component);
            }
            Lookup::Miss => {}
            Lookup::Rejected(reason) => {
                tracing::warn!(component = %name, file = %path.display(), %reason, "ignoring a compile cache entry; compiling the component again");
                if let Err(error) = std::fs::remove_file(&path) {
                    tracing::warn!(file = %path.display(), %error, "cannot remove the rejected compile cache entry");
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        let compiled_ms = started.elapsed().as_secs_f64() * 1000.0;
        match component
            .serialize()
            .map_err(|e| std::io::Error::other(super::chain(&e)))
            .and_then(|code| self.write(&digest, &entry, &code))
        {
            Ok(()) => {
                tracing::info!(component = %name, elapsed_ms = compiled_ms, file = %path.display(), "component compiled and cached")
            }
            Err(error) => tracing::warn!(
                component = %name,
                elapsed_ms = compiled_ms,
                dir = %self.dir.display(),
                %error,
                "component compiled, but it cannot be cached: the next start compiles it again"
            ),
        }
        self.prune();
        Ok(component)
    }

    /// Reads and checks the entry at `path` for wasm with `digest`. Only an entry that passes every
    /// check reaches `Component::deserialize`.
    pub fn lookup(&self, engine: &Engine, digest: &[u8; 32], path: &Path) -> Lookup {
        let code = match self.read_checked(digest, path) {
            Ok(Some(code)) => code,
            Ok(None) => return Lookup::Miss,
            Err(reason) => return Lookup::Rejected(reason),
        };
        // SAFETY: `code` is what `Component::serialize` produced for this wasm on an engine with
        // this compatibility hash: the file is a plain file owned by this uid in a directory only
        // this uid can write, and its SHA-256 matches the digest recorded when it was written.
        // Whoever could forge that can already act as this uid (see docs/security.md). The bytes
        // checked are the bytes loaded: `deserialize_file` would open the path again after the checks.
        #[allow(unsafe_code)]
        match unsafe { Component::deserialize(engine, &code[HEADER..]) } {
            Ok(component) => Lookup::Hit(component),
            Err(e) => Lookup::Rejected(Rejected::Deserialize(super::chain(&e))),
        }
    }

    /// The entry's bytes (header included) if the file exists and passes the checks.
    fn read_checked(&self, digest: &[u8; 32], path: &Path) -> Result<Option<Vec<u8>>, Rejected> {
        let before = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(_) => return Ok(None),
        };
        if !before.file_type().is_file() {
            return Err(Rejected::NotAFile);
        }
        let Ok(mut file) = File::open(path) else { return Ok(None) };
        let Ok(meta) = file.metadata() else { return Ok(None) };
        // The file opened is the one inspected (not swapped for a link in between).
        if meta.dev() != before.dev() || meta.ino() != before.ino() || !meta.is_file() {
            return Err(Rejected::NotAFile);
        }
        if meta.uid() != self.euid {
            return Err(Rejected::NotOurs { owner: meta.uid(), ours: self.euid });
        }
        if meta.mode() & 0o077 != 0 {
            return Err(Rejected::Mode { mode: meta.mode() & 0o7777 });
        }
        let size = meta.len();
        if size > MAX_ENTRY {
            return Err(Rejected::TooLarge { size });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        if file.read_to_end(&mut bytes).is_err() {
            return Ok(None);
        }
        let size = bytes.len() as u64;
        if bytes.len() < HEADER {
            return Err(if bytes.len() >= MAGIC.len() && &bytes[..MAGIC.len()] != MAGIC {
                Rejected::Magic
            } else {
                Rejected::Length { size, expected: HEADER as u64 }
            });
        }
        let (magic, rest) = bytes[..HEADER].split_at(8);
        let (engine, rest) = rest.split_at(32);
        let (content, rest) = rest.split_at(32);
        let (length, code_digest) = rest.split_at(8);
        if magic != MAGIC {
            return Err(Rejected::Magic);
        }
        if engine != self.engine_key {
            return Err(Rejected::Engine);
        }
        if content != digest {
            return Err(Rejected::Content);
        }
        let length = u64::from_le_bytes(length.try_into().expect("8 bytes"));
        let expected = (HEADER as u64).saturating_add(length);
        if size != expected {
            return Err(Rejected::Length { size, expected });
        }
        if Sha256::digest(&bytes[HEADER..]).as_slice() != code_digest {
            return Err(Rejected::Digest);
        }
        // Recently used entries are the ones pruning keeps.
        let _ = file.set_modified(SystemTime::now());
        Ok(Some(bytes))
    }

    /// Writes an entry atomically: a private temporary file, then a rename over the entry. A crash
    /// in between leaves a temporary file (pruned later) or a torn entry (its digest fails).
    fn write(&self, digest: &[u8; 32], entry: &str, code: &[u8]) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(HEADER + code.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&self.engine_key);
        bytes.extend_from_slice(digest);
        bytes.extend_from_slice(&(code.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&Sha256::digest(code));
        bytes.extend_from_slice(code);
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        let temp = self.dir.join(format!("{TEMP_PREFIX}{}-{n}-{entry}", std::process::id()));
        let result = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .and_then(|mut file| file.write_all(&bytes))
            .and_then(|()| std::fs::rename(&temp, self.dir.join(entry)));
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result
    }

    /// Bounds the directory: entries of other engines and stale temporary files go; of this
    /// engine's entries, those this process used stay plus the [`KEEP`] most recently used others.
    pub fn prune(&self) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else { return };
        let ours = format!("-{}{SUFFIX}", &hex(&self.engine_key)[..16]);
        let used = self.used.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let now = SystemTime::now();
        let mut kept = Vec::new();
        for item in dir.flatten() {
            let Ok(name) = item.file_name().into_string() else { continue };
            let Ok(meta) = item.metadata() else { continue };
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            if name.starts_with(TEMP_PREFIX) {
                if now.duration_since(modified).is_ok_and(|age| age > STALE_TEMP) {
                    self.remove(&name);
                }
            } else if !name.ends_with(SUFFIX) || used.contains(&name) {
                continue;
            } else if !name.ends_with(&ours) {
                self.remove(&name);
            } else {
                kept.push((modified, name));
            }
        }
        kept.sort_by_key(|entry| std::cmp::Reverse(entry.0));
        for (_, name) in kept.into_iter().skip(KEEP) {
            self.remove(&name);
        }
    }

    fn remove(&self, name: &str) {
        match std::fs::remove_file(self.dir.join(name)) {
            Ok(()) => tracing::debug!(file = name, "pruned from the compile cache"),
            Err(error) => tracing::debug!(file = name, %error, "cannot prune a compile cache entry"),
        }
    }
}

/// SHA-256 over the engine's compatibility hash: settings, target, CPU features and wasmtime's
/// version, everything that makes compiled code valid for this engine.
fn engine_key(engine: &Engine) -> [u8; 32] {
    struct Feed(Sha256);
    impl std::hash::Hasher for Feed {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut feed = Feed(Sha256::new());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut feed);
    feed.0.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
