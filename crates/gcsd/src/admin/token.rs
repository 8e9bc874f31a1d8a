//! The admin token: read (or, by default, created) at start, compared in constant time.
//!
//! Anyone who can reach the admin port could otherwise shut gcsd down, remove members or hand a
//! pool's ACTIVE to another server. The token lives in a file only its owner (and at most its
//! group) can read; gcsctl reads the same file.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Random bytes in a created token (printed as twice as many hex digits).
const CREATED_TOKEN_BYTES: usize = 32;
/// Modes a token file may have: readable by its owner, and at most read by its group.
const ALLOWED_MODES: [u32; 4] = [0o600, 0o640, 0o400, 0o440];

pub struct AdminToken {
    secret: Vec<u8>,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("admin token file {0}: {1}")]
    Io(PathBuf, io::Error),
    #[error("admin token file {path} has mode {mode:04o}: others (or its group, beyond reading) could read or change it; chmod 600 {path}")]
    Mode { path: PathBuf, mode: u32 },
    #[error("admin token file {path}: {why}")]
    Content { path: PathBuf, why: String },
}

impl AdminToken {
    /// Reads the token at `path`; when it is missing and `create` is set (the default file in
    /// data_dir), writes a new random one (0600) first.
    pub fn load(path: &Path, create: bool) -> Result<Self, TokenError> {
        let io_error = |e| TokenError::Io(path.to_owned(), e);
        if create && !path.exists() {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).map_err(io_error)?;
            }
            create_random(path).map_err(io_error)?;
            tracing::info!(path = %path.display(), "created the admin token (gcsctl --token-file)");
        }
        let meta = fs::metadata(path).map_err(io_error)?;
        let mode = meta.permissions().mode() & 0o777;
        if !ALLOWED_MODES.contains(&mode) {
            return Err(TokenError::Mode {
                path: path.to_owned(),
                mode,
            });
        }
        let text = fs::read_to_string(path).map_err(io_error)?;
        let secret = proto::admin::parse_token(&text).map_err(|why| TokenError::Content {
            path: path.to_owned(),
            why,
        })?;
        Ok(AdminToken {
            secret: secret.into_bytes(),
            path: path.to_owned(),
        })
    }

    /// Whether an `Authorization` header value carries this token.
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        authorization
            .and_then(|v| v.strip_prefix(b"Bearer "))
            .is_some_and(|offered| constant_time_eq(offered.trim_ascii(), &self.secret))
    }
}

fn create_random(path: &Path) -> io::Result<()> {
    let hex = crate::random::hex(CREATED_TOKEN_BYTES)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(format!("{hex}\n").as_bytes())?;
    file.sync_all()
}

/// Equal slices, in time that depends only on their lengths (the token's length is no secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_token_is_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/admin.token");
        let token = AdminToken::load(&path, true).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(token.secret.len(), 2 * CREATED_TOKEN_BYTES);
        let again = AdminToken::load(&path, true).unwrap();
        assert_eq!(token.secret, again.secret, "an existing token is kept");
        let header = format!(
            "Bearer {}",
            String::from_utf8(token.secret.clone()).unwrap()
        );
        assert!(token.admits(Some(header.as_bytes())));
    }

    #[test]
    fn tokens_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        assert!(matches!(
            AdminToken::load(&path, false),
            Err(TokenError::Io(..))
        ));
        let good = "x".repeat(proto::admin::MIN_TOKEN_LEN);
        for (text, mode, ok) in [
            (good.as_str(), 0o600, true),
            (good.as_str(), 0o640, true),
            (good.as_str(), 0o440, true),
            (good.as_str(), 0o644, false),
            (good.as_str(), 0o660, false),
            (good.as_str(), 0o700, false),
            ("short", 0o600, false),
            ("with a space in it, long enough to pass", 0o600, false),
        ] {
            fs::write(&path, text).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(
                AdminToken::load(&path, false).is_ok(),
                ok,
                "{text:?} {mode:o}"
            );
        }
    }

    #[test]
    fn only_the_exact_bearer_token_is_admitted() {
        let token = AdminToken {
            secret: b"s3cret-s3cret-s3cret-s3cret-s3cret".to_vec(),
            path: PathBuf::new(),
        };
        assert!(token.admits(Some(b"Bearer s3cret-s3cret-s3cret-s3cret-s3cret")));
        for wrong in [
            &b"Bearer s3cret-s3cret-s3cret-s3cret-s3cre"[..],
            b"Bearer s3cret-s3cret-s3cret-s3cret-s3cretX",
            b"Bearer S3cret-s3cret-s3cret-s3cret-s3cret",
            b"Basic s3cret-s3cret-s3cret-s3cret-s3cret",
            b"s3cret-s3cret-s3cret-s3cret-s3cret",
            b"Bearer ",
            b"",
        ] {
            assert!(
                !token.admits(Some(wrong)),
                "{}",
                String::from_utf8_lossy(wrong)
            );
        }
        assert!(!token.admits(None));
    }
}
