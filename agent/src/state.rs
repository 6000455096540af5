//! The node's state directory: what a node must remember between bundles, kept crash-safely.
//!
//! Contents of the directory (`/var/lib/armlet` by default, on the writable partition):
//! - `state`: text, `armlet-state-v1` then `highest_serial N|none` and `time_floor UNIX`;
//! - `root-vN.bin`: every trust root adopted by rotation, in the trust root file format (so
//!   `armlet trust inspect` reads them).
//!
//! Why keep the rotated roots and not just the newest: the anchor (`trust.bin`) ships read-only in
//! the image, and on every load the node re-verifies the stored rotations as a chain from that
//! anchor, so a stored root is only ever trusted because the anchor's keys (transitively) signed
//! it — a file dropped into the directory cannot add trust. A broken chain is an error (fail
//! closed: the last good policy stays in force) rather than a silent fall-back to the anchor.
//!
//! Why crash-safe writes (temp file, fsync, rename, fsync the directory): the serial and the time
//! floor are persisted *before* a bundle is applied (DESIGN §4). If power fails mid-write, the
//! old or the new file survives whole, never a torn one that could reset the serial and reopen a
//! rollback. Roots are written before `state`, so a crash in between leaves a newer root with the
//! old serial, which is safe (the same bundle verifies again).
//!
//! A rejected bundle leaves the directory untouched, byte for byte (it is not even created).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use armlet_bundle::{Accepted, NodeIdentity, NodeTrust, Rejection, SignedRoot, VerifiedRoot};

const STATE_FILE: &str = "state";
const STATE_TAG: &str = "armlet-state-v1";

/// Why the node state could not be read or written (operational errors, not bundle verdicts).
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A state file does not parse or a stored root does not verify.
    #[error("{path}: corrupt node state: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The trust anchor is not a valid self-signed trust root.
    #[error("{path}: trust anchor refused: {source}")]
    Anchor {
        /// The trust anchor file.
        path: PathBuf,
        /// Why.
        source: Rejection,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A node's trust state, loaded from the anchor and the state directory.
#[derive(Debug)]
pub struct NodeState {
    dir: PathBuf,
    /// What the node trusts and remembers now.
    pub trust: NodeTrust,
}

fn parse_state(text: &str) -> Option<(Option<u64>, u64)> {
    let mut lines = text.lines();
    if lines.next()? != STATE_TAG {
        return None;
    }
    let serial = match lines.next()?.strip_prefix("highest_serial ")? {
        "none" => None,
        n => Some(n.parse().ok()?),
    };
    let floor = lines.next()?.strip_prefix("time_floor ")?.parse().ok()?;
    if lines.next().is_some() {
        return None;
    }
    Some((serial, floor))
}

fn format_state(trust: &NodeTrust) -> String {
    let serial = trust
        .highest_serial
        .map_or_else(|| "none".to_owned(), |s| s.to_string());
    format!(
        "{STATE_TAG}\nhighest_serial {serial}\ntime_floor {}\n",
        trust.time_floor
    )
}

fn root_file_name(version: u32) -> String {
    format!("root-v{version}.bin")
}

/// Stored rotated roots, oldest first.
fn stored_roots(dir: &Path) -> Result<Vec<(u32, PathBuf)>, StateError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut roots = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(version) = name
            .strip_prefix("root-v")
            .and_then(|n| n.strip_suffix(".bin"))
        else {
            continue;
        };
        if let Ok(version) = version.parse::<u32>() {
            roots.push((version, entry.path()));
        }
    }
    roots.sort();
    Ok(roots)
}

impl NodeState {
    /// Load: verify the anchor, follow the stored rotations from it, read serial and floor.
    /// A missing directory or `state` file is a fresh node (no serial, floor 0).
    pub fn load(anchor_path: &Path, dir: &Path) -> Result<Self, StateError> {
        let anchor_bytes = fs::read(anchor_path).map_err(io_err(anchor_path))?;
        let anchor =
            VerifiedRoot::from_anchor_file(&anchor_bytes).map_err(|source| StateError::Anchor {
                path: anchor_path.to_owned(),
                source,
            })?;
        let mut root = anchor;
        for (version, path) in stored_roots(dir)? {
            if version <= root.version() {
                continue;
            }
            let bytes = fs::read(&path).map_err(io_err(&path))?;
            let corrupt = |detail: String| StateError::Corrupt {
                path: path.clone(),
                detail,
            };
            let signed = SignedRoot::from_file_bytes(&bytes).map_err(|r| corrupt(r.to_string()))?;
            root = root
                .rotate_to(&signed)
                .map_err(|r| corrupt(r.to_string()))?;
        }
        let state_path = dir.join(STATE_FILE);
        let (highest_serial, time_floor) = match fs::read_to_string(&state_path) {
            Ok(text) => parse_state(&text).ok_or_else(|| StateError::Corrupt {
                path: state_path.clone(),
                detail: format!("expected `{STATE_TAG}`, `highest_serial N|none`, `time_floor T`"),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => (None, 0),
            Err(e) => return Err(io_err(&state_path)(e)),
        };
        Ok(Self {
            dir: dir.to_owned(),
            trust: NodeTrust {
                root,
                highest_serial,
                time_floor,
            },
        })
    }

    /// Persist an accepted bundle's trust state (adopted roots first, then serial and floor).
    pub fn record(&mut self, accepted: &Accepted) -> Result<(), StateError> {
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        for root in &accepted.adopted_roots {
            let version = root
                .decode_metadata()
                .map_err(|r| StateError::Corrupt {
                    path: self.dir.clone(),
                    detail: r.to_string(),
                })?
                .version;
            let bytes = root.to_file_bytes().map_err(|e| StateError::Corrupt {
                path: self.dir.clone(),
                detail: e.to_string(),
            })?;
            write_atomic(&self.dir, &root_file_name(version), &bytes)?;
        }
        write_atomic(
            &self.dir,
            STATE_FILE,
            format_state(&accepted.new_trust).as_bytes(),
        )?;
        self.trust = accepted.new_trust.clone();
        Ok(())
    }
}

/// Write `dir/name` so that after a crash either the old or the new content is there, whole.
fn write_atomic(dir: &Path, name: &str, contents: &[u8]) -> Result<(), StateError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let target = dir.join(name);
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        file.write_all(contents).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, &target).map_err(io_err(&target))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(())
}

/// The one path from bundle bytes to recorded state, shared by `armlet bundle verify` and the
/// daemon (MQTT push, `run --bundle`): load the trust state, run every check, and on acceptance
/// persist the new serial, floor and roots *before* returning the payload to apply.
///
/// `Ok(Err(rejection))` is a verdict on the bundle (state untouched); `Err` is an operational
/// failure (unreadable anchor or state).
pub fn verify_and_record(
    bundle: &[u8],
    anchor_path: &Path,
    dir: &Path,
    now: u64,
    node: &NodeIdentity,
    agent_version: [u16; 3],
) -> Result<Result<Accepted, Rejection>, StateError> {
    let mut state = NodeState::load(anchor_path, dir)?;
    match armlet_bundle::verify(bundle, &state.trust, now, node, agent_version) {
        Ok(accepted) => {
            state.record(&accepted)?;
            Ok(Ok(accepted))
        }
        Err(rejection) => Ok(Err(rejection)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_text_round_trip() {
        assert_eq!(
            parse_state("armlet-state-v1\nhighest_serial 7\ntime_floor 99\n"),
            Some((Some(7), 99))
        );
        assert_eq!(
            parse_state("armlet-state-v1\nhighest_serial none\ntime_floor 0\n"),
            Some((None, 0))
        );
        assert_eq!(
            parse_state("armlet-state-v1\nhighest_serial x\ntime_floor 0\n"),
            None
        );
        assert_eq!(
            parse_state("armlet-state-v2\nhighest_serial 1\ntime_floor 0\n"),
            None
        );
    }
}
