//! Node-side verification: may this node apply this bundle?
//!
//! The checks run in a fixed order, each with its own [`ReasonCode`]:
//!
//! 1. size cap (`oversize`), before any decoding, so a hostile push cannot make the node
//!    allocate or parse much;
//! 2. decode (`truncated`, `bad-magic`, `unsupported-format`, `malformed`);
//! 3. embedded root chain (`root-*`): follow rotations N+1, N+2, ... from the node's root, then
//!    require the resulting root to be unexpired (`root-expired`);
//! 4. signatures against that root's policy keys (`unknown-signer`, `bad-signature`,
//!    `below-threshold`);
//! 5. serial strictly above the highest accepted (`rollback`);
//! 6. expiry (`expired`) and freeze (`freeze`);
//! 7. scope (`scope-mismatch`);
//! 8. payload and root-chain digests (`hash-mismatch`);
//! 9. minimum agent version (`agent-too-old`).
//!
//! Why this order: nothing unauthenticated is interpreted beyond what is needed to find the
//! signatures; cheap structural checks come before the expensive signature checks; and every
//! verdict after step 4 is about *authentic* content, so a `rollback` or `scope-mismatch` report
//! is a statement about what the fleet's keys really signed, not about attacker-chosen bytes.
//! The digests come after the metadata checks because hashing a 4 MiB payload is the most
//! expensive step and is pointless for a bundle that is stale or meant for another node.
//!
//! Why a time floor: an edge node's clock can be wrong or set back (no RTC battery, hostile
//! NTP). Without a floor, an attacker who replays an old, expired bundle only has to set the
//! clock back. The node therefore remembers the highest `issued_at` of any bundle it accepted
//! and treats a bundle that expires at or before that floor as frozen (`freeze`), even if the
//! local clock says it is still valid. Root expiry is judged against the same max(now, floor).
//!
//! The function is pure: the caller persists [`Accepted::new_trust`] (and the adopted roots)
//! *before* applying the payload, so a crash cannot let the same serial be applied twice or an
//! older one slip in afterwards.

use std::collections::BTreeMap;

use crate::envelope::{MANIFEST_DOMAIN, Manifest, decode_bundle, sha256};
use crate::keys::tally;
use crate::reason::{ReasonCode, Rejection};
use crate::root::{SignedRoot, VerifiedRoot};

/// What a node trusts and remembers between bundles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTrust {
    /// The newest verified root (anchor or the end of a rotation chain).
    pub root: VerifiedRoot,
    /// Highest serial accepted so far (`None` on a fresh node).
    pub highest_serial: Option<u64>,
    /// Highest `issued_at` of any accepted bundle, in unix seconds (0 on a fresh node).
    pub time_floor: u64,
}

/// Who this node is, for scope matching.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeIdentity {
    /// The node name.
    pub name: String,
    /// The node labels (`armlet.io/group` selects group scopes).
    pub labels: BTreeMap<String, String>,
}

/// A bundle that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The verified manifest.
    pub manifest: Manifest,
    /// The verified payload (the compiled policy).
    pub payload: Vec<u8>,
    /// The trust state to persist before applying: advanced root, this serial, raised floor.
    pub new_trust: NodeTrust,
    /// Roots adopted from the bundle's chain, oldest first (persist them to re-verify later).
    pub adopted_roots: Vec<SignedRoot>,
}

/// Run every check on `bytes` (see the module docs for the order).
pub fn verify(
    bytes: &[u8],
    trust: &NodeTrust,
    now: u64,
    node: &NodeIdentity,
    agent_version: [u16; 3],
) -> Result<Accepted, Rejection> {
    // 1-2. Size cap, then decode.
    let bundle = decode_bundle(bytes)?;

    // 3. Root chain, then the resulting root's expiry.
    let (root, adopted_roots) = trust.root.follow_chain(&bundle.root_chain)?;
    let effective_now = now.max(trust.time_floor);
    if root.metadata().expires_at <= effective_now {
        return Err(Rejection::new(
            ReasonCode::RootExpired,
            format!(
                "trust root v{} expired at {} (node time {effective_now})",
                root.version(),
                root.metadata().expires_at
            ),
        ));
    }

    // 4. Signatures against the trusted policy keys.
    let meta = root.metadata();
    let t = tally(
        MANIFEST_DOMAIN,
        &bundle.manifest_bytes,
        &bundle.signatures,
        &meta.policy_keys,
    );
    if let Some(bad) = t.bad {
        return Err(Rejection::new(
            ReasonCode::BadSignature,
            format!("signature by trusted policy key {bad} does not verify"),
        ));
    }
    if t.valid == 0 {
        let detail = if bundle.signatures.is_empty() {
            "bundle is not signed".to_owned()
        } else {
            format!(
                "{} signature(s), none by a policy key of trust root v{}",
                t.others,
                root.version()
            )
        };
        return Err(Rejection::new(ReasonCode::UnknownSigner, detail));
    }
    if t.valid < usize::from(meta.policy_threshold) {
        return Err(Rejection::new(
            ReasonCode::BelowThreshold,
            format!(
                "{} valid policy signature(s), threshold {}",
                t.valid, meta.policy_threshold
            ),
        ));
    }

    let m = &bundle.manifest;
    // 5. Serial.
    if let Some(highest) = trust.highest_serial
        && m.serial <= highest
    {
        return Err(Rejection::new(
            ReasonCode::Rollback,
            format!(
                "serial {} is not above the highest accepted serial {highest}",
                m.serial
            ),
        ));
    }

    // 6. Expiry, then freeze.
    if m.expires_at <= now {
        return Err(Rejection::new(
            ReasonCode::Expired,
            format!("expired at {} (now {now})", m.expires_at),
        ));
    }
    if m.expires_at <= trust.time_floor {
        return Err(Rejection::new(
            ReasonCode::Freeze,
            format!(
                "expires at {} but this node has already seen time {} (clock set back?)",
                m.expires_at, trust.time_floor
            ),
        ));
    }

    // 7. Scope.
    if !m.scope.matches(&node.name, &node.labels) {
        return Err(Rejection::new(
            ReasonCode::ScopeMismatch,
            format!(
                "bundle scope {} does not include node {}",
                m.scope, node.name
            ),
        ));
    }

    // 8. Digests of everything the signatures do not cover directly.
    if bundle.payload.len() as u64 != m.payload_len || sha256(&bundle.payload) != m.payload_sha256 {
        return Err(Rejection::new(
            ReasonCode::HashMismatch,
            format!(
                "payload ({} bytes) does not match the manifest ({} bytes and digest)",
                bundle.payload.len(),
                m.payload_len
            ),
        ));
    }
    if sha256(&bundle.root_chain_bytes) != m.root_chain_sha256 {
        return Err(Rejection::new(
            ReasonCode::HashMismatch,
            "embedded root chain does not match the manifest digest",
        ));
    }

    // 9. Agent version.
    if agent_version < m.min_agent_version {
        let [a, b, c] = m.min_agent_version;
        let [x, y, z] = agent_version;
        return Err(Rejection::new(
            ReasonCode::AgentTooOld,
            format!("bundle needs agent {a}.{b}.{c}, this is {x}.{y}.{z}"),
        ));
    }

    let new_trust = NodeTrust {
        root,
        highest_serial: Some(m.serial),
        time_floor: trust.time_floor.max(m.issued_at),
    };
    Ok(Accepted {
        manifest: bundle.manifest,
        payload: bundle.payload,
        new_trust,
        adopted_roots,
    })
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
