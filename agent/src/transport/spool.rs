//! The crash-safe, bounded, on-disk alert spool (DESIGN §6: offline-first).
//!
//! Why on disk and why this format: an edge node can be offline for hours; alerts must survive
//! that and a `kill -9` or power cut, and be delivered in order once the broker is back, while
//! memory stays bounded whatever the backlog. So every batch is appended to disk *before* it
//! is offered to MQTT, and removed only after the broker's PUBACK.
//!
//! Layout: one directory per [`Lane`] (`policy/`, `posture/`), each a queue of append-only
//! segment files `<id>.seg` (ids increase) plus an `ack` file. A segment is a sequence of
//! records `[len: u32 LE][crc32(payload): u32 LE][payload]`, payload =
//! `[first_seq: u64 LE][last_seq: u64 LE][alerts: u32 LE][wire batch]`; the wire batch is the
//! exact MQTT payload. The `ack` file (`armlet-spool-ack-v1 SEG OFFSET LAST_SEQ`, replaced
//! atomically by rename) marks the end of the acknowledged prefix and the last acknowledged
//! sequence number, so after a restart nothing acknowledged is sent again, and sequence numbers
//! continue where they were even when the spool was empty.
//!
//! Recovery ([`Spool::open`]) scans every segment: the first record whose length runs past the
//! end of the file or whose checksum fails is a torn (or corrupt) tail; the file is cut there
//! and everything before it is kept. Segments entirely before the ack mark are deleted.
//!
//! Bounded: at most `max_bytes` on disk. When an append would go over, whole segments are
//! dropped oldest first from the posture lane, and only when it is empty from the policy lane;
//! every dropped, unacknowledged alert is counted in [`Spool::dropped`]. Memory is a few numbers
//! per segment (segments are at least `segment_bytes` long, so their number is bounded too).

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::transport::aggregate::Out;
use crate::transport::wire::{self, Lane, Numbered};

const HEADER: usize = 8;
const META: usize = 20;
const ACK_TAG: &str = "armlet-spool-ack-v1";
/// Largest record accepted when reading (a bigger length field is a torn or corrupt record).
const MAX_RECORD: usize = wire::MAX_BATCH_BYTES + META;

/// Why the spool failed (operational: the disk).
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("spool limit of {0} bytes is too small (at least two segments of {1} bytes)")]
    TooSmall(u64, u64),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Sizes of the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolLimits {
    /// Most bytes on disk, both lanes together.
    pub max_bytes: u64,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// fdatasync after every append and ack (survives power loss, not only `kill -9`).
    pub sync: bool,
}

impl Default for SpoolLimits {
    fn default() -> Self {
        SpoolLimits {
            max_bytes: 64 * 1024 * 1024,
            segment_bytes: 1024 * 1024,
            sync: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seg {
    id: u64,
    len: u64,
    /// Sequence numbers held (0, 0 when empty).
    first_seq: u64,
    last_seq: u64,
}

/// One record handed to the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub lane: Lane,
    pub seg: u64,
    /// Offset just past the record: the ack mark once it is acknowledged.
    pub end: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub alerts: u32,
    /// The wire batch (the MQTT payload).
    pub batch: Vec<u8>,
}

/// What recovery found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes cut from torn or corrupt tails.
    pub cut_bytes: u64,
    /// Records kept.
    pub records: u64,
}

#[derive(Debug)]
struct LaneSpool {
    lane: Lane,
    dir: PathBuf,
    segs: VecDeque<Seg>,
    /// Ack mark: (segment id, offset, last acknowledged seq).
    ack: (u64, u64, u64),
    /// Next record to send: (segment id, offset).
    cursor: (u64, u64),
    next_seq: u64,
    writer: Option<File>,
    reader: Option<(u64, File)>,
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

/// Scan one segment; cut a torn tail. Returns the segment and the bytes cut.
fn scan(path: &Path, id: u64, recovery: &mut Recovery) -> Result<Seg, SpoolError> {
    let data = fs::read(path).map_err(io_err(path))?;
    let mut off = 0usize;
    let mut seg = Seg {
        id,
        len: 0,
        first_seq: 0,
        last_seq: 0,
    };
    while let Some((len, payload)) = parse_record(&data[off..]) {
        let (first, last, _) = meta(payload);
        if seg.first_seq == 0 {
            seg.first_seq = first;
        }
        seg.last_seq = last;
        off += HEADER + len;
        recovery.records += 1;
    }
    if off < data.len() {
        recovery.cut_bytes += (data.len() - off) as u64;
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        f.set_len(off as u64).map_err(io_err(path))?;
        f.sync_all().map_err(io_err(path))?;
    }
    seg.len = off as u64;
    Ok(seg)
}

/// A whole, intact record at the start of `data`: (payload length, payload).
fn parse_record(data: &[u8]) -> Option<(usize, &[u8])> {
    let len = u32::from_le_bytes(data.get(0..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(data.get(4..8)?.try_into().ok()?);
    if !(META..=MAX_RECORD).contains(&len) {
        return None;
    }
    let payload = data.get(HEADER..HEADER + len)?;
    (crc32fast::hash(payload) == crc).then_some((len, payload))
}

fn meta(payload: &[u8]) -> (u64, u64, u32) {
    let u64_at = |i: usize| {
        payload
            .get(i..i + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    let alerts = payload
        .get(16..20)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes);
    (u64_at(0), u64_at(8), alerts)
}

fn parse_ack(text: &str) -> Option<(u64, u64, u64)> {
    let mut it = text.split_whitespace();
    if it.next()? != ACK_TAG {
        return None;
    }
    let v = (
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    );
    it.next().is_none().then_some(v)
}

impl LaneSpool {
    fn open(root: &Path, lane: Lane, recovery: &mut Recovery) -> Result<Self, SpoolError> {
        let dir = root.join(lane.as_str());
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let ack_path = dir.join("ack");
        let ack = match fs::read_to_string(&ack_path) {
            Ok(t) => parse_ack(&t).unwrap_or((0, 0, 0)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (0, 0, 0),
            Err(e) => return Err(io_err(&ack_path)(e)),
        };
        let mut ids: Vec<u64> = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name();
            if let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse().ok())
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        let mut segs = VecDeque::new();
        for id in ids {
            let path = seg_path(&dir, id);
            if id < ack.0 {
                fs::remove_file(&path).map_err(io_err(&path))?;
                continue;
            }
            segs.push_back(scan(&path, id, recovery)?);
        }
        let mut ack = ack;
        match segs.front() {
            Some(first) if first.id > ack.0 => {
                ack.0 = first.id;
                ack.1 = 0;
            }
            Some(first) => ack.1 = ack.1.min(first.len),
            None => {}
        }
        let last_seq = segs
            .iter()
            .map(|s| s.last_seq)
            .max()
            .unwrap_or(0)
            .max(ack.2);
        let mut lane_spool = LaneSpool {
            lane,
            dir,
            segs,
            ack,
            cursor: (ack.0, ack.1),
            next_seq: last_seq + 1,
            writer: None,
            reader: None,
        };
        if lane_spool.segs.is_empty() {
            let id = ack.0.max(1);
            lane_spool.new_segment(id)?;
            lane_spool.ack = (id, 0, ack.2);
            lane_spool.cursor = (id, 0);
        }
        Ok(lane_spool)
    }

    fn new_segment(&mut self, id: u64) -> Result<(), SpoolError> {
        let path = seg_path(&self.dir, id);
        File::create(&path).map_err(io_err(&path))?;
        self.segs.push_back(Seg {
            id,
            len: 0,
            first_seq: 0,
            last_seq: 0,
        });
        self.writer = None;
        Ok(())
    }

    fn bytes(&self) -> u64 {
        self.segs.iter().map(|s| s.len).sum()
    }

    /// Alerts not yet acknowledged.
    fn depth(&self) -> u64 {
        self.segs
            .iter()
            .filter(|s| s.last_seq != 0)
            .map(|s| s.last_seq.saturating_sub((s.first_seq - 1).max(self.ack.2)))
            .sum()
    }

    fn append(
        &mut self,
        record: &[u8],
        first: u64,
        last: u64,
        limits: &SpoolLimits,
    ) -> Result<(), SpoolError> {
        let needs_new = self
            .segs
            .back()
            .is_none_or(|s| s.len > 0 && s.len + record.len() as u64 > limits.segment_bytes);
        if needs_new {
            let id = self.segs.back().map_or(1, |s| s.id + 1);
            self.new_segment(id)?;
        }
        let Some(seg) = self.segs.back_mut() else {
            return Ok(());
        };
        let path = seg_path(&self.dir, seg.id);
        if self.writer.is_none() {
            let f = OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(io_err(&path))?;
            self.writer = Some(f);
        }
        if let Some(w) = self.writer.as_mut() {
            let r = w
                .write_all(record)
                .and_then(|()| if limits.sync { w.sync_data() } else { Ok(()) });
            if let Err(e) = r {
                // A partial write is a torn tail: cut it now so the next append starts clean.
                self.writer = None;
                if let Ok(f) = OpenOptions::new().write(true).open(&path) {
                    let _ = f.set_len(seg.len);
                }
                return Err(io_err(&path)(e));
            }
        }
        seg.len += record.len() as u64;
        if seg.first_seq == 0 {
            seg.first_seq = first;
        }
        seg.last_seq = last;
        Ok(())
    }

    /// Drop the oldest segment (it may be the one being written). Returns unacked alerts lost.
    fn drop_oldest(&mut self) -> Result<u64, SpoolError> {
        let Some(seg) = self.segs.pop_front() else {
            return Ok(0);
        };
        let lost = if seg.last_seq == 0 {
            0
        } else {
            seg.last_seq
                .saturating_sub((seg.first_seq - 1).max(self.ack.2))
        };
        let path = seg_path(&self.dir, seg.id);
        fs::remove_file(&path).map_err(io_err(&path))?;
        if self.reader.as_ref().is_some_and(|(id, _)| *id == seg.id) {
            self.reader = None;
        }
        if self.segs.is_empty() {
            self.new_segment(seg.id + 1)?;
        }
        let next = self.segs.front().map_or(seg.id + 1, |s| s.id);
        if self.ack.0 <= seg.id {
            self.ack.0 = next;
            self.ack.1 = 0;
            self.ack.2 = self.ack.2.max(seg.last_seq);
        }
        if self.cursor.0 <= seg.id {
            self.cursor = (next, 0);
        }
        Ok(lost)
    }

    fn read_next(&mut self) -> Result<Option<Record>, SpoolError> {
        loop {
            let (id, off) = self.cursor;
            let Some(seg) = self.segs.iter().find(|s| s.id >= id).copied() else {
                return Ok(None);
            };
            let off = if seg.id == id { off } else { 0 };
            if off >= seg.len {
                if self.segs.back().is_some_and(|s| s.id == seg.id) {
                    return Ok(None);
                }
                self.cursor = (seg.id + 1, 0);
                continue;
            }
            let path = seg_path(&self.dir, seg.id);
            if self.reader.as_ref().is_none_or(|(rid, _)| *rid != seg.id) {
                let f = File::open(&path).map_err(io_err(&path))?;
                self.reader = Some((seg.id, f));
            }
            let Some((_, f)) = self.reader.as_mut() else {
                return Ok(None);
            };
            f.seek(SeekFrom::Start(off)).map_err(io_err(&path))?;
            let mut header = [0u8; HEADER];
            f.read_exact(&mut header).map_err(io_err(&path))?;
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            if !(META..=MAX_RECORD).contains(&len) {
                return Err(io_err(&path)(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "record length out of range",
                )));
            }
            let mut payload = vec![0u8; len];
            f.read_exact(&mut payload).map_err(io_err(&path))?;
            let end = off + (HEADER + len) as u64;
            self.cursor = (seg.id, end);
            let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            if crc32fast::hash(&payload) != crc {
                // Corrupted after recovery (the disk): skip the record, it cannot be sent.
                continue;
            }
            let (first_seq, last_seq, alerts) = meta(&payload);
            return Ok(Some(Record {
                lane: self.lane,
                seg: seg.id,
                end,
                first_seq,
                last_seq,
                alerts,
                batch: payload.split_off(META),
            }));
        }
    }

    fn ack(&mut self, seg: u64, end: u64, last_seq: u64, sync: bool) -> Result<(), SpoolError> {
        if (seg, end) <= (self.ack.0, self.ack.1) {
            return Ok(());
        }
        self.ack = (seg, end, last_seq.max(self.ack.2));
        let path = self.dir.join("ack");
        let tmp = self.dir.join(".ack.tmp");
        {
            let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
            writeln!(f, "{ACK_TAG} {} {} {}", self.ack.0, self.ack.1, self.ack.2)
                .map_err(io_err(&tmp))?;
            if sync {
                f.sync_data().map_err(io_err(&tmp))?;
            }
        }
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        // Delete segments wholly acknowledged (never the one being written).
        while self.segs.len() > 1 {
            let Some(front) = self.segs.front().copied() else {
                break;
            };
            if front.id < seg || (front.id == seg && end >= front.len) {
                self.segs.pop_front();
                let p = seg_path(&self.dir, front.id);
                fs::remove_file(&p).map_err(io_err(&p))?;
                if self.reader.as_ref().is_some_and(|(id, _)| *id == front.id) {
                    self.reader = None;
                }
            } else {
                break;
            }
        }
        Ok(())
    }
}

/// The spool: one queue per lane.
#[derive(Debug)]
pub struct Spool {
    node: String,
    limits: SpoolLimits,
    lanes: [LaneSpool; 2],
    /// Unacknowledged alerts dropped because the spool was full, per lane.
    pub dropped: [u64; 2],
    /// What recovery found at open.
    pub recovery: Recovery,
}

impl Spool {
    /// Open (and recover) the spool in `dir`.
    pub fn open(dir: &Path, node: &str, limits: SpoolLimits) -> Result<Self, SpoolError> {
        if limits.max_bytes < 2 * limits.segment_bytes {
            return Err(SpoolError::TooSmall(limits.max_bytes, limits.segment_bytes));
        }
        let mut recovery = Recovery::default();
        let policy = LaneSpool::open(dir, Lane::Policy, &mut recovery)?;
        let posture = LaneSpool::open(dir, Lane::Posture, &mut recovery)?;
        Ok(Spool {
            node: node.to_owned(),
            limits,
            lanes: [policy, posture],
            dropped: [0, 0],
            recovery,
        })
    }

    /// Number, encode and append one batch of alerts of one lane. Returns the sequence numbers
    /// given (first, last), or None for an empty batch.
    pub fn append(
        &mut self,
        lane: Lane,
        alerts: Vec<Out>,
    ) -> Result<Option<(u64, u64)>, SpoolError> {
        if alerts.is_empty() {
            return Ok(None);
        }
        let l = lane.index();
        let first = self.lanes[l].next_seq;
        let numbered: Vec<Numbered> = alerts
            .into_iter()
            .enumerate()
            .map(|(i, o)| Numbered {
                seq: first + i as u64,
                count: o.count,
                last_timestamp: o.last_timestamp,
                alert: o.alert,
            })
            .collect();
        let last = first + numbered.len() as u64 - 1;
        let batch = wire::encode(&self.node, lane, &numbered);
        let mut payload = Vec::with_capacity(META + batch.len());
        payload.extend_from_slice(&first.to_le_bytes());
        payload.extend_from_slice(&last.to_le_bytes());
        payload.extend_from_slice(&(numbered.len() as u32).to_le_bytes());
        payload.extend_from_slice(&batch);
        let mut record = Vec::with_capacity(HEADER + payload.len());
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        record.extend_from_slice(&payload);
        // Make room: posture segments first, oldest first; then policy.
        let need = record.len() as u64;
        while self.bytes() + need > self.limits.max_bytes {
            let victim = if self.lanes[1].bytes() > 0 { 1 } else { 0 };
            if self.lanes[victim].bytes() == 0 {
                break;
            }
            let lost = self.lanes[victim].drop_oldest()?;
            self.dropped[victim] += lost;
        }
        self.lanes[l].next_seq = last + 1;
        if self.bytes() + need > self.limits.max_bytes {
            self.dropped[l] += numbered.len() as u64;
            return Ok(Some((first, last)));
        }
        self.lanes[l].append(&record, first, last, &self.limits)?;
        Ok(Some((first, last)))
    }

    /// The next record to send: policy lane first.
    pub fn next_unsent(&mut self) -> Result<Option<Record>, SpoolError> {
        for lane in &mut self.lanes {
            if let Some(r) = lane.read_next()? {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// Forget what was sent but not acknowledged (the connection dropped): send it again.
    pub fn rewind(&mut self) {
        for lane in &mut self.lanes {
            lane.cursor = (lane.ack.0, lane.ack.1);
        }
    }

    /// The broker acknowledged `r` (acks must come in send order per lane).
    pub fn ack(&mut self, r: &Record) -> Result<(), SpoolError> {
        let sync = self.limits.sync;
        self.lanes[r.lane.index()].ack(r.seg, r.end, r.last_seq, sync)
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.lanes.iter().map(LaneSpool::bytes).sum()
    }

    /// Unacknowledged alerts, per lane.
    pub fn depth(&self) -> [u64; 2] {
        [self.lanes[0].depth(), self.lanes[1].depth()]
    }

    /// The next sequence number of each lane.
    pub fn next_seq(&self) -> [u64; 2] {
        [self.lanes[0].next_seq, self.lanes[1].next_seq]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::wire::tests::sample;

    fn outs(lane: Lane, n: u32) -> Vec<Out> {
        (0..n)
            .map(|i| {
                let mut a = sample(i);
                if lane == Lane::Posture {
                    a.policy_name = armlet_policy::ir::DEFAULT_POSTURE.into();
                }
                Out {
                    lane,
                    count: 1,
                    last_timestamp: a.timestamp,
                    alert: a,
                }
            })
            .collect()
    }

    fn limits() -> SpoolLimits {
        SpoolLimits {
            max_bytes: 64 * 1024,
            segment_bytes: 4096,
            sync: false,
        }
    }

    fn drain(s: &mut Spool) -> Vec<u64> {
        let mut seqs = Vec::new();
        while let Some(r) = s.next_unsent().unwrap() {
            let d = wire::decode(&r.batch).unwrap();
            seqs.extend(d.alerts.iter().map(|a| a.seq));
            s.ack(&r).unwrap();
        }
        seqs
    }

    #[test]
    fn append_send_ack_and_recover_without_resending() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), "n1", limits()).unwrap();
        for _ in 0..30 {
            s.append(Lane::Policy, outs(Lane::Policy, 5)).unwrap();
        }
        assert_eq!(s.depth(), [150, 0]);
        // Send and ack the first 10 batches, send (not ack) 5 more.
        for _ in 0..10 {
            let r = s.next_unsent().unwrap().unwrap();
            s.ack(&r).unwrap();
        }
        for _ in 0..5 {
            s.next_unsent().unwrap().unwrap();
        }
        assert_eq!(s.depth(), [100, 0]);
        drop(s);
        // Restart: the unacked 5 are sent again with the same numbers, the acked never.
        let mut s = Spool::open(dir.path(), "n1", limits()).unwrap();
        assert_eq!(s.depth(), [100, 0]);
        let seqs = drain(&mut s);
        assert_eq!(seqs, (51..=150).collect::<Vec<_>>());
        assert_eq!(s.depth(), [0, 0]);
        drop(s);
        // Empty after acks: numbering continues.
        let mut s = Spool::open(dir.path(), "n1", limits()).unwrap();
        assert_eq!(s.next_seq(), [151, 1]);
        s.append(Lane::Policy, outs(Lane::Policy, 1)).unwrap();
        assert_eq!(drain(&mut s), vec![151]);
        // Acked segments are deleted: only the write segment is left.
        let segs = fs::read_dir(dir.path().join("policy"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "seg")
            })
            .count();
        assert_eq!(segs, 1);
    }

    #[test]
    fn rewind_resends_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), "n1", limits()).unwrap();
        for _ in 0..4 {
            s.append(Lane::Policy, outs(Lane::Policy, 2)).unwrap();
        }
        let r = s.next_unsent().unwrap().unwrap();
        s.ack(&r).unwrap();
        s.next_unsent().unwrap().unwrap();
        s.rewind();
        assert_eq!(drain(&mut s), (3..=8).collect::<Vec<_>>());
    }

    #[test]
    fn full_spool_drops_oldest_posture_first_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), "n1", limits()).unwrap();
        for _ in 0..10 {
            s.append(Lane::Policy, outs(Lane::Policy, 5)).unwrap();
        }
        for _ in 0..500 {
            s.append(Lane::Posture, outs(Lane::Posture, 5)).unwrap();
            assert!(s.bytes() <= limits().max_bytes);
        }
        assert_eq!(
            s.dropped[0], 0,
            "policy alerts are kept while posture can go"
        );
        assert!(s.dropped[1] > 0);
        assert_eq!(s.depth()[0], 50);
        assert_eq!(s.depth()[1] + s.dropped[1], 2500);
        // Posture seqs left are the newest ones, contiguous.
        let seqs = drain(&mut s);
        let posture: Vec<u64> = seqs[50..].to_vec();
        assert_eq!(*posture.last().unwrap(), 2500);
        assert!(posture.windows(2).all(|w| w[1] == w[0] + 1));
        // Only policy left: the oldest policy goes, counted.
        for _ in 0..500 {
            s.append(Lane::Policy, outs(Lane::Policy, 5)).unwrap();
        }
        assert!(s.dropped[0] > 0);
        assert!(s.bytes() <= limits().max_bytes);
    }

    /// Truncate the tail at every byte offset of the last record: recovery cuts the torn
    /// record, keeps everything before it, and new appends work and read back.
    #[test]
    fn torn_tail_at_every_offset_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), "n1", limits()).unwrap();
        s.append(Lane::Policy, outs(Lane::Policy, 3)).unwrap();
        s.append(Lane::Policy, outs(Lane::Policy, 3)).unwrap();
        drop(s);
        let seg = seg_path(&dir.path().join("policy"), 1);
        let whole = fs::read(&seg).unwrap();
        let (first_len, _) = parse_record(&whole).unwrap();
        let boundary = HEADER + first_len;
        for cut in boundary..whole.len() {
            let work = tempfile::tempdir().unwrap();
            let wp = work.path().join("policy");
            fs::create_dir_all(&wp).unwrap();
            fs::write(seg_path(&wp, 1), &whole[..cut]).unwrap();
            let mut s = Spool::open(work.path(), "n1", limits()).unwrap();
            assert_eq!(
                s.recovery.cut_bytes,
                (cut - boundary) as u64,
                "cut at {cut}"
            );
            assert_eq!(s.recovery.records, 1);
            assert_eq!(
                fs::metadata(seg_path(&wp, 1)).unwrap().len(),
                boundary as u64
            );
            assert_eq!(s.depth(), [3, 0]);
            // The torn batch's numbers are reused: they were never sent.
            s.append(Lane::Policy, outs(Lane::Policy, 1)).unwrap();
            assert_eq!(drain(&mut s), vec![1, 2, 3, 4]);
        }
        // A flipped byte inside the last record: checksum failure, cut likewise.
        let work = tempfile::tempdir().unwrap();
        let wp = work.path().join("policy");
        fs::create_dir_all(&wp).unwrap();
        let mut bad = whole.clone();
        let last = bad.len() - 3;
        bad[last] ^= 1;
        fs::write(seg_path(&wp, 1), &bad).unwrap();
        let mut s = Spool::open(work.path(), "n1", limits()).unwrap();
        assert_eq!(s.recovery.records, 1);
        assert_eq!(drain(&mut s), vec![1, 2, 3]);
    }

    #[test]
    fn a_torn_ack_file_means_resend_never_loss() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), "n1", limits()).unwrap();
        s.append(Lane::Policy, outs(Lane::Policy, 2)).unwrap();
        let r = s.next_unsent().unwrap().unwrap();
        s.ack(&r).unwrap();
        s.append(Lane::Policy, outs(Lane::Policy, 2)).unwrap();
        drop(s);
        fs::write(dir.path().join("policy/ack"), "armlet-spool-ack-v1 1").unwrap();
        let mut s = Spool::open(dir.path(), "n1", limits()).unwrap();
        assert_eq!(drain(&mut s), vec![1, 2, 3, 4]);
    }
}
