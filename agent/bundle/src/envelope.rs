//! The on-wire bundle and its manifest, and how the control plane builds and co-signs one.
//!
//! Layout (all integers in the header little-endian):
//!
//! ```text
//! b"ARMLBNDL"            8 bytes magic
//! format: u16            envelope format version (1)
//! postcard(Envelope {
//!     root_chain: bytes  postcard(Vec<SignedRoot>): rotations N+1, N+2, ... (may be empty)
//!     manifest:   bytes  postcard(u16 manifest version) ++ postcard(Manifest)
//!     signatures: Vec<SignatureRecord>   over b"armlet-bundle-manifest-v1\0" ++ manifest bytes
//!     payload:    bytes  the compiled policy (opaque to this crate)
//! })                     no trailing bytes allowed
//! ```
//!
//! Why this shape: the magic and format are outside postcard so a future format can change
//! everything after them and old agents still say `unsupported-format` rather than `malformed`.
//! The manifest and the root chain are carried as *byte strings* so signatures and digests are
//! over exactly the received bytes. Only the manifest is signed; it pins the payload (SHA-256 and
//! length) and the embedded root chain (SHA-256), so every byte of a bundle is covered either by
//! a signature, by a digest in the signed manifest, or by a structural check — a single flipped
//! byte anywhere is always refused. The chain itself is self-authenticating (each root is signed
//! by its predecessor), so the policy keys could not forge one; pinning it only makes tampering
//! with skipped or extra entries visible too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::{Role, SecretKey, SignatureRecord};
use crate::reason::{ReasonCode, Rejection};
use crate::root::{SignedRoot, decode_exact};

/// Magic bytes at the start of every bundle.
pub const BUNDLE_MAGIC: [u8; 8] = *b"ARMLBNDL";
/// The envelope format this crate writes and reads.
pub const BUNDLE_FORMAT: u16 = 1;
/// The manifest version this crate writes and reads.
pub const MANIFEST_VERSION: u16 = 1;
/// Domain separator of bundle signatures.
pub const MANIFEST_DOMAIN: &[u8] = b"armlet-bundle-manifest-v1\0";
/// Largest bundle a node will even look at (checked before any decoding): 4 MiB.
pub const MAX_BUNDLE_LEN: usize = 4 * 1024 * 1024;
/// Most signatures a bundle may carry (bounds verification work).
pub const MAX_BUNDLE_SIGNATURES: usize = 32;
/// Most root rotations a bundle may embed.
pub const MAX_ROOT_CHAIN: usize = 16;

const HEADER_LEN: usize = BUNDLE_MAGIC.len() + 2;

/// The node label that puts a node in a group for [`Scope::Group`].
pub const GROUP_LABEL: &str = "armlet.io/group";

/// Which nodes a bundle is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    /// Every node trusting the root.
    Fleet,
    /// Exactly the node with this name.
    Node(String),
    /// Nodes whose label `armlet.io/group` equals this value.
    Group(String),
    /// Nodes carrying all these labels with these values.
    Labels(BTreeMap<String, String>),
}

/// Why a `--scope` or `--labels` string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeParseError {
    /// Not one of the known forms.
    #[error("scope must be fleet, node=NAME, group=G or labels=k=v,..., got `{0}`")]
    Unknown(String),
    /// A label item is not `k=v` with a non-empty key.
    #[error("label `{0}` is not k=v")]
    BadLabel(String),
    /// A label key appears twice.
    #[error("label `{0}` given twice")]
    DuplicateLabel(String),
    /// An empty name, group or label set.
    #[error("empty {0}")]
    Empty(&'static str),
}

/// Parse `k=v,k2=v2` (empty string: no labels).
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, ScopeParseError> {
    let mut labels = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| ScopeParseError::BadLabel(item.to_owned()))?;
        let k = k.trim();
        if k.is_empty() {
            return Err(ScopeParseError::BadLabel(item.to_owned()));
        }
        if labels.insert(k.to_owned(), v.trim().to_owned()).is_some() {
            return Err(ScopeParseError::DuplicateLabel(k.to_owned()));
        }
    }
    Ok(labels)
}

impl Scope {
    /// Parse the CLI form: `fleet`, `node=NAME`, `group=G`, `labels=k=v,k2=v2`.
    pub fn parse(text: &str) -> Result<Self, ScopeParseError> {
        let text = text.trim();
        if text == "fleet" {
            return Ok(Self::Fleet);
        }
        let (kind, rest) = text
            .split_once('=')
            .ok_or_else(|| ScopeParseError::Unknown(text.to_owned()))?;
        match kind {
            "node" if rest.is_empty() => Err(ScopeParseError::Empty("node name")),
            "node" => Ok(Self::Node(rest.to_owned())),
            "group" if rest.is_empty() => Err(ScopeParseError::Empty("group")),
            "group" => Ok(Self::Group(rest.to_owned())),
            "labels" => {
                let labels = parse_labels(rest)?;
                if labels.is_empty() {
                    return Err(ScopeParseError::Empty("label set"));
                }
                Ok(Self::Labels(labels))
            }
            _ => Err(ScopeParseError::Unknown(text.to_owned())),
        }
    }

    /// Does a node with this name and these labels fall in the scope?
    #[must_use]
    pub fn matches(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Self::Fleet => true,
            Self::Node(n) => n == name,
            Self::Group(g) => labels.get(GROUP_LABEL) == Some(g),
            Self::Labels(want) => want.iter().all(|(k, v)| labels.get(k) == Some(v)),
        }
    }
}

impl core::fmt::Display for Scope {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Fleet => f.write_str("fleet"),
            Self::Node(n) => write!(f, "node={n}"),
            Self::Group(g) => write!(f, "group={g}"),
            Self::Labels(l) => {
                f.write_str("labels=")?;
                for (i, (k, v)) in l.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{k}={v}")?;
                }
                Ok(())
            }
        }
    }
}

/// Digest of one source policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceEntry {
    /// Display name (`file.yaml#2`).
    pub name: String,
    /// SHA-256 of the document text.
    pub sha256: [u8; 32],
}

/// The signed description of a bundle (manifest version 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Strictly increasing per fleet; a node refuses anything not above its highest seen.
    pub serial: u64,
    /// Unix seconds when built; raises the node's time floor once accepted.
    pub issued_at: u64,
    /// Unix seconds after which nodes refuse the bundle.
    pub expires_at: u64,
    /// Which nodes it is for.
    pub scope: Scope,
    /// Oldest agent version (MAJOR, MINOR, PATCH) that may apply it.
    pub min_agent_version: [u16; 3],
    /// One digest per source policy document.
    pub sources: Vec<SourceEntry>,
    /// SHA-256 of the payload.
    pub payload_sha256: [u8; 32],
    /// Length of the payload in bytes.
    pub payload_len: u64,
    /// SHA-256 of the embedded root chain bytes.
    pub root_chain_sha256: [u8; 32],
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    root_chain: Vec<u8>,
    manifest: Vec<u8>,
    signatures: Vec<SignatureRecord>,
    payload: Vec<u8>,
}

/// A bundle split into its parts, structurally checked but NOT verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBundle {
    /// Embedded rotations.
    pub root_chain: Vec<SignedRoot>,
    /// The exact root chain bytes (what `root_chain_sha256` is over).
    pub root_chain_bytes: Vec<u8>,
    /// The decoded manifest.
    pub manifest: Manifest,
    /// The exact manifest bytes (what the signatures are over).
    pub manifest_bytes: Vec<u8>,
    /// Signatures over the manifest.
    pub signatures: Vec<SignatureRecord>,
    /// The opaque payload.
    pub payload: Vec<u8>,
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Size cap, header and structure checks; no signatures, no trust (the first checks of
/// [`crate::verify()`], also used by `bundle inspect` and `bundle sign`).
pub fn decode_bundle(bytes: &[u8]) -> Result<DecodedBundle, Rejection> {
    if bytes.len() > MAX_BUNDLE_LEN {
        return Err(Rejection::new(
            ReasonCode::Oversize,
            format!("{} bytes, cap {MAX_BUNDLE_LEN}", bytes.len()),
        ));
    }
    if bytes.len() < HEADER_LEN {
        return Err(Rejection::new(
            ReasonCode::Truncated,
            format!(
                "{} bytes, shorter than the {HEADER_LEN}-byte header",
                bytes.len()
            ),
        ));
    }
    let (magic, rest) = bytes.split_at(BUNDLE_MAGIC.len());
    if magic != BUNDLE_MAGIC {
        return Err(Rejection::new(ReasonCode::BadMagic, "not an armlet bundle"));
    }
    let (format, body) = rest.split_at(2);
    let format = u16::from_le_bytes([format[0], format[1]]);
    if format != BUNDLE_FORMAT {
        return Err(Rejection::new(
            ReasonCode::UnsupportedFormat,
            format!("bundle format {format}, this agent reads {BUNDLE_FORMAT}"),
        ));
    }
    let envelope: Envelope = decode_exact(body, "bundle envelope")?;
    if envelope.signatures.len() > MAX_BUNDLE_SIGNATURES {
        return Err(Rejection::new(
            ReasonCode::Malformed,
            format!(
                "{} signatures, at most {MAX_BUNDLE_SIGNATURES}",
                envelope.signatures.len()
            ),
        ));
    }
    let root_chain: Vec<SignedRoot> = decode_exact(&envelope.root_chain, "root chain")?;
    if root_chain.len() > MAX_ROOT_CHAIN {
        return Err(Rejection::new(
            ReasonCode::Malformed,
            format!(
                "{} embedded roots, at most {MAX_ROOT_CHAIN}",
                root_chain.len()
            ),
        ));
    }
    for root in &root_chain {
        root.check_signature_count()?;
        root.decode_metadata()?;
    }
    let manifest = decode_manifest(&envelope.manifest)?;
    Ok(DecodedBundle {
        root_chain,
        root_chain_bytes: envelope.root_chain,
        manifest,
        manifest_bytes: envelope.manifest,
        signatures: envelope.signatures,
        payload: envelope.payload,
    })
}

fn decode_manifest(bytes: &[u8]) -> Result<Manifest, Rejection> {
    let (version, rest) = match postcard::take_from_bytes::<u16>(bytes) {
        Ok(v) => v,
        Err(postcard::Error::DeserializeUnexpectedEnd) => {
            return Err(Rejection::new(ReasonCode::Truncated, "manifest ends early"));
        }
        Err(e) => {
            return Err(Rejection::new(
                ReasonCode::Malformed,
                format!("manifest: {e}"),
            ));
        }
    };
    if version != MANIFEST_VERSION {
        return Err(Rejection::new(
            ReasonCode::UnsupportedFormat,
            format!("manifest version {version}, this agent reads {MANIFEST_VERSION}"),
        ));
    }
    decode_exact(rest, "manifest")
}

impl DecodedBundle {
    /// Re-assemble the bundle bytes (used after adding a signature).
    pub fn encode(&self) -> Result<Vec<u8>, BuildError> {
        encode_parts(
            &self.root_chain_bytes,
            &self.manifest_bytes,
            &self.signatures,
            &self.payload,
        )
    }
}

pub(crate) fn encode_parts(
    root_chain: &[u8],
    manifest: &[u8],
    signatures: &[SignatureRecord],
    payload: &[u8],
) -> Result<Vec<u8>, BuildError> {
    let envelope = Envelope {
        root_chain: root_chain.to_vec(),
        manifest: manifest.to_vec(),
        signatures: signatures.to_vec(),
        payload: payload.to_vec(),
    };
    let body = postcard::to_allocvec(&envelope).map_err(|e| BuildError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&BUNDLE_MAGIC);
    out.extend_from_slice(&BUNDLE_FORMAT.to_le_bytes());
    out.extend_from_slice(&body);
    if out.len() > MAX_BUNDLE_LEN {
        return Err(BuildError::TooLarge(out.len()));
    }
    Ok(out)
}

/// What the control plane decides about a bundle; hashes are computed by [`build_bundle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSpec {
    /// See [`Manifest::serial`].
    pub serial: u64,
    /// See [`Manifest::issued_at`].
    pub issued_at: u64,
    /// See [`Manifest::expires_at`].
    pub expires_at: u64,
    /// See [`Manifest::scope`].
    pub scope: Scope,
    /// See [`Manifest::min_agent_version`].
    pub min_agent_version: [u16; 3],
    /// See [`Manifest::sources`].
    pub sources: Vec<SourceEntry>,
}

/// Why a bundle could not be built or signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A signing key is not a policy key.
    #[error("key {0} is not a policy key")]
    NotPolicyKey(crate::KeyId),
    /// The bundle already carries a signature by this key.
    #[error("bundle is already signed by key {0}")]
    AlreadySigned(crate::KeyId),
    /// No signing key given.
    #[error("no signing key given")]
    NoKeys,
    /// `expires_at` is not after `issued_at`.
    #[error("expiry {expires_at} is not after issue time {issued_at}")]
    ExpiresBeforeIssued {
        /// Issue time.
        issued_at: u64,
        /// Expiry.
        expires_at: u64,
    },
    /// Too many roots or signatures.
    #[error("too many {0}")]
    TooMany(&'static str),
    /// The result would exceed [`MAX_BUNDLE_LEN`].
    #[error("bundle would be {0} bytes, above the {MAX_BUNDLE_LEN}-byte cap")]
    TooLarge(usize),
    /// The input bundle (for co-signing) does not decode.
    #[error("cannot read the bundle: {0}")]
    Decode(#[from] Rejection),
    /// Encoding failed.
    #[error("encoding failed: {0}")]
    Encode(String),
}

/// Build and sign a bundle.
pub fn build_bundle(
    spec: &BundleSpec,
    payload: &[u8],
    root_chain: &[SignedRoot],
    keys: &[&SecretKey],
) -> Result<Vec<u8>, BuildError> {
    if keys.is_empty() {
        return Err(BuildError::NoKeys);
    }
    if spec.expires_at <= spec.issued_at {
        return Err(BuildError::ExpiresBeforeIssued {
            issued_at: spec.issued_at,
            expires_at: spec.expires_at,
        });
    }
    if root_chain.len() > MAX_ROOT_CHAIN {
        return Err(BuildError::TooMany("embedded roots"));
    }
    if keys.len() > MAX_BUNDLE_SIGNATURES {
        return Err(BuildError::TooMany("signatures"));
    }
    let root_chain_bytes =
        postcard::to_allocvec(root_chain).map_err(|e| BuildError::Encode(e.to_string()))?;
    let manifest = Manifest {
        serial: spec.serial,
        issued_at: spec.issued_at,
        expires_at: spec.expires_at,
        scope: spec.scope.clone(),
        min_agent_version: spec.min_agent_version,
        sources: spec.sources.clone(),
        payload_sha256: sha256(payload),
        payload_len: payload.len() as u64,
        root_chain_sha256: sha256(&root_chain_bytes),
    };
    let mut manifest_bytes =
        postcard::to_allocvec(&MANIFEST_VERSION).map_err(|e| BuildError::Encode(e.to_string()))?;
    manifest_bytes
        .extend(postcard::to_allocvec(&manifest).map_err(|e| BuildError::Encode(e.to_string()))?);
    let mut signatures: Vec<SignatureRecord> = Vec::with_capacity(keys.len());
    for key in keys {
        let record = sign_manifest(key, &manifest_bytes)?;
        if signatures.iter().any(|s| s.public_key == record.public_key) {
            return Err(BuildError::AlreadySigned(record.key_id()));
        }
        signatures.push(record);
    }
    encode_parts(&root_chain_bytes, &manifest_bytes, &signatures, payload)
}

fn sign_manifest(key: &SecretKey, manifest_bytes: &[u8]) -> Result<SignatureRecord, BuildError> {
    if key.role() != Role::Policy {
        return Err(BuildError::NotPolicyKey(key.public().id()));
    }
    Ok(key.sign_domain(MANIFEST_DOMAIN, manifest_bytes))
}

/// Add one policy-key signature to an existing bundle (for thresholds above one). The bundle is
/// decoded, not verified: co-signers should `inspect` what they sign.
pub fn add_signature(bundle: &[u8], key: &SecretKey) -> Result<Vec<u8>, BuildError> {
    let mut decoded = decode_bundle(bundle)?;
    let record = sign_manifest(key, &decoded.manifest_bytes)?;
    if decoded
        .signatures
        .iter()
        .any(|s| s.public_key == record.public_key)
    {
        return Err(BuildError::AlreadySigned(record.key_id()));
    }
    if decoded.signatures.len() >= MAX_BUNDLE_SIGNATURES {
        return Err(BuildError::TooMany("signatures"));
    }
    decoded.signatures.push(record);
    decoded.encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_parse_and_match() {
        let labels = parse_labels("armlet.io/group=upf, site=berlin").unwrap();
        assert_eq!(Scope::parse("fleet").unwrap(), Scope::Fleet);
        assert!(
            Scope::parse("node=edge-1")
                .unwrap()
                .matches("edge-1", &labels)
        );
        assert!(
            !Scope::parse("node=edge-2")
                .unwrap()
                .matches("edge-1", &labels)
        );
        assert!(Scope::parse("group=upf").unwrap().matches("x", &labels));
        assert!(!Scope::parse("group=cu").unwrap().matches("x", &labels));
        assert!(
            Scope::parse("labels=site=berlin")
                .unwrap()
                .matches("x", &labels)
        );
        assert!(
            !Scope::parse("labels=site=berlin,tier=1")
                .unwrap()
                .matches("x", &labels)
        );
        assert_eq!(
            Scope::parse("labels=a=1,b=2").unwrap().to_string(),
            "labels=a=1,b=2"
        );
        for bad in [
            "",
            "node=",
            "group=",
            "labels=",
            "labels=a",
            "zone=x",
            "labels=a=1,a=2",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
    }
}
