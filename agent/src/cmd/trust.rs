//! `armlet trust init|rotate|inspect`: the offline root ceremony.
//!
//! Every command re-runs the node-side checks (`VerifiedRoot::from_anchor` / `rotate_to`) on
//! what it produced before writing it, so the tool can never emit a root that nodes would refuse
//! (thresholds, duplicate keys, key roles, missing old or new signatures).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use armlet_bundle::{Role, RootMetadata, SecretKey, SignedRoot, VerifiedRoot, encode_hex, key_id};
use serde_json::json;

use super::bundle::{now_unix, parse_expires, time_json};
use super::keys::{load_public, load_secret};
use crate::cli::{TrustCommand, TrustInitArgs, TrustInspectArgs, TrustRotateArgs};

/// Run one `trust` subcommand.
pub fn run(command: TrustCommand) -> anyhow::Result<ExitCode> {
    match command {
        TrustCommand::Init(a) => init(&a),
        TrustCommand::Rotate(a) => rotate(&a),
        TrustCommand::Inspect(a) => inspect(&a),
    }
    .map(|()| ExitCode::SUCCESS)
}

fn public_keys(paths: &[PathBuf], role: Role) -> anyhow::Result<Vec<[u8; 32]>> {
    paths
        .iter()
        .map(|p| load_public(p, role).map(|k| *k.bytes()))
        .collect()
}

fn secret_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<SecretKey>> {
    paths.iter().map(|p| load_secret(p, Role::Root)).collect()
}

fn sign_all(
    metadata: &RootMetadata,
    signers: &[SecretKey],
    allowed: &[&[[u8; 32]]],
) -> anyhow::Result<SignedRoot> {
    let mut signed = SignedRoot::new(metadata)?;
    for key in signers {
        let public = key.public();
        if !allowed.iter().any(|set| set.contains(public.bytes())) {
            bail!(
                "signing key {} is not a root key that counts for this root",
                public.id()
            );
        }
        signed.sign(key)?;
    }
    Ok(signed)
}

fn write_root(path: &Path, signed: &SignedRoot, version: u32) -> anyhow::Result<()> {
    fs::write(path, signed.to_file_bytes()?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "trust root v{version} written to {} ({} signature(s))",
        path.display(),
        signed.signatures.len()
    );
    Ok(())
}

fn init(a: &TrustInitArgs) -> anyhow::Result<()> {
    let metadata = RootMetadata {
        version: 1,
        expires_at: parse_expires(&a.expires, now_unix()?)?,
        root_keys: public_keys(&a.roots, Role::Root)?,
        root_threshold: a.threshold,
        policy_keys: public_keys(&a.policy_keys, Role::Policy)?,
        policy_threshold: a.policy_threshold,
    };
    let signed = sign_all(
        &metadata,
        &secret_keys(&a.sign_with)?,
        &[&metadata.root_keys],
    )?;
    VerifiedRoot::from_anchor(&signed)
        .map_err(|r| anyhow!("nodes would refuse this trust root: {r}"))?;
    write_root(&a.out, &signed, 1)
}

fn read_root(path: &Path) -> anyhow::Result<SignedRoot> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    SignedRoot::from_file_bytes(&bytes).with_context(|| format!("in {}", path.display()))
}

fn rotate(a: &TrustRotateArgs) -> anyhow::Result<()> {
    let previous = VerifiedRoot::from_anchor(&read_root(&a.from)?)
        .with_context(|| format!("{} is not a valid trust root", a.from.display()))?;
    let version = previous
        .version()
        .checked_add(1)
        .ok_or_else(|| anyhow!("trust root version overflow"))?;
    let metadata = RootMetadata {
        version,
        expires_at: parse_expires(&a.expires, now_unix()?)?,
        root_keys: public_keys(&a.roots, Role::Root)?,
        root_threshold: a.threshold,
        policy_keys: public_keys(&a.policy_keys, Role::Policy)?,
        policy_threshold: a.policy_threshold,
    };
    let signed = sign_all(
        &metadata,
        &secret_keys(&a.sign_with)?,
        &[&previous.metadata().root_keys, &metadata.root_keys],
    )?;
    previous.rotate_to(&signed).map_err(|r| {
        anyhow!("nodes would refuse this rotation: {r} (it needs a threshold of the old AND the new root keys)")
    })?;
    write_root(&a.out, &signed, version)
}

fn keys_json(keys: &[[u8; 32]]) -> serde_json::Value {
    keys.iter()
        .map(|k| json!({ "id": key_id(k).to_string(), "public_key": encode_hex(k) }))
        .collect()
}

fn inspect(a: &TrustInspectArgs) -> anyhow::Result<()> {
    let signed = read_root(&a.file)?;
    let m = signed
        .decode_metadata()
        .with_context(|| format!("in {}", a.file.display()))?;
    let self_check = match VerifiedRoot::from_anchor(&signed) {
        Ok(_) => json!({ "ok": true }),
        Err(r) => json!({ "ok": false, "reason": r.code.as_str(), "detail": r.detail }),
    };
    let doc = json!({
        "version": m.version,
        "expires_at": time_json(m.expires_at),
        "root_threshold": m.root_threshold,
        "root_keys": keys_json(&m.root_keys),
        "policy_threshold": m.policy_threshold,
        "policy_keys": keys_json(&m.policy_keys),
        "signatures": signed.signatures.iter().map(|s| json!({
            "key_id": s.key_id().to_string(),
            "own_root_key": m.root_keys.contains(&s.public_key),
        })).collect::<Vec<_>>(),
        "self_signature_check": self_check,
    });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
