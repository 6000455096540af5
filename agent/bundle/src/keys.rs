//! Ed25519 keys with a role, their text files, key ids and signature records.
//!
//! Why a role inside the key file: the root role (offline, k-of-n) and the policy role (signs
//! bundles) must never be confused; tooling refuses a policy key where a root key is expected
//! and vice versa. The file formats are one versioned line each so they diff, copy and audit
//! easily:
//!
//! ```text
//! armlet-key-v1 policy ed25519-public 3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29
//! armlet-key-v1 policy ed25519-secret <64 hex digits: the 32-byte seed>
//! ```
//!
//! A key id is the first 8 bytes of SHA-256 of the public key, for display only: everything
//! that decides anything compares full 32-byte public keys, so an id collision cannot make an
//! untrusted key count as trusted.

use core::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::hex::{decode_hex, encode_hex};

const KEY_FILE_TAG: &str = "armlet-key-v1";
const PUBLIC_KIND: &str = "ed25519-public";
const SECRET_KIND: &str = "ed25519-secret";

/// Which role a key plays in the trust model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Signs trust roots (and their rotations). Kept offline.
    Root,
    /// Signs bundles, by delegation from the trust root.
    Policy,
}

impl Role {
    /// The word used in key files and on the command line.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::Policy => "policy",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        match word {
            "root" => Some(Self::Root),
            "policy" => Some(Self::Policy),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Display identifier of a public key: the first 8 bytes of its SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode_hex(&self.0))
    }
}

/// The key id of a raw 32-byte Ed25519 public key.
#[must_use]
pub fn key_id(public_key: &[u8; 32]) -> KeyId {
    let digest = Sha256::digest(public_key);
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    KeyId(id)
}

/// Why a key file or key bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not `armlet-key-v1 ROLE KIND HEX` on one line.
    #[error("not an armlet key file (expected `{KEY_FILE_TAG} ROLE KIND HEX`)")]
    BadFormat,
    /// A public key file where a secret one was expected, or the reverse.
    #[error("expected an {expected} key, found {found}")]
    WrongKind {
        /// The kind that was expected.
        expected: &'static str,
        /// The kind found in the file.
        found: String,
    },
    /// The role word is neither `root` nor `policy`.
    #[error("unknown key role `{0}`")]
    UnknownRole(String),
    /// The key material is not 64 hex digits.
    #[error("key material is not 32 bytes of hex")]
    BadHex,
    /// The public key is not a valid (or is a weak, small-order) Ed25519 point.
    #[error("invalid or weak Ed25519 public key")]
    InvalidPoint,
    /// The key's role is not the one this use requires.
    #[error("key {id} has role {found}, expected a {expected} key")]
    WrongRole {
        /// The key's id.
        id: KeyId,
        /// The role it has.
        found: Role,
        /// The role required here.
        expected: Role,
    },
}

fn parse_line(text: &str, expected_kind: &'static str) -> Result<(Role, [u8; 32]), KeyError> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let line = lines.next().ok_or(KeyError::BadFormat)?;
    if lines.next().is_some() {
        return Err(KeyError::BadFormat);
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let [tag, role, kind, material] = words.as_slice() else {
        return Err(KeyError::BadFormat);
    };
    if *tag != KEY_FILE_TAG {
        return Err(KeyError::BadFormat);
    }
    let role = Role::parse(role).ok_or_else(|| KeyError::UnknownRole((*role).to_owned()))?;
    if *kind != expected_kind {
        return Err(KeyError::WrongKind {
            expected: expected_kind,
            found: (*kind).to_owned(),
        });
    }
    let bytes = decode_hex(material).ok_or(KeyError::BadHex)?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| KeyError::BadHex)?;
    Ok((role, bytes))
}

/// Parse 32 raw bytes as a usable verification key (valid point, not of small order).
pub(crate) fn verifying_key(bytes: &[u8; 32]) -> Result<VerifyingKey, KeyError> {
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::InvalidPoint)?;
    if key.is_weak() {
        return Err(KeyError::InvalidPoint);
    }
    Ok(key)
}

/// A public key with its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    role: Role,
    bytes: [u8; 32],
}

impl PublicKey {
    /// Build from raw bytes, checking that they are a usable Ed25519 key.
    pub fn from_bytes(role: Role, bytes: [u8; 32]) -> Result<Self, KeyError> {
        verifying_key(&bytes)?;
        Ok(Self { role, bytes })
    }

    /// Parse a `.pub` file.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let (role, bytes) = parse_line(text, PUBLIC_KIND)?;
        Self::from_bytes(role, bytes)
    }

    /// The `.pub` file text (one line, newline-terminated).
    #[must_use]
    pub fn to_text(&self) -> String {
        format!(
            "{KEY_FILE_TAG} {} {PUBLIC_KIND} {}\n",
            self.role,
            encode_hex(&self.bytes)
        )
    }

    /// The key's role.
    #[must_use]
    pub const fn role(&self) -> Role {
        self.role
    }

    /// The raw 32-byte public key.
    #[must_use]
    pub const fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// The display id.
    #[must_use]
    pub fn id(&self) -> KeyId {
        key_id(&self.bytes)
    }

    /// `Ok(self)` if the key has `role`.
    pub fn require_role(self, role: Role) -> Result<Self, KeyError> {
        if self.role == role {
            Ok(self)
        } else {
            Err(KeyError::WrongRole {
                id: self.id(),
                found: self.role,
                expected: role,
            })
        }
    }
}

/// A secret (signing) key with its role. Zeroized on drop by `ed25519-dalek`.
pub struct SecretKey {
    role: Role,
    key: SigningKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("role", &self.role)
            .field("id", &self.public().id())
            .finish_non_exhaustive()
    }
}

impl SecretKey {
    /// Derive a key from a 32-byte seed. The caller gets the seed from the OS (`getrandom`);
    /// this crate never generates randomness itself.
    #[must_use]
    pub fn from_seed(role: Role, seed: &[u8; 32]) -> Self {
        Self {
            role,
            key: SigningKey::from_bytes(seed),
        }
    }

    /// Parse a `.key` file.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let (role, seed) = parse_line(text, SECRET_KIND)?;
        Ok(Self::from_seed(role, &seed))
    }

    /// The `.key` file text (one line, newline-terminated). Handle as a secret.
    #[must_use]
    pub fn to_text(&self) -> String {
        format!(
            "{KEY_FILE_TAG} {} {SECRET_KIND} {}\n",
            self.role,
            encode_hex(self.key.as_bytes())
        )
    }

    /// The key's role.
    #[must_use]
    pub const fn role(&self) -> Role {
        self.role
    }

    /// The matching public key.
    #[must_use]
    pub fn public(&self) -> PublicKey {
        PublicKey {
            role: self.role,
            bytes: self.key.verifying_key().to_bytes(),
        }
    }

    /// `Ok(self)` if the key has `role`.
    pub fn require_role(self, role: Role) -> Result<Self, KeyError> {
        if self.role == role {
            Ok(self)
        } else {
            Err(KeyError::WrongRole {
                id: self.public().id(),
                found: self.role,
                expected: role,
            })
        }
    }

    /// Sign `domain || message`.
    pub(crate) fn sign_domain(&self, domain: &[u8], message: &[u8]) -> SignatureRecord {
        let signature = self.key.sign(&domain_message(domain, message));
        let bytes = signature.to_bytes();
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&bytes[..32]);
        s.copy_from_slice(&bytes[32..]);
        SignatureRecord {
            public_key: self.key.verifying_key().to_bytes(),
            r,
            s,
        }
    }
}

pub(crate) fn domain_message(domain: &[u8], message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(domain.len() + message.len());
    out.extend_from_slice(domain);
    out.extend_from_slice(message);
    out
}

/// One signature as carried in roots and bundles: the full signer public key (so matching never
/// relies on a short id) and the 64-byte Ed25519 signature split in its R and s halves (serde has
/// no 64-byte array support without extra crates).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureRecord {
    /// The signer's raw public key.
    pub public_key: [u8; 32],
    /// Signature bytes 0..32 (the point R).
    pub r: [u8; 32],
    /// Signature bytes 32..64 (the scalar s).
    pub s: [u8; 32],
}

impl SignatureRecord {
    /// The signer's display id.
    #[must_use]
    pub fn key_id(&self) -> KeyId {
        key_id(&self.public_key)
    }

    /// Strict Ed25519 verification of `domain || message` (rejects non-canonical signatures and
    /// weak keys, so a signature cannot be mauled into a second valid one).
    pub(crate) fn verifies(&self, domain: &[u8], message: &[u8]) -> bool {
        let Ok(key) = verifying_key(&self.public_key) else {
            return false;
        };
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(&self.r);
        bytes[32..].copy_from_slice(&self.s);
        let signature = ed25519_dalek::Signature::from_bytes(&bytes);
        key.verify_strict(&domain_message(domain, message), &signature)
            .is_ok()
    }
}

/// How a set of signatures fared against a set of keys that count.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Distinct counting keys with a valid signature.
    pub valid: usize,
    /// A counting key whose signature failed, if any.
    pub bad: Option<KeyId>,
    /// Signatures by keys that do not count here.
    pub others: usize,
}

/// Count distinct keys of `keys` with a valid signature over `domain || message`.
pub(crate) fn tally(
    domain: &[u8],
    message: &[u8],
    signatures: &[SignatureRecord],
    keys: &[[u8; 32]],
) -> Tally {
    let mut result = Tally::default();
    let mut counted: Vec<[u8; 32]> = Vec::new();
    for sig in signatures {
        if !keys.contains(&sig.public_key) {
            result.others += 1;
            continue;
        }
        if !sig.verifies(domain, message) {
            if result.bad.is_none() {
                result.bad = Some(sig.key_id());
            }
            continue;
        }
        if !counted.contains(&sig.public_key) {
            counted.push(sig.public_key);
            result.valid += 1;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_and_keep_role() {
        let secret = SecretKey::from_seed(Role::Policy, &[7u8; 32]);
        let text = secret.to_text();
        assert!(text.starts_with("armlet-key-v1 policy ed25519-secret "));
        let again = SecretKey::parse(&text).unwrap();
        assert_eq!(again.public(), secret.public());
        let public = PublicKey::parse(&secret.public().to_text()).unwrap();
        assert_eq!(public.role(), Role::Policy);
        assert!(public.clone().require_role(Role::Root).is_err());
        assert_eq!(public.id().to_string().len(), 16);
        // A secret file is not a public file and vice versa.
        assert!(matches!(
            PublicKey::parse(&text),
            Err(KeyError::WrongKind { .. })
        ));
        assert!(SecretKey::parse(&public.to_text()).is_err());
        assert!(PublicKey::parse("armlet-key-v1 admin ed25519-public 00").is_err());
    }

    #[test]
    fn weak_public_key_refused() {
        // The identity point (small order) must never be accepted as a key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            PublicKey::from_bytes(Role::Root, identity),
            Err(KeyError::InvalidPoint)
        );
    }
}
