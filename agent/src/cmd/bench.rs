//! `armlet bench mqtt`: figures for the alert transport, on one core, with no broker (every
//! alert stays in the spool, as when the link is down).
//!
//! Prints: bytes per alert on the wire for batches of 1, 10 and 100 against KubeArmor's JSON
//! line of the same alerts; alerts per second through aggregate → encode → spool (every alert
//! distinct, so nothing is merged: the worst case; budgets off); the mean spool append time per
//! batch; the spool recovery (open and scan) time; and the process RSS after the run, which
//! stays bounded because the spool is bounded on disk and nothing is kept in memory.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;

use crate::alert::Alert;
use crate::cli::BenchMqttArgs;
use crate::transport::aggregate::{Aggregator, Limits};
use crate::transport::link::{Protocol, publish_packet_len};
use crate::transport::spool::{Spool, SpoolLimits};
use crate::transport::wire::{self, Lane, Numbered};

fn alert(i: u64) -> Alert {
    let posture = i % 5 == 4;
    Alert {
        timestamp: 1_764_000_000 + i64::try_from(i / 1000).unwrap_or(0),
        updated_time: "2025-11-24T16:00:00.123456Z".into(),
        host_name: "edge-node-17".into(),
        host_ppid: 812,
        host_pid: 4000 + u32::try_from(i % 30_000).unwrap_or(0),
        ppid: 812,
        pid: 4000 + u32::try_from(i % 30_000).unwrap_or(0),
        uid: 0,
        parent_process_name: "/usr/bin/bash".into(),
        process_name: "/usr/bin/cat".into(),
        policy_name: if posture {
            armlet_policy::ir::DEFAULT_POSTURE.into()
        } else {
            "block-secrets".into()
        },
        severity: if posture { String::new() } else { "5".into() },
        tags: if posture {
            String::new()
        } else {
            "MITRE,T1552".into()
        },
        atags: if posture {
            Vec::new()
        } else {
            vec!["MITRE".into(), "T1552".into()]
        },
        message: if posture {
            String::new()
        } else {
            "credentials read".into()
        },
        alert_type: "MatchedHostPolicy".into(),
        source: "/usr/bin/cat".into(),
        operation: "File".into(),
        resource: format!("/etc/secret/app/key-{i}"),
        data: "syscall=SYS_OPENAT".into(),
        enforcer: "eBPF Monitor".into(),
        action: "Audit (Block)".into(),
        result: "Passed".into(),
        ..Alert::default()
    }
}

fn rss_kib() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub fn mqtt(a: &BenchMqttArgs) -> anyhow::Result<ExitCode> {
    println!("bytes per alert (wire batch vs KubeArmor JSON line):");
    for n in [1u64, 10, 100] {
        let alerts: Vec<Numbered> = (0..n)
            .map(|i| Numbered {
                seq: 1000 + i,
                count: 1,
                last_timestamp: 0,
                alert: alert(i * 5),
            })
            .collect();
        let wire_len = wire::encode("edge-node-17", Lane::Policy, &alerts).len();
        let json_len: usize = alerts
            .iter()
            .map(|x| serde_json::to_string(&x.alert).map_or(0, |s| s.len() + 1))
            .sum();
        let per = wire_len as f64 / n as f64;
        let jper = json_len as f64 / n as f64;
        // The whole PUBLISH packet (topic, packet id, properties) of a batch after the first
        // of a connection: MQTT 5 carries the topic alias, 3.1.1 the topic.
        let batch = wire::encode("edge-node-17", Lane::Policy, &alerts);
        let topic = "armlet/v1/default/edge-node-17/alerts";
        let packet =
            |p, alias| publish_packet_len(p, topic, alias, false, &batch) as f64 / n as f64;
        println!(
            "  batch of {n:>3}: {per:7.1} B/alert wire, {jper:7.1} B/alert JSON ({:.1}x smaller); \
             as PUBLISH packets {:7.1} B/alert MQTT 5 (topic alias), {:7.1} B/alert 3.1.1",
            jper / per,
            packet(Protocol::V5, Some(1)),
            packet(Protocol::V311, None),
        );
    }

    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile_dir()?;
            tmp.clone()
        }
    };
    let limits = SpoolLimits {
        sync: a.sync,
        ..SpoolLimits::default()
    };
    let mut spool = Spool::open(&dir, "edge-node-17", limits).context("opening the spool")?;
    let mut agg = Aggregator::new(Limits {
        per_sec: [0, 0],
        ..Limits::default()
    });
    let mut out = Vec::new();
    let mut pending: [Vec<_>; 2] = [Vec::new(), Vec::new()];
    let mut append_ns: u128 = 0;
    let mut appends = 0u64;
    let start = Instant::now();
    for i in 0..a.alerts {
        agg.push(alert(i), 1_764_000_000 + i / 10_000, &mut out);
        for o in out.drain(..) {
            let l = o.lane.index();
            pending[l].push(o);
            if pending[l].len() >= crate::transport::agent::BATCH_ALERTS {
                let batch = std::mem::take(&mut pending[l]);
                let t = Instant::now();
                spool.append(if l == 0 { Lane::Policy } else { Lane::Posture }, batch)?;
                append_ns += t.elapsed().as_nanos();
                appends += 1;
            }
        }
    }
    agg.flush(u64::MAX / 2, &mut out);
    let secs = start.elapsed().as_secs_f64();
    let (rss, hwm) = rss_kib();
    println!(
        "pipeline: {} alerts in {secs:.2} s = {:.0} alerts/s (aggregate -> encode -> spool, one \
         core, fdatasync {})",
        a.alerts,
        a.alerts as f64 / secs,
        if a.sync { "on" } else { "off" }
    );
    println!(
        "spool append: {appends} batches, mean {:.1} us per batch of {}",
        append_ns as f64 / appends.max(1) as f64 / 1000.0,
        crate::transport::agent::BATCH_ALERTS
    );
    let depth = spool.depth();
    println!(
        "spool: {} bytes on disk (limit {}), {} alerts queued, {} dropped when full (policy {}, \
         posture {})",
        spool.bytes(),
        limits.max_bytes,
        depth[0] + depth[1],
        spool.dropped[0] + spool.dropped[1],
        spool.dropped[0],
        spool.dropped[1]
    );
    drop(spool);
    let t = Instant::now();
    let spool = Spool::open(&dir, "edge-node-17", limits)?;
    println!(
        "spool recovery: {:.1} ms for {} records ({} bytes)",
        t.elapsed().as_secs_f64() * 1000.0,
        spool.recovery.records,
        spool.bytes()
    );
    println!(
        "RSS after {} alerts with the broker down: {rss} KiB (peak {hwm} KiB)",
        a.alerts
    );
    drop(spool);
    if a.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(ExitCode::SUCCESS)
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("armlet-bench-mqtt-{}", std::process::id()));
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    Ok(d)
}
