//! The node's working directory: created 0700 when missing, since it will hold keys and the store.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum PrefixError {
    #[error("cannot create prefix {}: {source}", path.display())]
    Create { path: std::path::PathBuf, source: std::io::Error },
    #[error("prefix {} exists but is not a directory", path.display())]
    NotADirectory { path: std::path::PathBuf },
}

/// Makes sure `prefix` is a directory. Returns true if it was created. A directory that exists keeps
/// its mode: the user chose it.
pub fn ensure(prefix: &Path) -> Result<bool, PrefixError> {
    if prefix.exists() {
        if !prefix.is_dir() {
            return Err(PrefixError::NotADirectory { path: prefix.to_path_buf() });
        }
        return Ok(false);
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(prefix)
        .map_err(|source| PrefixError::Create { path: prefix.to_path_buf(), source })?;
    // The umask may have narrowed the mode further, never widened it; set it exactly anyway.
    std::fs::set_permissions(prefix, std::fs::Permissions::from_mode(0o700))
        .map_err(|source| PrefixError::Create { path: prefix.to_path_buf(), source })?;
    Ok(true)
}

/// This node's id: made once (a random UUID) and kept in `<prefix>/node_id` (0600), so a node keeps
/// its identity across restarts.
pub fn node_id(prefix: &Path) -> Result<uuid::Uuid, PrefixError> {
    let path = prefix.join("node_id");
    let fail = |source| PrefixError::Create { path: path.clone(), source };
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(id) = uuid::Uuid::parse_str(text.trim())
    {
        return Ok(id);
    }
    let id = uuid::Uuid::new_v4();
    let _ = std::fs::remove_file(&path);
    crate::certs::write_new(&path, format!("{id}\n").as_bytes(), 0o600)
        .map_err(|e| fail(std::io::Error::other(e.to_string())))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_prefix_is_created_private() {
        let tmp = tempfile::tempdir().unwrap();
        let prefix = tmp.path().join("a/b");
        assert!(ensure(&prefix).unwrap());
        assert_eq!(std::fs::metadata(&prefix).unwrap().permissions().mode() & 0o777, 0o700);
        assert!(!ensure(&prefix).unwrap());
    }

    #[test]
    fn the_node_id_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let id = node_id(tmp.path()).unwrap();
        assert_eq!(node_id(tmp.path()).unwrap(), id);
        let mode = std::fs::metadata(tmp.path().join("node_id")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_file_in_the_way_is_an_error() {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        assert!(matches!(ensure(tmp.path()), Err(PrefixError::NotADirectory { .. })));
    }
}
