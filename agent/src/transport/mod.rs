//! The alert transport and the MQTT control plane (DESIGN §6, issue #5).
//!
//! Data flow: the daemon hands every alert to [`Agent::submit`] (a bounded channel, never
//! blocking: a full channel drops and counts); the pipeline thread aggregates and budgets
//! ([`aggregate`]), numbers, encodes ([`wire`]) and appends to the disk spool ([`spool`]); the
//! MQTT thread ([`mqtt`]; [`link`]: MQTT 5 or 3.1.1) sends spooled batches in order and deletes
//! them only after PUBACK, publishes the retained status, and passes pushed bundles back to the
//! daemon, which verifies and applies them on its own thread ([`control`]).

pub mod agent;
pub mod aggregate;
pub mod control;
pub mod link;
pub mod mqtt;
pub mod spool;
pub mod wire;

use armlet_policy::ir::CompiledPolicy;
use armlet_policy::support::Enforcer;

use crate::alert::Alert;
use crate::cmd::run::PolicySource;
pub use agent::Config;
use agent::{Agent, Status};
use control::Verifier;

/// The transport as the daemon sees it: submit alerts, take pushed bundles.
#[derive(Debug)]
pub struct Session {
    agent: Agent,
    verifier: Option<Verifier>,
    enforcer: Enforcer,
}

/// The verifier for pushed bundles: the trust root and state of a bundle source; none for
/// unsigned local policies.
pub fn verifier_of(source: &PolicySource) -> Option<Verifier> {
    match source {
        PolicySource::Bundle {
            trust,
            state,
            node,
            labels,
            ..
        } => Some(Verifier {
            trust: trust.clone(),
            state: state.clone(),
            node: node.clone(),
            labels: labels.clone(),
        }),
        PolicySource::Local { .. } => None,
    }
}

impl Session {
    /// Recover the spool and start the pipeline and MQTT threads.
    pub fn start(
        cfg: &Config,
        source: &PolicySource,
        enforcer: Enforcer,
        ir: &CompiledPolicy,
    ) -> Result<Session, spool::SpoolError> {
        let verifier = verifier_of(source);
        // The bundle enforced now becomes the active bundle unless it already is, so a
        // restart with the same command line enforces it again (its serial is recorded, so
        // verifying the --bundle file again would be refused as a rollback).
        if let (Some(v), PolicySource::Bundle { bundle, .. }) = (&verifier, source)
            && !matches!(v.load_active(), Ok(Some(_)))
            && let Ok(bytes) = std::fs::read(bundle)
            && let Err(e) = v.persist_active(&bytes)
        {
            eprintln!(
                "armlet: mqtt: cannot keep {} as the active bundle: {e}",
                bundle.display()
            );
        }
        let status = Status {
            serial: verifier.as_ref().and_then(Verifier::recorded_serial),
            enforcer: enforcer.as_str().to_string(),
            downgrades: armlet_policy::support::plan(enforcer, ir).downgrades.len(),
            last_push: None,
            last_push_sha256: None,
        };
        Ok(Session {
            agent: Agent::start(cfg.clone(), status)?,
            verifier,
            enforcer,
        })
    }

    /// Hand one alert to the transport (never blocks).
    pub fn submit(&self, alert: &Alert) {
        self.agent.submit(alert);
    }

    /// Verify and apply the bundles pushed since the last call. `apply` is the daemon's engine
    /// apply (the SIGHUP path). Returns the policy now in force when one was applied; any
    /// refusal leaves the current policy in force and only changes the status.
    pub fn poll_push(
        &mut self,
        mut apply: impl FnMut(&CompiledPolicy) -> Result<String, String>,
    ) -> Option<CompiledPolicy> {
        let mut applied = None;
        while let Some(bytes) = self.agent.next_bundle() {
            let verdict = match &self.verifier {
                None => Err(control::no_trust()),
                Some(v) => v.verify(&bytes),
            };
            let outcome = verdict.and_then(|(ir, serial)| {
                let summary = apply(&ir).map_err(|e| control::Refused {
                    code: "apply".into(),
                    detail: e,
                })?;
                Ok((ir, serial, summary))
            });
            match outcome {
                Ok((ir, serial, summary)) => {
                    if let Some(v) = &self.verifier
                        && let Err(e) = v.persist_active(&bytes)
                    {
                        eprintln!(
                            "armlet: mqtt: applied bundle serial {serial} could not be kept as \
                             the active bundle (a restart enforces the previous one): {e}"
                        );
                    }
                    eprintln!("armlet: mqtt: applied pushed bundle serial {serial}: {summary}");
                    let downgrades = armlet_policy::support::plan(self.enforcer, &ir)
                        .downgrades
                        .len();
                    self.agent.report_push(
                        &bytes,
                        format!("applied {serial}"),
                        Some((serial, downgrades)),
                    );
                    applied = Some(ir);
                }
                Err(r) => {
                    eprintln!(
                        "armlet: mqtt: pushed bundle rejected, the current policy stays in \
                         force: {r}"
                    );
                    self.agent
                        .report_push(&bytes, format!("rejected {}", r.code), None);
                }
            }
        }
        applied
    }

    /// The policy changed by a SIGHUP reload: report its serial and downgrades in status.
    pub fn reloaded(&self, ir: &CompiledPolicy) {
        let serial = self.verifier.as_ref().and_then(Verifier::recorded_serial);
        let downgrades = armlet_policy::support::plan(self.enforcer, ir)
            .downgrades
            .len();
        self.agent.policy_changed(serial, downgrades);
    }

    /// One line for the daemon's stop message.
    pub fn counters_line(&self) -> String {
        self.agent.counters_line()
    }
}
