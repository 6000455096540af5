//! AppArmor's audit records (from the kernel log) → decisions.
//!
//! Why the kernel log: without an audit daemon the kernel prints every AppArmor record
//! (`audit: type=1400 ... apparmor="DENIED" operation="open" profile="armlet-host" name="/etc/shadow"
//! pid=1 comm="cat" requested_mask="r" ...`) to `/dev/kmsg`, which needs no netlink socket and
//! no competing with auditd. A record says *that* AppArmor denied or audited something, not
//! *which rule* did; the rule comes from [`armlet_policy::eval::decide`] on the same operation,
//! the reference the profile was generated from, so alerts name the policy exactly as the other
//! enforcers' do. Records `decide` would not alert on (a posture-audit baseline logs everything)
//! are dropped here.

use std::collections::BTreeMap;
use std::time::SystemTime;

use armlet_policy::eval::{self, Access, Resource};
use armlet_policy::ir::EffectiveRules;
use armlet_policy::model::Category;

use crate::alert::{DecisionEvent, WorkloadInfo};
use crate::enforce::audit_tp::socket_protocols;

/// One AppArmor record's fields (values unquoted; hex-encoded values decoded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub fields: BTreeMap<String, String>,
}

impl Record {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.fields.get(k).map(String::as_str)
    }

    pub fn num(&self, k: &str) -> Option<u32> {
        self.get(k).and_then(|v| v.parse().ok())
    }
}

/// Parse one `/dev/kmsg` record (`PRI,SEQ,TS,FLAGS;MESSAGE`) or a bare message; None when it is
/// not an AppArmor DENIED/AUDIT/ALLOWED record.
pub fn parse(line: &str) -> Option<Record> {
    let msg = line.split_once(';').map_or(line, |(_, m)| m);
    let start = msg.find("apparmor=")?;
    let mut fields = BTreeMap::new();
    let mut rest = &msg[start..];
    while !rest.is_empty() {
        rest = rest.trim_start();
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim().to_string();
        rest = &rest[eq + 1..];
        let value = if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"')?;
            let v = r[..end].to_string();
            rest = &r[end + 1..];
            v
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            let raw = &rest[..end];
            rest = &rest[end..];
            // The audit subsystem hex-encodes values with spaces or quotes.
            hex_decode(raw).unwrap_or_else(|| raw.to_string())
        };
        if key.is_empty() || key.contains(' ') {
            break;
        }
        fields.insert(key, value);
    }
    let r = Record { fields };
    matches!(r.get("apparmor"), Some("DENIED" | "AUDIT" | "ALLOWED")).then_some(r)
}

fn hex_decode(s: &str) -> Option<String> {
    if s.len() < 2 || !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // Numbers (pid=1234) are valid hex too: only decode when the result is printable text
    // containing a character that forced the encoding.
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect();
    let text = String::from_utf8(bytes?).ok()?;
    (text.contains(' ') || text.contains('"')).then_some(text)
}

fn family_number(name: &str) -> Option<u32> {
    Some(match name {
        "inet" => 2,
        "inet6" => 10,
        "packet" => 17,
        _ => return None,
    })
}

fn type_number(name: &str) -> Option<u32> {
    Some(match name {
        "stream" => 1,
        "dgram" => 2,
        "raw" => 3,
        "rdm" => 4,
        "seqpacket" => 5,
        "dccp" => 6,
        "packet" => 10,
        _ => return None,
    })
}

/// The socket a network record is about: (family, type, protocol) numbers.
pub fn socket_of(r: &Record) -> Option<(u32, u32, u32)> {
    Some((
        family_number(r.get("family")?)?,
        type_number(r.get("sock_type")?)?,
        r.num("protocol").unwrap_or(0),
    ))
}

/// How a record's profile maps to the executable `fromSource` rules match.
pub trait SourceOf {
    /// The source executable for a (child) profile name, None for a top-level profile.
    fn source_of(&self, profile: &str) -> Option<&str>;
    /// Is this one of ours?
    fn is_ours(&self, profile: &str) -> bool;
}

/// Turn one record into the decision `decide` makes for the same operation; None when it is
/// not ours or raises no alert.
pub fn decision(
    r: &Record,
    eff: &EffectiveRules<'_>,
    profiles: &impl SourceOf,
) -> Option<DecisionEvent> {
    let profile = r.get("profile")?;
    if !profiles.is_ours(profile) {
        return None;
    }
    let pid = r.num("pid").unwrap_or(0);
    let denied = r.get("apparmor") == Some("DENIED");
    let proc_exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    // Inside a child profile the executable is its source; in the main profile no fromSource
    // executable runs (they all switch to their child), so the empty name matches exactly the
    // rules without fromSource.
    let source = profiles.source_of(profile);
    let exe = source.unwrap_or("");
    let op = r.get("operation").unwrap_or("");
    let mask = r.get("requested_mask").unwrap_or("");
    let uid = r.num("fsuid").unwrap_or(0);
    let owner_uid = r.num("ouid");
    let decide = |resource: Resource<'_>, write: bool| {
        eval::decide(
            eff,
            &Access {
                exe,
                resource,
                uid,
                owner_uid,
                write,
            },
        )
    };
    let (category, verdict, resource) = match (op, r.get("class")) {
        ("capable", _) => {
            let name = r.get("capname")?;
            let number = u8::try_from(r.num("capability")?).ok()?;
            (
                Category::Capabilities,
                decide(Resource::Capability(number), false),
                name.to_string(),
            )
        }
        (_, Some("net")) | ("create" | "connect" | "bind" | "listen" | "accept" | "sendmsg", _)
            if r.get("family").is_some() =>
        {
            let family = family_number(r.get("family")?)?;
            let ty = type_number(r.get("sock_type")?)?;
            let proto = r.num("protocol").unwrap_or(0);
            let names = socket_protocols(family, ty, proto);
            let (v, i) = eval::decide_any(
                names
                    .iter()
                    .map(|name| decide(Resource::Protocol(name), false)),
            );
            let name = names.get(i).copied().unwrap_or("");
            // KubeArmor's form, as the other enforcers write it.
            (
                Category::Network,
                v,
                crate::enforce::fanotify::net::socket_resource(family, ty, proto, name),
            )
        }
        _ => {
            let name = r.get("name")?.to_string();
            if op == "exec" || mask.contains('x') {
                (
                    Category::Process,
                    decide(Resource::Exec(&name), false),
                    name,
                )
            } else {
                let write = mask.contains(['w', 'a', 'c', 'd']);
                (Category::File, decide(Resource::File(&name), write), name)
            }
        }
    };
    let (action, rule_id) = if verdict.alerts() {
        verdict.action_and_rule()
    } else if denied && let Some((index, _)) = eff.native.first() {
        // Denied in our profile by no armlet rule: the policy's native AppArmor rules did it
        // (the first native policy that applies is named; `audit` native rules do not alert).
        (
            armlet_policy::model::Action::Block,
            Some(armlet_policy::ir::NATIVE_RULE_BASE.saturating_add(*index)),
        )
    } else {
        return None;
    };
    Some(DecisionEvent {
        timestamp: SystemTime::now(),
        category,
        rule_id,
        action,
        denied,
        pid,
        ppid: 0,
        uid,
        comm: r.get("comm").unwrap_or("").to_string(),
        source: source.map(str::to_string).or(proc_exe).unwrap_or_default(),
        resource,
        workload: WorkloadInfo {
            host: true,
            ..WorkloadInfo::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use armlet_policy::ir::{Posture, Workload};
    use armlet_policy::model::Action;

    struct Names;
    impl SourceOf for Names {
        fn source_of(&self, profile: &str) -> Option<&str> {
            (profile == "armlet-host.src_0").then_some("/usr/bin/ping")
        }
        fn is_ours(&self, profile: &str) -> bool {
            profile.starts_with("armlet-host")
        }
    }

    #[test]
    fn kernel_records_parse() {
        let line = "5,1201,3361220,-;audit: type=1400 audit(1733220000.123:42): apparmor=\"DENIED\" operation=\"open\" class=\"file\" profile=\"armlet-host\" name=\"/etc/shadow\" pid=812 comm=\"cat\" requested_mask=\"r\" denied_mask=\"r\" fsuid=0 ouid=0";
        let r = parse(line).unwrap();
        assert_eq!(r.get("operation"), Some("open"));
        assert_eq!(r.get("name"), Some("/etc/shadow"));
        assert_eq!(r.get("pid"), Some("812"));
        // Hex-encoded names (spaces).
        let r = parse("apparmor=\"AUDIT\" operation=\"open\" profile=\"armlet-host\" name=2F746D702F6120622E747874 pid=1").unwrap();
        assert_eq!(r.get("name"), Some("/tmp/a b.txt"));
        assert!(parse("6,1,1,-;eth0: link up").is_none());
        assert!(
            parse("apparmor=\"STATUS\" operation=\"profile_load\" name=\"armlet-host\"").is_none()
        );
    }

    #[test]
    fn records_map_back_to_the_rule_that_decided() {
        let ir = armlet_policy::compile_text(
            "apiVersion: security.kubearmor.com/v1\nkind: KubeArmorHostPolicy\nmetadata: {name: hp}\nspec:\n  nodeSelector: {matchLabels: {kubernetes.io/hostname: n}}\n  file:\n    matchPaths: [{path: /etc/shadow}]\n  process:\n    matchPaths: [{path: /usr/bin/diff}]\n  network:\n    matchProtocols: [{protocol: raw, fromSource: [{path: /usr/bin/ping}]}]\n  capabilities:\n    matchCapabilities: [{capability: net_raw, fromSource: [{path: /usr/bin/ping}]}]\n  action: Block\n",
            "t",
            Posture::default(),
        )
        .unwrap();
        let host = Workload::Host {
            labels: [("kubernetes.io/hostname".to_string(), "n".to_string())].into(),
        };
        let eff = ir.effective(&host);
        let rec = |s: &str| parse(s).unwrap();
        let d = decision(&rec("apparmor=\"DENIED\" operation=\"open\" class=\"file\" profile=\"armlet-host\" name=\"/etc/shadow\" pid=4000000 comm=\"cat\" requested_mask=\"r\" denied_mask=\"r\" fsuid=0 ouid=0"), &eff, &Names).unwrap();
        assert_eq!(
            (d.category, d.action, d.rule_id, d.denied),
            (Category::File, Action::Block, Some(1), true)
        );
        let d = decision(&rec("apparmor=\"DENIED\" operation=\"exec\" class=\"file\" profile=\"armlet-host\" name=\"/usr/bin/diff\" pid=4000000 comm=\"bash\" requested_mask=\"x\" denied_mask=\"x\" fsuid=0 ouid=0"), &eff, &Names).unwrap();
        assert_eq!(
            (d.category, d.rule_id, d.resource.as_str()),
            (Category::Process, Some(0), "/usr/bin/diff")
        );
        let d = decision(&rec("apparmor=\"DENIED\" operation=\"create\" class=\"net\" profile=\"armlet-host.src_0\" pid=4000000 comm=\"ping\" family=\"inet\" sock_type=\"raw\" protocol=1 requested_mask=\"create\" denied_mask=\"create\""), &eff, &Names).unwrap();
        assert_eq!(
            (
                d.category,
                d.rule_id,
                d.resource.as_str(),
                d.source.as_str()
            ),
            (
                Category::Network,
                Some(2),
                "domain=AF_INET type=SOCK_RAW protocol=ICMP",
                "/usr/bin/ping"
            )
        );
        let d = decision(&rec("apparmor=\"DENIED\" operation=\"capable\" class=\"cap\" profile=\"armlet-host.src_0\" pid=4000000 comm=\"ping\" capability=13  capname=\"net_raw\""), &eff, &Names).unwrap();
        assert_eq!((d.category, d.rule_id), (Category::Capabilities, Some(3)));
        // The same raw socket outside the source's child profile is not governed.
        assert!(decision(&rec("apparmor=\"AUDIT\" operation=\"create\" class=\"net\" profile=\"armlet-host\" pid=1 comm=\"x\" family=\"inet\" sock_type=\"raw\" protocol=1"), &eff, &Names).is_none());
        // Not our profile.
        assert!(decision(&rec("apparmor=\"DENIED\" operation=\"open\" profile=\"docker-default\" name=\"/etc/shadow\" pid=1 requested_mask=\"r\""), &eff, &Names).is_none());
    }
}
