//! The alert wire form: compact, self-contained postcard batches.
//!
//! Why this shape (DESIGN §6): edge links are metered, and KubeArmor's JSON repeats every field
//! name and every path in every alert. A batch carries a schema version byte, the node name,
//! the priority lane and a string dictionary built from *this batch only*, then the alerts with
//! every string replaced by a dictionary index (a one-byte varint for the first 128 strings).
//! Because the dictionary travels with the batch, any batch decodes on its own: after a
//! reconnect, after a dropped batch, or read from the spool after a restart. `UpdatedTime` is
//! carried as microseconds since the epoch (and re-formatted on decode) whenever it is the
//! RFC 3339 form of a time, which is what [`crate::alert::AlertBuilder`] writes.
//!
//! Every alert has a sequence number, strictly increasing per node and lane, assigned once
//! when the alert is spooled: a receiver detects loss (a gap) and re-delivery (a number seen
//! before). Aggregated repeats carry a count and the time of the last repeat.
//!
//! Layout: `[SCHEMA_VERSION] ++ postcard(Batch)`.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::alert::Alert;

/// The first byte of every batch. Bump on any incompatible change of [`Batch`].
pub const SCHEMA_VERSION: u8 = 1;
/// Largest batch a receiver accepts (bytes), and the most alerts and strings in one.
pub const MAX_BATCH_BYTES: usize = 1 << 20;
pub const MAX_BATCH_ALERTS: usize = 10_000;

/// Why a batch does not decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("empty batch")]
    Empty,
    #[error("batch schema version {0}, this build reads version {SCHEMA_VERSION}")]
    Version(u8),
    #[error("batch of {0} bytes is above the limit of {MAX_BATCH_BYTES}")]
    TooLarge(usize),
    #[error("batch does not decode: {0}")]
    Decode(String),
    #[error("string index {0} is outside the batch dictionary of {1} strings")]
    BadIndex(u32, usize),
    #[error("batch of {0} alerts is above the limit of {MAX_BATCH_ALERTS}")]
    TooMany(usize),
}

/// Priority lanes: policy matches and default-posture noise are budgeted, spooled and numbered
/// separately, so the noise can never starve (or be mistaken for a gap in) the matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Lane {
    /// A rule of a policy matched.
    Policy,
    /// The default posture decided (no rule matched).
    Posture,
}

impl Lane {
    /// The lane of an alert.
    pub fn of(alert: &Alert) -> Lane {
        if alert.policy_name == armlet_policy::ir::DEFAULT_POSTURE {
            Lane::Posture
        } else {
            Lane::Policy
        }
    }

    pub fn index(self) -> usize {
        match self {
            Lane::Policy => 0,
            Lane::Posture => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Policy => "policy",
            Lane::Posture => "posture",
        }
    }
}

/// An alert ready for the wire: the KubeArmor alert plus what the transport adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numbered {
    pub seq: u64,
    /// How many identical alerts this one stands for (1: not aggregated).
    pub count: u32,
    /// `Timestamp` of the last of the `count` alerts (equal to the alert's own when count is 1).
    pub last_timestamp: i64,
    pub alert: Alert,
}

/// `UpdatedTime` as microseconds when it round-trips, otherwise the text itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Updated {
    Micros(i64),
    Text(u32),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct WireAlert {
    seq: u64,
    count: u32,
    timestamp: i64,
    /// `last_timestamp - timestamp`.
    span: i64,
    updated: Updated,
    host_ppid: u32,
    host_pid: u32,
    ppid: u32,
    pid: u32,
    uid: u32,
    /// Dictionary indexes, in [`STRING_FIELDS`] order.
    strings: [u32; STRING_FIELDS],
    atags: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Batch {
    node: String,
    lane: Lane,
    dict: Vec<String>,
    alerts: Vec<WireAlert>,
}

/// A decoded batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub node: String,
    pub lane: Lane,
    pub alerts: Vec<Numbered>,
}

const STRING_FIELDS: usize = 21;

fn string_fields(a: &Alert) -> [&str; STRING_FIELDS] {
    [
        &a.cluster_name,
        &a.host_name,
        &a.namespace_name,
        &a.pod_name,
        &a.labels,
        &a.container_id,
        &a.container_name,
        &a.container_image,
        &a.parent_process_name,
        &a.process_name,
        &a.policy_name,
        &a.severity,
        &a.tags,
        &a.message,
        &a.alert_type,
        &a.source,
        &a.operation,
        &a.resource,
        &a.data,
        &a.enforcer,
        &a.action,
    ]
}

fn set_string_fields(a: &mut Alert, v: [String; STRING_FIELDS]) {
    let [
        cluster_name,
        host_name,
        namespace_name,
        pod_name,
        labels,
        container_id,
        container_name,
        container_image,
        parent_process_name,
        process_name,
        policy_name,
        severity,
        tags,
        message,
        alert_type,
        source,
        operation,
        resource,
        data,
        enforcer,
        action,
    ] = v;
    a.cluster_name = cluster_name;
    a.host_name = host_name;
    a.namespace_name = namespace_name;
    a.pod_name = pod_name;
    a.labels = labels;
    a.container_id = container_id;
    a.container_name = container_name;
    a.container_image = container_image;
    a.parent_process_name = parent_process_name;
    a.process_name = process_name;
    a.policy_name = policy_name;
    a.severity = severity;
    a.tags = tags;
    a.message = message;
    a.alert_type = alert_type;
    a.source = source;
    a.operation = operation;
    a.resource = resource;
    a.data = data;
    a.enforcer = enforcer;
    a.action = action;
}

/// `UpdatedTime` → microseconds since the epoch, when formatting them gives the same text.
fn micros_of(text: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339(text).ok()?;
    let micros = i64::try_from(t.duration_since(UNIX_EPOCH).ok()?.as_micros()).ok()?;
    (format_micros(micros)? == text).then_some(micros)
}

fn format_micros(micros: i64) -> Option<String> {
    let d = Duration::from_micros(u64::try_from(micros).ok()?);
    Some(humantime::format_rfc3339_micros(UNIX_EPOCH + d).to_string())
}

/// Builds the dictionary of one batch.
#[derive(Debug, Default)]
struct Interner {
    index: HashMap<String, u32>,
    dict: Vec<String>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = u32::try_from(self.dict.len()).unwrap_or(u32::MAX);
        self.index.insert(s.to_owned(), i);
        self.dict.push(s.to_owned());
        i
    }
}

/// Encode one batch. `alerts` should all belong to `lane` (the caller batches per lane).
pub fn encode(node: &str, lane: Lane, alerts: &[Numbered]) -> Vec<u8> {
    let mut interner = Interner::default();
    let wire: Vec<WireAlert> = alerts
        .iter()
        .map(|n| {
            let a = &n.alert;
            let fields = string_fields(a);
            let mut strings = [0u32; STRING_FIELDS];
            for (slot, s) in strings.iter_mut().zip(fields) {
                *slot = interner.intern(s);
            }
            let updated = match micros_of(&a.updated_time) {
                Some(m) => Updated::Micros(m),
                None => Updated::Text(interner.intern(&a.updated_time)),
            };
            // `Result` travels as the first atags entry (it is never absent).
            let mut atags = Vec::with_capacity(a.atags.len() + 1);
            atags.push(interner.intern(&a.result));
            atags.extend(a.atags.iter().map(|t| interner.intern(t)));
            WireAlert {
                seq: n.seq,
                count: n.count,
                timestamp: a.timestamp,
                span: n.last_timestamp.saturating_sub(a.timestamp),
                updated,
                host_ppid: a.host_ppid,
                host_pid: a.host_pid,
                ppid: a.ppid,
                pid: a.pid,
                uid: a.uid,
                strings,
                atags,
            }
        })
        .collect();
    let batch = Batch {
        node: node.to_owned(),
        lane,
        dict: interner.dict,
        alerts: wire,
    };
    let mut out = vec![SCHEMA_VERSION];
    // Serialising owned strings and integers into a Vec cannot fail; an empty body would be
    // refused by the decoder rather than misread.
    if let Ok(body) = postcard::to_allocvec(&batch) {
        out.extend_from_slice(&body);
    }
    out
}

/// Decode one batch (checks the version, the size and every dictionary index).
pub fn decode(bytes: &[u8]) -> Result<Decoded, WireError> {
    let (&version, body) = bytes.split_first().ok_or(WireError::Empty)?;
    if version != SCHEMA_VERSION {
        return Err(WireError::Version(version));
    }
    if bytes.len() > MAX_BATCH_BYTES {
        return Err(WireError::TooLarge(bytes.len()));
    }
    let batch: Batch = postcard::from_bytes(body).map_err(|e| WireError::Decode(e.to_string()))?;
    if batch.alerts.len() > MAX_BATCH_ALERTS {
        return Err(WireError::TooMany(batch.alerts.len()));
    }
    let dict = &batch.dict;
    let get = |i: u32| -> Result<String, WireError> {
        usize::try_from(i)
            .ok()
            .and_then(|i| dict.get(i))
            .cloned()
            .ok_or(WireError::BadIndex(i, dict.len()))
    };
    let mut alerts = Vec::with_capacity(batch.alerts.len());
    for w in batch.alerts {
        let mut strings: [String; STRING_FIELDS] = Default::default();
        for (slot, &i) in strings.iter_mut().zip(w.strings.iter()) {
            *slot = get(i)?;
        }
        let (result, atags) = match w.atags.split_first() {
            Some((&r, rest)) => (
                get(r)?,
                rest.iter().map(|&i| get(i)).collect::<Result<_, _>>()?,
            ),
            None => (String::new(), Vec::new()),
        };
        let updated_time = match w.updated {
            Updated::Micros(m) => format_micros(m).unwrap_or_default(),
            Updated::Text(i) => get(i)?,
        };
        let mut alert = Alert {
            timestamp: w.timestamp,
            updated_time,
            host_ppid: w.host_ppid,
            host_pid: w.host_pid,
            ppid: w.ppid,
            pid: w.pid,
            uid: w.uid,
            atags,
            result,
            ..Alert::default()
        };
        set_string_fields(&mut alert, strings);
        alerts.push(Numbered {
            seq: w.seq,
            count: w.count,
            last_timestamp: w.timestamp.saturating_add(w.span),
            alert,
        });
    }
    Ok(Decoded {
        node: batch.node,
        lane: batch.lane,
        alerts,
    })
}

/// The KubeArmor JSON line of a decoded alert, with the transport's fields added at the end:
/// `Seq`, `Lane`, and for aggregated repeats `Count` and `LastTimestamp` ("N similar until T").
pub fn to_json(n: &Numbered, lane: Lane) -> String {
    let mut v = serde_json::to_value(&n.alert).unwrap_or(serde_json::Value::Null);
    if let Some(map) = v.as_object_mut() {
        map.insert("Seq".into(), n.seq.into());
        map.insert("Lane".into(), lane.as_str().into());
        if n.count > 1 {
            map.insert("Count".into(), n.count.into());
            map.insert("LastTimestamp".into(), n.last_timestamp.into());
        }
    }
    v.to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample(i: u32) -> Alert {
        Alert {
            timestamp: 1_764_000_000 + i64::from(i),
            updated_time: format_micros(1_764_000_000_123_456 + i64::from(i) * 1_000_000).unwrap(),
            host_name: "edge-node-17".into(),
            host_ppid: 100,
            host_pid: 1000 + i,
            ppid: 100,
            pid: 1000 + i,
            uid: 0,
            parent_process_name: "/usr/bin/bash".into(),
            process_name: "/usr/bin/cat".into(),
            policy_name: "block-secrets".into(),
            severity: "5".into(),
            tags: "MITRE,T1552".into(),
            atags: vec!["MITRE".into(), "T1552".into()],
            message: "secret read".into(),
            alert_type: "MatchedHostPolicy".into(),
            source: "/usr/bin/cat".into(),
            operation: "File".into(),
            resource: format!("/etc/secret/key{}", i % 5),
            data: "syscall=SYS_OPENAT".into(),
            enforcer: "eBPF Monitor".into(),
            action: "Audit (Block)".into(),
            result: "Passed".into(),
            ..Alert::default()
        }
    }

    fn numbered(n: u32) -> Vec<Numbered> {
        (0..n)
            .map(|i| Numbered {
                seq: u64::from(i) + 7,
                count: 1 + i % 3,
                last_timestamp: 1_764_000_000 + i64::from(i) + i64::from(i % 3),
                alert: sample(i),
            })
            .collect()
    }

    #[test]
    fn round_trip_is_exact() {
        for n in [0, 1, 10, 100] {
            let alerts = numbered(n);
            let bytes = encode("edge-node-17", Lane::Policy, &alerts);
            assert_eq!(bytes[0], SCHEMA_VERSION);
            let d = decode(&bytes).unwrap();
            assert_eq!(d.node, "edge-node-17");
            assert_eq!(d.lane, Lane::Policy);
            assert_eq!(d.alerts, alerts);
        }
    }

    #[test]
    fn odd_updated_time_travels_as_text() {
        let mut a = sample(0);
        a.updated_time = "not a time".into();
        a.atags.clear();
        a.cluster_name = "c1".into();
        let n = vec![Numbered {
            seq: 1,
            count: 1,
            last_timestamp: a.timestamp,
            alert: a,
        }];
        assert_eq!(decode(&encode("n", Lane::Posture, &n)).unwrap().alerts, n);
    }

    #[test]
    fn bad_batches_are_refused_precisely() {
        assert_eq!(decode(&[]), Err(WireError::Empty));
        assert_eq!(decode(&[9, 1, 2]), Err(WireError::Version(9)));
        assert!(matches!(
            decode(&[SCHEMA_VERSION, 0xff]),
            Err(WireError::Decode(_))
        ));
        let mut bytes = encode("n", Lane::Policy, &numbered(3));
        // Corrupt every byte in turn: never a panic, and a change is never silently accepted
        // as the same batch.
        let good = decode(&bytes).unwrap();
        for i in 1..bytes.len() {
            let old = bytes[i];
            bytes[i] ^= 0x5a;
            if let Ok(d) = decode(&bytes) {
                assert_ne!(d, good, "byte {i}");
            }
            bytes[i] = old;
        }
        // A dictionary index out of range.
        let batch = Batch {
            node: "n".into(),
            lane: Lane::Policy,
            dict: vec![],
            alerts: vec![WireAlert {
                seq: 1,
                count: 1,
                timestamp: 0,
                span: 0,
                updated: Updated::Micros(0),
                host_ppid: 0,
                host_pid: 0,
                ppid: 0,
                pid: 0,
                uid: 0,
                strings: [0; STRING_FIELDS],
                atags: vec![],
            }],
        };
        let mut raw = vec![SCHEMA_VERSION];
        raw.extend(postcard::to_allocvec(&batch).unwrap());
        assert_eq!(decode(&raw), Err(WireError::BadIndex(0, 0)));
    }

    /// Bytes per alert, batched, against KubeArmor's JSON line of the same alerts. The exact
    /// figures are printed by `armlet bench mqtt`; this test holds the floor.
    #[test]
    fn batches_are_much_smaller_than_json() {
        for (n, factor) in [(1usize, 1.5f64), (10, 4.0), (100, 6.0)] {
            let alerts = numbered(u32::try_from(n).unwrap());
            let wire = encode("edge-node-17", Lane::Policy, &alerts).len();
            let json: usize = alerts
                .iter()
                .map(|a| serde_json::to_string(&a.alert).unwrap().len() + 1)
                .sum();
            assert!(
                (json as f64) / (wire as f64) >= factor,
                "batch of {n}: {wire} wire bytes vs {json} JSON bytes"
            );
        }
    }

    #[test]
    fn json_form_adds_transport_fields() {
        let n = &numbered(3)[2];
        let v: serde_json::Value = serde_json::from_str(&to_json(n, Lane::Policy)).unwrap();
        assert_eq!(v["Seq"], 9);
        assert_eq!(v["Count"], 3);
        assert_eq!(v["PolicyName"], "block-secrets");
        assert_eq!(v["Lane"], "policy");
    }
}
