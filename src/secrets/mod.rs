//! Sealed secrets (docs/security.md, "Secrets"): sensitive values are sealed with the
//! installation's public key (an age X25519 recipient) before they reach etcd; only the
//! controller, given the private key file, opens them, in memory, to create Swarm secrets.
//!
//! The sealed shape, the same for a file and a variable, is a field `sealed` holding an
//! age ASCII-armored ciphertext in place of the plaintext (`content` of a file, `value`
//! of a sensitive variable). Sealing is randomized, so the same plaintext sealed twice
//! differs: Swarm secret names come from an HMAC of the plaintext with a naming key kept
//! beside the private key ([`Keyring::secret_name`]), never from the ciphertext.

use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use age::x25519::{Identity, Recipient};
use sha2::{Digest, Sha256};

pub mod objects;
pub mod storage;

pub use objects::{has_plaintext, has_sealed, open_object, reseal_object, seal_object};
pub use storage::{
    LoadError, PUBLIC_KEY_SUFFIX, load_public, public_key_key, seal_for_apply, store_public,
};

/// The first line of every sealed value.
pub const SEALED_HEADER: &str = "-----BEGIN AGE ENCRYPTED FILE-----";

/// What `kargo keys create` is, for messages that tell a user how to get keys.
pub const CREATE_KEYS_HINT: &str = "create the installation's keys with `kargo keys create --out FILE` (give FILE to the controller: --secret-key-file)";

/// The prefix of the naming key's line in a key file (an age comment, ignored by `age`).
const NAMING_KEY_LINE: &str = "# kargo-naming-key: ";

/// Failures of sealing and opening. No variant ever holds plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// No public key is stored for the installation.
    #[error("this installation has no sealing key: {CREATE_KEYS_HINT}")]
    NoPublicKey,
    /// The stored public key is not an age X25519 recipient.
    #[error("the stored public key is not an age X25519 recipient ({0})")]
    BadPublicKey(String),
    /// The private key file cannot be read or holds no identity.
    #[error("private key file {path}: {message}")]
    KeyFile {
        /// The file.
        path: String,
        /// What is wrong (never the key).
        message: String,
    },
    /// A sealed value could not be opened with any of the keys.
    #[error("{what}: cannot be opened with this key ({reason})")]
    Open {
        /// Which value (`file pw`, `variable DB_PASSWORD`).
        what: String,
        /// Why, without content.
        reason: String,
    },
    /// Sealing failed.
    #[error("sealing failed: {0}")]
    Seal(String),
    /// A value is malformed (a sealed value that is not an age armor, both shapes at once).
    #[error("{0}")]
    Shape(String),
}

/// Whether a text is a sealed value (an age armor).
pub fn is_sealed(text: &str) -> bool {
    text.trim_start().starts_with(SEALED_HEADER)
}

/// Parses a public key (`age1…`).
pub fn parse_recipient(text: &str) -> Result<Recipient, SecretsError> {
    Recipient::from_str(text.trim()).map_err(|e| SecretsError::BadPublicKey(e.to_string()))
}

/// Seals `plaintext` to `recipient`: an age armor, different at every call.
pub fn seal(recipient: &Recipient, plaintext: &[u8]) -> Result<String, SecretsError> {
    age::encrypt_and_armor(recipient, plaintext).map_err(|e| SecretsError::Seal(e.to_string()))
}

/// The controller's keys: the private identities (newest first, older ones kept through a
/// rotation) and the naming key secret names are derived with.
#[derive(Clone)]
pub struct Keyring {
    identities: Vec<Identity>,
    naming_key: [u8; 32],
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("public", &self.public().to_string())
            .field("identities", &self.identities.len())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// A fresh key pair and naming key.
    pub fn generate() -> Self {
        let mut naming_key = [0u8; 32];
        for chunk in naming_key.chunks_mut(8) {
            chunk.copy_from_slice(&fastrand::u64(..).to_le_bytes());
        }
        // The naming key must not be guessable: mix in the OS's randomness through a
        // fresh identity (age draws it from the OS generator).
        let seed = Identity::generate();
        let mixed = hmac_sha256(
            age::secrecy::ExposeSecret::expose_secret(&seed.to_string()).as_bytes(),
            &naming_key,
        );
        Keyring {
            identities: vec![Identity::generate()],
            naming_key: mixed,
        }
    }

    /// The public key that seals for this keyring (its newest identity's).
    pub fn public(&self) -> Recipient {
        match self.identities.first() {
            Some(i) => i.to_public(),
            // Never built empty (parse refuses a file without identity).
            None => Identity::generate().to_public(),
        }
    }

    /// Whether `recipient` is the public key of one of this keyring's identities.
    pub fn holds(&self, recipient: &Recipient) -> bool {
        let want = recipient.to_string();
        self.identities
            .iter()
            .any(|i| i.to_public().to_string() == want)
    }

    /// A new identity put first (what seals from now on); the older ones still open.
    pub fn rotated(&self) -> Self {
        let mut identities = vec![Identity::generate()];
        identities.extend(self.identities.iter().cloned());
        Keyring {
            identities,
            naming_key: self.naming_key,
        }
    }

    /// Only the newest identity kept (after everything stored was resealed to it).
    pub fn without_old(&self) -> Self {
        Keyring {
            identities: self.identities.iter().take(1).cloned().collect(),
            naming_key: self.naming_key,
        }
    }

    /// The key file's text: one `AGE-SECRET-KEY-1…` line per identity (the format `age -i`
    /// reads) and the naming key as a comment line.
    pub fn to_file_text(&self) -> String {
        let mut out = String::from(
            "# kargo sealing keys: the controller's private key; keep it secret, back it up\n",
        );
        for i in &self.identities {
            out.push_str(&format!("# public key: {}\n", i.to_public()));
            out.push_str(age::secrecy::ExposeSecret::expose_secret(&i.to_string()));
            out.push('\n');
        }
        out.push_str(NAMING_KEY_LINE);
        out.push_str(&hex::encode(self.naming_key));
        out.push('\n');
        out
    }

    /// Parses a key file written by [`Self::to_file_text`].
    pub fn parse(path: &str, text: &str) -> Result<Self, SecretsError> {
        let bad = |message: &str| SecretsError::KeyFile {
            path: path.to_string(),
            message: message.to_string(),
        };
        let mut identities = Vec::new();
        let mut naming_key = None;
        for line in text.lines().map(str::trim) {
            if let Some(hexed) = line.strip_prefix(NAMING_KEY_LINE.trim_end()) {
                let bytes = hex::decode(hexed.trim()).map_err(|_| bad("malformed naming key"))?;
                let key: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| bad("the naming key is not 32 bytes"))?;
                naming_key = Some(key);
            } else if line.starts_with("AGE-SECRET-KEY-") {
                identities.push(
                    Identity::from_str(line).map_err(|_| bad("malformed AGE-SECRET-KEY line"))?,
                );
            }
        }
        if identities.is_empty() {
            return Err(bad("no AGE-SECRET-KEY line"));
        }
        let naming_key = naming_key
            .ok_or_else(|| bad("no naming key line (not made by `kargo keys create`)"))?;
        Ok(Keyring {
            identities,
            naming_key,
        })
    }

    /// Reads a key file.
    pub fn read(path: &Path) -> Result<Self, SecretsError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SecretsError::KeyFile {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        Self::parse(&shown, &text)
    }

    /// Writes the key file readable by its owner only (mode 0600), replacing it atomically.
    pub fn write(&self, path: &Path, overwrite: bool) -> Result<(), SecretsError> {
        let shown = path.display().to_string();
        let err = |e: std::io::Error| SecretsError::KeyFile {
            path: shown.clone(),
            message: e.to_string(),
        };
        if !overwrite && path.exists() {
            return Err(SecretsError::KeyFile {
                path: shown.clone(),
                message: "exists already: refusing to overwrite a key".into(),
            });
        }
        let tmp = path.with_extension("tmp-kargo");
        {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut f = options.open(&tmp).map_err(err)?;
            f.write_all(self.to_file_text().as_bytes()).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, path).map_err(err)
    }

    /// Opens a sealed value; `what` names it in errors (the content never appears).
    pub fn open(&self, what: &str, sealed: &str) -> Result<Vec<u8>, SecretsError> {
        let failed = |reason: String| SecretsError::Open {
            what: what.to_string(),
            reason,
        };
        let reader = age::armor::ArmoredReader::new(sealed.trim().as_bytes());
        let decryptor = age::Decryptor::new(reader).map_err(|e| failed(e.to_string()))?;
        let mut out = Vec::new();
        let mut r = decryptor
            .decrypt(self.identities.iter().map(|i| i as &dyn age::Identity))
            .map_err(|e| failed(e.to_string()))?;
        r.read_to_end(&mut out)
            .map_err(|_| failed("the ciphertext is damaged".into()))?;
        Ok(out)
    }

    /// [`Self::open`] as UTF-8 text.
    pub fn open_text(&self, what: &str, sealed: &str) -> Result<String, SecretsError> {
        String::from_utf8(self.open(what, sealed)?).map_err(|_| SecretsError::Open {
            what: what.to_string(),
            reason: "the plaintext is not UTF-8".into(),
        })
    }

    /// The Swarm secret name of a file: `<file>-<10 hex of HMAC-SHA256(naming key, content)>`.
    /// The same content keeps its name (no roll); a change makes a new one; without the
    /// naming key the name says nothing about the content.
    pub fn secret_name(&self, file: &str, content: &[u8]) -> String {
        let mac = hmac_sha256(&self.naming_key, content);
        format!("{file}-{}", &hex::encode(mac)[..10])
    }
}

/// HMAC-SHA256 (RFC 2104) over the crate's `sha2`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(message);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn sealed_values_open_with_the_key_only_and_survive_rotation() {
        let keys = Keyring::generate();
        let sealed = seal(&keys.public(), b"hunter2 ${X} $").unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(
            keys.open_text("file pw", &sealed).unwrap(),
            "hunter2 ${X} $"
        );
        let other = Keyring::generate();
        let err = other.open("file pw", &sealed).unwrap_err().to_string();
        assert!(err.contains("file pw") && !err.contains("hunter2"), "{err}");
        let rotated = keys.rotated();
        assert!(rotated.holds(&keys.public()) && rotated.holds(&rotated.public()));
        assert_eq!(rotated.open_text("x", &sealed).unwrap(), "hunter2 ${X} $");
        assert!(!rotated.without_old().holds(&keys.public()));
    }

    #[test]
    fn key_file_round_trips_and_names_depend_on_the_naming_key() {
        let keys = Keyring::generate();
        let back = Keyring::parse("k", &keys.to_file_text()).unwrap();
        assert_eq!(back.public().to_string(), keys.public().to_string());
        assert_eq!(back.secret_name("pw", b"a"), keys.secret_name("pw", b"a"));
        assert_ne!(keys.secret_name("pw", b"a"), keys.secret_name("pw", b"b"));
        assert_ne!(
            keys.secret_name("pw", b"a"),
            Keyring::generate().secret_name("pw", b"a")
        );
        assert!(Keyring::parse("k", "# nothing\n").is_err());
    }
}
