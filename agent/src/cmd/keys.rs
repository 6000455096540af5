//! `armlet keygen`, and reading key files for the other commands.
//!
//! Why the care with the secret file: it is created with `O_CREAT|O_EXCL` and mode 0600 in the
//! same `open(2)`, so it is never world-readable, not even between a create and a chmod, and an
//! existing key is never overwritten (losing a root key can brick a fleet). The seed comes from
//! the OS (`getrandom`); the pure `armlet-bundle` crate only derives the key from it.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use armlet_bundle::{PublicKey, Role, SecretKey};

use crate::cli::{KeygenArgs, RoleArg};

const fn role(arg: RoleArg) -> Role {
    match arg {
        RoleArg::Root => Role::Root,
        RoleArg::Policy => Role::Policy,
    }
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Write `contents` to a new file created with `mode`; refuse to replace an existing file.
fn create_new(path: &Path, mode: u32, contents: &[u8]) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {} (refusing to overwrite)", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("writing {}", path.display()))?;
    file.sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    Ok(())
}

/// `armlet keygen --role ROLE --out PREFIX`.
pub fn keygen(args: &KeygenArgs) -> anyhow::Result<()> {
    let key_path = with_suffix(&args.out, ".key");
    let pub_path = with_suffix(&args.out, ".pub");
    for path in [&key_path, &pub_path] {
        if fs::symlink_metadata(path).is_ok() {
            bail!(
                "{} already exists; refusing to overwrite a key",
                path.display()
            );
        }
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("reading OS randomness: {e}"))?;
    let secret = SecretKey::from_seed(role(args.role), &seed);
    seed.fill(0);
    let public = secret.public();
    create_new(&key_path, 0o600, secret.to_text().as_bytes())?;
    create_new(&pub_path, 0o644, public.to_text().as_bytes())?;
    println!(
        "{} key {}: secret {} (mode 0600), public {}",
        public.role(),
        public.id(),
        key_path.display(),
        pub_path.display()
    );
    Ok(())
}

/// Read a `.pub` file and require `role`.
pub fn load_public(path: &Path, role: Role) -> anyhow::Result<PublicKey> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let key = PublicKey::parse(&text).with_context(|| format!("in {}", path.display()))?;
    key.require_role(role)
        .with_context(|| format!("in {}", path.display()))
}

/// Read a `.key` file and require `role`. Warns when the file is readable by others.
pub fn load_secret(path: &Path, role: Role) -> anyhow::Result<SecretKey> {
    let meta = fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        eprintln!(
            "armlet: warning: secret key {} is accessible by group/others (mode {:o})",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let key = SecretKey::parse(&text).with_context(|| format!("in {}", path.display()))?;
    key.require_role(role)
        .with_context(|| format!("in {}", path.display()))
}
