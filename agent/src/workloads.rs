//! Workload identity: which cgroup is which container, with which namespace and labels.
//!
//! Why cgroups: every enforcer decides per task, and the one thing every container runtime
//! gives a task is a cgroup of its own (cgroup v2 path, also under hybrid layouts). The agent
//! learns containers from the OCI runtime's state directories — runc keeps one
//! `state.json` per container (init pid, cgroup paths, the bundle's annotations), and
//! containerd, Docker and K3s all drive runc with their own state roots ([`RUNC_ROOTS`]) —
//! and names them from the annotations (`armlet.io/namespace`, `armlet.io/labels`,
//! `kubearmor.io/container.name`, `io.kubernetes.pod.name`) or from a local mapping file
//! (`armlet run --workloads FILE`, kind `WorkloadMap`) on bare nodes. [`container_id_of`] also
//! recognises the cgroup layouts of containerd, CRI-O, Docker, Podman and systemd scopes.
//!
//! Not here yet: labels from the Kubernetes API server (pods of this node); on K3s/MicroK8s
//! today the mapping file or the runtime annotations name the workloads.
//!
//! Bounded: at most [`MAX_CONTAINERS`] containers are tracked (the rest are reported).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use armlet_policy::eval::glob_match;
use armlet_policy::ir::Workload;
use armlet_policy::yaml::{self, Node, Value};

use crate::alert::WorkloadInfo;

/// runc state roots: plain runc, containerd (K3s, MicroK8s: namespace `k8s.io`), Docker.
pub const RUNC_ROOTS: &[&str] = &[
    "/run/runc",
    "/run/containerd/runc/k8s.io",
    "/run/containerd/runc/default",
    "/run/k3s/containerd/runc/k8s.io",
    "/run/docker/runtime-runc/moby",
];
/// Most containers tracked at once.
pub const MAX_CONTAINERS: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{file}:{pos}: {message}")]
    Map {
        file: String,
        pos: yaml::Pos,
        message: String,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// How a mapping entry picks containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    ContainerName(String),
    /// The id or a prefix of it.
    ContainerId(String),
    /// A glob over the cgroup-v2 path (`/kubepods/**`).
    CgroupPath(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    pub matches: Match,
    pub namespace: String,
    pub pod: Option<String>,
    pub labels: BTreeMap<String, String>,
}

impl MapEntry {
    /// The workload a container named by this entry is (for sizing and preloading before
    /// the container exists).
    pub fn workload(&self) -> Workload {
        Workload::Container {
            namespace: self.namespace.clone(),
            labels: self.labels.clone(),
        }
    }
}

/// `kind: WorkloadMap`: names for containers on nodes without Kubernetes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadMap {
    pub entries: Vec<MapEntry>,
}

fn scalar(n: &Node) -> Option<&str> {
    match &n.value {
        Value::Scalar { text, .. } => Some(text),
        _ => None,
    }
}

fn map_of(n: &Node) -> Option<&[(Node, Node)]> {
    match &n.value {
        Value::Map(m) => Some(m),
        _ => None,
    }
}

impl WorkloadMap {
    pub fn load(path: &Path) -> Result<WorkloadMap, WorkloadError> {
        let text = std::fs::read_to_string(path).map_err(|source| WorkloadError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&path.display().to_string(), &text)
    }

    pub fn parse(file: &str, text: &str) -> Result<WorkloadMap, WorkloadError> {
        let err = |pos: yaml::Pos, message: String| WorkloadError::Map {
            file: file.to_string(),
            pos,
            message,
        };
        let docs = yaml::parse_documents(text).map_err(|e| err(e.pos, e.message))?;
        let mut out = WorkloadMap::default();
        for doc in docs {
            let root = map_of(&doc.root).ok_or_else(|| {
                err(
                    doc.root.pos,
                    format!("expected a mapping, found {}", doc.root.describe()),
                )
            })?;
            let mut kind_ok = false;
            let mut api_ok = false;
            for (k, v) in root {
                match scalar(k) {
                    Some("apiVersion") => {
                        if scalar(v) != Some("armlet.io/v1") {
                            return Err(err(
                                v.pos,
                                format!("apiVersion must be armlet.io/v1, found {}", v.describe()),
                            ));
                        }
                        api_ok = true;
                    }
                    Some("kind") => {
                        if scalar(v) != Some("WorkloadMap") {
                            return Err(err(
                                v.pos,
                                format!("kind must be WorkloadMap, found {}", v.describe()),
                            ));
                        }
                        kind_ok = true;
                    }
                    Some("workloads") => {
                        let Value::Seq(items) = &v.value else {
                            return Err(err(
                                v.pos,
                                format!("workloads must be a list, found {}", v.describe()),
                            ));
                        };
                        for item in items {
                            out.entries.push(entry(item, &err)?);
                        }
                    }
                    _ => {
                        return Err(err(
                            k.pos,
                            format!(
                                "unknown field {} (apiVersion, kind, workloads)",
                                k.describe()
                            ),
                        ));
                    }
                }
            }
            if !api_ok || !kind_ok {
                return Err(err(
                    doc.root.pos,
                    "a WorkloadMap needs `apiVersion: armlet.io/v1` and `kind: WorkloadMap`"
                        .to_string(),
                ));
            }
        }
        Ok(out)
    }

    /// The entry for a container, if any (first match wins).
    pub fn lookup(&self, name: &str, id: &str, cgroup: &str) -> Option<&MapEntry> {
        self.entries.iter().find(|e| match &e.matches {
            Match::ContainerName(n) => n == name,
            Match::ContainerId(p) => {
                !p.is_empty()
                    && (id.starts_with(p.as_str())
                        || container_id_of(cgroup).is_some_and(|c| c.starts_with(p.as_str())))
            }
            Match::CgroupPath(g) => glob_match(g.as_bytes(), cgroup.as_bytes()),
        })
    }
}

fn entry(
    item: &Node,
    err: &dyn Fn(yaml::Pos, String) -> WorkloadError,
) -> Result<MapEntry, WorkloadError> {
    let m = map_of(item).ok_or_else(|| {
        err(
            item.pos,
            format!("expected a mapping, found {}", item.describe()),
        )
    })?;
    let mut matches = None;
    let mut namespace = None;
    let mut pod = None;
    let mut labels = BTreeMap::new();
    for (k, v) in m {
        match scalar(k) {
            Some("match") => {
                let mm = map_of(v).ok_or_else(|| {
                    err(
                        v.pos,
                        format!("match must be a mapping, found {}", v.describe()),
                    )
                })?;
                if mm.len() != 1 {
                    return Err(err(
                        v.pos,
                        "match needs exactly one of containerName, containerID, cgroupPath"
                            .to_string(),
                    ));
                }
                let (mk, mv) = &mm[0];
                let val = scalar(mv)
                    .ok_or_else(|| {
                        err(
                            mv.pos,
                            format!("expected a string, found {}", mv.describe()),
                        )
                    })?
                    .to_string();
                matches = Some(match scalar(mk) {
                    Some("containerName") => Match::ContainerName(val),
                    Some("containerID") => Match::ContainerId(val),
                    Some("cgroupPath") => Match::CgroupPath(val),
                    _ => {
                        return Err(err(
                            mk.pos,
                            format!(
                                "unknown match {} (containerName, containerID, cgroupPath)",
                                mk.describe()
                            ),
                        ));
                    }
                });
            }
            Some("namespace") => {
                namespace = Some(
                    scalar(v)
                        .ok_or_else(|| {
                            err(v.pos, format!("expected a string, found {}", v.describe()))
                        })?
                        .to_string(),
                );
            }
            Some("pod") => {
                pod = Some(
                    scalar(v)
                        .ok_or_else(|| {
                            err(v.pos, format!("expected a string, found {}", v.describe()))
                        })?
                        .to_string(),
                );
            }
            Some("labels") => {
                let lm = map_of(v).ok_or_else(|| {
                    err(
                        v.pos,
                        format!("labels must be a mapping, found {}", v.describe()),
                    )
                })?;
                for (lk, lv) in lm {
                    match (scalar(lk), scalar(lv)) {
                        (Some(a), Some(b)) => {
                            labels.insert(a.to_string(), b.to_string());
                        }
                        _ => {
                            return Err(err(lk.pos, "labels are `key: value` strings".to_string()));
                        }
                    }
                }
            }
            _ => {
                return Err(err(
                    k.pos,
                    format!(
                        "unknown field {} (match, namespace, pod, labels)",
                        k.describe()
                    ),
                ));
            }
        }
    }
    let matches = matches.ok_or_else(|| err(item.pos, "a workload needs `match`".to_string()))?;
    Ok(MapEntry {
        matches,
        namespace: namespace.unwrap_or_else(|| "default".to_string()),
        pod,
        labels,
    })
}

/// One container the agent knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub namespace: String,
    pub pod: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// cgroup-v2 path (relative to the cgroup-v2 mount), e.g. `/armlet-test/ubuntu-1`.
    pub cgroup: String,
    pub init_pid: u32,
}

impl Container {
    pub fn workload(&self) -> Workload {
        Workload::Container {
            namespace: self.namespace.clone(),
            labels: self.labels.clone(),
        }
    }

    pub fn info(&self) -> WorkloadInfo {
        WorkloadInfo {
            host: false,
            namespace: self.namespace.clone(),
            pod: self.pod.clone().unwrap_or_default(),
            container_id: self.id.clone(),
            container_name: self.name.clone(),
        }
    }

    /// The container's root as a path the agent can open (`/proc/<init pid>/root`).
    pub fn root(&self) -> String {
        format!("/proc/{}/root", self.init_pid)
    }
}

/// A container id in a cgroup path, for the layouts of the common runtimes: containerd
/// (`cri-containerd-<id>.scope`, `/kubepods/.../<id>`), CRI-O (`crio-<id>.scope`), Docker
/// (`docker-<id>.scope`, `/docker/<id>`), Podman (`libpod-<id>.scope`). Ids are 64 hex
/// characters.
pub fn container_id_of(cgroup: &str) -> Option<&str> {
    let hex64 = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    for comp in cgroup.rsplit('/') {
        let c = comp.strip_suffix(".scope").unwrap_or(comp);
        let c = [
            "cri-containerd-",
            "crio-",
            "docker-",
            "libpod-",
            "containerd-",
        ]
        .iter()
        .find_map(|p| c.strip_prefix(p))
        .unwrap_or(c);
        if hex64(c) {
            return Some(c);
        }
    }
    None
}

fn labels_of(s: &str) -> BTreeMap<String, String> {
    s.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// Parse one runc `state.json` into a container (None when it is not running or unreadable).
pub fn from_runc_state(
    json: &str,
    cgroup2_mount: &str,
    map: Option<&WorkloadMap>,
) -> Option<Container> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let id = v.get("id")?.as_str()?.to_string();
    let init_pid = u32::try_from(v.get("init_process_pid")?.as_u64()?).ok()?;
    let paths = v.get("cgroup_paths")?;
    let full = paths
        .get("")
        .or_else(|| paths.get("unified"))
        .and_then(|p| p.as_str())?;
    let cgroup = full
        .strip_prefix(cgroup2_mount.trim_end_matches('/'))
        .unwrap_or(full)
        .to_string();
    let mut annotations = BTreeMap::new();
    if let Some(list) = v
        .get("config")
        .and_then(|c| c.get("labels"))
        .and_then(|l| l.as_array())
    {
        for l in list.iter().filter_map(|l| l.as_str()) {
            if let Some((k, val)) = l.split_once('=') {
                annotations.insert(k.to_string(), val.to_string());
            }
        }
    }
    let name = annotations
        .get("kubearmor.io/container.name")
        .or_else(|| annotations.get("io.kubernetes.container.name"))
        .cloned()
        .unwrap_or_else(|| id.clone());
    let mut c = Container {
        namespace: annotations
            .get("armlet.io/namespace")
            .or_else(|| annotations.get("io.kubernetes.pod.namespace"))
            .cloned()
            .unwrap_or_else(|| "default".to_string()),
        pod: annotations.get("io.kubernetes.pod.name").cloned(),
        labels: annotations
            .get("armlet.io/labels")
            .map(|s| labels_of(s))
            .unwrap_or_default(),
        id,
        name,
        cgroup,
        init_pid,
    };
    if let Some(e) = map.and_then(|m| m.lookup(&c.name, &c.id, &c.cgroup)) {
        c.namespace = e.namespace.clone();
        if e.pod.is_some() {
            c.pod = e.pod.clone();
        }
        c.labels.extend(e.labels.clone());
    }
    Some(c)
}

/// Every running container in the runc state roots (bounded), sorted by id.
pub fn discover(
    roots: &[PathBuf],
    cgroup2_mount: &str,
    map: Option<&WorkloadMap>,
) -> Vec<Container> {
    let mut out = Vec::new();
    for root in roots {
        let Ok(dir) = std::fs::read_dir(root) else {
            continue;
        };
        for e in dir.flatten() {
            if out.len() >= MAX_CONTAINERS {
                break;
            }
            let Ok(text) = std::fs::read_to_string(e.path().join("state.json")) else {
                continue;
            };
            if let Some(c) = from_runc_state(&text, cgroup2_mount, map)
                && Path::new(&format!("/proc/{}/root", c.init_pid)).exists()
            {
                out.push(c);
            }
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// One row of the `--workloads-file` table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableRow {
    pub container_name: String,
    pub container_id: String,
    pub namespace: String,
    pub pod: String,
    pub labels: BTreeMap<String, String>,
    pub cgroup: String,
    pub cgroup_id: u64,
    pub rules: usize,
    pub enforced: bool,
}

/// Write the table atomically (a temporary file renamed over the target).
pub fn write_table(path: &Path, rows: &[TableRow]) -> Result<(), WorkloadError> {
    let werr = |source| WorkloadError::Write {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let body = serde_json::to_vec_pretty(rows).map_err(|e| werr(std::io::Error::other(e)))?;
    std::fs::write(&tmp, body).map_err(werr)?;
    std::fs::rename(&tmp, path).map_err(werr)
}

/// The cgroup id (the inode of its cgroup-v2 directory), 0 when unknown.
pub fn cgroup_id(cgroup2_mount: &str, cgroup: &str) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(format!("{}{cgroup}", cgroup2_mount.trim_end_matches('/')))
        .map(|m| m.ino())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_files_parse_and_match() {
        let m = WorkloadMap::parse(
            "m.yaml",
            "apiVersion: armlet.io/v1\nkind: WorkloadMap\nworkloads:\n- match: {containerName: ubuntu-1}\n  namespace: github\n  pod: ubuntu-1-deployment\n  labels: {container: ubuntu-1}\n- match: {cgroupPath: /kubepods/**}\n  namespace: k8s\n",
        )
        .unwrap();
        assert_eq!(m.entries.len(), 2);
        let e = m.lookup("ubuntu-1", "x", "/armlet/ubuntu-1").unwrap();
        assert_eq!(e.namespace, "github");
        assert_eq!(
            e.labels.get("container").map(String::as_str),
            Some("ubuntu-1")
        );
        assert_eq!(
            m.lookup("z", "y", "/kubepods/a/b").unwrap().namespace,
            "k8s"
        );
        assert!(m.lookup("z", "y", "/other").is_none());
    }

    #[test]
    fn mapping_errors_have_positions() {
        let e = WorkloadMap::parse(
            "m.yaml",
            "apiVersion: armlet.io/v1\nkind: WorkloadMap\nworkloads:\n- match: {podName: x}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("m.yaml:4:11: unknown match"), "{e}");
        let e = WorkloadMap::parse("m.yaml", "kind: Other\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("m.yaml:1:7: kind must be WorkloadMap"), "{e}");
    }

    #[test]
    fn runc_state_gives_identity() {
        let json = r#"{"id":"ubuntu-1","init_process_pid":4242,"cgroup_paths":{"":"/sys/fs/cgroup/unified/armlet-test/ubuntu-1","memory":"/sys/fs/cgroup/memory/x"},"config":{"labels":["armlet.io/namespace=multiubuntu","armlet.io/labels=container=ubuntu-1,tier=web","kubearmor.io/container.name=ubuntu-1","bundle=/b"]}}"#;
        let c = from_runc_state(json, "/sys/fs/cgroup/unified", None).unwrap();
        assert_eq!(c.cgroup, "/armlet-test/ubuntu-1");
        assert_eq!(c.namespace, "multiubuntu");
        assert_eq!(c.labels.len(), 2);
        assert_eq!(c.init_pid, 4242);
        let m = WorkloadMap::parse(
            "m",
            "apiVersion: armlet.io/v1\nkind: WorkloadMap\nworkloads:\n- match: {containerID: ubun}\n  namespace: github\n",
        )
        .unwrap();
        let c = from_runc_state(json, "/sys/fs/cgroup/unified", Some(&m)).unwrap();
        assert_eq!(c.namespace, "github");
    }

    #[test]
    fn cgroup_layouts_name_container_ids() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        for path in [
            format!("/system.slice/docker-{id}.scope"),
            format!("/kubepods.slice/kubepods-besteffort.slice/cri-containerd-{id}.scope"),
            format!("/kubepods/besteffort/pod1234/{id}"),
            format!("/machine.slice/libpod-{id}.scope"),
            format!("/kubepods.slice/crio-{id}.scope"),
            format!("/docker/{id}"),
        ] {
            assert_eq!(container_id_of(&path), Some(id), "{path}");
        }
        assert_eq!(container_id_of("/user.slice/session-1.scope"), None);
    }
}
