//! `armlet bundle build|sign|verify|inspect`.
//!
//! `verify` goes through [`crate::state::verify_and_record`], the same function the daemon uses
//! for pushed bundles, so the CLI is a faithful rehearsal of what a node will do. Its exit code
//! is the verdict: 0 accepted, 1 rejected (`rejected: <reason-code>: <detail>` on stdout),
//! 2 operational error (unreadable trust anchor or state).

use std::fs;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use armlet_bundle::{
    BundleSpec, NodeIdentity, Role, Scope, SignedRoot, SourceEntry, add_signature, build_bundle,
    decode_bundle, encode_hex, parse_labels,
};
use serde_json::json;

use super::keys::load_secret;
use crate::cli::{
    BundleBuildArgs, BundleCommand, BundleInspectArgs, BundleSignArgs, BundleVerifyArgs,
};

/// Run one `bundle` subcommand.
pub fn run(command: BundleCommand) -> anyhow::Result<ExitCode> {
    match command {
        BundleCommand::Build(a) => build(&a).map(|()| ExitCode::SUCCESS),
        BundleCommand::Sign(a) => sign(&a).map(|()| ExitCode::SUCCESS),
        BundleCommand::Verify(a) => verify(&a),
        BundleCommand::Inspect(a) => inspect(&a).map(|()| ExitCode::SUCCESS),
    }
}

/// Seconds since the Unix epoch from the system clock.
pub(crate) fn now_unix() -> anyhow::Result<u64> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock before 1970")?
        .as_secs())
}

/// An RFC 3339 date/time (`2027-01-01T00:00:00Z`, also without the zone) or a duration from
/// `now` (`30d`, `12h`), as unix seconds.
pub(crate) fn parse_expires(text: &str, now: u64) -> anyhow::Result<u64> {
    if let Ok(at) = humantime::parse_rfc3339_weak(text) {
        return Ok(at
            .duration_since(UNIX_EPOCH)
            .context("expiry before 1970")?
            .as_secs());
    }
    match humantime::parse_duration(text) {
        Ok(d) => now
            .checked_add(d.as_secs())
            .ok_or_else(|| anyhow!("expiry `{text}` overflows")),
        Err(e) => bail!("expiry `{text}` is neither an RFC 3339 date nor a duration ({e})"),
    }
}

/// A unix time as `{ "unix": N, "rfc3339": "..." }`.
pub(crate) fn time_json(unix: u64) -> serde_json::Value {
    let rfc = UNIX_EPOCH
        .checked_add(Duration::from_secs(unix))
        .filter(|t| {
            t.duration_since(UNIX_EPOCH)
                .is_ok_and(|d| d.as_secs() < 253_402_300_800)
        })
        .map_or_else(
            || "out-of-range".to_owned(),
            |t| humantime::format_rfc3339_seconds(t).to_string(),
        );
    json!({ "unix": unix, "rfc3339": rfc })
}

fn rfc3339(unix: u64) -> String {
    time_json(unix)["rfc3339"]
        .as_str()
        .unwrap_or("out-of-range")
        .to_owned()
}

/// `MAJOR.MINOR.PATCH` (pre-release suffixes ignored).
pub(crate) fn parse_version(text: &str) -> Option<[u16; 3]> {
    let core = text.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u16>().ok());
    let v = [parts.next()??, parts.next()??, parts.next()??];
    parts.next().is_none().then_some(v)
}

/// This agent's version, for `min_agent_version`.
pub(crate) fn agent_version() -> anyhow::Result<[u16; 3]> {
    parse_version(env!("CARGO_PKG_VERSION")).ok_or_else(|| anyhow!("bad agent version"))
}

fn read_chain(paths: &[std::path::PathBuf]) -> anyhow::Result<Vec<SignedRoot>> {
    let mut chain = Vec::new();
    let mut last: Option<u32> = None;
    for path in paths {
        let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let root = SignedRoot::from_file_bytes(&bytes)
            .with_context(|| format!("in {}", path.display()))?;
        let version = root
            .decode_metadata()
            .with_context(|| format!("in {}", path.display()))?
            .version;
        if let Some(prev) = last
            && Some(version) != prev.checked_add(1)
        {
            bail!("--root-chain must list consecutive versions: v{version} after v{prev}");
        }
        last = Some(version);
        chain.push(root);
    }
    Ok(chain)
}

fn write_out(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn build(a: &BundleBuildArgs) -> anyhow::Result<()> {
    let now = now_unix()?;
    let scope = Scope::parse(&a.scope)?;
    let min_agent_version = match &a.min_agent_version {
        Some(v) => parse_version(v)
            .ok_or_else(|| anyhow!("--min-agent-version `{v}` is not MAJOR.MINOR.PATCH"))?,
        None => [0, 0, 0],
    };
    let keys = a
        .keys
        .iter()
        .map(|p| load_secret(p, Role::Policy))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let chain = read_chain(&a.root_chain)?;
    let (payload, sources) = crate::policy_files::bundle_payload(&a.policies, &a.default_posture)?;
    let spec = BundleSpec {
        serial: a.serial,
        issued_at: now,
        expires_at: parse_expires(&a.expires, now)?,
        scope,
        min_agent_version,
        sources: sources
            .into_iter()
            .map(|s| SourceEntry {
                name: s.name,
                sha256: s.sha256,
            })
            .collect(),
    };
    let key_refs: Vec<_> = keys.iter().collect();
    let bytes = build_bundle(&spec, &payload, &chain, &key_refs)?;
    write_out(&a.out, &bytes)?;
    println!(
        "bundle serial {} scope {} expires {} ({} source document(s), payload {} bytes, {} signature(s), {} embedded root(s)) written to {}",
        spec.serial,
        spec.scope,
        rfc3339(spec.expires_at),
        spec.sources.len(),
        payload.len(),
        keys.len(),
        chain.len(),
        a.out.display()
    );
    Ok(())
}

fn sign(a: &BundleSignArgs) -> anyhow::Result<()> {
    let key = load_secret(&a.key, Role::Policy)?;
    let bytes = fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let signed = add_signature(&bytes, &key)?;
    let out = a.out.as_deref().unwrap_or(&a.file);
    // In place: write a sibling then rename, so a failure never leaves half a bundle.
    let tmp = out.with_extension("signing.tmp");
    write_out(&tmp, &signed)?;
    fs::rename(&tmp, out).with_context(|| format!("replacing {}", out.display()))?;
    println!(
        "signed by policy key {}: {}",
        key.public().id(),
        out.display()
    );
    Ok(())
}

fn verify(a: &BundleVerifyArgs) -> anyhow::Result<ExitCode> {
    let bytes = fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let node = NodeIdentity {
        name: a.node.clone(),
        labels: parse_labels(&a.labels)?,
    };
    let verdict = crate::state::verify_and_record(
        &bytes,
        &a.trust,
        &a.state,
        now_unix()?,
        &node,
        agent_version()?,
    )?;
    match verdict {
        Ok(accepted) => {
            let m = &accepted.manifest;
            println!(
                "accepted: serial {} scope {} expires {} payload {} bytes trust-root v{}",
                m.serial,
                m.scope,
                rfc3339(m.expires_at),
                m.payload_len,
                accepted.new_trust.root.version()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(rejection) => {
            println!("rejected: {}: {}", rejection.code, rejection.detail);
            Ok(ExitCode::from(1))
        }
    }
}

fn scope_json(scope: &Scope) -> serde_json::Value {
    match scope {
        Scope::Fleet => json!({ "kind": "fleet" }),
        Scope::Node(n) => json!({ "kind": "node", "node": n }),
        Scope::Group(g) => json!({ "kind": "group", "group": g }),
        Scope::Labels(l) => json!({ "kind": "labels", "labels": l }),
    }
}

fn inspect(a: &BundleInspectArgs) -> anyhow::Result<()> {
    let bytes = fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let d = decode_bundle(&bytes).with_context(|| format!("in {}", a.file.display()))?;
    let m = &d.manifest;
    let roots: Vec<_> = d
        .root_chain
        .iter()
        .map(|r| r.decode_metadata().map(|m| m.version))
        .collect::<Result<_, _>>()?;
    let [x, y, z] = m.min_agent_version;
    let doc = json!({
        "verified": false,
        "size": bytes.len(),
        "serial": m.serial,
        "issued_at": time_json(m.issued_at),
        "expires_at": time_json(m.expires_at),
        "scope": scope_json(&m.scope),
        "min_agent_version": format!("{x}.{y}.{z}"),
        "sources": m.sources.iter().map(|s| json!({ "name": s.name, "sha256": encode_hex(&s.sha256) })).collect::<Vec<_>>(),
        "payload": { "sha256": encode_hex(&m.payload_sha256), "len": m.payload_len },
        "root_chain": { "versions": roots, "sha256": encode_hex(&m.root_chain_sha256) },
        "signatures": d.signatures.iter().map(|s| json!({ "key_id": s.key_id().to_string() })).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
