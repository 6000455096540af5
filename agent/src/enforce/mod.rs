//! Enforcers: turning a compiled policy into kernel state.
//!
//! `kernel_rules` is the pure IR → map-entries step; `bpf_lsm` loads and feeds the eBPF
//! programs. AppArmor, fanotify and the tracepoint-based audit enforcer arrive with issues #3
//! (audit) and #4 (AppArmor, fanotify); `armlet run` says so when one of them is chosen.

pub mod bpf_lsm;
pub mod kernel_rules;
