//! Every command-line definition of the `armlet` binary, in one place.
//!
//! Why one file: shell completions and the man page (a later issue) are generated from the
//! same `clap::Command`, and reviewers can see the whole user surface at once. This module only
//! *describes* arguments; each `cmd::*` module turns them into a validated configuration and
//! does the work (the two-stage CLI of ripgrep/vector), so behaviour is testable without a shell.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use crate::transport::link::ProtocolChoice;

/// armlet: a runtime-security agent for edge and 5G Linux nodes.
#[derive(Debug, Parser)]
#[command(name = "armlet", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once per process; boxing would only add noise to dispatch"
)]
pub enum Command {
    /// Check and compile KubeArmor-compatible policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Generate an Ed25519 key pair for the root or the policy-signing role.
    Keygen(KeygenArgs),
    /// Create and rotate the trust root that nodes verify bundles against.
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Build, sign, verify and inspect signed policy bundles.
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// Run the agent on this node: verify the policy, choose the enforcer, enforce, alert.
    Run(RunArgs),
    /// Show what this host supports and which enforcer armlet would choose, and why.
    Probe(ProbeArgs),
    /// Push a signed bundle to a node or a group over MQTT and wait for the outcome.
    Push(PushArgs),
    /// Read alerts from MQTT.
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// Fleet views from MQTT.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Measure the alert transport (prints figures).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Print version, git revision, target and enforcers compiled in.
    Version,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate policy files (files or directories, recursively). Exit 1 on any problem.
    Check(PolicyCheckArgs),
    /// Compile policies to the rule IR and report what an enforcer must downgrade.
    Compile(PolicyCompileArgs),
    /// Precompile the AppArmor profiles a node will generate into binary policy (build side,
    /// with apparmor_parser), for nodes without a parser (`armlet run --apparmor-precompiled`).
    Apparmor(PolicyAppArmorArgs),
}

#[derive(Debug, Args)]
pub struct PolicyAppArmorArgs {
    /// Directory for the binary policy files (created; one file per profile text).
    #[arg(long)]
    pub out: PathBuf,
    /// The node's name (host policies select nodes by it), as `armlet run --node`.
    #[arg(long)]
    pub node: String,
    /// The node's extra labels (k=v,k2=v2), as `armlet run --labels`.
    #[arg(long, default_value = "")]
    pub labels: String,
    /// The node's WorkloadMap: a profile for each container it names.
    #[arg(long)]
    pub workloads: Option<PathBuf>,
    /// Default posture, as `armlet run --default-posture` (a bundle's is compiled in).
    #[arg(long, default_value = "audit")]
    pub default_posture: String,
    /// The node kernel's AppArmor features (`aa-features-abi -x -w FILE` on the node);
    /// default: this machine's kernel.
    #[arg(long)]
    pub features_file: Option<PathBuf>,
    /// Policy files or directories (the ones the bundle is built from).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PolicyCheckArgs {
    /// Policy files or directories (searched recursively for *.yaml / *.yml).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// The enforcers of DESIGN §5, as the CLI names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnforcerArg {
    #[value(name = "bpf-lsm")]
    BpfLsm,
    #[value(name = "apparmor")]
    AppArmor,
    #[value(name = "fanotify")]
    Fanotify,
    #[value(name = "audit")]
    Audit,
}

#[derive(Debug, Args)]
pub struct PolicyCompileArgs {
    /// Enforcer to compile for; its support table decides what is downgraded.
    #[arg(long, value_enum, default_value = "bpf-lsm")]
    pub enforcer: EnforcerArg,
    /// Print the IR and the downgrade report as one stable JSON document.
    #[arg(long)]
    pub json: bool,
    /// Default posture: block, audit or allow, or per category (file=block,network=audit,...).
    /// KubeArmor's default is audit.
    #[arg(long, default_value = "audit")]
    pub default_posture: String,
    /// Policy files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Key roles of the trust model (DESIGN §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Root,
    Policy,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Which role the key is for (recorded in the key files).
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// Output prefix: writes PREFIX.key (mode 0600) and PREFIX.pub.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Create trust root version 1, signed by a threshold of the root keys.
    Init(TrustInitArgs),
    /// Rotate the trust root N -> N+1 (signed by a threshold of the old AND the new root keys).
    Rotate(TrustRotateArgs),
    /// Show a trust root as JSON.
    Inspect(TrustInspectArgs),
}

#[derive(Debug, Args)]
pub struct TrustInitArgs {
    /// Root public keys (PREFIX.pub files).
    #[arg(long = "root", required = true, num_args = 1..)]
    pub roots: Vec<PathBuf>,
    /// How many root signatures a root rotation needs.
    #[arg(long)]
    pub threshold: u8,
    /// Policy-signing public keys delegated to by this root.
    #[arg(long = "policy-key", required = true, num_args = 1..)]
    pub policy_keys: Vec<PathBuf>,
    /// How many policy-key signatures a bundle needs.
    #[arg(long, default_value_t = 1)]
    pub policy_threshold: u8,
    /// When this root expires: an RFC 3339 date/time or a duration from now ("365d").
    #[arg(long)]
    pub expires: String,
    /// Root secret keys to sign with (at least `threshold` of them).
    #[arg(long = "sign-with", required = true, num_args = 1..)]
    pub sign_with: Vec<PathBuf>,
    /// Output file.
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct TrustRotateArgs {
    /// The current trust root (version N).
    #[arg(long)]
    pub from: PathBuf,
    /// Root public keys of version N+1.
    #[arg(long = "root", required = true, num_args = 1..)]
    pub roots: Vec<PathBuf>,
    /// Root threshold of version N+1.
    #[arg(long)]
    pub threshold: u8,
    /// Policy-signing public keys of version N+1.
    #[arg(long = "policy-key", required = true, num_args = 1..)]
    pub policy_keys: Vec<PathBuf>,
    /// Policy threshold of version N+1.
    #[arg(long, default_value_t = 1)]
    pub policy_threshold: u8,
    /// Expiry of version N+1 (RFC 3339 or a duration from now).
    #[arg(long)]
    pub expires: String,
    /// Secret keys to sign with: a threshold of the old root keys and of the new ones.
    #[arg(long = "sign-with", required = true, num_args = 1..)]
    pub sign_with: Vec<PathBuf>,
    /// Output file (the signed root N+1).
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct TrustInspectArgs {
    /// A trust root file.
    pub file: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Compile policies and sign them into a bundle.
    Build(BundleBuildArgs),
    /// Add a signature to an existing bundle (for policy thresholds above one).
    Sign(BundleSignArgs),
    /// Run every node-side check and record the accepted serial and time floor.
    Verify(BundleVerifyArgs),
    /// Print a bundle's manifest as JSON (no verification).
    Inspect(BundleInspectArgs),
}

#[derive(Debug, Args)]
pub struct BundleBuildArgs {
    /// Serial number; nodes accept only strictly increasing serials.
    #[arg(long)]
    pub serial: u64,
    /// Expiry: an RFC 3339 date/time or a duration from now ("30d", "12h").
    #[arg(long)]
    pub expires: String,
    /// Scope: fleet (default), node=NAME, group=G, or labels=k=v,k2=v2.
    #[arg(long, default_value = "fleet")]
    pub scope: String,
    /// Default posture compiled into the bundle: block, audit or allow, or per category
    /// (file=block,network=audit,...). KubeArmor's default is audit.
    #[arg(long, default_value = "audit")]
    pub default_posture: String,
    /// Minimum agent version that may apply this bundle (MAJOR.MINOR.PATCH).
    #[arg(long)]
    pub min_agent_version: Option<String>,
    /// Policy-signing secret key(s).
    #[arg(long = "key", required = true, num_args = 1..)]
    pub keys: Vec<PathBuf>,
    /// Signed root rotations to embed (N+1, N+2, ...) so nodes that know an older root can follow.
    #[arg(long = "root-chain")]
    pub root_chain: Vec<PathBuf>,
    /// Output file.
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
    /// Policy files or directories.
    #[arg(required = true)]
    pub policies: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BundleSignArgs {
    /// Policy-signing secret key.
    #[arg(long)]
    pub key: PathBuf,
    /// The bundle to sign in place (or write to --out).
    pub file: PathBuf,
    /// Write the result here instead of in place.
    #[arg(short = 'o', long = "out")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BundleVerifyArgs {
    /// The trust root shipped with the node image.
    #[arg(long)]
    pub trust: PathBuf,
    /// The node's state directory (highest serial, time floor, rotated roots).
    #[arg(long)]
    pub state: PathBuf,
    /// This node's name.
    #[arg(long)]
    pub node: String,
    /// This node's labels, k=v,k2=v2 (group scope matches the label armlet.io/group).
    #[arg(long, default_value = "")]
    pub labels: String,
    /// The bundle file.
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct BundleInspectArgs {
    /// The bundle file.
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Skip the functional probe (loading and attaching the BPF-LSM programs; needs root).
    #[arg(long)]
    pub no_load: bool,
    /// Print one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Print what each enforcer needs from the host (capabilities, mounts) as JSON; no probing.
    #[arg(long)]
    pub requirements: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A signed bundle to enforce (needs --trust).
    #[arg(long, conflicts_with = "policies")]
    pub bundle: Option<PathBuf>,
    /// Trust root for --bundle.
    #[arg(long, requires = "bundle")]
    pub trust: Option<PathBuf>,
    /// State directory for --bundle (serial and time floor).
    #[arg(long, default_value = "/var/lib/armlet")]
    pub state: PathBuf,
    /// A directory of unsigned local policies (needs --insecure-dev).
    #[arg(long)]
    pub policies: Option<PathBuf>,
    /// Accept unsigned local policies. Logs a warning at every start; never for production.
    #[arg(long)]
    pub insecure_dev: bool,
    /// This node's name (defaults to the kernel hostname).
    #[arg(long)]
    pub node: Option<String>,
    /// This node's labels, k=v,k2=v2.
    #[arg(long, default_value = "")]
    pub labels: String,
    /// Enforcer to use instead of the best one the host allows.
    #[arg(long, value_enum)]
    pub enforcer: Option<EnforcerArg>,
    /// Default posture for --policies: block, audit or allow, or per category.
    #[arg(long, default_value = "audit")]
    pub default_posture: String,
    /// Also write alerts (JSON lines) to this file, rotated by size.
    #[arg(long)]
    pub alerts_file: Option<PathBuf>,
    /// Rotate --alerts-file when it reaches this many bytes.
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    pub alerts_max_bytes: u64,
    /// How many rotated alert files to keep (FILE.1 ... FILE.N).
    #[arg(long, default_value_t = 5)]
    pub alerts_keep: u32,
    /// Alerts per second per workload and priority, counted in the kernel (rule matches and
    /// default-posture alerts have separate budgets, so posture noise never starves policy
    /// alerts); beyond it alerts are dropped and counted, decisions never change. 0 = no limit.
    #[arg(long, default_value_t = 200)]
    pub alerts_per_sec: u32,
    /// Create this file once the policy is enforced (for supervisors and test runners).
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Confine only the tasks in this cgroup-v2 subtree as the host workload (a path below the
    /// cgroup-v2 mount, or a cgroup path like /armlet-test); everything else is left alone.
    /// fanotify only. For tests on shared machines; never the root cgroup.
    #[arg(long)]
    pub scope_cgroup: Option<String>,
    /// A WorkloadMap (YAML, apiVersion armlet.io/v1) naming containers: namespace, pod and
    /// labels by container name, id prefix or cgroup path glob.
    #[arg(long)]
    pub workloads: Option<PathBuf>,
    /// Write the current workload table here (JSON, replaced atomically on every change):
    /// container name, id, namespace, labels, cgroup, rules in force, enforced.
    #[arg(long)]
    pub workloads_file: Option<PathBuf>,
    /// AppArmor without a parser on the node: load the binary policy `armlet policy apparmor`
    /// wrote to DIR (never apparmor_parser, even where it is installed). A profile whose text
    /// has no binary there is refused and the previous one stays in force.
    #[arg(long, value_name = "DIR")]
    pub apparmor_precompiled: Option<PathBuf>,
    #[command(flatten)]
    pub mqtt: MqttRunArgs,
}

/// How to reach the broker (shared by `run`, `push`, `alerts tail`, `fleet status`).
#[derive(Debug, Clone, Args)]
pub struct BrokerArgs {
    /// Broker URL: mqtts://HOST[:PORT] (TLS, default port 8883) or mqtt://HOST[:PORT] (plain
    /// TCP, only with --mqtt-insecure-plain).
    #[arg(long = "mqtt-broker", visible_alias = "broker")]
    pub broker: Option<String>,
    /// The broker's CA certificate (PEM), the only one trusted (pinned).
    #[arg(long = "mqtt-ca", value_parser = path_or_empty)]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; its CN is the client identity.
    #[arg(long = "mqtt-cert", value_parser = path_or_empty)]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM).
    #[arg(long = "mqtt-key", value_parser = path_or_empty)]
    pub key: Option<PathBuf>,
    /// Allow a plain-TCP mqtt:// broker (no encryption, no authentication): tests only.
    #[arg(long = "mqtt-insecure-plain")]
    pub insecure_plain: bool,
    /// MQTT version: 5 where the broker offers it and 3.1.1 otherwise (auto), or only one.
    #[arg(long = "mqtt-protocol", value_enum, default_value_t = ProtocolChoice::Auto)]
    pub protocol: ProtocolChoice,
    /// Fleet name (the topic level after armlet/v1/).
    #[arg(long, default_value = "default")]
    pub fleet: String,
}

/// A path that may be given empty (`--mqtt-ca=` from a packaged configuration whose key is
/// unset); clap's own path parser refuses an empty value.
fn path_or_empty(s: &str) -> Result<PathBuf, std::convert::Infallible> {
    Ok(PathBuf::from(s))
}

impl MqttRunArgs {
    /// The same options with empty values taken as absent. Packaged configurations pass every
    /// key (`--mqtt-broker=${ARMLET_MQTT_BROKER}` in the systemd unit and the DaemonSet), so an
    /// empty broker means "no MQTT" and an empty CA, certificate, key or group means "not set".
    pub fn without_empty(&self) -> MqttRunArgs {
        fn s(v: &Option<String>) -> Option<String> {
            v.clone().filter(|x| !x.is_empty())
        }
        fn p(v: &Option<PathBuf>) -> Option<PathBuf> {
            v.clone().filter(|x| !x.as_os_str().is_empty())
        }
        let mut m = self.clone();
        m.broker.broker = s(&self.broker.broker);
        m.broker.ca = p(&self.broker.ca);
        m.broker.cert = p(&self.broker.cert);
        m.broker.key = p(&self.broker.key);
        m.group = s(&self.group);
        m.spool_dir = p(&self.spool_dir);
        m
    }
}

/// MQTT options of `armlet run`.
#[derive(Debug, Clone, Args)]
pub struct MqttRunArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// Also receive fleet-wide pushes for this group (armlet/v1/FLEET/group/G/bundle).
    #[arg(long = "mqtt-group")]
    pub group: Option<String>,
    /// Alert spool directory (default: STATE/spool).
    #[arg(long, value_parser = path_or_empty)]
    pub spool_dir: Option<PathBuf>,
    /// Most bytes the spool may use on disk.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub spool_max_bytes: u64,
    /// Seconds over which identical alerts are merged into one with a count (0: never).
    #[arg(long, default_value_t = 10)]
    pub aggregate_secs: u64,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// The node to push to.
    #[arg(long, conflicts_with = "group", required_unless_present = "group")]
    pub node: Option<String>,
    /// The group to push to (every node started with --mqtt-group G).
    #[arg(long)]
    pub group: Option<String>,
    /// How long to wait for the node's status (or, for a group, to collect outcomes).
    #[arg(long, default_value = "30s")]
    pub timeout: humantime::Duration,
    /// The signed bundle.
    pub bundle: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Decode alert batches into KubeArmor-style JSON lines; report sequence gaps and duplicates.
    Tail(AlertsTailArgs),
}

#[derive(Debug, Args)]
pub struct AlertsTailArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// Only this node's alerts.
    #[arg(long)]
    pub node: Option<String>,
    /// Print JSON lines (default: one short line per alert).
    #[arg(long)]
    pub json: bool,
    /// A persistent session name: the broker keeps alerts for it while it is away.
    #[arg(long)]
    pub session: Option<String>,
    /// MQTT 5: how long the broker keeps the --session while this consumer is away (3.1.1
    /// brokers keep it until they drop it themselves).
    #[arg(long, default_value = "7d")]
    pub session_expiry: humantime::Duration,
    /// Stop after this many alerts.
    #[arg(long)]
    pub max: Option<u64>,
    /// Stop after this long.
    #[arg(long)]
    pub timeout: Option<humantime::Duration>,
}

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// One line per node from the retained status messages.
    Status(FleetStatusArgs),
}

#[derive(Debug, Args)]
pub struct FleetStatusArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// How long to collect retained status messages.
    #[arg(long, default_value = "2s")]
    pub wait: humantime::Duration,
    /// Print the status documents as JSON lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Alerts through aggregate -> encode -> spool with no broker; bytes per alert; spool
    /// append and recovery times; RSS after the run.
    Mqtt(BenchMqttArgs),
}

#[derive(Debug, Args)]
pub struct BenchMqttArgs {
    /// Alerts to push through.
    #[arg(long, default_value_t = 1_000_000)]
    pub alerts: u64,
    /// Spool directory (default: a fresh temporary directory, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// fdatasync every append (the agent's default).
    #[arg(long)]
    pub sync: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(extra: &[&str]) -> RunArgs {
        let mut argv = vec!["armlet", "run", "--bundle", "b", "--trust", "t"];
        argv.extend_from_slice(extra);
        match Cli::parse_from(argv).command {
            Command::Run(r) => r,
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn empty_mqtt_values_from_packaged_configs_mean_absent() {
        let r = run_args(&[
            "--mqtt-broker=",
            "--mqtt-ca=",
            "--mqtt-cert=",
            "--mqtt-key=",
            "--mqtt-group=",
            "--spool-dir=",
        ]);
        let m = r.mqtt.without_empty();
        assert!(m.broker.broker.is_none() && m.broker.ca.is_none());
        assert!(m.broker.cert.is_none() && m.broker.key.is_none());
        assert!(m.group.is_none() && m.spool_dir.is_none());
    }

    #[test]
    fn set_mqtt_values_are_kept() {
        let r = run_args(&[
            "--mqtt-broker=mqtts://b:8883",
            "--mqtt-ca=/ca.pem",
            "--mqtt-group=edge",
        ]);
        let m = r.mqtt.without_empty();
        assert_eq!(m.broker.broker.as_deref(), Some("mqtts://b:8883"));
        assert_eq!(m.broker.ca, Some(PathBuf::from("/ca.pem")));
        assert_eq!(m.group.as_deref(), Some("edge"));
    }
}
