//! `run.json`: what ran where and when in a run directory, and which capture saw what. The
//! swarm writes it; the analyzer reads it to name the tracker, the source and the vantage
//! points.

use serde::{Deserialize, Serialize};

use crate::truth::Role;

/// Where the daemons run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Network namespaces when root and iproute2 are there, loopback otherwise. Also what a
    /// run.json without `mode` reads as.
    #[default]
    Auto,
    /// One network namespace per host on a bridge, 198.18.0.0/15 (needs root and iproute2).
    Netns,
    /// Processes on 127.0.0.0/8 addresses of this machine's loopback.
    Loopback,
    /// The daemons' cores in soplab's deterministic virtual-time network, in one process: no
    /// sockets, no root, minutes of streaming in seconds; the netns addresses, and one capture
    /// of every datagram as the bridge would see it. Never picked by `auto`.
    Virtual,
}

/// One host of the run, for run.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    pub name: String,
    /// A host listed without a role reads as a peer: it names neither tracker nor source.
    #[serde(default = "role_when_absent")]
    pub role: Role,
    #[serde(default)]
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    #[serde(default)]
    pub vantage: bool,
    /// Whether the peer follows the workload (false: on for the whole run).
    #[serde(default)]
    pub churned: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_bps: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_bps: Option<u64>,
    /// One-way delay (µs) the peers' I/O shells on this host add to what they send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_us: Option<u64>,
    /// Bound (µs) of the uniform random extra delay per datagram on top of `delay_us`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_us: Option<u64>,
}

fn role_when_absent() -> Role {
    Role::Peer
}

/// run.json: what ran where, when, and which capture saw what. Fields a reader can do without
/// read as zero or empty when absent, so that hand-written files load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    #[serde(default)]
    pub mode: Mode,
    /// The per-run prefix of namespaces (netns mode).
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub started_us: u64,
    /// Time zero of the peers and of the workload schedule (µs since the Unix epoch).
    #[serde(default)]
    pub epoch_us: u64,
    #[serde(default)]
    pub ended_us: u64,
    #[serde(default)]
    pub duration_s: f64,
    #[serde(default)]
    pub interrupted: bool,
    /// Seconds to create (and to remove) every namespace, link and qdisc.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns_setup_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns_teardown_s: Option<f64>,
    /// Stale namespaces of killed runs removed at start.
    #[serde(default)]
    pub swept: Vec<String>,
    #[serde(default)]
    pub hosts: Vec<HostInfo>,
    #[serde(default)]
    pub pcaps: Vec<CaptureInfo>,
    /// The workload file the churned peers followed (relative to the run directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// The workload's preset (`event`, `non-event`, ...), when it was one rather than a file:
    /// the model whose parameters `soplab validate` expects the captures to recover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_preset: Option<String>,
    /// How much faster than the model's real time the workload was played (`--time-scale`;
    /// 1 when not compressed): durations measured from the captures are multiplied by it to
    /// compare with the model, and the session gap is divided by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_scale: Option<f64>,
    /// The faults injected (`soplab swarm --fault`), in the order given, with what was done
    /// when.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultInfo>,
    /// Daemons that failed (exited early, or not cleanly when stopped), and why; none in a
    /// good run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Failure>,
}

/// One fault of a run, for run.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultInfo {
    /// The fault as `--fault` takes it, e.g. `kill-peers:at=75s,process=1`.
    pub spec: String,
    /// What was done, in order, each when it happened.
    #[serde(default)]
    pub actions: Vec<FaultAction>,
    /// The peers the fault took down for good (`kill-peers`), `ip:port` each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
}

/// One step of a fault: a signal sent to a daemon, or a daemon started again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultAction {
    /// `sigkill`, `sigstop`, `sigcont` or `restart`.
    pub action: String,
    /// The process: `tracker`, `source` or `peers-<k>` (as its log is named).
    pub target: String,
    /// When it was done: CLOCK_REALTIME microseconds, as the truth's `ts_us`.
    pub ts_us: u64,
    /// Why it could not be done, if it failed (the process had already exited, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A daemon that failed during a run, for run.json: the run was stopped early (or ended
/// without that daemon's clean exit), and this says which daemon and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The daemon's name in the run (`tracker`, `source`, `peers-<k>`).
    pub daemon: String,
    /// How it ended (`exit status: 1`, `killed after the grace period`, ...).
    pub status: String,
    /// The error it printed last (its log's last `error: ` line), or what was seen of it.
    pub error: String,
    /// Its log, relative to the run directory.
    pub log: String,
}

/// What a capture file holds, for run.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureInfo {
    /// Path relative to the run directory.
    pub file: String,
    /// `bridge`, or the host's name (`peer-<ip>-<port>`).
    #[serde(default)]
    pub host: String,
    /// The host's address (`ip:port` of the peer), none for the bridge.
    pub address: Option<String>,
    #[serde(default)]
    pub netns: String,
    #[serde(default)]
    pub interface: String,
    #[serde(default)]
    pub packets: u64,
    /// What tcpdump reported on exit: packets the kernel dropped before tcpdump read them.
    pub dropped_by_kernel: Option<u64>,
}
