//! The attack table: every way a bundle must be refused, each asserting its reason code.

use super::*;
use crate::envelope::{
    BundleSpec, MAX_BUNDLE_LEN, Scope, SourceEntry, add_signature, build_bundle, decode_bundle,
    encode_parts,
};
use crate::keys::{Role, SecretKey};
use crate::root::{ROOT_DOMAIN, RootMetadata};

const T0: u64 = 1_800_000_000;
const AGENT: [u16; 3] = [0, 1, 0];

fn key(role: Role, n: u8) -> SecretKey {
    SecretKey::from_seed(role, &[n; 32])
}

struct Keys {
    roots: Vec<SecretKey>,
    policy: Vec<SecretKey>,
}

fn keys() -> Keys {
    Keys {
        roots: (1..=6).map(|n| key(Role::Root, n)).collect(),
        policy: (11..=16).map(|n| key(Role::Policy, n)).collect(),
    }
}

fn pubs(keys: &[SecretKey]) -> Vec<[u8; 32]> {
    keys.iter().map(|k| *k.public().bytes()).collect()
}

fn metadata(
    version: u32,
    roots: &[SecretKey],
    rt: u8,
    policy: &[SecretKey],
    pt: u8,
) -> RootMetadata {
    RootMetadata {
        version,
        expires_at: T0 + 365 * 86_400,
        root_keys: pubs(roots),
        root_threshold: rt,
        policy_keys: pubs(policy),
        policy_threshold: pt,
    }
}

fn signed(meta: &RootMetadata, signers: &[&SecretKey]) -> SignedRoot {
    let mut root = SignedRoot::new(meta).unwrap();
    for s in signers {
        root.sign(s).unwrap();
    }
    root
}

/// Anchor v1: root keys r0,r1,r2 (threshold 2), policy keys p0,p1 (threshold 1).
fn anchor(k: &Keys) -> VerifiedRoot {
    let meta = metadata(1, &k.roots[0..3], 2, &k.policy[0..2], 1);
    VerifiedRoot::from_anchor(&signed(&meta, &[&k.roots[0], &k.roots[1]])).unwrap()
}

fn trust(root: VerifiedRoot) -> NodeTrust {
    NodeTrust {
        root,
        highest_serial: Some(10),
        time_floor: T0 - 1000,
    }
}

fn node() -> NodeIdentity {
    NodeIdentity {
        name: "edge-1".to_owned(),
        labels: crate::parse_labels("armlet.io/group=upf,site=berlin").unwrap(),
    }
}

fn spec() -> BundleSpec {
    BundleSpec {
        serial: 11,
        issued_at: T0 - 10,
        expires_at: T0 + 3600,
        scope: Scope::Fleet,
        min_agent_version: [0, 1, 0],
        sources: vec![SourceEntry {
            name: "deny-shell.yaml#0".to_owned(),
            sha256: [9; 32],
        }],
    }
}

const PAYLOAD: &[u8] = b"opaque compiled policy bytes: the verifier never looks inside";

fn bundle_with(spec: &BundleSpec, chain: &[SignedRoot], signers: &[&SecretKey]) -> Vec<u8> {
    build_bundle(spec, PAYLOAD, chain, signers).unwrap()
}

fn code(result: Result<Accepted, Rejection>) -> ReasonCode {
    match result {
        Ok(a) => panic!("accepted serial {}", a.manifest.serial),
        Err(r) => r.code,
    }
}

fn check(bytes: &[u8], trust: &NodeTrust) -> Result<Accepted, Rejection> {
    verify(bytes, trust, T0, &node(), AGENT)
}

#[test]
fn happy_path_accepts_and_advances_state() {
    let k = keys();
    let t = trust(anchor(&k));
    let bytes = bundle_with(&spec(), &[], &[&k.policy[0]]);
    let accepted = check(&bytes, &t).unwrap();
    assert_eq!(accepted.payload, PAYLOAD);
    assert_eq!(accepted.manifest.serial, 11);
    assert_eq!(accepted.new_trust.highest_serial, Some(11));
    assert_eq!(accepted.new_trust.time_floor, T0 - 10);
    assert_eq!(accepted.new_trust.root.version(), 1);
    assert!(accepted.adopted_roots.is_empty());
    // A fresh node (no serial yet) accepts it too; the floor never goes down.
    let fresh = NodeTrust {
        highest_serial: None,
        time_floor: T0 + 5,
        ..t.clone()
    };
    let accepted = check(&bytes, &fresh).unwrap();
    assert_eq!(accepted.new_trust.time_floor, T0 + 5);
}

#[test]
fn every_single_byte_flip_is_refused() {
    let k = keys();
    let t = trust(anchor(&k));
    // A bundle with an embedded rotation, so chain bytes are covered too. Thresholds of 1 keep
    // the number of (slow, in unoptimised test builds) signature checks per attempt small.
    let light = metadata(1, &k.roots[0..1], 1, &k.policy[0..1], 1);
    let light = trust(VerifiedRoot::from_anchor(&signed(&light, &[&k.roots[0]])).unwrap());
    let m2 = metadata(2, &k.roots[3..4], 1, &k.policy[2..3], 1);
    let v2 = signed(&m2, &[&k.roots[0], &k.roots[3]]);
    let bytes = bundle_with(&spec(), &[v2], &[&k.policy[2]]);
    assert_eq!(check(&bytes, &light).unwrap().new_trust.root.version(), 2);
    // (Signature checks are slow in unoptimised test builds: one flip per byte here.)
    for i in 0..bytes.len() {
        let mut tampered = bytes.clone();
        tampered[i] ^= 0x01;
        assert!(
            check(&tampered, &light).is_err(),
            "flip at byte {i} of the chained bundle accepted"
        );
    }
    // Plain bundle: every byte, low and high bit and all bits.
    let bytes = bundle_with(&spec(), &[], &[&k.policy[0]]);
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut tampered = bytes.clone();
            tampered[i] ^= mask;
            assert!(
                check(&tampered, &t).is_err(),
                "mask {mask:#x} at byte {i} was accepted"
            );
        }
    }
}

#[test]
fn unknown_signer() {
    let k = keys();
    let t = trust(anchor(&k));
    let stranger = key(Role::Policy, 99);
    assert_eq!(
        code(check(&bundle_with(&spec(), &[], &[&stranger]), &t)),
        ReasonCode::UnknownSigner
    );
    // No signature at all.
    let d = decode_bundle(&bundle_with(&spec(), &[], &[&k.policy[0]])).unwrap();
    let unsigned = encode_parts(&d.root_chain_bytes, &d.manifest_bytes, &[], &d.payload).unwrap();
    assert_eq!(code(check(&unsigned, &t)), ReasonCode::UnknownSigner);
    // A root key is not a policy key, even if it signs with the bundle domain.
    let mut d2 = d.clone();
    d2.signatures =
        vec![k.roots[0].sign_domain(crate::envelope::MANIFEST_DOMAIN, &d.manifest_bytes)];
    assert_eq!(
        code(check(&d2.encode().unwrap(), &t)),
        ReasonCode::UnknownSigner
    );
    // An unknown key next to a valid trusted one does not hurt.
    let both = add_signature(&bundle_with(&spec(), &[], &[&k.policy[0]]), &stranger).unwrap();
    check(&both, &t).unwrap();
}

#[test]
fn bad_signature_and_domain_separation() {
    let k = keys();
    let t = trust(anchor(&k));
    let mut d = decode_bundle(&bundle_with(&spec(), &[], &[&k.policy[0]])).unwrap();
    // The trusted key's signature, but made over the root domain: must not verify.
    d.signatures = vec![k.policy[0].sign_domain(ROOT_DOMAIN, &d.manifest_bytes)];
    assert_eq!(
        code(check(&d.encode().unwrap(), &t)),
        ReasonCode::BadSignature
    );
    // A corrupted signature by a trusted key fails closed even when another one is valid.
    let mut d = decode_bundle(&bundle_with(&spec(), &[], &[&k.policy[0], &k.policy[1]])).unwrap();
    d.signatures[1].s[0] ^= 1;
    assert_eq!(
        code(check(&d.encode().unwrap(), &t)),
        ReasonCode::BadSignature
    );
}

#[test]
fn below_policy_threshold() {
    let k = keys();
    let meta = metadata(1, &k.roots[0..1], 1, &k.policy[0..3], 2);
    let t = trust(VerifiedRoot::from_anchor(&signed(&meta, &[&k.roots[0]])).unwrap());
    let one = bundle_with(&spec(), &[], &[&k.policy[0]]);
    assert_eq!(code(check(&one, &t)), ReasonCode::BelowThreshold);
    // The same key twice still counts once.
    let mut d = decode_bundle(&one).unwrap();
    d.signatures.push(d.signatures[0].clone());
    assert_eq!(
        code(check(&d.encode().unwrap(), &t)),
        ReasonCode::BelowThreshold
    );
    // A second key, added by `bundle sign`, meets the threshold.
    let two = add_signature(&one, &k.policy[2]).unwrap();
    check(&two, &t).unwrap();
    assert!(
        add_signature(&two, &k.policy[2]).is_err(),
        "double signing must be refused"
    );
}

#[test]
fn trust_anchor_below_threshold_or_unsigned() {
    let k = keys();
    let meta = metadata(1, &k.roots[0..3], 2, &k.policy[0..1], 1);
    let one = signed(&meta, &[&k.roots[0]]);
    assert_eq!(
        VerifiedRoot::from_anchor(&one).unwrap_err().code,
        ReasonCode::RootBelowThreshold
    );
    let none = signed(&meta, &[]);
    assert_eq!(
        VerifiedRoot::from_anchor(&none).unwrap_err().code,
        ReasonCode::RootNotSelfSigned
    );
    // Signed only by a key that is not one of its root keys.
    let other = signed(&meta, &[&k.roots[5]]);
    assert_eq!(
        VerifiedRoot::from_anchor(&other).unwrap_err().code,
        ReasonCode::RootNotSelfSigned
    );
    // A corrupted signature by one of its keys.
    let mut bad = signed(&meta, &[&k.roots[0], &k.roots[1]]);
    bad.signatures[0].r[3] ^= 4;
    assert_eq!(
        VerifiedRoot::from_anchor(&bad).unwrap_err().code,
        ReasonCode::RootBadSignature
    );
    // File round trip and trust anchor checks from bytes.
    let good = signed(&meta, &[&k.roots[0], &k.roots[1]]);
    let file = good.to_file_bytes().unwrap();
    assert_eq!(VerifiedRoot::from_anchor_file(&file).unwrap().version(), 1);
    let mut bad_magic = file.clone();
    bad_magic[0] = b'X';
    assert_eq!(
        VerifiedRoot::from_anchor_file(&bad_magic).unwrap_err().code,
        ReasonCode::BadMagic
    );
    let cut = &file[..file.len() - 1];
    assert_eq!(
        VerifiedRoot::from_anchor_file(cut).unwrap_err().code,
        ReasonCode::Truncated
    );
}

#[test]
fn invalid_root_metadata() {
    let k = keys();
    let mut meta = metadata(1, &k.roots[0..2], 3, &k.policy[0..1], 1);
    assert!(SignedRoot::new(&meta).is_err(), "threshold above key count");
    meta.root_threshold = 0;
    assert!(SignedRoot::new(&meta).is_err(), "threshold 0");
    meta.root_threshold = 1;
    meta.root_keys[1] = meta.root_keys[0];
    assert!(SignedRoot::new(&meta).is_err(), "duplicate key");
    let mut meta = metadata(1, &k.roots[0..1], 1, &k.policy[0..1], 1);
    meta.policy_keys.push(meta.root_keys[0]);
    assert!(SignedRoot::new(&meta).is_err(), "key in both roles");
    // A node refuses such a root even if someone signs it by hand.
    let root = SignedRoot {
        metadata: meta.encode().unwrap(),
        signatures: vec![],
    };
    assert_eq!(
        VerifiedRoot::from_anchor(&root).unwrap_err().code,
        ReasonCode::RootInvalid
    );
}

/// Rotations v2 (roots r3,r4; policy p2,p3) and v3 (roots r4,r5; policy p4), each signed by a
/// threshold of the previous and of its own root keys.
fn chain_v2_v3(k: &Keys) -> (SignedRoot, SignedRoot) {
    let m2 = metadata(2, &k.roots[3..5], 2, &k.policy[2..4], 1);
    let v2 = signed(&m2, &[&k.roots[0], &k.roots[1], &k.roots[3], &k.roots[4]]);
    let m3 = metadata(3, &k.roots[4..6], 1, &k.policy[4..5], 1);
    let v3 = signed(&m3, &[&k.roots[3], &k.roots[4], &k.roots[5]]);
    (v2, v3)
}

#[test]
fn root_rotation_chain_is_followed() {
    let k = keys();
    let t = trust(anchor(&k));
    let (v2, v3) = chain_v2_v3(&k);
    let bytes = bundle_with(&spec(), &[v2.clone(), v3.clone()], &[&k.policy[4]]);
    let accepted = check(&bytes, &t).unwrap();
    assert_eq!(accepted.new_trust.root.version(), 3);
    assert_eq!(accepted.adopted_roots, vec![v2.clone(), v3.clone()]);
    // Signed by the v1 policy key, which v3 no longer delegates to.
    let old_signer = bundle_with(&spec(), &[v2.clone(), v3.clone()], &[&k.policy[0]]);
    assert_eq!(code(check(&old_signer, &t)), ReasonCode::UnknownSigner);
    // A node that already follows v3 skips the embedded entries.
    let t3 = NodeTrust {
        root: accepted.new_trust.root.clone(),
        ..t.clone()
    };
    let again = check(&bytes, &t3).unwrap();
    assert!(again.adopted_roots.is_empty());
    // ... and then refuses the v1 policy key on plain bundles too.
    let plain_old = bundle_with(&spec(), &[], &[&k.policy[0]]);
    assert_eq!(code(check(&plain_old, &t3)), ReasonCode::UnknownSigner);
}

#[test]
fn rotation_attacks() {
    let k = keys();
    let t = trust(anchor(&k));
    let m2 = metadata(2, &k.roots[3..5], 2, &k.policy[2..3], 1);
    let go = |root: SignedRoot| code(check(&bundle_with(&spec(), &[root], &[&k.policy[2]]), &t));
    // Signed only by the new keys: a stolen policy channel cannot install its own root.
    assert_eq!(
        go(signed(&m2, &[&k.roots[3], &k.roots[4]])),
        ReasonCode::RootNotSignedByPrevious
    );
    // One old key where two are needed.
    assert_eq!(
        go(signed(&m2, &[&k.roots[0], &k.roots[3], &k.roots[4]])),
        ReasonCode::RootBelowThreshold
    );
    // Old keys only: the new owners never proved they hold their keys.
    assert_eq!(
        go(signed(&m2, &[&k.roots[0], &k.roots[1]])),
        ReasonCode::RootNotSelfSigned
    );
    // New threshold not met.
    assert_eq!(
        go(signed(&m2, &[&k.roots[0], &k.roots[1], &k.roots[3]])),
        ReasonCode::RootBelowThreshold
    );
    // Skipping a version.
    let m3 = metadata(3, &k.roots[3..5], 1, &k.policy[2..3], 1);
    let all = [&k.roots[0], &k.roots[1], &k.roots[3], &k.roots[4]];
    assert_eq!(go(signed(&m3, &all)), ReasonCode::RootVersionGap);
    // A corrupted signature by an old root key.
    let mut bad = signed(&m2, &all);
    bad.signatures[0].s[1] ^= 2;
    assert_eq!(go(bad), ReasonCode::RootBadSignature);
    // Properly signed: accepted.
    let accepted = check(
        &bundle_with(&spec(), &[signed(&m2, &all)], &[&k.policy[2]]),
        &t,
    )
    .unwrap();
    assert_eq!(accepted.new_trust.root.version(), 2);
}

#[test]
fn expired_roots() {
    let k = keys();
    let mut meta = metadata(1, &k.roots[0..1], 1, &k.policy[0..1], 1);
    meta.expires_at = T0 - 1;
    let t = trust(VerifiedRoot::from_anchor(&signed(&meta, &[&k.roots[0]])).unwrap());
    let bytes = bundle_with(&spec(), &[], &[&k.policy[0]]);
    assert_eq!(code(check(&bytes, &t)), ReasonCode::RootExpired);
    // Setting the clock back does not revive it once the node has seen a later time.
    let t = NodeTrust {
        time_floor: T0,
        ..t
    };
    assert_eq!(
        code(verify(&bytes, &t, T0 - 100_000, &node(), AGENT)),
        ReasonCode::RootExpired
    );
}

#[test]
fn rollback_lower_and_equal() {
    let k = keys();
    let t = trust(anchor(&k));
    for serial in [10, 9, 0] {
        let bytes = bundle_with(&BundleSpec { serial, ..spec() }, &[], &[&k.policy[0]]);
        assert_eq!(
            code(check(&bytes, &t)),
            ReasonCode::Rollback,
            "serial {serial}"
        );
    }
}

#[test]
fn scope_other_node_group_labels() {
    let k = keys();
    let t = trust(anchor(&k));
    let with = |scope: &str| {
        let s = BundleSpec {
            scope: Scope::parse(scope).unwrap(),
            ..spec()
        };
        check(&bundle_with(&s, &[], &[&k.policy[0]]), &t)
    };
    assert_eq!(code(with("node=edge-2")), ReasonCode::ScopeMismatch);
    assert_eq!(code(with("group=cu")), ReasonCode::ScopeMismatch);
    assert_eq!(code(with("labels=site=paris")), ReasonCode::ScopeMismatch);
    assert_eq!(
        code(with("labels=site=berlin,tier=1")),
        ReasonCode::ScopeMismatch
    );
    with("node=edge-1").unwrap();
    with("group=upf").unwrap();
    with("labels=site=berlin").unwrap();
}

#[test]
fn expired_and_freeze() {
    let k = keys();
    let t = trust(anchor(&k));
    let expired = BundleSpec {
        issued_at: T0 - 7200,
        expires_at: T0,
        ..spec()
    };
    assert_eq!(
        code(check(&bundle_with(&expired, &[], &[&k.policy[0]]), &t)),
        ReasonCode::Expired
    );
    // The node has seen T0+1000 (a bundle issued then); now the clock reads T0.
    let t = NodeTrust {
        time_floor: T0 + 1000,
        ..t
    };
    let stale = BundleSpec {
        issued_at: T0 - 7200,
        expires_at: T0 + 500,
        ..spec()
    };
    assert_eq!(
        code(check(&bundle_with(&stale, &[], &[&k.policy[0]]), &t)),
        ReasonCode::Freeze
    );
    // Equal to the floor is frozen too; above it is fine.
    let edge = BundleSpec {
        expires_at: T0 + 1000,
        ..stale.clone()
    };
    assert_eq!(
        code(check(&bundle_with(&edge, &[], &[&k.policy[0]]), &t)),
        ReasonCode::Freeze
    );
    let fresh = BundleSpec {
        expires_at: T0 + 1001,
        ..stale
    };
    check(&bundle_with(&fresh, &[], &[&k.policy[0]]), &t).unwrap();
}

#[test]
fn hash_mismatch_and_agent_version() {
    let k = keys();
    let t = trust(anchor(&k));
    let mut d = decode_bundle(&bundle_with(&spec(), &[], &[&k.policy[0]])).unwrap();
    d.payload = b"a different payload under the same signed manifest".to_vec();
    assert_eq!(
        code(check(&d.encode().unwrap(), &t)),
        ReasonCode::HashMismatch
    );
    d.payload = PAYLOAD[..PAYLOAD.len() - 1].to_vec();
    assert_eq!(
        code(check(&d.encode().unwrap(), &t)),
        ReasonCode::HashMismatch
    );
    // Replacing the (empty) root chain with a real one is caught by the chain digest.
    let (v2, _) = chain_v2_v3(&k);
    let mut d = decode_bundle(&bundle_with(&spec(), &[], &[&k.policy[0]])).unwrap();
    let m2 = metadata(2, &k.roots[3..5], 2, &k.policy[0..2], 1);
    let v2b = signed(&m2, &[&k.roots[0], &k.roots[1], &k.roots[3], &k.roots[4]]);
    d.root_chain_bytes = postcard::to_allocvec(&vec![v2b]).unwrap();
    assert_eq!(
        code(check(&d.encode().unwrap(), &t)),
        ReasonCode::HashMismatch
    );
    drop(v2);
    let newer = BundleSpec {
        min_agent_version: [0, 2, 0],
        ..spec()
    };
    let bytes = bundle_with(&newer, &[], &[&k.policy[0]]);
    assert_eq!(code(check(&bytes, &t)), ReasonCode::AgentTooOld);
    verify(&bytes, &t, T0, &node(), [0, 2, 0]).unwrap();
}

#[test]
fn truncated_and_trailing() {
    let k = keys();
    let t = trust(anchor(&k));
    let bytes = bundle_with(&spec(), &[], &[&k.policy[0]]);
    for len in 0..bytes.len() {
        assert!(
            check(&bytes[..len], &t).is_err(),
            "prefix of {len} bytes accepted"
        );
    }
    assert_eq!(
        code(check(&bytes[..bytes.len() - 1], &t)),
        ReasonCode::Truncated
    );
    assert_eq!(code(check(&bytes[..5], &t)), ReasonCode::Truncated);
    assert_eq!(code(check(&[], &t)), ReasonCode::Truncated);
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(code(check(&longer, &t)), ReasonCode::Malformed);
}

#[test]
fn header_checks() {
    let k = keys();
    let t = trust(anchor(&k));
    let bytes = bundle_with(&spec(), &[], &[&k.policy[0]]);
    let mut magic = bytes.clone();
    magic[..8].copy_from_slice(b"ARMLROOT");
    assert_eq!(code(check(&magic, &t)), ReasonCode::BadMagic);
    let mut format = bytes.clone();
    format[8] = 2;
    assert_eq!(code(check(&format, &t)), ReasonCode::UnsupportedFormat);
}

#[test]
fn oversize_before_decode() {
    let k = keys();
    let t = trust(anchor(&k));
    let mut big = bundle_with(&spec(), &[], &[&k.policy[0]]);
    big.resize(MAX_BUNDLE_LEN + 1, 0);
    assert_eq!(code(check(&big, &t)), ReasonCode::Oversize);
    // Building one that large is refused on the control-plane side too.
    let payload = vec![0u8; MAX_BUNDLE_LEN];
    assert!(matches!(
        build_bundle(&spec(), &payload, &[], &[&k.policy[0]]),
        Err(crate::BuildError::TooLarge(_))
    ));
}

/// xorshift64*: a tiny deterministic PRNG, so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn random_garbage_never_accepted() {
    let k = keys();
    let t = trust(anchor(&k));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut header = crate::envelope::BUNDLE_MAGIC.to_vec();
    header.extend_from_slice(&crate::envelope::BUNDLE_FORMAT.to_le_bytes());
    for round in 0..3000 {
        let len = (rng.next() % 600) as usize;
        let mut input = if round % 2 == 0 {
            header.clone()
        } else {
            Vec::new()
        };
        input.extend(rng.bytes(len));
        let result = check(&input, &t);
        assert!(result.is_err(), "round {round} accepted");
        if round % 2 == 1 && len >= 10 {
            assert_eq!(code(result), ReasonCode::BadMagic, "round {round}");
        }
    }
    // Random bytes as the tail of a real bundle's prefix (valid header and lengths).
    let bytes = bundle_with(&spec(), &[], &[&k.policy[0]]);
    for round in 0..500 {
        let cut = (rng.next() as usize) % bytes.len();
        let mut input = bytes[..cut].to_vec();
        input.extend(rng.bytes(bytes.len() - cut));
        if input != bytes {
            assert!(check(&input, &t).is_err(), "round {round} accepted");
        }
    }
}

#[test]
fn checks_run_in_the_documented_order() {
    let k = keys();
    let t = trust(anchor(&k));
    let stranger = key(Role::Policy, 99);
    // Rollback + expired + wrong scope, signed by a stranger: the signature check comes first.
    let s = BundleSpec {
        serial: 1,
        issued_at: 1,
        expires_at: 2,
        scope: Scope::Node("other".to_owned()),
        ..spec()
    };
    assert_eq!(
        code(check(&bundle_with(&s, &[], &[&stranger]), &t)),
        ReasonCode::UnknownSigner
    );
    // Properly signed: rollback before expiry before scope.
    assert_eq!(
        code(check(&bundle_with(&s, &[], &[&k.policy[0]]), &t)),
        ReasonCode::Rollback
    );
    let s = BundleSpec { serial: 99, ..s };
    assert_eq!(
        code(check(&bundle_with(&s, &[], &[&k.policy[0]]), &t)),
        ReasonCode::Expired
    );
    // Scope before hashes before agent version.
    let s = BundleSpec {
        serial: 99,
        min_agent_version: [9, 9, 9],
        scope: Scope::Node("other".to_owned()),
        ..spec()
    };
    let mut d = decode_bundle(&bundle_with(&s, &[], &[&k.policy[0]])).unwrap();
    d.payload.push(0);
    assert_eq!(
        code(check(&d.encode().unwrap(), &t)),
        ReasonCode::ScopeMismatch
    );
    let s = BundleSpec {
        scope: Scope::Fleet,
        ..s
    };
    let mut d = decode_bundle(&bundle_with(&s, &[], &[&k.policy[0]])).unwrap();
    d.payload.push(0);
    assert_eq!(
        code(check(&d.encode().unwrap(), &t)),
        ReasonCode::HashMismatch
    );
}
