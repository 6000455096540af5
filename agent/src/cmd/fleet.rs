//! The control-plane CLI over MQTT: `armlet push`, `armlet alerts tail`, `armlet fleet status`.
//!
//! Each is a short-lived MQTT client on a current-thread tokio runtime (rumqttc is
//! tokio-only), with the same TLS settings as the agent ([`crate::transport::mqtt`]).
//! `alerts tail` checks the per-node, per-lane sequence numbers and reports gaps (lost
//! alerts: spool full, or alerts published while a non-persistent tail was away) and
//! duplicates (a batch sent again after a lost PUBACK) on stderr.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};

use crate::cli::{AlertsTailArgs, BrokerArgs, FleetStatusArgs, MqttRunArgs, PushArgs};
use crate::transport::agent::sha256_hex;
use crate::transport::link::{Ev, Link, Negotiator, PubOpts, Retry, SessionMode};
use crate::transport::mqtt::{Backoff, BrokerConfig, Topics, valid_level};
use crate::transport::wire::{self, Lane};

fn broker(b: &BrokerArgs, client_id: String) -> anyhow::Result<BrokerConfig> {
    let url = b
        .broker
        .as_deref()
        .context("--broker URL is required (mqtts://HOST:PORT)")?;
    if !valid_level(&b.fleet) {
        bail!("--fleet {:?} is not a valid topic level", b.fleet);
    }
    let mut cfg = BrokerConfig::new(
        url,
        b.ca.as_deref(),
        b.cert.as_deref(),
        b.key.as_deref(),
        b.insecure_plain,
        client_id,
    )?;
    cfg.protocol = b.protocol;
    Ok(cfg)
}

/// Connect in the version the negotiator says (MQTT 5 first, then 3.1.1 if the broker refuses
/// 5) and wait for the CONNACK; true when the broker resumed a session.
async fn connect(
    cfg: &BrokerConfig,
    neg: &mut Negotiator,
    session: SessionMode,
) -> anyhow::Result<(Link, bool)> {
    loop {
        let mut link = Link::new(cfg, neg.protocol(), session, None, 16)?;
        let e = loop {
            match tokio::time::timeout(Duration::from_secs(30), link.poll()).await {
                Err(_) => bail!("no answer from {}:{} within 30s", cfg.host, cfg.port),
                Ok(Ok(Ev::ConnAck {
                    session_present, ..
                })) => {
                    if let Some(note) = neg.connected() {
                        eprintln!("armlet: {note}");
                    }
                    return Ok((link, session_present));
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => break e,
            }
        };
        if neg.failed_before_connack(&e) == Retry::Backoff {
            bail!("broker connection (MQTT {}): {e}", link.protocol.as_str());
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the MQTT runtime")
}

fn client_id(what: &str) -> String {
    format!("armlet-{what}-{}", std::process::id())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The MQTT configuration of `armlet run` (None without --mqtt-broker).
pub fn run_config(
    m: &MqttRunArgs,
    node: &str,
    state: &std::path::Path,
) -> anyhow::Result<Option<crate::transport::Config>> {
    if m.broker.broker.is_none() {
        return Ok(None);
    }
    if !valid_level(node) || node == "group" {
        bail!(
            "node name {node:?} cannot be an MQTT topic level (no '/', '+', '#'; `group` is \
             the group topics' level)"
        );
    }
    if let Some(g) = &m.group
        && !valid_level(g)
    {
        bail!("--mqtt-group {g:?} is not a valid topic level");
    }
    let broker = broker(&m.broker, node.to_owned())?;
    let spool = crate::transport::spool::SpoolLimits {
        max_bytes: m.spool_max_bytes,
        ..crate::transport::spool::SpoolLimits::default()
    };
    Ok(Some(crate::transport::Config {
        broker,
        fleet: m.broker.fleet.clone(),
        node: node.to_owned(),
        group: m.group.clone(),
        spool_dir: m.spool_dir.clone().unwrap_or_else(|| state.join("spool")),
        spool,
        aggregate: crate::transport::aggregate::Limits {
            window_secs: m.aggregate_secs,
            ..crate::transport::aggregate::Limits::default()
        },
    }))
}

/// The bundle pushed over MQTT and applied before a restart, re-verified; None when there is
/// none (or the policy source is not a signed bundle).
pub fn active_bundle(
    source: &crate::cmd::run::PolicySource,
) -> anyhow::Result<Option<(armlet_policy::ir::CompiledPolicy, String)>> {
    let Some(v) = crate::transport::verifier_of(source) else {
        return Ok(None);
    };
    match v.load_active() {
        Ok(Some((ir, serial))) => Ok(Some((
            ir,
            format!(
                "active bundle {} (serial {serial}, the last one accepted)",
                v.state
                    .join(crate::transport::control::ACTIVE_BUNDLE)
                    .display()
            ),
        ))),
        Ok(None) => Ok(None),
        Err(r) => bail!("the active bundle in {} is refused: {r}", v.state.display()),
    }
}

/// `armlet push`: publish a bundle and wait for the node's (or group's) outcome in status.
pub fn push(a: &PushArgs) -> anyhow::Result<ExitCode> {
    let bytes =
        std::fs::read(&a.bundle).with_context(|| format!("reading {}", a.bundle.display()))?;
    match armlet_bundle::decode_bundle(&bytes) {
        Ok(d) => eprintln!(
            "armlet: pushing bundle serial {} ({} bytes)",
            d.manifest.serial,
            bytes.len()
        ),
        Err(r) => eprintln!(
            "armlet: warning: {} does not decode as a bundle ({r}); pushing anyway, the node \
             decides",
            a.bundle.display()
        ),
    }
    let fleet = &a.broker.fleet;
    let (topic, status_topic) = match (&a.node, &a.group) {
        (Some(n), None) if valid_level(n) => (
            Topics {
                fleet: fleet.clone(),
                node: n.clone(),
            }
            .bundle(),
            format!("{}/status", Topics::prefix(fleet, n)),
        ),
        (None, Some(g)) if valid_level(g) => (
            Topics::group_bundle(fleet, g),
            format!("armlet/v1/{fleet}/+/status"),
        ),
        _ => bail!("pass --node N or --group G (a valid topic level)"),
    };
    let cfg = broker(&a.broker, client_id("push"))?;
    let sha = sha256_hex(&bytes);
    let started = unix_now();
    let timeout: Duration = a.timeout.into();
    let group = a.group.is_some();
    let rt = runtime()?;
    let outcomes = rt.block_on(async {
        let (mut link, _) =
            connect(&cfg, &mut Negotiator::new(cfg.protocol), SessionMode::CLEAN).await?;
        let client = link.client.clone();
        client.try_subscribe(&status_topic)?;
        // MQTT 5: a push nobody took within the timeout is not delivered later.
        let opts = PubOpts {
            alias: None,
            expiry: Some(timeout),
        };
        client.try_publish(&topic, false, bytes, opts)?;
        let deadline = Instant::now() + timeout;
        let mut outcomes: BTreeMap<String, String> = BTreeMap::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(left, link.poll()).await {
                Err(_) => break,
                Ok(Err(e)) => anyhow::bail!("broker connection: {e}"),
                Ok(Ok(Ev::Publish { payload, .. })) => {
                    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&payload) else {
                        continue;
                    };
                    let fresh = v["time"].as_u64().is_some_and(|t| t >= started);
                    if fresh && v["bundle_sha256"].as_str() == Some(sha.as_str()) {
                        let node = v["node"].as_str().unwrap_or("?").to_string();
                        let outcome = v["bundle"].as_str().unwrap_or("?").to_string();
                        println!("{node}: {outcome}");
                        outcomes.insert(node, outcome);
                        if !group {
                            break;
                        }
                    }
                }
                Ok(Ok(_)) => {}
            }
        }
        let _ = client.try_disconnect();
        Ok::<_, anyhow::Error>(outcomes)
    })?;
    if outcomes.is_empty() {
        bail!("no outcome within {}", humantime::format_duration(timeout));
    }
    Ok(if outcomes.values().all(|o| o.starts_with("applied ")) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Sequence checking per (node, lane).
#[derive(Debug, Default)]
pub struct SeqCheck {
    last: HashMap<(String, Lane), u64>,
    pub gaps: u64,
    pub duplicates: u64,
}

impl SeqCheck {
    /// Check one sequence number; returns a report line for a gap or a duplicate.
    pub fn check(&mut self, node: &str, lane: Lane, seq: u64) -> Option<String> {
        let key = (node.to_owned(), lane);
        let Some(&last) = self.last.get(&key) else {
            self.last.insert(key, seq);
            return None;
        };
        if seq <= last {
            self.duplicates += 1;
            return Some(format!(
                "duplicate: node {node} lane {} seq {seq} (last {last})",
                lane.as_str()
            ));
        }
        self.last.insert(key, seq);
        if seq > last + 1 {
            self.gaps += 1;
            return Some(format!(
                "gap: node {node} lane {} seq {}..{} missing",
                lane.as_str(),
                last + 1,
                seq - 1
            ));
        }
        None
    }
}

/// `armlet alerts tail`.
pub fn tail(a: &AlertsTailArgs) -> anyhow::Result<ExitCode> {
    let node = a.node.as_deref().unwrap_or("+");
    if node != "+" && !valid_level(node) {
        bail!("--node {node:?} is not a valid topic level");
    }
    let topic = format!("{}/alerts", Topics::prefix(&a.broker.fleet, node));
    let id = a.session.clone().unwrap_or_else(|| client_id("tail"));
    let cfg = broker(&a.broker, id)?;
    let session = SessionMode {
        clean: a.session.is_none(),
        expiry: a.session_expiry.into(),
    };
    let mut neg = Negotiator::new(cfg.protocol);
    let deadline = a.timeout.map(|t| Instant::now() + Duration::from(t));
    let rt = runtime()?;
    let mut check = SeqCheck::default();
    let mut seen = 0u64;
    let mut batches = 0u64;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    rt.block_on(async {
        'outer: loop {
            let mut link = match connect(&cfg, &mut neg, session).await {
                Ok((l, resumed)) => {
                    if let (Some(name), false) = (&a.session, resumed) {
                        eprintln!(
                            "armlet: tail: session {name:?} starts new (MQTT {}): alerts \
                             published before it existed or after it expired are not replayed",
                            l.protocol.as_str()
                        );
                    }
                    l
                }
                Err(e) => {
                    eprintln!("armlet: tail: {e:#}; reconnecting");
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue 'outer;
                }
            };
            backoff.reset();
            link.client.try_subscribe(&topic)?;
            loop {
                let left = deadline.map_or(Duration::from_secs(3600), |d| {
                    d.saturating_duration_since(Instant::now())
                });
                if left.is_zero() {
                    break 'outer;
                }
                match tokio::time::timeout(left, link.poll()).await {
                    Err(_) => break 'outer,
                    Ok(Err(e)) => {
                        eprintln!("armlet: tail: broker connection: {e}; reconnecting");
                        tokio::time::sleep(backoff.next_delay()).await;
                        continue 'outer;
                    }
                    Ok(Ok(Ev::Publish { topic, payload })) => {
                        batches += 1;
                        match wire::decode(&payload) {
                            Err(e) => {
                                eprintln!("armlet: tail: {topic}: undecodable batch: {e}")
                            }
                            Ok(d) => {
                                for n in &d.alerts {
                                    if let Some(line) = check.check(&d.node, d.lane, n.seq) {
                                        eprintln!("armlet: tail: {line}");
                                    }
                                    if a.json {
                                        println!("{}", wire::to_json(n, d.lane));
                                    } else {
                                        let al = &n.alert;
                                        println!(
                                            "{} {} #{} {} {} {} {} {}{}",
                                            al.updated_time,
                                            d.node,
                                            n.seq,
                                            al.policy_name,
                                            al.action,
                                            al.operation,
                                            al.resource,
                                            al.process_name,
                                            if n.count > 1 {
                                                format!(" (x{})", n.count)
                                            } else {
                                                String::new()
                                            }
                                        );
                                    }
                                    seen += 1;
                                    if a.max.is_some_and(|m| seen >= m) {
                                        break 'outer;
                                    }
                                }
                            }
                        }
                    }
                    Ok(Ok(_)) => {}
                }
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    eprintln!(
        "armlet: tail: {seen} alerts in {batches} batches, {} gaps, {} duplicates",
        check.gaps, check.duplicates
    );
    Ok(ExitCode::SUCCESS)
}

/// `armlet fleet status`.
pub fn status(a: &FleetStatusArgs) -> anyhow::Result<ExitCode> {
    let cfg = broker(&a.broker, client_id("fleet"))?;
    let topic = format!("armlet/v1/{}/+/status", a.broker.fleet);
    let wait: Duration = a.wait.into();
    let rt = runtime()?;
    let nodes = rt.block_on(async {
        let (mut link, _) =
            connect(&cfg, &mut Negotiator::new(cfg.protocol), SessionMode::CLEAN).await?;
        link.client.try_subscribe(&topic)?;
        let deadline = Instant::now() + wait;
        let mut nodes: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, link.poll()).await {
                Err(_) => break,
                Ok(Err(e)) => anyhow::bail!("broker connection: {e}"),
                Ok(Ok(Ev::Publish { topic, payload })) => {
                    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&payload) {
                        let node = v["node"].as_str().unwrap_or(&topic).to_string();
                        nodes.insert(node, v);
                    }
                }
                Ok(Ok(_)) => {}
            }
        }
        Ok::<_, anyhow::Error>(nodes)
    })?;
    for (node, v) in &nodes {
        if a.json {
            println!("{v}");
            continue;
        }
        let drops: u64 = v["drops"].as_object().map_or(0, |m| {
            m.values().filter_map(serde_json::Value::as_u64).sum()
        });
        println!(
            "{node} {} serial {} enforcer {} downgrades {} drops {drops} spool {} last-push {} \
             mqtt {}",
            v["state"].as_str().unwrap_or("?"),
            v["serial"],
            v["enforcer"].as_str().unwrap_or("?"),
            v["downgrades"],
            v["spool"]["alerts"],
            v["bundle"].as_str().unwrap_or("-"),
            v["mqtt"].as_str().unwrap_or("-"),
        );
    }
    if nodes.is_empty() {
        eprintln!(
            "armlet: fleet status: no node status within {}",
            humantime::format_duration(wait)
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_and_duplicates_are_reported() {
        let mut c = SeqCheck::default();
        assert!(c.check("n", Lane::Policy, 5).is_none());
        assert!(c.check("n", Lane::Policy, 6).is_none());
        assert!(
            c.check("n", Lane::Posture, 1).is_none(),
            "lanes are separate"
        );
        assert!(
            c.check("n", Lane::Policy, 9)
                .unwrap()
                .contains("7..8 missing")
        );
        assert!(
            c.check("n", Lane::Policy, 9)
                .unwrap()
                .starts_with("duplicate")
        );
        assert!(
            c.check("m", Lane::Policy, 1).is_none(),
            "nodes are separate"
        );
        assert_eq!((c.gaps, c.duplicates), (1, 1));
    }
}
