//! Aggregation of repeats and per-priority budgets, before anything is numbered or spooled.
//!
//! Why: a process in a loop can raise the same alert thousands of times a second; the link and
//! the spool should carry it once with a count ("N similar in T seconds"), and posture noise
//! must never use up the room that policy matches need (KubeArmor's single per-container
//! throttle has exactly that bug, KubeArmor#2789). So:
//! - the first alert of a kind passes at once (no added latency for a new finding); identical
//!   repeats within `window` are counted, and when the window closes one alert (the last
//!   repeat) goes out with the count;
//! - "identical" is everything but the times and the process ids ([`key`]);
//! - each [`Lane`] has its own token bucket per second; an alert beyond its lane's budget is
//!   dropped and counted in that lane. Aggregated repeats cost one token per emitted alert.
//!
//! Memory is bounded: at most `max_keys` kinds are tracked; beyond that new kinds pass through
//! unaggregated (counted in `untracked`). Time is passed in, so this is testable without clocks.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::alert::Alert;
use crate::transport::wire::Lane;

/// Limits of the aggregator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Seconds over which identical alerts are merged (0: no aggregation).
    pub window_secs: u64,
    /// Alerts per second per lane, indexed by [`Lane::index`] (0 = unlimited).
    pub per_sec: [u32; 2],
    /// Most alert kinds tracked at once.
    pub max_keys: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            window_secs: 10,
            per_sec: [1000, 100],
            max_keys: 4096,
        }
    }
}

/// An alert leaving the aggregator: what it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Out {
    pub lane: Lane,
    pub count: u32,
    pub last_timestamp: i64,
    pub alert: Alert,
}

/// Counters per lane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Alerts that came in.
    pub received: [u64; 2],
    /// Alerts folded into an aggregated one.
    pub merged: [u64; 2],
    /// Alerts dropped because their lane's budget was used up.
    pub over_budget: [u64; 2],
    /// Alerts passed unaggregated because the kind table was full.
    pub untracked: u64,
}

#[derive(Debug)]
struct Pending {
    /// Window end (unix seconds).
    until: u64,
    repeats: u32,
    last: Option<Alert>,
}

#[derive(Debug)]
struct Bucket {
    second: u64,
    used: u32,
}

/// The aggregator.
#[derive(Debug)]
pub struct Aggregator {
    limits: Limits,
    pending: HashMap<u64, Pending>,
    buckets: [Bucket; 2],
    pub counters: Counters,
}

/// The identity of an alert for aggregation: everything but times and pids.
pub fn key(a: &Alert) -> u64 {
    let mut h = DefaultHasher::new();
    (
        &a.host_name,
        &a.namespace_name,
        &a.pod_name,
        &a.container_id,
    )
        .hash(&mut h);
    (
        &a.policy_name,
        &a.operation,
        &a.resource,
        &a.source,
        &a.process_name,
        &a.parent_process_name,
        &a.action,
        &a.result,
        &a.alert_type,
        a.uid,
    )
        .hash(&mut h);
    h.finish()
}

impl Aggregator {
    pub fn new(limits: Limits) -> Self {
        Aggregator {
            limits,
            pending: HashMap::new(),
            buckets: [Bucket { second: 0, used: 0 }, Bucket { second: 0, used: 0 }],
            counters: Counters::default(),
        }
    }

    /// Take one token of `lane` at time `now`; false (and counted) when the budget is used up.
    fn admit(&mut self, lane: Lane, now: u64, n: u64) -> bool {
        let i = lane.index();
        let limit = self.limits.per_sec[i];
        let b = &mut self.buckets[i];
        if b.second != now {
            b.second = now;
            b.used = 0;
        }
        if limit != 0 && b.used >= limit {
            self.counters.over_budget[i] += n;
            return false;
        }
        b.used += 1;
        true
    }

    /// One alert in at `now` (unix seconds); what must go out now is pushed to `out`.
    pub fn push(&mut self, alert: Alert, now: u64, out: &mut Vec<Out>) {
        let lane = Lane::of(&alert);
        self.counters.received[lane.index()] += 1;
        self.expire(now, out);
        if self.limits.window_secs == 0 {
            if self.admit(lane, now, 1) {
                out.push(single(lane, alert));
            }
            return;
        }
        let k = key(&alert);
        if let Some(p) = self.pending.get_mut(&k) {
            p.repeats = p.repeats.saturating_add(1);
            p.last = Some(alert);
            self.counters.merged[lane.index()] += 1;
            return;
        }
        if self.pending.len() >= self.limits.max_keys {
            self.counters.untracked += 1;
        } else {
            self.pending.insert(
                k,
                Pending {
                    until: now + self.limits.window_secs,
                    repeats: 0,
                    last: None,
                },
            );
        }
        if self.admit(lane, now, 1) {
            out.push(single(lane, alert));
        }
    }

    /// Close the windows that ended by `now`, emitting one alert per kind that repeated.
    pub fn expire(&mut self, now: u64, out: &mut Vec<Out>) {
        if self.pending.is_empty() {
            return;
        }
        let mut closed: Vec<(u64, Alert, u32)> = Vec::new();
        self.pending.retain(|_, p| {
            if p.until > now {
                return true;
            }
            if let Some(a) = p.last.take() {
                closed.push((p.until, a, p.repeats));
            }
            false
        });
        // Oldest window first, so output order follows time.
        closed.sort_by_key(|(until, a, _)| (*until, a.timestamp));
        for (_, alert, repeats) in closed {
            self.emit_merged(alert, repeats, now, out);
        }
    }

    /// Close every window (at shutdown).
    pub fn flush(&mut self, now: u64, out: &mut Vec<Out>) {
        for p in self.pending.values_mut() {
            p.until = 0;
        }
        self.expire(now, out);
    }

    fn emit_merged(&mut self, last: Alert, repeats: u32, now: u64, out: &mut Vec<Out>) {
        let lane = Lane::of(&last);
        // The merged alert keeps the last repeat's fields; its count is the repeats it stands
        // for (the first one already went out on its own).
        if self.admit(lane, now, u64::from(repeats)) {
            out.push(Out {
                lane,
                count: repeats,
                last_timestamp: last.timestamp,
                alert: last,
            });
        }
    }

    /// Kinds being tracked now.
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.pending.len()
    }
}

fn single(lane: Lane, alert: Alert) -> Out {
    Out {
        lane,
        count: 1,
        last_timestamp: alert.timestamp,
        alert,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::wire::tests::sample;

    fn posture(i: u32) -> Alert {
        let mut a = sample(i);
        a.policy_name = armlet_policy::ir::DEFAULT_POSTURE.into();
        a.resource = format!("/noise/{i}");
        a
    }

    #[test]
    fn repeats_within_a_window_become_one_alert_with_a_count() {
        let mut agg = Aggregator::new(Limits::default());
        let mut out = Vec::new();
        let a = sample(0);
        for t in 0..5 {
            let mut r = a.clone();
            r.pid = 100 + t;
            r.timestamp = 1000 + i64::from(t);
            agg.push(r, 1000 + u64::from(t), &mut out);
        }
        assert_eq!(out.len(), 1, "only the first goes out at once");
        assert_eq!(out[0].count, 1);
        agg.expire(1009, &mut out);
        assert_eq!(out.len(), 1, "window not closed yet");
        agg.expire(1010, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].count, 4);
        assert_eq!(out[1].alert.pid, 104);
        assert_eq!(out[1].last_timestamp, 1004);
        // After the window a new occurrence is new again.
        agg.push(a.clone(), 1011, &mut out);
        assert_eq!((out.len(), out[2].count), (3, 1));
        // A different resource is a different kind.
        let mut b = a;
        b.resource = "/other".into();
        agg.push(b, 1011, &mut out);
        assert_eq!(out.len(), 4);
        assert_eq!(agg.counters.over_budget, [0, 0]);
    }

    #[test]
    fn posture_noise_never_starves_policy_matches() {
        let limits = Limits {
            window_secs: 0,
            per_sec: [50, 10],
            max_keys: 16,
        };
        let mut agg = Aggregator::new(limits);
        let mut out = Vec::new();
        // A flood of posture alerts first, then the policy matches of the same second.
        for i in 0..10_000 {
            agg.push(posture(i), 5, &mut out);
        }
        for i in 0..50 {
            let mut a = sample(i);
            a.resource = format!("/etc/secret/{i}");
            agg.push(a, 5, &mut out);
        }
        let policy = out.iter().filter(|o| o.lane == Lane::Policy).count();
        let noise = out.iter().filter(|o| o.lane == Lane::Posture).count();
        assert_eq!((policy, noise), (50, 10));
        assert_eq!(agg.counters.over_budget, [0, 9_990]);
        // Next second: budgets refill.
        agg.push(posture(1), 6, &mut out);
        assert_eq!(out.len(), 61);
    }

    #[test]
    fn the_kind_table_is_bounded() {
        let limits = Limits {
            window_secs: 60,
            per_sec: [0, 0],
            max_keys: 8,
        };
        let mut agg = Aggregator::new(limits);
        let mut out = Vec::new();
        for i in 0..100 {
            let mut a = sample(i);
            a.resource = format!("/f/{i}");
            agg.push(a, 1, &mut out);
        }
        assert_eq!(agg.tracked(), 8);
        assert_eq!(out.len(), 100, "untracked kinds still pass");
        assert_eq!(agg.counters.untracked, 92);
        agg.flush(2, &mut out);
        assert_eq!(agg.tracked(), 0);
    }
}
