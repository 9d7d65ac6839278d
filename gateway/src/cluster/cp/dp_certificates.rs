//! The data-plane certificates a pki control plane trusts on top of `cluster_ca_cert`, as the Admin
//! API manages them (`/clustering/dp-certificates`): pinned leaves or CAs, kept in
//! `<prefix>/dp_certificates.json` and handed to [`DpTrust`] after every change and at start.
//!
//! A file, not the entity store: these are not part of the configuration pushed to data planes
//! (nor of its hash or `/config` export), they change rarely, and an operator can read or back
//! them up. It is replaced atomically (temporary file, fsync, rename, fsync of the directory), 0644
//! since it holds only certificates. No private key ever passes through here: `generate` returns
//! the key it makes and keeps only the certificate.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::SectionKind;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::cluster::tls::DpTrust;
use crate::tls::pki::{self, PkiError, TrustSet};

/// The file under the prefix.
pub const FILE: &str = "dp_certificates.json";
/// At most this many entries: the list is read whole at every change and shown unpaged.
pub const MAX_ENTRIES: usize = 1000;
/// `generate`'s default validity, as Konnect's wizard: ten years.
pub const GENERATE_DEFAULT_DAYS: u32 = 3650;
/// The longest `generate` makes (100 years).
pub const GENERATE_MAX_DAYS: u32 = 36_500;

#[derive(Debug, thiserror::Error)]
pub enum DpCertError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: not a valid list of trusted data plane certificates: {message} (fix it, or remove it to trust only cluster_ca_cert)", path.display())]
    Corrupt { path: PathBuf, message: String },
    #[error("{}: {source}", path.display())]
    Trust { path: PathBuf, source: PkiError },
}

/// Why a certificate is refused, by field, for a 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

/// What a change can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("this certificate is already trusted (id {id})")]
    Duplicate { id: Uuid, digest: String },
    #[error("at most {MAX_ENTRIES} data plane certificates can be trusted")]
    Full,
    #[error(transparent)]
    Store(#[from] DpCertError),
}

/// One trusted certificate as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    id: Uuid,
    cert: String,
    created_at: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct FileBody {
    dp_certificates: Vec<Stored>,
}

/// One trusted certificate with the facts read from it.
#[derive(Debug, Clone)]
pub struct Entry {
    stored: Stored,
    der: CertificateDer<'static>,
    digest: String,
}

impl Entry {
    pub fn id(&self) -> Uuid {
        self.stored.id
    }

    /// The Admin API's shape: Kong's (`id`, `cert`, `cert_digest`, `created_at`) plus read-only
    /// facts about the certificate.
    pub fn render(&self) -> Value {
        let info = pki::info(&self.der);
        let now = UnixTime::now().as_secs() as i64;
        json!({
            "id": self.stored.id,
            "cert": self.stored.cert,
            "cert_digest": self.digest,
            "created_at": self.stored.created_at,
            "subject": info.as_ref().map(|i| i.subject.clone()),
            "issuer": info.as_ref().map(|i| i.issuer.clone()),
            "serial": info.as_ref().map(|i| i.serial.clone()),
            "not_before": info.as_ref().map(|i| i.not_before),
            "not_after": info.as_ref().map(|i| i.not_after),
            "expired": info.as_ref().map(|i| i.not_after < now),
            "is_ca": info.as_ref().map(|i| i.is_ca),
        })
    }
}

/// A new pair from [`DpCertificates::generate`]: the stored entry and the key, which is not kept.
pub struct Generated {
    pub entry: Entry,
    pub key_pem: String,
}

pub struct DpCertificates {
    path: PathBuf,
    trust: Arc<DpTrust>,
    /// Changes take turns: each writes the whole file.
    entries: tokio::sync::Mutex<Vec<Entry>>,
}

impl DpCertificates {
    /// Reads `<prefix>/dp_certificates.json` (none yet: an empty list) and trusts its certificates.
    /// A file that cannot be read is an error: starting without it would forget every entry at the
    /// next change.
    pub fn open(prefix: &Path, trust: Arc<DpTrust>) -> Result<DpCertificates, DpCertError> {
        let path = prefix.join(FILE);
        let entries = match std::fs::read(&path) {
            Ok(bytes) => parse_file(&path, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(DpCertError::Io { path, source }),
        };
        trust
            .set_extra(entries.iter().map(|e| e.der.clone()).collect())
            .map_err(|source| DpCertError::Trust { path: path.clone(), source })?;
        if !entries.is_empty() {
            tracing::info!(file = %path.display(), count = entries.len(), "trusting data plane certificates added through the Admin API");
        }
        Ok(DpCertificates { path, trust, entries: tokio::sync::Mutex::new(entries) })
    }

    pub async fn list(&self) -> Vec<Entry> {
        self.entries.lock().await.clone()
    }

    pub async fn get(&self, id: Uuid) -> Option<Entry> {
        self.entries.lock().await.iter().find(|e| e.stored.id == id).cloned()
    }

    /// Trusts `pem` (one certificate) from now on.
    pub async fn add(&self, pem: &str) -> Result<Entry, ChangeError> {
        let der = check_certificate(pem)?;
        self.insert(pem, der).await
    }

    /// Makes a self-signed data plane certificate named `name` valid for `days`, trusts it, and
    /// returns it with its key.
    pub async fn generate(&self, name: &str, days: u32) -> Result<Generated, ChangeError> {
        let pair = crate::certs::dp_self_signed(name, days)
            .map_err(|e| FieldError { field: "name", message: e.to_string() })?;
        let der = check_certificate(&pair.cert_pem)?;
        let entry = self.insert(&pair.cert_pem, der).await?;
        Ok(Generated { entry, key_pem: pair.key_pem })
    }

    async fn insert(&self, pem: &str, der: CertificateDer<'static>) -> Result<Entry, ChangeError> {
        let mut entries = self.entries.lock().await;
        let digest = hex(&Sha256::digest(der.as_ref()));
        if let Some(existing) = entries.iter().find(|e| e.digest == digest) {
            return Err(ChangeError::Duplicate { id: existing.stored.id, digest });
        }
        if entries.len() >= MAX_ENTRIES {
            return Err(ChangeError::Full);
        }
        let created_at = UnixTime::now().as_secs() as i64;
        let entry = Entry { stored: Stored { id: Uuid::new_v4(), cert: normalize(pem), created_at }, der, digest };
        let mut next = entries.clone();
        next.push(entry.clone());
        self.commit(&mut entries, next).await?;
        Ok(entry)
    }

    /// Stops trusting `id`. False when there is no such entry.
    pub async fn remove(&self, id: Uuid) -> Result<bool, ChangeError> {
        let mut entries = self.entries.lock().await;
        if !entries.iter().any(|e| e.stored.id == id) {
            return Ok(false);
        }
        let next: Vec<Entry> = entries.iter().filter(|e| e.stored.id != id).cloned().collect();
        self.commit(&mut entries, next).await?;
        Ok(true)
    }

    /// Writes `next`, then trusts it, then keeps it. If trusting fails the file is put back, so
    /// the file, the trust and the list always agree.
    async fn commit(&self, entries: &mut Vec<Entry>, next: Vec<Entry>) -> Result<(), DpCertError> {
        self.write(&next).await?;
        if let Err(source) = self.trust.set_extra(next.iter().map(|e| e.der.clone()).collect()) {
            self.write(entries).await?;
            return Err(DpCertError::Trust { path: self.path.clone(), source });
        }
        *entries = next;
        Ok(())
    }

    async fn write(&self, entries: &[Entry]) -> Result<(), DpCertError> {
        let body = FileBody { dp_certificates: entries.iter().map(|e| e.stored.clone()).collect() };
        let mut bytes = serde_json::to_vec_pretty(&body).expect("certificates serialise");
        bytes.push(b'\n');
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| DpCertError::Io { path: self.path.clone(), source: std::io::Error::other(e.to_string()) })?
    }
}

fn parse_file(path: &Path, bytes: &[u8]) -> Result<Vec<Entry>, DpCertError> {
    let corrupt = |message: String| DpCertError::Corrupt { path: path.to_path_buf(), message };
    let body: FileBody = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut entries: Vec<Entry> = Vec::with_capacity(body.dp_certificates.len());
    for (i, stored) in body.dp_certificates.into_iter().enumerate() {
        let der = one_certificate(&stored.cert)
            .map_err(|e| corrupt(format!("entry {} ({}): {}", i + 1, stored.id, e.message)))?;
        let digest = hex(&Sha256::digest(der.as_ref()));
        if entries.iter().any(|e| e.stored.id == stored.id) {
            return Err(corrupt(format!("entry {}: the id {} appears twice", i + 1, stored.id)));
        }
        entries.push(Entry { stored, der, digest });
    }
    Ok(entries)
}

/// Replaces `path` with `bytes` so that a crash leaves the old file or the new one, never a part.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), DpCertError> {
    let io = |source| DpCertError::Io { path: path.to_path_buf(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = dir.join(format!(".{FILE}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written.map_err(io)
}

/// A certificate the Admin API may add: one PEM certificate and nothing else, readable, usable as a
/// trust anchor, not expired, and either a CA or a leaf carrying EKU clientAuth (the control plane
/// would refuse any other leaf at the handshake, so accepting it would promise what is not kept).
pub fn check_certificate(pem: &str) -> Result<CertificateDer<'static>, FieldError> {
    let der = one_certificate(pem)?;
    let invalid = |message: String| FieldError { field: "cert", message };
    let info = pki::info(&der).ok_or_else(|| invalid("not a valid X.509 certificate".into()))?;
    if info.not_after < UnixTime::now().as_secs() as i64 {
        return Err(invalid(format!("the certificate expired at {}", pki::when(info.not_after))));
    }
    TrustSet::new(vec![der.clone()], "cert").map_err(|e| invalid(format!("cannot be trusted: {e}")))?;
    if !info.is_ca && !has_client_auth(&der) {
        return Err(invalid(
            "the certificate is not a CA and lacks the extended key usage clientAuth: a data plane could not use it"
                .into(),
        ));
    }
    Ok(der)
}

/// The single PEM certificate in `pem`; private keys and other blocks are refused.
fn one_certificate(pem: &str) -> Result<CertificateDer<'static>, FieldError> {
    let invalid = |message: &str| FieldError { field: "cert", message: message.to_string() };
    if pem.contains("PRIVATE KEY") {
        return Err(invalid("holds a private key: send only the certificate"));
    }
    let mut reader = std::io::Cursor::new(pem.as_bytes());
    let mut certs = Vec::new();
    loop {
        match rustls_pki_types::pem::from_buf(&mut reader) {
            Ok(Some((SectionKind::Certificate, der))) => certs.push(CertificateDer::from(der)),
            Ok(Some(_)) => return Err(invalid("holds a PEM block that is not a certificate")),
            Ok(None) => break,
            Err(_) => return Err(invalid("not valid PEM")),
        }
    }
    match certs.len() {
        0 => Err(invalid("not a PEM certificate (expected -----BEGIN CERTIFICATE-----)")),
        1 => {
            let der = certs.remove(0);
            x509_parser::parse_x509_certificate(der.as_ref()).map_err(|_| invalid("not a valid X.509 certificate"))?;
            Ok(der)
        }
        n => Err(invalid(&format!("holds {n} certificates: add them one at a time"))),
    }
}

fn has_client_auth(der: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(der.as_ref())
        .ok()
        .and_then(|(_, c)| c.extended_key_usage().ok().flatten().map(|e| e.value.client_auth))
        .unwrap_or(false)
}

/// The PEM text as stored and shown: trimmed, ending in one newline.
fn normalize(pem: &str) -> String {
    format!("{}\n", pem.trim())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
