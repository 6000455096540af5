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
