//! The alert transport and the MQTT control plane (DESIGN §6, issue #5).
//!
//! Data flow: the daemon hands every alert to [`Agent::submit`] (a bounded channel, never
//! blocking: a full channel drops and counts); the pipeline thread aggregates and budgets
//! ([`aggregate`]), numbers, encodes ([`wire`]) and appends to the disk spool ([`spool`]); the
//! MQTT thread ([`mqtt`]) sends spooled batches in order and deletes them only after PUBACK,
//! publishes the retained status, and passes pushed bundles back to the daemon, which verifies
//! and applies them on its own thread ([`control`]).

pub mod aggregate;
pub mod spool;
pub mod wire;
