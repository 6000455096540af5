//! Enforcers: turning a compiled policy into kernel state.
//!
//! `kernel_rules` is the pure IR → map-entries step; `bpf_lsm` loads and feeds the eBPF
//! programs; `audit_tp` observes through tracepoints and decides in user space where BPF-LSM
//! is unavailable; `apparmor` generates, loads and reports AppArmor profiles; `fanotify` blocks
//! file opens and executions through fanotify permission events where neither BPF-LSM nor
//! AppArmor exists.

pub mod apparmor;
pub mod audit_tp;
pub mod bpf_lsm;
pub mod fanotify;
pub mod kernel_rules;
