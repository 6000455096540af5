//! The trust root (TUF-lite): who may sign bundles, and how that changes over time.
//!
//! A root names k-of-n *root keys* (offline; they only sign roots) and k-of-n *policy keys*
//! (they sign bundles). Version 1 is the trust anchor shipped in the node image; it must carry a
//! threshold of its own root keys' signatures. A rotation N → N+1 must carry a threshold of the
//! OLD root keys (so only the current owners can hand over) AND a threshold of the NEW root keys
//! (so the new owners demonstrably hold their keys and a typo cannot brick the fleet). Versions
//! must be consecutive: a node that knows N follows N+1, N+2, ... one step at a time, which is
//! why bundles can embed the chain.
//!
//! On disk (and in [`SignedRoot::to_file_bytes`]) a root is `b"ARMLROOT"`, a little-endian `u16`
//! format version, then the postcard encoding of [`SignedRoot`]. The signatures cover
//! `b"armlet-root-v1\0"` followed by the *exact* metadata bytes carried in the file.

use serde::{Deserialize, Serialize};

use crate::keys::{KeyError, Role, SecretKey, SignatureRecord, key_id, tally, verifying_key};
use crate::reason::{ReasonCode, Rejection};

/// Magic bytes at the start of a trust root file.
pub const ROOT_MAGIC: [u8; 8] = *b"ARMLROOT";
/// The trust root file format this crate writes and reads.
pub const ROOT_FORMAT: u16 = 1;
/// Domain separator of root signatures.
pub const ROOT_DOMAIN: &[u8] = b"armlet-root-v1\0";
/// Most keys one role may list (bounds verification work).
pub const MAX_KEYS_PER_ROLE: usize = 32;
/// Most signatures one root may carry.
pub const MAX_ROOT_SIGNATURES: usize = 64;
/// Largest trust root file.
pub const MAX_ROOT_LEN: usize = 64 * 1024;

/// The content of a trust root (what the signatures are over).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootMetadata {
    /// 1 for the anchor, +1 on each rotation.
    pub version: u32,
    /// Unix seconds after which this root no longer verifies bundles.
    pub expires_at: u64,
    /// Raw Ed25519 public keys allowed to sign the next root.
    pub root_keys: Vec<[u8; 32]>,
    /// How many of `root_keys` must sign a root.
    pub root_threshold: u8,
    /// Raw Ed25519 public keys allowed to sign bundles.
    pub policy_keys: Vec<[u8; 32]>,
    /// How many of `policy_keys` must sign a bundle.
    pub policy_threshold: u8,
}

/// Why a trust root could not be built or read (control-plane side).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RootError {
    /// The metadata breaks a structural rule.
    #[error("invalid trust root: {0}")]
    Invalid(String),
    /// A key of the wrong role, or an invalid key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The root would not be accepted by a node.
    #[error("trust root would be rejected: {0}")]
    Rejected(#[from] Rejection),
    /// Encoding failed (should not happen for in-memory data).
    #[error("encoding the trust root failed: {0}")]
    Encode(String),
}

fn check_key_set(what: &str, keys: &[[u8; 32]], threshold: u8) -> Result<(), String> {
    if keys.is_empty() {
        return Err(format!("no {what} keys"));
    }
    if keys.len() > MAX_KEYS_PER_ROLE {
        return Err(format!(
            "{} {what} keys, at most {MAX_KEYS_PER_ROLE}",
            keys.len()
        ));
    }
    if threshold == 0 || usize::from(threshold) > keys.len() {
        return Err(format!(
            "{what} threshold {threshold} not in 1..={}",
            keys.len()
        ));
    }
    for (i, key) in keys.iter().enumerate() {
        if keys[..i].contains(key) {
            return Err(format!("duplicate {what} key {}", key_id(key)));
        }
        if verifying_key(key).is_err() {
            return Err(format!(
                "{what} key {} is not a valid Ed25519 key",
                key_id(key)
            ));
        }
    }
    Ok(())
}

impl RootMetadata {
    /// Structural rules: 1 ≤ threshold ≤ key count, no duplicate or invalid keys, version ≥ 1,
    /// and no key in both roles (the roles have different custody; sharing defeats it).
    pub fn validate(&self) -> Result<(), String> {
        if self.version == 0 {
            return Err("version 0 (versions start at 1)".to_owned());
        }
        check_key_set("root", &self.root_keys, self.root_threshold)?;
        check_key_set("policy", &self.policy_keys, self.policy_threshold)?;
        if let Some(shared) = self.root_keys.iter().find(|k| self.policy_keys.contains(k)) {
            return Err(format!(
                "key {} is both a root and a policy key",
                key_id(shared)
            ));
        }
        Ok(())
    }

    /// The postcard encoding that signatures are made over.
    pub fn encode(&self) -> Result<Vec<u8>, RootError> {
        postcard::to_allocvec(self).map_err(|e| RootError::Encode(e.to_string()))
    }
}

/// A root as carried on disk and in bundles: the exact metadata bytes and signatures over them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRoot {
    /// Postcard-encoded [`RootMetadata`].
    pub metadata: Vec<u8>,
    /// Signatures over `ROOT_DOMAIN || metadata`.
    pub signatures: Vec<SignatureRecord>,
}

pub(crate) fn decode_exact<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    what: &str,
) -> Result<T, Rejection> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(Rejection::new(
            ReasonCode::Malformed,
            format!("{} trailing bytes after {what}", rest.len()),
        )),
        Err(postcard::Error::DeserializeUnexpectedEnd) => Err(Rejection::new(
            ReasonCode::Truncated,
            format!("{what} ends early"),
        )),
        Err(e) => Err(Rejection::new(
            ReasonCode::Malformed,
            format!("{what}: {e}"),
        )),
    }
}

impl SignedRoot {
    /// An unsigned root for `metadata` (validated first).
    pub fn new(metadata: &RootMetadata) -> Result<Self, RootError> {
        metadata.validate().map_err(RootError::Invalid)?;
        Ok(Self {
            metadata: metadata.encode()?,
            signatures: Vec::new(),
        })
    }

    /// Add a signature by a root-role key (once per key).
    pub fn sign(&mut self, key: &SecretKey) -> Result<(), RootError> {
        if key.role() != Role::Root {
            return Err(KeyError::WrongRole {
                id: key.public().id(),
                found: key.role(),
                expected: Role::Root,
            }
            .into());
        }
        let public = *key.public().bytes();
        if self.signatures.iter().any(|s| s.public_key == public) {
            return Ok(());
        }
        self.signatures
            .push(key.sign_domain(ROOT_DOMAIN, &self.metadata));
        Ok(())
    }

    /// Decode the metadata (no signature check).
    pub fn decode_metadata(&self) -> Result<RootMetadata, Rejection> {
        decode_exact(&self.metadata, "root metadata")
    }

    /// The trust root file bytes.
    pub fn to_file_bytes(&self) -> Result<Vec<u8>, RootError> {
        let body = postcard::to_allocvec(self).map_err(|e| RootError::Encode(e.to_string()))?;
        let mut out = Vec::with_capacity(ROOT_MAGIC.len() + 2 + body.len());
        out.extend_from_slice(&ROOT_MAGIC);
        out.extend_from_slice(&ROOT_FORMAT.to_le_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Parse trust root file bytes (structure only; see [`VerifiedRoot`] for trust).
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Self, Rejection> {
        if bytes.len() > MAX_ROOT_LEN {
            return Err(Rejection::new(
                ReasonCode::Oversize,
                format!("trust root is {} bytes, cap {MAX_ROOT_LEN}", bytes.len()),
            ));
        }
        if bytes.len() < ROOT_MAGIC.len() + 2 {
            return Err(Rejection::new(
                ReasonCode::Truncated,
                "shorter than the root header",
            ));
        }
        let (magic, rest) = bytes.split_at(ROOT_MAGIC.len());
        if magic != ROOT_MAGIC {
            return Err(Rejection::new(
                ReasonCode::BadMagic,
                "not an armlet trust root",
            ));
        }
        let (format, body) = rest.split_at(2);
        let format = u16::from_le_bytes([format[0], format[1]]);
        if format != ROOT_FORMAT {
            return Err(Rejection::new(
                ReasonCode::UnsupportedFormat,
                format!("trust root format {format}, this agent reads {ROOT_FORMAT}"),
            ));
        }
        let signed: Self = decode_exact(body, "trust root")?;
        signed.check_signature_count()?;
        Ok(signed)
    }

    pub(crate) fn check_signature_count(&self) -> Result<(), Rejection> {
        if self.signatures.len() > MAX_ROOT_SIGNATURES {
            return Err(Rejection::new(
                ReasonCode::Malformed,
                format!(
                    "{} root signatures, at most {MAX_ROOT_SIGNATURES}",
                    self.signatures.len()
                ),
            ));
        }
        Ok(())
    }
}

/// A root whose signatures have been checked: either a self-signed anchor or the end of a
/// verified rotation chain. Only this module can construct one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRoot {
    metadata: RootMetadata,
    signed: SignedRoot,
}

/// Check that `signed` carries a threshold of valid signatures from `keys`.
fn require_threshold(
    signed: &SignedRoot,
    keys: &[[u8; 32]],
    threshold: u8,
    none_code: ReasonCode,
    whose: &str,
) -> Result<(), Rejection> {
    let t = tally(ROOT_DOMAIN, &signed.metadata, &signed.signatures, keys);
    if let Some(bad) = t.bad {
        return Err(Rejection::new(
            ReasonCode::RootBadSignature,
            format!("signature by {whose} key {bad} does not verify"),
        ));
    }
    if t.valid == 0 {
        return Err(Rejection::new(
            none_code,
            format!("no valid signature by {whose} keys"),
        ));
    }
    if t.valid < usize::from(threshold) {
        return Err(Rejection::new(
            ReasonCode::RootBelowThreshold,
            format!(
                "{} valid signature(s) by {whose} keys, threshold {threshold}",
                t.valid
            ),
        ));
    }
    Ok(())
}

fn checked_metadata(signed: &SignedRoot) -> Result<RootMetadata, Rejection> {
    signed.check_signature_count()?;
    let metadata = signed.decode_metadata()?;
    metadata
        .validate()
        .map_err(|e| Rejection::new(ReasonCode::RootInvalid, e))?;
    Ok(metadata)
}

impl VerifiedRoot {
    /// Accept `signed` as a trust anchor (the `trust.bin` in the node image): structurally valid
    /// and signed by a threshold of its own root keys. Expiry is not checked here; it is checked
    /// against the node's time when a bundle is verified (`root-expired`).
    pub fn from_anchor(signed: &SignedRoot) -> Result<Self, Rejection> {
        let metadata = checked_metadata(signed)?;
        require_threshold(
            signed,
            &metadata.root_keys,
            metadata.root_threshold,
            ReasonCode::RootNotSelfSigned,
            "its own root",
        )?;
        Ok(Self {
            metadata,
            signed: signed.clone(),
        })
    }

    /// [`Self::from_anchor`] on trust root file bytes.
    pub fn from_anchor_file(bytes: &[u8]) -> Result<Self, Rejection> {
        Self::from_anchor(&SignedRoot::from_file_bytes(bytes)?)
    }

    /// Follow one rotation: `next` must be version N+1, valid, signed by a threshold of this
    /// root's root keys and by a threshold of its own.
    pub fn rotate_to(&self, next: &SignedRoot) -> Result<Self, Rejection> {
        let metadata = checked_metadata(next)?;
        let expected = self.metadata.version.checked_add(1);
        if Some(metadata.version) != expected {
            return Err(Rejection::new(
                ReasonCode::RootVersionGap,
                format!(
                    "root version {} cannot follow version {}",
                    metadata.version, self.metadata.version
                ),
            ));
        }
        require_threshold(
            next,
            &self.metadata.root_keys,
            self.metadata.root_threshold,
            ReasonCode::RootNotSignedByPrevious,
            &format!("the previous (v{}) root", self.metadata.version),
        )?;
        require_threshold(
            next,
            &metadata.root_keys,
            metadata.root_threshold,
            ReasonCode::RootNotSelfSigned,
            "its own root",
        )?;
        Ok(Self {
            metadata,
            signed: next.clone(),
        })
    }

    /// Follow a chain of rotations. Entries at or below the current version are skipped (the node
    /// already has them); the rest must be consecutive. Returns the newest root and the entries
    /// that were adopted (to persist).
    pub fn follow_chain(&self, chain: &[SignedRoot]) -> Result<(Self, Vec<SignedRoot>), Rejection> {
        let mut current = self.clone();
        let mut adopted = Vec::new();
        for entry in chain {
            let version = entry.decode_metadata()?.version;
            if version <= current.metadata.version {
                continue;
            }
            current = current.rotate_to(entry)?;
            adopted.push(entry.clone());
        }
        Ok((current, adopted))
    }

    /// The verified metadata.
    #[must_use]
    pub const fn metadata(&self) -> &RootMetadata {
        &self.metadata
    }

    /// The signed form (for persisting).
    #[must_use]
    pub const fn signed(&self) -> &SignedRoot {
        &self.signed
    }

    /// The root's version.
    #[must_use]
    pub const fn version(&self) -> u32 {
        self.metadata.version
    }
}
