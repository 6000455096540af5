//! Reading policy files from disk for the pure compiler.
//!
//! Why a module of its own: the policy crate does no I/O, so walking directories, reading
//! files, naming sources (`file.yaml#2`) and turning positions into `FILE:LINE:COL` lines
//! happen here, once, for `policy check`, `policy compile`, `bundle build` and `run`.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use armlet_policy::ir::{self, CompiledPolicy, Posture, SourcePolicy};
use armlet_policy::parse::{self, Level};
use sha2::{Digest, Sha256};

/// Digest of one source policy document, recorded in a bundle manifest.
#[derive(Debug, Clone)]
pub struct SourceDigest {
    /// Display name: the file path and document index (`file.yaml#2`).
    pub name: String,
    /// SHA-256 of the document's text.
    pub sha256: [u8; 32],
}

/// A problem in a policy file, with its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDiagnostic {
    pub file: String,
    pub diagnostic: parse::Diagnostic,
}

impl fmt::Display for FileDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.diagnostic)
    }
}

/// Every policy found under some paths, with every problem.
#[derive(Debug, Default)]
pub struct Loaded {
    pub files: usize,
    pub policies: Vec<SourcePolicy>,
    pub digests: Vec<SourceDigest>,
    pub diagnostics: Vec<FileDiagnostic>,
    /// Problems between documents, found by compiling.
    pub compile_errors: Vec<String>,
    /// Notes between documents: a later definition of the same policy replaced an earlier one.
    pub replaced: Vec<String>,
}

impl Loaded {
    pub fn error_count(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.diagnostic.level == Level::Error)
            .count()
            + self.compile_errors.len()
    }
}

/// I/O failures while collecting policies (policy problems are diagnostics, not errors).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}: no such file or directory")]
    Missing(String),
    #[error("{path}: {count} error(s) in the policies (run `armlet policy check`)")]
    Invalid { path: String, count: usize },
    #[error("cannot encode the compiled policy: {0}")]
    Encode(#[from] postcard::Error),
}

/// Files named directly are taken whatever their name; directories are searched recursively
/// for `*.yaml` and `*.yml`, in sorted order so output and bundles are reproducible.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    for p in paths {
        let meta = fs::metadata(p).map_err(|_| LoadError::Missing(p.display().to_string()))?;
        if meta.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let read = |e| LoadError::Read {
        path: dir.display().to_string(),
        source: e,
    };
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(read)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(read)?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

/// Read, validate and (for cross-document problems) compile every policy under `paths`.
pub fn load(paths: &[PathBuf]) -> Result<Loaded, LoadError> {
    let mut loaded = Loaded::default();
    for path in collect_files(paths)? {
        let name = path.display().to_string();
        let bytes = fs::read(&path).map_err(|e| LoadError::Read {
            path: name.clone(),
            source: e,
        })?;
        loaded.files += 1;
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let pos = position_of_byte(e.as_bytes(), e.utf8_error().valid_up_to());
                loaded.diagnostics.push(FileDiagnostic {
                    file: name,
                    diagnostic: parse::Diagnostic {
                        pos,
                        level: Level::Error,
                        message: "the file is not valid UTF-8 text".to_string(),
                    },
                });
                continue;
            }
        };
        let parsed = parse::parse_policies(&text);
        for d in parsed.diagnostics {
            loaded.diagnostics.push(FileDiagnostic {
                file: name.clone(),
                diagnostic: d,
            });
        }
        for (i, doc) in parsed.documents.into_iter().enumerate() {
            let source = format!("{name}#{}", i + 1);
            let body = text.get(doc.span.0..doc.span.1).unwrap_or(&text);
            loaded.digests.push(SourceDigest {
                name: source.clone(),
                sha256: Sha256::digest(body.as_bytes()).into(),
            });
            loaded.policies.push(SourcePolicy {
                policy: doc.policy,
                source,
            });
        }
    }
    let (kept, replaced) = ir::latest_definitions(std::mem::take(&mut loaded.policies));
    loaded.policies = kept;
    loaded.replaced = replaced;
    if let Err(e) = ir::compile(&loaded.policies, Posture::default()) {
        loaded.compile_errors.push(e.to_string());
    }
    Ok(loaded)
}

/// Load and compile; any policy error is an error here.
pub fn compile_paths(
    paths: &[PathBuf],
    posture: Posture,
) -> Result<(CompiledPolicy, Loaded), LoadError> {
    let loaded = load(paths)?;
    let count = loaded.error_count();
    let shown = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    if count > 0 {
        return Err(LoadError::Invalid { path: shown, count });
    }
    match ir::compile(&loaded.policies, posture) {
        Ok(ir) => Ok((ir, loaded)),
        Err(_) => Err(LoadError::Invalid {
            path: shown,
            count: 1,
        }),
    }
}

/// Load, validate and compile every policy under `paths`; return the postcard-encoded compiled
/// policy (the bundle payload) and one digest per source document.
pub fn bundle_payload(
    paths: &[PathBuf],
    default_posture: &str,
) -> anyhow::Result<(Vec<u8>, Vec<SourceDigest>)> {
    let posture = Posture::parse(default_posture)?;
    let (ir, loaded) = match compile_paths(paths, posture) {
        Ok(v) => v,
        Err(LoadError::Invalid { .. }) => {
            let loaded = load(paths)?;
            for d in &loaded.diagnostics {
                eprintln!("{d}");
            }
            for e in &loaded.compile_errors {
                eprintln!("{e}");
            }
            anyhow::bail!(
                "{} error(s) in the policies; no bundle written",
                loaded.error_count()
            );
        }
        Err(e) => return Err(e.into()),
    };
    Ok((ir.to_bytes()?, loaded.digests))
}

fn position_of_byte(bytes: &[u8], offset: usize) -> armlet_policy::yaml::Pos {
    let before = bytes.get(..offset).unwrap_or(bytes);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    armlet_policy::yaml::Pos {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        col: u32::try_from(col).unwrap_or(u32::MAX),
    }
}
