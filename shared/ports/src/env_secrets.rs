//! Where secrets come from without AWS: `secret(name)` in expressions reads the
//! environment variable `BRAID_SECRET_<NAME>` (locally, and in the Lambda functions,
//! whose environment the stack sets); webhook keys ([`EnvSecrets`]) are read from that
//! variable, else from a secrets file (`.braid/secrets.toml` locally), else, locally,
//! from a key file `<name>.key` that Braid generated itself (the approval links' key). Secret values
//! are never logged nor stored in definitions or records.

use crate::{PortError, PortResult, SecretStore};
use async_trait::async_trait;
use braid_lang::expr::Renderer;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The environment secret resolver: `secret('orders-hook')` reads `BRAID_SECRET_ORDERS_HOOK`.
pub fn env_secrets() -> Renderer {
    Renderer::new(Arc::new(|name: &str| {
        std::env::var(secret_env_name(name)).ok()
    }))
}

/// The environment variable holding secret `name`.
pub fn secret_env_name(name: &str) -> String {
    let upper: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("BRAID_SECRET_{upper}")
}

/// Secrets from the environment, then from a secrets file of `name = "value"` lines
/// (a TOML table of strings), read at each lookup so an edit applies at once.
#[derive(Debug, Clone, Default)]
pub struct EnvSecrets {
    file: Option<PathBuf>,
    /// Where generated keys are kept, one `<name>.key` file each.
    key_dir: Option<PathBuf>,
}

impl EnvSecrets {
    /// The environment only.
    pub fn env_only() -> Self {
        EnvSecrets::default()
    }

    /// The environment, then `file` when it exists.
    pub fn with_file(file: impl Into<PathBuf>) -> Self {
        EnvSecrets {
            file: Some(file.into()),
            key_dir: None,
        }
    }

    /// Also, last, the generated key `<dir>/<name>.key` (see [`key_file`]).
    pub fn with_key_files(self, dir: impl Into<PathBuf>) -> Self {
        EnvSecrets {
            key_dir: Some(dir.into()),
            ..self
        }
    }

    fn in_file(&self, name: &str) -> PortResult<Option<String>> {
        let Some(file) = &self.file else {
            return Ok(None);
        };
        match std::fs::read_to_string(file) {
            Ok(text) => Ok(parse_secrets_file(file, &text)
                .map_err(PortError::backend_msg)?
                .into_iter()
                .find_map(|(k, v)| (k == name).then_some(v))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(PortError::backend_in(file.display(), e)),
        }
    }

    fn in_key_file(&self, name: &str) -> PortResult<Option<String>> {
        let Some(file) = self.key_dir.as_deref().and_then(|d| key_file(d, name)) else {
            return Ok(None);
        };
        match std::fs::read_to_string(&file) {
            Ok(key) => Ok(Some(key.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(PortError::backend_in(file.display(), e)),
        }
    }
}

/// The file in `dir` holding the generated key `name`; `None` for a name that is not
/// a plain file name (letters, digits, `-`, `_`).
pub fn key_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    plain.then(|| dir.join(format!("{name}.key")))
}

#[async_trait]
impl SecretStore for EnvSecrets {
    async fn secret(&self, name: &str) -> PortResult<Option<String>> {
        if let Ok(v) = std::env::var(secret_env_name(name)) {
            return Ok(Some(v));
        }
        match self.in_file(name)? {
            Some(v) => Ok(Some(v)),
            None => self.in_key_file(name),
        }
    }
}

/// Reads `name = "value"` lines (bare or quoted names, basic strings with `\"`, `\\`,
/// `\n`, `\t` escapes), blank lines and `#` comments; anything else is an error naming
/// the file and line — never echoing the line, which may hold a secret.
pub fn parse_secrets_file(file: &Path, text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("{}:{}", file.display(), n + 1);
        let (name, value) = line
            .split_once('=')
            .ok_or_else(|| format!("{}: expected `name = \"value\"`", at()))?;
        let name = name.trim().trim_matches('"');
        let value = value.trim();
        let inner = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or_else(|| format!("{}: the value of `{name}` must be a quoted string", at()))?;
        let mut decoded = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                decoded.push(c);
                continue;
            }
            decoded.push(match chars.next() {
                Some('"') => '"',
                Some('\\') => '\\',
                Some('n') => '\n',
                Some('t') => '\t',
                _ => return Err(format!("{}: unsupported escape in `{name}`", at())),
            });
        }
        out.push((name.to_string(), decoded));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_files_hold_quoted_strings_with_escapes() {
        let text = "# keys\norders-hook = \"s3cr\\\"et\"\n\"other\" = \"x\\ny\"\n";
        let got = parse_secrets_file(Path::new("s.toml"), text).unwrap();
        assert_eq!(
            got,
            [
                ("orders-hook".to_string(), "s3cr\"et".to_string()),
                ("other".to_string(), "x\ny".to_string())
            ]
        );
    }

    #[test]
    fn a_bad_line_is_named_without_echoing_it() {
        let err = parse_secrets_file(Path::new("s.toml"), "a = \"1\"\nb = hunter2\n").unwrap_err();
        assert!(err.starts_with("s.toml:2:"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[tokio::test]
    async fn the_file_answers_what_the_environment_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secrets.toml");
        std::fs::write(&file, "file-only-secret-for-test = \"v\"\n").unwrap();
        let s = EnvSecrets::with_file(&file);
        assert_eq!(
            s.secret("file-only-secret-for-test")
                .await
                .unwrap()
                .as_deref(),
            Some("v")
        );
        assert_eq!(s.secret("absent-secret-for-test").await.unwrap(), None);
        std::fs::write(dir.path().join("generated-for-test.key"), "k\n").unwrap();
        let keyed = EnvSecrets::with_file(&file).with_key_files(dir.path());
        assert_eq!(
            keyed.secret("generated-for-test").await.unwrap().as_deref(),
            Some("k"),
            "a generated key is found last"
        );
        assert_eq!(keyed.secret("../secrets").await.unwrap(), None);
        let none = EnvSecrets::with_file(dir.path().join("missing.toml"));
        assert_eq!(
            none.secret("file-only-secret-for-test").await.unwrap(),
            None
        );
    }
}
