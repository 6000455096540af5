//! Policy push: a bundle received over MQTT is verified exactly like `armlet bundle verify`
//! (the same [`crate::state::verify_and_record`], the same trust anchor and state directory),
//! applied by the daemon through the same engine path as a SIGHUP reload, and then kept as the
//! node's *active bundle* (`<state>/active-bundle`) so a restart without a broker enforces it.
//!
//! Why re-verification of the active bundle at start is special: its serial is the highest the
//! node recorded, and the normal check refuses anything not strictly above that (rollback). At
//! start the node re-runs every check on the stored bytes but accepts exactly the recorded
//! serial, and records nothing; a tampered or expired file is refused like any bundle.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

use armlet_bundle::{NodeIdentity, ReasonCode};
use armlet_policy::ir::CompiledPolicy;

use crate::state::NodeState;

/// The active bundle's file name in the state directory.
pub const ACTIVE_BUNDLE: &str = "active-bundle";

/// A pushed bundle refused: a stable reason code and a detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct Refused {
    pub code: String,
    pub detail: String,
}

impl Refused {
    fn new(code: impl Into<String>, detail: impl Into<String>) -> Self {
        Refused {
            code: code.into(),
            detail: detail.into(),
        }
    }
}

/// What verifying a pushed bundle needs: the node's trust anchor, state and identity.
#[derive(Debug, Clone)]
pub struct Verifier {
    pub trust: PathBuf,
    pub state: PathBuf,
    pub node: String,
    pub labels: String,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn agent_version() -> [u16; 3] {
    let mut v = [0u16; 3];
    for (slot, part) in v.iter_mut().zip(env!("CARGO_PKG_VERSION").split('.')) {
        *slot = part.parse().unwrap_or(0);
    }
    v
}

impl Verifier {
    fn identity(&self) -> Result<NodeIdentity, Refused> {
        Ok(NodeIdentity {
            name: self.node.clone(),
            labels: armlet_bundle::envelope::parse_labels(&self.labels)
                .map_err(|e| Refused::new("labels", e.to_string()))?,
        })
    }

    /// Verify and record (serial, time floor, roots) a pushed bundle, then decode its policy.
    pub fn verify(&self, bytes: &[u8]) -> Result<(CompiledPolicy, u64), Refused> {
        let identity = self.identity()?;
        let accepted = crate::state::verify_and_record(
            bytes,
            &self.trust,
            &self.state,
            now(),
            &identity,
            agent_version(),
        )
        .map_err(|e| Refused::new("state", e.to_string()))?
        .map_err(|r| Refused::new(r.code.as_str(), r.detail))?;
        let ir = CompiledPolicy::from_bytes(&accepted.payload)
            .map_err(|e| Refused::new("payload", e.to_string()))?;
        Ok((ir, accepted.manifest.serial))
    }

    /// Keep an applied bundle as the active one (atomically: the old or the new file, whole).
    pub fn persist_active(&self, bytes: &[u8]) -> io::Result<()> {
        fs::create_dir_all(&self.state)?;
        let tmp = self.state.join(format!(".{ACTIVE_BUNDLE}.tmp"));
        {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, self.state.join(ACTIVE_BUNDLE))?;
        File::open(&self.state)?.sync_all()
    }

    /// The active bundle, re-verified with every check at exactly the recorded serial (nothing
    /// is recorded). None when there is none.
    pub fn load_active(&self) -> Result<Option<(CompiledPolicy, u64)>, Refused> {
        let path = self.state.join(ACTIVE_BUNDLE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Refused::new("state", format!("{}: {e}", path.display()))),
        };
        let state = NodeState::load(&self.trust, &self.state)
            .map_err(|e| Refused::new("state", e.to_string()))?;
        let mut trust = state.trust.clone();
        let recorded = trust.highest_serial;
        trust.highest_serial = recorded.and_then(|s| s.checked_sub(1));
        let accepted =
            armlet_bundle::verify(&bytes, &trust, now(), &self.identity()?, agent_version())
                .map_err(|r| Refused::new(r.code.as_str(), r.detail))?;
        if Some(accepted.manifest.serial) != recorded {
            return Err(Refused::new(
                ReasonCode::Rollback.as_str(),
                format!(
                    "active bundle serial {} is not the recorded serial {recorded:?}",
                    accepted.manifest.serial
                ),
            ));
        }
        let ir = CompiledPolicy::from_bytes(&accepted.payload)
            .map_err(|e| Refused::new("payload", e.to_string()))?;
        Ok(Some((ir, accepted.manifest.serial)))
    }

    /// The highest serial recorded in the state directory (the active bundle's).
    pub fn recorded_serial(&self) -> Option<u64> {
        NodeState::load(&self.trust, &self.state)
            .ok()
            .and_then(|s| s.trust.highest_serial)
    }
}

/// A refusal before verification (no trust root configured).
pub fn no_trust() -> Refused {
    Refused::new(
        "no-trust",
        "this agent runs unsigned local policies (--insecure-dev) and has no trust root",
    )
}
