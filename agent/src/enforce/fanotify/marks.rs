//! Which fanotify marks a policy needs: a pure function from rules and the mount table to a
//! set of (object, event mask) pairs, so the choice is table-tested without a kernel.
//!
//! Why marks this narrow: every marked object makes the kernel wait for the agent's answer on
//! each open of it. An exact path rule marks the file's *parent directory* for its children
//! (so a file replaced by rename, or created after the policy, is still covered) — that costs
//! one round trip per open of a sibling, not per open on the machine. A non-recursive directory
//! rule marks that directory. Only rules that can match anywhere below a directory (recursive
//! directories, glob patterns), an executable matched by name alone, and allow-lists (every
//! operation not listed is decided by the posture) need a *mount* mark: the mount holding the
//! directory and every mount below it, or, for allow-lists and names, every mount that holds
//! ordinary files. Pseudo file systems (procfs, sysfs, cgroupfs, ...) are never marked: the
//! agent reads `/proc` to answer, and a mark there would make it wait on itself.

use std::collections::BTreeMap;

use armlet_policy::ir::EffectiveRules;
use armlet_policy::model::{Category, Target};

/// File systems that are never marked (the agent reads some of them while answering, and none
/// holds files a policy protects).
const PSEUDO_FS: &[&str] = &[
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "devpts",
    "debugfs",
    "tracefs",
    "securityfs",
    "bpf",
    "pstore",
    "configfs",
    "fusectl",
    "mqueue",
    "hugetlbfs",
    "autofs",
    "binfmt_misc",
    "nsfs",
    "efivarfs",
    "rpc_pipefs",
    "selinuxfs",
];

/// What to watch on one object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mask {
    /// File opens (`FAN_OPEN_PERM`).
    pub open: bool,
    /// Executions (`FAN_OPEN_EXEC_PERM`).
    pub exec: bool,
}

impl Mask {
    fn of(c: Category) -> Mask {
        Mask {
            open: c == Category::File,
            exec: c == Category::Process,
        }
    }

    fn union(self, o: Mask) -> Mask {
        Mask {
            open: self.open || o.open,
            exec: self.exec || o.exec,
        }
    }

    pub fn is_empty(self) -> bool {
        !self.open && !self.exec
    }
}

/// A marked object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Object {
    /// A directory, with events for the files directly in it (`FAN_EVENT_ON_CHILD`).
    Dir(String),
    /// A whole mount, named by its mount point.
    Mount(String),
}

/// One mount from `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: String,
    pub fs_type: String,
}

/// Parse `/proc/self/mountinfo` (mount point is field 5, the file-system type follows `-`).
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|l| {
            let mut fields = l.split(' ');
            let mount_point = unescape(fields.nth(4)?);
            let mut rest = fields.skip_while(|f| *f != "-");
            rest.next()?;
            let fs_type = rest.next()?.to_string();
            Some(MountEntry {
                mount_point,
                fs_type,
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a policy needs watched, and what could not be watched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarkPlan {
    pub marks: BTreeMap<Object, Mask>,
    /// Rules whose path has no existing directory to mark (`path: reason`).
    pub unmarked: Vec<String>,
}

fn parent_dir(path: &str) -> Option<&str> {
    let i = path.rfind('/')?;
    Some(if i == 0 { "/" } else { &path[..i] })
}

/// The longest literal directory prefix of a glob (`/etc/*.conf` → `/etc`).
fn literal_dir(pattern: &str) -> &str {
    let end = pattern.find(['*', '?', '[']).unwrap_or(pattern.len());
    match pattern[..end].rfind('/') {
        Some(0) | None => "/",
        Some(i) => &pattern[..i],
    }
}

fn under(path: &str, dir: &str) -> bool {
    dir == "/"
        || path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|r| r.starts_with('/') || dir.ends_with('/'))
}

/// The mount holding `dir` (longest mount point that is a prefix) and every mount below it.
fn mounts_covering<'m>(dir: &str, mounts: &'m [MountEntry]) -> Vec<&'m MountEntry> {
    let dir = dir.trim_end_matches('/');
    let dir = if dir.is_empty() { "/" } else { dir };
    let holder = mounts
        .iter()
        .filter(|m| under(dir, &m.mount_point))
        .max_by_key(|m| m.mount_point.len());
    let mut out: Vec<&MountEntry> = holder.into_iter().collect();
    out.extend(
        mounts
            .iter()
            .filter(|m| m.mount_point != dir && under(&m.mount_point, dir)),
    );
    out
}

/// Plan the marks for the rules of one or more workloads.
///
/// `exists` says whether a directory exists (injected for tests).
pub fn plan(
    workloads: &[&EffectiveRules<'_>],
    mounts: &[MountEntry],
    exists: &dyn Fn(&str) -> bool,
) -> MarkPlan {
    let mut p = MarkPlan::default();
    let real_mounts: Vec<&MountEntry> = mounts
        .iter()
        .filter(|m| !PSEUDO_FS.contains(&m.fs_type.as_str()))
        .collect();
    let add = |p: &mut MarkPlan, o: Object, m: Mask| {
        let e = p.marks.entry(o).or_default();
        *e = e.union(m);
    };
    for eff in workloads {
        for rule in &eff.rules {
            let mask = Mask::of(rule.category());
            if mask.is_empty() {
                continue;
            }
            match &rule.target {
                Target::ExecPath(path) | Target::FilePath(path) => match parent_dir(path) {
                    Some(d) if exists(d) => add(&mut p, Object::Dir(d.to_string()), mask),
                    _ => p
                        .unmarked
                        .push(format!("{path}: its directory does not exist")),
                },
                Target::ExecDir {
                    dir,
                    recursive: false,
                }
                | Target::FileDir {
                    dir,
                    recursive: false,
                } => {
                    let d = dir.trim_end_matches('/');
                    let d = if d.is_empty() { "/" } else { d };
                    if exists(d) {
                        add(&mut p, Object::Dir(d.to_string()), mask);
                    } else {
                        p.unmarked.push(format!("{dir}: does not exist"));
                    }
                }
                Target::ExecDir {
                    dir,
                    recursive: true,
                }
                | Target::FileDir {
                    dir,
                    recursive: true,
                } => {
                    for m in mounts_covering(dir, mounts) {
                        if !PSEUDO_FS.contains(&m.fs_type.as_str()) {
                            add(&mut p, Object::Mount(m.mount_point.clone()), mask);
                        }
                    }
                }
                Target::ExecPattern(pat) | Target::FilePattern(pat) => {
                    for m in mounts_covering(literal_dir(pat), mounts) {
                        if !PSEUDO_FS.contains(&m.fs_type.as_str()) {
                            add(&mut p, Object::Mount(m.mount_point.clone()), mask);
                        }
                    }
                }
                Target::ExecName(_) => {
                    for m in &real_mounts {
                        add(&mut p, Object::Mount(m.mount_point.clone()), mask);
                    }
                }
                _ => {}
            }
        }
        for scope in &eff.allow_lists {
            let mask = Mask::of(scope.category);
            if mask.is_empty() {
                continue;
            }
            for m in &real_mounts {
                add(&mut p, Object::Mount(m.mount_point.clone()), mask);
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use armlet_policy::ir::{AllowScope, Posture, Rule};
    use armlet_policy::model::{Action, Source};

    fn rule(id: u32, target: Target) -> Rule {
        Rule {
            id,
            policy: 0,
            target,
            from_source: vec![],
            owner_only: false,
            read_only: false,
            action: Action::Block,
            severity: 1,
            tags: vec![],
            message: String::new(),
        }
    }

    fn mounts() -> Vec<MountEntry> {
        parse_mountinfo(
            "22 1 0:21 / / rw,relatime - ext4 /dev/vda rw\n\
             23 22 0:22 / /proc rw - proc proc rw\n\
             24 22 0:23 / /tmp rw - tmpfs tmpfs rw\n\
             25 22 0:24 / /etc/secret\\040dir rw - tmpfs tmpfs rw\n\
             26 22 0:25 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
        )
    }

    fn plan_of(rules: &[Rule], allow: &[AllowScope]) -> MarkPlan {
        let eff = EffectiveRules {
            rules: rules.iter().collect(),
            allow_lists: allow.iter().collect(),
            posture: Posture::uniform(Action::Block),
            native: Vec::new(),
        };
        plan(&[&eff], &mounts(), &|d| d != "/nonexistent")
    }

    #[test]
    fn mountinfo_is_parsed_with_escapes() {
        let m = mounts();
        assert_eq!(m.len(), 5);
        assert_eq!(m[3].mount_point, "/etc/secret dir");
        assert_eq!(m[1].fs_type, "proc");
    }

    #[test]
    fn exact_paths_mark_their_directory_only() {
        let p = plan_of(
            &[
                rule(1, Target::FilePath("/etc/hostname".into())),
                rule(2, Target::ExecPath("/usr/bin/diff".into())),
                rule(3, Target::FilePath("/etc/passwd".into())),
                rule(4, Target::FilePath("/nonexistent/x".into())),
            ],
            &[],
        );
        let want: BTreeMap<Object, Mask> = [
            (
                Object::Dir("/etc".into()),
                Mask {
                    open: true,
                    exec: false,
                },
            ),
            (
                Object::Dir("/usr/bin".into()),
                Mask {
                    open: false,
                    exec: true,
                },
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(p.marks, want);
        assert_eq!(p.unmarked.len(), 1, "{:?}", p.unmarked);
    }

    #[test]
    fn recursive_dirs_mark_the_holding_mount_and_those_below() {
        let p = plan_of(
            &[rule(
                1,
                Target::FileDir {
                    dir: "/etc/".into(),
                    recursive: true,
                },
            )],
            &[],
        );
        let objs: Vec<&Object> = p.marks.keys().collect();
        assert_eq!(
            objs,
            vec![
                &Object::Mount("/".into()),
                &Object::Mount("/etc/secret dir".into())
            ]
        );
        let p = plan_of(&[rule(1, Target::FilePattern("/tmp/**/*.key".into()))], &[]);
        assert_eq!(
            p.marks.keys().collect::<Vec<_>>(),
            vec![&Object::Mount("/tmp".into())]
        );
    }

    #[test]
    fn allow_lists_mark_every_real_mount_never_pseudo_fs() {
        let p = plan_of(
            &[],
            &[AllowScope {
                category: Category::Process,
                source: Some(Source::Path("/usr/bin/bash".into())),
            }],
        );
        let objs: Vec<&Object> = p.marks.keys().collect();
        assert_eq!(
            objs,
            vec![
                &Object::Mount("/".into()),
                &Object::Mount("/etc/secret dir".into()),
                &Object::Mount("/tmp".into()),
            ]
        );
        assert!(p.marks.values().all(|m| m.exec && !m.open));
    }

    #[test]
    fn network_and_capability_rules_need_no_marks() {
        let p = plan_of(
            &[
                rule(1, Target::Protocol("raw".into())),
                rule(
                    2,
                    Target::Capability {
                        name: "net_raw".into(),
                        number: 13,
                    },
                ),
            ],
            &[],
        );
        assert!(p.marks.is_empty());
    }
}
