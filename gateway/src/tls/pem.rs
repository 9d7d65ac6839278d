//! Certificates and keys as kong.conf and the Admin API give them: a file path or inline PEM
//! (with `\n` escapes for newlines), loaded into rustls' DER types with errors that name the source.

use std::fmt;
use std::path::PathBuf;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Certificates and keys are given as a file path or inline PEM, as Kong accepts them.
#[derive(Clone, PartialEq, Eq)]
pub enum PemSource {
    File(PathBuf),
    Inline(String),
}

impl fmt::Debug for PemSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PemSource::File(path) => write!(f, "File({})", path.display()),
            PemSource::Inline(pem) => write!(f, "Inline({} bytes)", pem.len()),
        }
    }
}

impl fmt::Display for PemSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PemSource::File(path) => write!(f, "{}", path.display()),
            PemSource::Inline(_) => f.write_str("inline PEM"),
        }
    }
}

impl PemSource {
    pub fn parse(v: &str) -> PemSource {
        if v.contains("-----BEGIN") {
            PemSource::Inline(v.replace("\\n", "\n"))
        } else {
            PemSource::File(PathBuf::from(v))
        }
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        match self {
            PemSource::File(path) => std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display())),
            PemSource::Inline(pem) => Ok(pem.as_bytes().to_vec()),
        }
    }

    /// Every certificate in the source, in order; at least one.
    pub fn load_certs(&self) -> Result<Vec<CertificateDer<'static>>, String> {
        let bytes = self.bytes()?;
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{self} is not valid PEM ({e})"))?;
        if certs.is_empty() {
            return Err(format!("{self} holds no PEM certificate"));
        }
        Ok(certs)
    }

    /// The first private key in the source.
    pub fn load_key(&self) -> Result<PrivateKeyDer<'static>, String> {
        let bytes = self.bytes()?;
        PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                format!("{self} holds no PEM private key")
            }
            e => format!("{self} is not a valid PEM private key ({e})"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_sources_are_paths_or_inline() {
        assert_eq!(PemSource::parse("/etc/x.crt"), PemSource::File("/etc/x.crt".into()));
        assert!(
            matches!(PemSource::parse("-----BEGIN CERTIFICATE-----\\nAA"), PemSource::Inline(p) if p.contains('\n'))
        );
        let missing = PemSource::File("/nonexistent/x.crt".into()).load_certs().unwrap_err();
        assert!(missing.contains("cannot read /nonexistent/x.crt"), "{missing}");
        let no_cert = PemSource::Inline("-----BEGIN NOTHING-----\n-----END NOTHING-----\n".into());
        assert!(no_cert.load_certs().unwrap_err().contains("holds no PEM certificate"));
        assert!(no_cert.load_key().unwrap_err().contains("holds no PEM private key"));
    }
}
