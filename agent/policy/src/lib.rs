//! armlet's pure policy core: KubeArmor policy text in, rule IR and support reports out.
//!
//! Why pure: the same code runs in the control plane (`armlet policy check`, `bundle build`)
//! and on the node (applying a verified bundle, deciding in user space). It does no I/O, reads
//! no clock and needs no privileges, so it is unit-tested and fuzzed without a kernel.
//!
//! The stages, each in its own module:
//! [`yaml`] (positioned YAML tree) → [`parse`] (CRD validation, diagnostics with positions) →
//! [`model`] (typed policies) → [`ir`] (merged per workload selector, allow-lists, posture) →
//! [`support`] (what each enforcer downgrades) and [`eval`] (the decision for one operation).
#![forbid(unsafe_code)]

pub mod eval;
pub mod ir;
pub mod model;
pub mod names;
pub mod parse;
pub mod support;
pub mod yaml;

/// Why [`compile_text`] failed: the document's diagnostics, or a cross-document problem.
#[derive(Debug, thiserror::Error)]
pub enum CompileTextError {
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<parse::Diagnostic>),
    #[error(transparent)]
    Compile(#[from] ir::CompileError),
}

/// Parse, validate and compile the policies in one text (every document named `source#N`).
/// Later definitions of the same policy replace earlier ones, as with files.
pub fn compile_text(
    src: &str,
    source: &str,
    posture: ir::Posture,
) -> Result<ir::CompiledPolicy, CompileTextError> {
    let parsed = parse::parse_policies(src);
    if parsed.has_errors() {
        return Err(CompileTextError::Invalid(parsed.diagnostics));
    }
    let inputs: Vec<ir::SourcePolicy> = parsed
        .documents
        .into_iter()
        .enumerate()
        .map(|(i, d)| ir::SourcePolicy {
            policy: d.policy,
            source: format!("{source}#{}", i + 1),
        })
        .collect();
    let (inputs, _) = ir::latest_definitions(inputs);
    Ok(ir::compile(&inputs, posture)?)
}
