//! The node-side verifier faces untrusted bytes from the network: whatever arrives must end as
//! a rejection with a reason code (or, for a valid bundle, acceptance), never a panic, and a
//! rejection must not depend on anything but the bytes.
#![no_main]

use std::sync::OnceLock;

use armlet_bundle::{NodeIdentity, NodeTrust, Role, RootMetadata, SecretKey, SignedRoot, VerifiedRoot, verify};
use libfuzzer_sys::fuzz_target;

fn trust() -> &'static NodeTrust {
    static TRUST: OnceLock<NodeTrust> = OnceLock::new();
    TRUST.get_or_init(|| {
        let root = SecretKey::from_seed(Role::Root, &[1; 32]);
        let policy = SecretKey::from_seed(Role::Policy, &[2; 32]);
        let meta = RootMetadata {
            version: 1,
            expires_at: u64::MAX,
            root_keys: vec![*root.public().bytes()],
            root_threshold: 1,
            policy_keys: vec![*policy.public().bytes()],
            policy_threshold: 1,
        };
        let mut signed = SignedRoot::new(&meta).expect("root");
        signed.sign(&root).expect("sign");
        NodeTrust {
            root: VerifiedRoot::from_anchor(&signed).expect("anchor"),
            highest_serial: Some(3),
            time_floor: 1_000,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let node = NodeIdentity { name: "n1".into(), labels: Default::default() };
    let a = verify(data, trust(), 2_000, &node, [0, 1, 0]);
    let b = verify(data, trust(), 2_000, &node, [0, 1, 0]);
    assert_eq!(a.is_ok(), b.is_ok());
    if let (Err(x), Err(y)) = (a, b) {
        assert_eq!(x.code, y.code);
        assert!(!x.code.as_str().is_empty());
    }
});
