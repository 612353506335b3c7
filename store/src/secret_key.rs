//! Secrets at rest: the embedded mode's write-only secrets (verification tokens, destination
//! header values, connection credentials) are stored encrypted with AES-256-GCM under a key
//! kept outside the database (a file beside a SQLite database by default), so a copy of the
//! database (a backup, a dump, a stolen file) holds no secret in clear.
//!
//! Stored form: `enc:v1:` then base64 of a random 96-bit nonce and the ciphertext with its
//! tag. A value without that prefix was stored before a key was configured and is read as it
//! is (the next write of it encrypts it).

use std::{
    fmt,
    io::Write,
    path::{Path, PathBuf},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use ring::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};

const PREFIX: &str = "enc:v1:";
const KEY_LEN: usize = 32;

/// Why the key could not be had, or a stored value not read.
#[derive(Clone, Debug, thiserror::Error)]
pub enum SecretKeyError {
    #[error("reading the secret key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::sync::Arc<std::io::Error>,
    },
    #[error("creating the secret key file {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::sync::Arc<std::io::Error>,
    },
    #[error(
        "the secret key file {0} does not hold a key (64 hexadecimal digits; delete it only if no secret was stored with it)"
    )]
    Malformed(PathBuf),
    #[error("a stored secret does not decrypt with this key (was the key file replaced?)")]
    Decrypt,
    #[error("no randomness for a key or nonce")]
    Random,
}

/// The key secrets are encrypted with. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct SecretKey {
    key: std::sync::Arc<LessSafeKey>,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Two keys are equal when they are the same loaded key.
impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.key, &other.key)
    }
}

impl Eq for SecretKey {}

impl SecretKey {
    /// The key in `path`, which is created (readable by its owner only) with a new random key
    /// when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, SecretKeyError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                Self::from_hex(text.trim()).ok_or_else(|| SecretKeyError::Malformed(path.into()))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Self::create(path),
            Err(source) => Err(SecretKeyError::Read {
                path: path.into(),
                source: source.into(),
            }),
        }
    }

    fn create(path: &Path) -> Result<Self, SecretKeyError> {
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| SecretKeyError::Random)?;
        let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        let create = |source: std::io::Error| SecretKeyError::Create {
            path: path.into(),
            source: source.into(),
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = match options.open(path) {
            Ok(file) => file,
            // Another process made it first: use theirs.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                return Self::load_or_create(path);
            }
            Err(error) => return Err(create(error)),
        };
        file.write_all(format!("{hex}\n").as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(create)?;
        tracing::info!(path = %path.display(), "created the key secrets are encrypted with; back it up with the database");
        Self::from_hex(&hex).ok_or_else(|| SecretKeyError::Malformed(path.into()))
    }

    /// A key from 64 hexadecimal digits.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != KEY_LEN * 2 || !hex.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; KEY_LEN];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes).ok()?;
        Some(Self {
            key: std::sync::Arc::new(LessSafeKey::new(key)),
        })
    }

    /// `value` encrypted, in its stored form.
    pub fn seal(&self, value: &str) -> Result<String, SecretKeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SecretKeyError::Random)?;
        let mut in_out = value.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(PREFIX.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| SecretKeyError::Random)?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&in_out);
        Ok(format!("{PREFIX}{}", STANDARD.encode(sealed)))
    }

    /// The value of a stored form (one stored in clear, before a key, as it is).
    pub fn open(&self, stored: &str) -> Result<String, SecretKeyError> {
        open(Some(self), stored)
    }
}

/// The value of a stored form under `key`; one stored in clear as it is. An encrypted value
/// with no key, or the wrong one, is an error.
pub fn open(key: Option<&SecretKey>, stored: &str) -> Result<String, SecretKeyError> {
    let Some(encoded) = stored.strip_prefix(PREFIX) else {
        return Ok(stored.to_owned());
    };
    let key = key.ok_or(SecretKeyError::Decrypt)?;
    let sealed = STANDARD
        .decode(encoded)
        .map_err(|_| SecretKeyError::Decrypt)?;
    if sealed.len() < NONCE_LEN {
        return Err(SecretKeyError::Decrypt);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretKeyError::Decrypt)?;
    let mut in_out = ciphertext.to_vec();
    let plain = key
        .key
        .open_in_place(nonce, Aad::from(PREFIX.as_bytes()), &mut in_out)
        .map_err(|_| SecretKeyError::Decrypt)?;
    String::from_utf8(plain.to_vec()).map_err(|_| SecretKeyError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_key_only() {
        let key = SecretKey::from_hex(&"ab".repeat(32)).expect("a key");
        let other = SecretKey::from_hex(&"cd".repeat(32)).expect("a key");
        let sealed = key.seal("tok-123").expect("sealed");
        assert!(sealed.starts_with(PREFIX));
        assert!(!sealed.contains("tok-123"));
        assert_ne!(
            sealed,
            key.seal("tok-123").expect("sealed"),
            "nonces differ"
        );
        assert_eq!(key.open(&sealed).expect("opens"), "tok-123");
        assert!(other.open(&sealed).is_err());
        assert!(open(None, &sealed).is_err());
        assert_eq!(open(None, "kept in clear").expect("clear"), "kept in clear");
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push('A');
        assert!(key.open(&tampered).is_err() || tampered == sealed);
    }

    #[test]
    fn the_key_file_is_created_once_and_read_back() {
        let dir = std::env::temp_dir().join(format!("hookplane-key-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("a dir");
        let path = dir.join("db.key");
        let first = SecretKey::load_or_create(&path).expect("created");
        let sealed = first.seal("value").expect("sealed");
        let again = SecretKey::load_or_create(&path).expect("read");
        assert_eq!(again.open(&sealed).expect("same key"), "value");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not a key").expect("overwrite");
        assert!(matches!(
            SecretKey::load_or_create(&path),
            Err(SecretKeyError::Malformed(_))
        ));
        std::fs::remove_dir_all(&dir).ok();
    }
}
