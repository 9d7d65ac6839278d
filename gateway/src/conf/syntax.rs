//! Kong's `kong.conf` syntax, read line by line so every value remembers its line: `key = value`,
//! `#` comments (`\#` for a literal `#`), blank lines, no quote stripping. Also the figment provider
//! that feeds those values into the merge of defaults < file < environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// A line that is not `key = value`, a comment or blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub text: String,
    pub reason: &'static str,
}

/// A parsed kong.conf file. Later lines win over earlier ones for the same key, as in Kong.
#[derive(Debug, Clone)]
pub struct ConfFile {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
    pub errors: Vec<SyntaxError>,
}

/// The figment metadata name of values that come from a kong.conf file.
pub const FILE_SOURCE: &str = "kong.conf file";

impl ConfFile {
    pub fn read(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Ok(Self::parse(path, &text))
    }

    pub fn parse(path: &Path, text: &str) -> Self {
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            let Some((key, value)) = trimmed.split_once('=') else {
                errors.push(SyntaxError { line, text: trimmed.to_string(), reason: "expected `key = value`" });
                continue;
            };
            let key = normalize_key(key.trim());
            if key.is_empty() {
                errors.push(SyntaxError { line, text: trimmed.to_string(), reason: "the key before `=` is empty" });
                continue;
            }
            entries.push(Entry { key, value: strip_comment(value).trim().to_string(), line });
        }
        ConfFile { path: path.to_path_buf(), entries, errors }
    }

    /// The entry that wins for `key` (the last one), if the file sets it.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.key == key)
    }

    /// Keys set on more than one line: (key, first line, winning line).
    pub fn duplicates(&self) -> Vec<(&str, usize, usize)> {
        let mut first: BTreeMap<&str, usize> = BTreeMap::new();
        let mut out = Vec::new();
        for entry in &self.entries {
            match first.get(entry.key.as_str()) {
                Some(&line) => out.push((entry.key.as_str(), line, entry.line)),
                None => {
                    first.insert(&entry.key, entry.line);
                }
            }
        }
        out
    }
}

impl Provider for ConfFile {
    fn metadata(&self) -> Metadata {
        Metadata::from(FILE_SOURCE, self.path.as_path())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let dict: Dict = self.entries.iter().map(|e| (e.key.clone(), Value::from(e.value.clone()))).collect();
        Ok(Profile::Default.collect(dict))
    }
}

/// Kong turns every character of a key that is not alphanumeric into `_`.
fn normalize_key(key: &str) -> String {
    key.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// Removes a trailing comment: the first `#` not preceded by `\`, and the spaces before it. Then
/// `\#` becomes `#`. Nothing else is unescaped and quotes are kept, as Kong does.
pub fn strip_comment(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut end = value.len();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1] != b'\\') {
            end = i;
            break;
        }
    }
    value[..end].trim_end().replace("\\#", "#")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ConfFile {
        ConfFile::parse(Path::new("t.conf"), text)
    }

    #[test]
    fn key_value_lines_keep_their_line_numbers() {
        let f = parse("\n# a comment\nrole = data_plane\n\n  prefix=/tmp/x  \n");
        assert_eq!(
            f.entries,
            vec![
                Entry { key: "role".into(), value: "data_plane".into(), line: 3 },
                Entry { key: "prefix".into(), value: "/tmp/x".into(), line: 5 },
            ]
        );
        assert!(f.errors.is_empty());
    }

    #[test]
    fn comments_start_with_hash_or_semicolon_even_when_indented() {
        let f = parse("   # role = x\n; prefix = y\n\t#x\n");
        assert!(f.entries.is_empty());
        assert!(f.errors.is_empty());
    }

    #[test]
    fn trailing_comment_is_removed_with_the_spaces_before_it() {
        let f = parse("log_level = debug   # noisy\n");
        assert_eq!(f.get("log_level").unwrap().value, "debug");
    }

    #[test]
    fn escaped_hash_is_a_literal_hash() {
        let f = parse("proxy_server = http://u:pa\\#ss@h:3128 # comment\n");
        assert_eq!(f.get("proxy_server").unwrap().value, "http://u:pa#ss@h:3128");
    }

    #[test]
    fn quotes_are_not_stripped() {
        let f = parse("cluster_server_name = \"cp.example\"\n");
        assert_eq!(f.get("cluster_server_name").unwrap().value, "\"cp.example\"");
    }

    #[test]
    fn value_splits_at_the_first_equals_sign() {
        let f = parse("proxy_listen = 127.0.0.1:8000 backlog=16384\n");
        assert_eq!(f.get("proxy_listen").unwrap().value, "127.0.0.1:8000 backlog=16384");
    }

    #[test]
    fn empty_value_is_kept_as_empty() {
        let f = parse("cluster_cert =\n");
        assert_eq!(f.get("cluster_cert").unwrap().value, "");
    }

    #[test]
    fn later_lines_win_and_duplicates_are_reported() {
        let f = parse("role = control_plane\nrole = data_plane\n");
        assert_eq!(f.get("role").unwrap().value, "data_plane");
        assert_eq!(f.get("role").unwrap().line, 2);
        assert_eq!(f.duplicates(), vec![("role", 1, 2)]);
    }

    #[test]
    fn non_alphanumeric_key_characters_become_underscores() {
        let f = parse("cluster-listen = 0.0.0.0:9005\n");
        assert_eq!(f.get("cluster_listen").unwrap().value, "0.0.0.0:9005");
    }

    #[test]
    fn lines_without_equals_or_key_are_errors_with_their_line() {
        let f = parse("role data_plane\n= x\nprefix = /p\n");
        assert_eq!(f.errors.len(), 2);
        assert_eq!(f.errors[0].line, 1);
        assert_eq!(f.errors[1].line, 2);
        assert_eq!(f.get("prefix").unwrap().value, "/p");
    }

    #[test]
    fn provider_exposes_the_winning_values() {
        let f = parse("role = control_plane\nrole = data_plane\n");
        let figment = figment::Figment::from(f);
        let role: String = figment.extract_inner("role").unwrap();
        assert_eq!(role, "data_plane");
        assert_eq!(figment.find_metadata("role").unwrap().name, FILE_SOURCE);
    }
}
