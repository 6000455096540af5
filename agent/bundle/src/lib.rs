//! Pure core of armlet's signed policy bundles (DESIGN §4, "TUF-lite").
//!
//! This crate decides whether a node may apply a bundle. It is deliberately *pure*: no file or
//! network I/O, no clock (callers pass `now` as unix seconds), no randomness (key generation takes
//! a 32-byte seed the caller got from the OS). That makes every decision reproducible in a unit
//! test or a fuzz target, and lets the CLI (`armlet bundle verify`) and the daemon (MQTT push)
//! run byte-for-byte the same code path.
//!
//! The pieces, following the data:
//! - [`keys`]: Ed25519 keys with a role (root or policy), versioned one-line text files, key ids.
//! - [`root`]: the trust root (k-of-n root keys delegating to k-of-n policy keys), its signing,
//!   and the rules for following a rotation N → N+1 (signed by a threshold of both key sets).
//! - [`envelope`]: the on-wire bundle (magic, format version, embedded root chain, manifest,
//!   signatures, payload) and how the control plane builds and co-signs it.
//! - [`verify`]: the node-side checks, in a fixed order, each failure with a stable
//!   [`ReasonCode`].
//!
//! Every signature is over a *domain-separated* message (`b"armlet-root-v1\0"` or
//! `b"armlet-bundle-manifest-v1\0"` followed by the exact signed bytes), so a signature made for
//! one kind of object can never be replayed as another, even if a key were (wrongly) shared
//! between roles. Signatures are always over the exact bytes carried on the wire, never over a
//! re-encoding, so verification does not depend on the encoder being canonical.
#![forbid(unsafe_code)]

pub mod envelope;
mod hex;
pub mod keys;
pub mod reason;
pub mod root;
pub mod verify;

pub use envelope::{
    BuildError, BundleSpec, DecodedBundle, MAX_BUNDLE_LEN, Manifest, Scope, ScopeParseError,
    SourceEntry, add_signature, build_bundle, decode_bundle, parse_labels,
};
pub use hex::{decode_hex, encode_hex};
pub use keys::{KeyError, KeyId, PublicKey, Role, SecretKey, SignatureRecord, key_id};
pub use reason::{ReasonCode, Rejection};
pub use root::{RootError, RootMetadata, SignedRoot, VerifiedRoot};
pub use verify::{Accepted, NodeIdentity, NodeTrust, verify};
