//! Stable reason codes for every way a node can refuse a bundle or a trust root.
//!
//! Why an enum with fixed kebab-case strings: the code is what operators grep for, what alerts
//! and status reports carry over MQTT, and what tests assert on. The human-readable `detail`
//! may change wording between releases; the codes may not (retire a code, never reuse it).

use core::fmt;

/// Why a bundle (or a root in its chain, or the node's trust anchor) was refused.
///
/// Listed in the order the checks run (see [`crate::verify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReasonCode {
    /// The input is larger than [`crate::MAX_BUNDLE_LEN`]; refused before any decoding.
    Oversize,
    /// The input ends before the structure it announces is complete.
    Truncated,
    /// The input does not start with the bundle (or trust root) magic bytes.
    BadMagic,
    /// The envelope or manifest format version is not one this agent understands.
    UnsupportedFormat,
    /// The bytes do not decode (bad lengths, trailing bytes, too many entries, ...).
    Malformed,
    /// An embedded root is not exactly the next version after the node's current root.
    RootVersionGap,
    /// A root's metadata is structurally invalid (threshold 0 or above the key count, duplicate
    /// or invalid keys).
    RootInvalid,
    /// A signature on a root by a key that counts for it does not verify.
    RootBadSignature,
    /// A rotated root carries no valid signature by the previous root's keys.
    RootNotSignedByPrevious,
    /// A root carries no valid signature by its own root keys.
    RootNotSelfSigned,
    /// A root has valid signatures, but fewer than the threshold that applies.
    RootBelowThreshold,
    /// The root the node would verify against has expired (against max(now, time floor)).
    RootExpired,
    /// No signature by any trusted policy key (none at all, or only by unknown keys).
    UnknownSigner,
    /// A signature by a trusted policy key does not verify.
    BadSignature,
    /// Valid signatures by trusted policy keys, but fewer than the policy threshold.
    BelowThreshold,
    /// The serial is not strictly greater than the highest serial this node accepted.
    Rollback,
    /// The bundle expired (`expires_at <= now`).
    Expired,
    /// `now < expires_at <= time floor`: the clock was set back below the highest time seen.
    Freeze,
    /// The bundle is scoped to another node, group or label set.
    ScopeMismatch,
    /// The payload (or embedded root chain) does not match the manifest's length and digest.
    HashMismatch,
    /// The manifest requires a newer agent.
    AgentTooOld,
}

impl ReasonCode {
    /// Every code, in check order (for docs and exhaustive tests).
    pub const ALL: [ReasonCode; 21] = [
        Self::Oversize,
        Self::Truncated,
        Self::BadMagic,
        Self::UnsupportedFormat,
        Self::Malformed,
        Self::RootVersionGap,
        Self::RootInvalid,
        Self::RootBadSignature,
        Self::RootNotSignedByPrevious,
        Self::RootNotSelfSigned,
        Self::RootBelowThreshold,
        Self::RootExpired,
        Self::UnknownSigner,
        Self::BadSignature,
        Self::BelowThreshold,
        Self::Rollback,
        Self::Expired,
        Self::Freeze,
        Self::ScopeMismatch,
        Self::HashMismatch,
        Self::AgentTooOld,
    ];

    /// The stable kebab-case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Oversize => "oversize",
            Self::Truncated => "truncated",
            Self::BadMagic => "bad-magic",
            Self::UnsupportedFormat => "unsupported-format",
            Self::Malformed => "malformed",
            Self::RootVersionGap => "root-version-gap",
            Self::RootInvalid => "root-invalid",
            Self::RootBadSignature => "root-bad-signature",
            Self::RootNotSignedByPrevious => "root-not-signed-by-previous",
            Self::RootNotSelfSigned => "root-not-self-signed",
            Self::RootBelowThreshold => "root-below-threshold",
            Self::RootExpired => "root-expired",
            Self::UnknownSigner => "unknown-signer",
            Self::BadSignature => "bad-signature",
            Self::BelowThreshold => "below-threshold",
            Self::Rollback => "rollback",
            Self::Expired => "expired",
            Self::Freeze => "freeze",
            Self::ScopeMismatch => "scope-mismatch",
            Self::HashMismatch => "hash-mismatch",
            Self::AgentTooOld => "agent-too-old",
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: the stable code plus a human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct Rejection {
    /// The stable reason code.
    pub code: ReasonCode,
    /// What exactly was wrong (wording may change; do not match on it).
    pub detail: String,
}

impl Rejection {
    pub(crate) fn new(code: ReasonCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_kebab_case() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ReasonCode::ALL {
            let s = code.as_str();
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{s}"
            );
            assert!(seen.insert(s), "duplicate code {s}");
        }
    }
}
