//! The agent side of the transport: two threads behind a bounded channel.
//!
//! Why two threads: the daemon's event loop must never wait on disk or network. It calls
//! [`Agent::submit`], a `try_send` into a bounded channel (full: the alert is dropped and
//! counted). The *pipeline* thread aggregates, budgets, batches (per lane, up to
//! [`BATCH_ALERTS`] alerts or [`BATCH_AGE`]) and appends to the spool. The *MQTT* thread (a
//! current-thread tokio runtime: rumqttc is tokio-only) connects with backoff and jitter,
//! publishes the retained status (with an offline will), sends spooled batches in order with at
//! most [`WINDOW`] unacknowledged, acknowledges them in the spool on PUBACK, and hands bundles
//! received on the bundle topics to the daemon through another bounded channel.
//! The spool is shared behind a mutex held only for one append or one read/ack.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::Digest as _;

use crate::alert::Alert;
use crate::transport::aggregate::{Aggregator, Limits, Out};
use crate::transport::link::{Ev, Link, Negotiator, PubOpts, Retry, SessionMode, Will};
use crate::transport::mqtt::{Backoff, BrokerConfig, Topics};
use crate::transport::spool::{Record, Spool, SpoolError, SpoolLimits};
use crate::transport::wire::Lane;

/// Alerts queued between the daemon and the pipeline thread.
pub const CHANNEL: usize = 4096;
/// Most alerts in one batch, and the longest an alert waits for its batch.
pub const BATCH_ALERTS: usize = 100;
pub const BATCH_AGE: Duration = Duration::from_millis(500);
/// Batches sent and not yet acknowledged.
pub const WINDOW: usize = 8;
/// Bundles received and not yet taken by the daemon.
const BUNDLE_QUEUE: usize = 4;

/// Everything `armlet run` configures for MQTT.
#[derive(Debug, Clone)]
pub struct Config {
    pub broker: BrokerConfig,
    pub fleet: String,
    pub node: String,
    pub group: Option<String>,
    pub spool_dir: PathBuf,
    pub spool: SpoolLimits,
    pub aggregate: Limits,
}

/// What the status message says (DESIGN §6), kept current by the daemon and the threads.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub serial: Option<u64>,
    pub enforcer: String,
    pub downgrades: usize,
    /// `applied <serial>` / `rejected <reason-code>` of the last pushed bundle.
    pub last_push: Option<String>,
    /// SHA-256 (hex) of the last pushed payload, so a pusher can find its own outcome.
    pub last_push_sha256: Option<String>,
}

#[derive(Debug, Default)]
struct Counters {
    channel_full: AtomicU64,
    bundles_dropped: AtomicU64,
    spool_errors: AtomicU64,
    over_budget: [AtomicU64; 2],
    merged: [AtomicU64; 2],
    sent_batches: AtomicU64,
    acked_alerts: AtomicU64,
    connects: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    spool: Mutex<Spool>,
    status: Mutex<Status>,
    status_version: AtomicU64,
    counters: Counters,
    stop: AtomicBool,
    online: AtomicBool,
    /// The MQTT version of the current (or last) connection: 0 none yet, 4 = 3.1.1, 5.
    protocol: std::sync::atomic::AtomicU8,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking holder cannot leave these structures half-updated in a way that matters more
    // than losing the transport; keep going with the data as it is.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Shared {
    fn status_json(&self, online: bool, fleet: &str, node: &str) -> Vec<u8> {
        let s = lock(&self.status).clone();
        let (depth, bytes, dropped, next_seq, recovery) = {
            let sp = lock(&self.spool);
            (
                sp.depth(),
                sp.bytes(),
                sp.dropped,
                sp.next_seq(),
                sp.recovery,
            )
        };
        let c = &self.counters;
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "state": if online { "online" } else { "offline" },
            "fleet": fleet,
            "node": node,
            "time": unix_now(),
            "agent": env!("CARGO_PKG_VERSION"),
            "mqtt": match self.protocol.load(Ordering::Relaxed) {
                5 => Some("5"),
                4 => Some("3.1.1"),
                _ => None,
            },
            "serial": s.serial,
            "enforcer": s.enforcer,
            "downgrades": s.downgrades,
            "bundle": s.last_push,
            "bundle_sha256": s.last_push_sha256,
            "drops": {
                "channel_full": ld(&c.channel_full),
                "budget_policy": ld(&c.over_budget[0]),
                "budget_posture": ld(&c.over_budget[1]),
                "spool_full_policy": dropped[0],
                "spool_full_posture": dropped[1],
                "spool_errors": ld(&c.spool_errors),
                "bundles": ld(&c.bundles_dropped),
            },
            "aggregated": [ld(&c.merged[0]), ld(&c.merged[1])],
            "spool": {
                "alerts": depth[0] + depth[1],
                "policy": depth[0],
                "posture": depth[1],
                "bytes": bytes,
                "recovered_cut_bytes": recovery.cut_bytes,
            },
            "next_seq": { "policy": next_seq[0], "posture": next_seq[1] },
        })
        .to_string()
        .into_bytes()
    }

    fn bump_status(&self) {
        self.status_version.fetch_add(1, Ordering::SeqCst);
    }
}

/// The running transport; dropping it stops both threads (flushing pending aggregates to the
/// spool and publishing an offline status when connected).
#[derive(Debug)]
pub struct Agent {
    tx: Option<SyncSender<Alert>>,
    bundles: Receiver<Vec<u8>>,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Agent {
    /// Open the spool (recovering it) and start the threads.
    pub fn start(cfg: Config, status: Status) -> Result<Agent, SpoolError> {
        let spool = Spool::open(&cfg.spool_dir, &cfg.node, cfg.spool)?;
        if spool.recovery.cut_bytes > 0 {
            eprintln!(
                "armlet: mqtt: spool recovery cut a torn tail of {} bytes ({} records kept)",
                spool.recovery.cut_bytes, spool.recovery.records
            );
        }
        let shared = Arc::new(Shared {
            spool: Mutex::new(spool),
            status: Mutex::new(status),
            status_version: AtomicU64::new(1),
            counters: Counters::default(),
            stop: AtomicBool::new(false),
            online: AtomicBool::new(false),
            protocol: std::sync::atomic::AtomicU8::new(0),
        });
        let (tx, rx) = mpsc::sync_channel(CHANNEL);
        let (btx, brx) = mpsc::sync_channel(BUNDLE_QUEUE);
        let mut threads = Vec::new();
        let s = Arc::clone(&shared);
        let limits = cfg.aggregate;
        threads.push(
            std::thread::Builder::new()
                .name("armlet-pipeline".into())
                .spawn(move || pipeline(&s, &rx, limits))
                .map_err(|e| SpoolError::Io {
                    path: PathBuf::from("<thread>"),
                    source: e,
                })?,
        );
        let s = Arc::clone(&shared);
        threads.push(
            std::thread::Builder::new()
                .name("armlet-mqtt".into())
                .spawn(move || mqtt_thread(&s, &cfg, &btx))
                .map_err(|e| SpoolError::Io {
                    path: PathBuf::from("<thread>"),
                    source: e,
                })?,
        );
        Ok(Agent {
            tx: Some(tx),
            bundles: brx,
            shared,
            threads,
        })
    }

    /// Queue one alert; never blocks (a full queue drops it, counted in status).
    pub fn submit(&self, alert: &Alert) {
        if let Some(tx) = &self.tx
            && let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
                tx.try_send(alert.clone())
        {
            self.shared
                .counters
                .channel_full
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A bundle received on a bundle topic, if any (never blocks).
    pub fn next_bundle(&self) -> Option<Vec<u8>> {
        self.bundles.try_recv().ok()
    }

    /// Record a push outcome and the policy now in force; the status is republished.
    pub fn report_push(&self, payload: &[u8], outcome: String, now_in_force: Option<(u64, usize)>) {
        {
            let mut s = lock(&self.shared.status);
            s.last_push = Some(outcome);
            s.last_push_sha256 = Some(sha256_hex(payload));
            if let Some((serial, downgrades)) = now_in_force {
                s.serial = Some(serial);
                s.downgrades = downgrades;
            }
        }
        self.shared.bump_status();
    }

    /// The policy in force changed outside a push (SIGHUP reload).
    pub fn policy_changed(&self, serial: Option<u64>, downgrades: usize) {
        {
            let mut s = lock(&self.shared.status);
            s.serial = serial;
            s.downgrades = downgrades;
        }
        self.shared.bump_status();
    }

    /// One line for the daemon's stop message.
    pub fn counters_line(&self) -> String {
        let c = &self.shared.counters;
        let depth = lock(&self.shared.spool).depth();
        format!(
            "mqtt: {} connections, {} batches sent, {} alerts acknowledged, {} spooled \
             unacknowledged, {} dropped (queue full), {} over budget",
            c.connects.load(Ordering::Relaxed),
            c.sent_batches.load(Ordering::Relaxed),
            c.acked_alerts.load(Ordering::Relaxed),
            depth[0] + depth[1],
            c.channel_full.load(Ordering::Relaxed),
            c.over_budget[0].load(Ordering::Relaxed) + c.over_budget[1].load(Ordering::Relaxed),
        )
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Closing the channel lets the pipeline flush and end; then the MQTT thread stops.
        self.tx = None;
        if let Some(p) = (!self.threads.is_empty()).then(|| self.threads.remove(0)) {
            let _ = p.join();
        }
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    armlet_bundle::encode_hex(&sha2::Sha256::digest(bytes))
}

/// The pipeline thread: aggregate → batch per lane → spool.
fn pipeline(shared: &Shared, rx: &Receiver<Alert>, limits: Limits) {
    let mut agg = Aggregator::new(limits);
    let mut pending: [Vec<Out>; 2] = [Vec::new(), Vec::new()];
    let mut since: [Option<Instant>; 2] = [None, None];
    let mut out = Vec::new();
    let mut closed = false;
    while !closed {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(alert) => agg.push(alert, unix_now(), &mut out),
            Err(RecvTimeoutError::Timeout) => agg.expire(unix_now(), &mut out),
            Err(RecvTimeoutError::Disconnected) => {
                agg.flush(unix_now(), &mut out);
                closed = true;
            }
        }
        for o in out.drain(..) {
            let i = o.lane.index();
            since[i].get_or_insert_with(Instant::now);
            pending[i].push(o);
        }
        for lane in [Lane::Policy, Lane::Posture] {
            let i = lane.index();
            let due = pending[i].len() >= BATCH_ALERTS
                || since[i].is_some_and(|t| t.elapsed() >= BATCH_AGE)
                || closed;
            if due && !pending[i].is_empty() {
                let batch = std::mem::take(&mut pending[i]);
                since[i] = None;
                if let Err(e) = lock(&shared.spool).append(lane, batch) {
                    shared.counters.spool_errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!("armlet: mqtt: spool append failed: {e}");
                }
                shared.bump_status();
            }
        }
        let c = &shared.counters;
        for i in 0..2 {
            c.over_budget[i].store(agg.counters.over_budget[i], Ordering::Relaxed);
            c.merged[i].store(agg.counters.merged[i], Ordering::Relaxed);
        }
    }
}

enum Tag {
    Alerts(Record),
    Other,
}

fn mqtt_thread(shared: &Shared, cfg: &Config, bundles: &SyncSender<Vec<u8>>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("armlet: mqtt: cannot start the runtime: {e}");
            return;
        }
    };
    rt.block_on(mqtt_loop(shared, cfg, bundles));
}

/// The alerts topic's alias in MQTT 5 (the first batch of a connection sets it).
const ALERTS_ALIAS: u16 = 1;

async fn mqtt_loop(shared: &Shared, cfg: &Config, bundles: &SyncSender<Vec<u8>>) {
    let topics = Topics {
        fleet: cfg.fleet.clone(),
        node: cfg.node.clone(),
    };
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut negotiator = Negotiator::new(cfg.broker.protocol);
    let mut last_error = String::new();
    while !shared.stop.load(Ordering::SeqCst) {
        let protocol = negotiator.protocol();
        let will = Will {
            topic: topics.status(),
            payload: shared.status_json(false, &cfg.fleet, &cfg.node),
        };
        let mut link = match Link::new(&cfg.broker, protocol, SessionMode::CLEAN, Some(will), 64) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("armlet: mqtt: {e}; not connecting");
                return;
            }
        };
        let client = link.client.clone();
        let mut order: VecDeque<Tag> = VecDeque::new();
        let mut inflight: VecDeque<(u16, Option<Record>, bool)> = VecDeque::new();
        let mut connected = false;
        // MQTT 5 with a broker that allows topic aliases: Some(alias set on this connection).
        let mut alias: Option<bool> = None;
        let mut published_status = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let result: Result<(), crate::transport::link::LinkError> = loop {
            tokio::select! {
                ev = link.poll() => match ev {
                    Ok(Ev::ConnAck { topic_alias_max, .. }) => {
                        connected = true;
                        backoff.reset();
                        if let Some(note) = negotiator.connected() {
                            eprintln!("armlet: mqtt: {note}");
                        }
                        shared.protocol.store(
                            if protocol == crate::transport::link::Protocol::V5 { 5 } else { 4 },
                            Ordering::Relaxed,
                        );
                        shared.online.store(true, Ordering::SeqCst);
                        shared.counters.connects.fetch_add(1, Ordering::Relaxed);
                        eprintln!(
                            "armlet: mqtt: connected to {}:{} (MQTT {})",
                            cfg.broker.host,
                            cfg.broker.port,
                            protocol.as_str()
                        );
                        last_error.clear();
                        alias = (topic_alias_max >= ALERTS_ALIAS).then_some(false);
                        let mut subs = vec![topics.bundle()];
                        if let Some(g) = &cfg.group {
                            subs.push(Topics::group_bundle(&cfg.fleet, g));
                        }
                        for t in subs {
                            if let Err(e) = client.try_subscribe(&t) {
                                break_err(&mut last_error, e.to_string());
                            }
                        }
                        published_status = 0;
                    }
                    Ok(Ev::Publish { payload, .. }) => {
                        if bundles.try_send(payload.to_vec()).is_err() {
                            shared.counters.bundles_dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(Ev::SentPublish(pkid)) => {
                        if let Some(tag) = order.pop_front() {
                            match tag {
                                Tag::Alerts(r) => inflight.push_back((pkid, Some(r), false)),
                                Tag::Other => inflight.push_back((pkid, None, false)),
                            }
                        }
                    }
                    Ok(Ev::PubAck(pkid)) => {
                        if let Some(e) = inflight.iter_mut().find(|e| e.0 == pkid && !e.2) {
                            e.2 = true;
                        }
                        // Acknowledge in the spool in send order only.
                        while inflight.front().is_some_and(|e| e.2) {
                            if let Some((_, Some(r), _)) = inflight.pop_front() {
                                let res = lock(&shared.spool).ack(&r);
                                match res {
                                    Ok(()) => {
                                        shared.counters.acked_alerts.fetch_add(u64::from(r.alerts), Ordering::Relaxed);
                                        shared.bump_status();
                                    }
                                    Err(e) => {
                                        shared.counters.spool_errors.fetch_add(1, Ordering::Relaxed);
                                        eprintln!("armlet: mqtt: spool ack failed: {e}");
                                    }
                                }
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => break Err(e),
                },
                _ = tick.tick() => {
                    if shared.stop.load(Ordering::SeqCst) {
                        if connected {
                            let _ = client.try_publish(
                                &topics.status(),
                                true,
                                shared.status_json(false, &cfg.fleet, &cfg.node),
                                PubOpts::default(),
                            );
                            let _ = client.try_disconnect();
                            // Let the event loop write both packets.
                            let deadline = Instant::now() + Duration::from_secs(2);
                            while Instant::now() < deadline {
                                match tokio::time::timeout(Duration::from_millis(200), link.poll()).await {
                                    Ok(Ok(Ev::SentDisconnect)) | Ok(Err(_)) => break,
                                    _ => {}
                                }
                            }
                        }
                        break Ok(());
                    }
                    if !connected {
                        continue;
                    }
                    let version = shared.status_version.load(Ordering::SeqCst);
                    if version != published_status {
                        published_status = version;
                        let body = shared.status_json(true, &cfg.fleet, &cfg.node);
                        if client.try_publish(&topics.status(), true, body, PubOpts::default()).is_ok() {
                            order.push_back(Tag::Other);
                        }
                    }
                    let unacked = inflight.iter().filter(|e| e.1.is_some()).count()
                        + order.iter().filter(|t| matches!(t, Tag::Alerts(_))).count();
                    for _ in unacked..WINDOW {
                        let next = lock(&shared.spool).next_unsent();
                        match next {
                            Ok(Some(r)) => {
                                let body = r.batch.clone();
                                // MQTT 5: the first batch names the topic and sets the alias,
                                // the later ones carry only the alias.
                                let (topic, opts) = match alias {
                                    None => (topics.alerts(), PubOpts::default()),
                                    Some(set) => (
                                        if set { String::new() } else { topics.alerts() },
                                        PubOpts { alias: Some(ALERTS_ALIAS), expiry: None },
                                    ),
                                };
                                if client.try_publish(&topic, false, body, opts).is_ok() {
                                    if alias.is_some() {
                                        alias = Some(true);
                                    }
                                    shared.counters.sent_batches.fetch_add(1, Ordering::Relaxed);
                                    order.push_back(Tag::Alerts(r));
                                } else {
                                    lock(&shared.spool).rewind();
                                    break;
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                shared.counters.spool_errors.fetch_add(1, Ordering::Relaxed);
                                eprintln!("armlet: mqtt: spool read failed: {e}");
                                break;
                            }
                        }
                    }
                }
            }
        };
        shared.online.store(false, Ordering::SeqCst);
        // Whatever was sent and not acknowledged goes again, in order, on the next connection.
        lock(&shared.spool).rewind();
        let e = match result {
            Ok(()) => return,
            Err(e) => e,
        };
        let retry = if connected {
            Retry::Backoff
        } else {
            negotiator.failed_before_connack(&e)
        };
        let text = format!("MQTT {}: {e}", protocol.as_str());
        if text != last_error {
            eprintln!(
                "armlet: mqtt: connection to {}:{} failed: {text}; {}",
                cfg.broker.host,
                cfg.broker.port,
                match retry {
                    Retry::Now => "trying MQTT 3.1.1 at once",
                    Retry::Backoff => "retrying with backoff",
                }
            );
            last_error = text;
        }
        if retry == Retry::Now {
            continue;
        }
        let delay = backoff.next_delay();
        let deadline = Instant::now() + delay;
        while Instant::now() < deadline && !shared.stop.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn break_err(last: &mut String, e: String) {
    eprintln!("armlet: mqtt: {e}");
    *last = e;
}
