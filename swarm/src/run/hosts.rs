//! The host plan of a run: every daemon's address, which peers share a host (one network
//! namespace each in netns mode; vantage peers always alone), the link rates each host draws,
//! and which peers churn on which schedule; and the namespaces built from it.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use anyhow::{Result, bail};
use rand::SeedableRng;
use soplab_node::impair::Impairment;
use soplab_rundir::plan::Plan;
use soplab_rundir::run::HostInfo;
use soplab_rundir::stem::host_stem;
use soplab_rundir::truth::Role;
use soplab_shell::flags::micros;

use super::Swarm;
use super::dir::RunDir;
use crate::netns::{self, Host, Topology};
use crate::scenario::{Mode, SwarmConfig};
use crate::workload::Schedule;

/// Where everything of a run is.
pub(super) struct HostPlan {
    /// `soplab-<pid>`: the names of this run's namespaces start with it.
    pub prefix: String,
    pub addrs: Plan,
    /// The tracker's host, the source's, then the peers'.
    pub hosts: Vec<Host>,
    /// Index in `hosts` of each peer's host.
    pub host_of_peer: Vec<usize>,
    /// The churn of the non-vantage peers, if any.
    pub schedule: Option<Schedule>,
    mode: Mode,
}

/// What a peer's host does to what the peer sends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct PeerLink {
    /// Its upload rate: tc tbf on the host in netns mode, the core's own cap in virtual time.
    pub upload_bps: Option<u64>,
    /// Delay, jitter and loss: the peer's I/O shell, or the virtual network's path model.
    pub path: Impairment,
}

/// `hosts` index of the tracker's host, and of the source's.
pub(super) const TRACKER_HOST: usize = 0;
pub(super) const SOURCE_HOST: usize = 1;

impl HostPlan {
    /// Plans the run's hosts, drawing their rates from the run's seed, and reads or samples the
    /// workload (saved as workload.csv).
    pub fn new(cfg: &SwarmConfig, dir: &RunDir) -> Result<HostPlan> {
        let prefix = netns::run_prefix();
        let addrs = match cfg.mode {
            Mode::Netns | Mode::Virtual => Plan::netns(),
            Mode::Loopback | Mode::Auto => Plan::for_run(std::process::id()),
        };
        let schedule = churn_schedule(cfg, dir)?;
        let mut hosts = vec![
            Host {
                ns: format!("{prefix}-tracker"),
                port: "t".into(),
                addrs: vec![ip4(addrs.tracker)],
                up_bps: None,
                down_bps: None,
            },
            Host {
                ns: format!("{prefix}-source"),
                port: "s".into(),
                addrs: vec![ip4(addrs.source)],
                up_bps: cfg.source_upload,
                down_bps: None,
            },
        ];
        let host_of_peer = plan_peer_hosts(cfg, &prefix, &addrs, &mut hosts);
        Ok(HostPlan { prefix, addrs, hosts, host_of_peer, schedule, mode: cfg.mode })
    }

    /// The namespace of host `h` in netns mode; `None` otherwise.
    pub fn netns_of(&self, h: usize) -> Option<&str> {
        (self.mode == Mode::Netns).then(|| self.hosts[h].ns.as_str())
    }

    /// What peer `k`'s host does to what it sends. Every mode reads a peer's link settings here
    /// and only here.
    pub fn peer_link(&self, cfg: &SwarmConfig, k: usize) -> PeerLink {
        let host = &self.hosts[self.host_of_peer[k]];
        PeerLink {
            upload_bps: host.up_bps,
            path: Impairment { delay: micros(cfg.delay), jitter: micros(cfg.jitter), loss: cfg.loss },
        }
    }

    /// The namespace of peer `k`'s host in netns mode; `None` on loopback.
    pub fn netns_of_peer(&self, k: usize) -> Option<&str> {
        self.netns_of(self.host_of_peer[k])
    }

    /// run.json's hosts: the tracker, the source, then every peer; rates only where they were
    /// applied (netns mode: both; virtual time: the upload rate, by the cores).
    pub fn infos(&self, cfg: &SwarmConfig) -> Vec<HostInfo> {
        let netns = |h: usize| self.netns_of(h).map(str::to_string);
        let up = |r: Option<u64>| matches!(self.mode, Mode::Netns | Mode::Virtual).then_some(r).flatten();
        let down = |r: Option<u64>| (self.mode == Mode::Netns).then_some(r).flatten();
        let mut v = vec![
            HostInfo {
                name: "tracker".into(),
                role: Role::Tracker,
                address: self.addrs.tracker.to_string(),
                netns: netns(TRACKER_HOST),
                vantage: false,
                churned: false,
                upload_bps: None,
                download_bps: None,
            },
            HostInfo {
                name: "source".into(),
                role: Role::Source,
                address: self.addrs.source.to_string(),
                netns: netns(SOURCE_HOST),
                vantage: false,
                churned: false,
                upload_bps: up(self.hosts[SOURCE_HOST].up_bps),
                download_bps: None,
            },
        ];
        for (k, &h) in self.host_of_peer.iter().enumerate() {
            let a = self.addrs.peer(k);
            v.push(HostInfo {
                name: host_stem(a.into()),
                role: Role::Peer,
                address: a.to_string(),
                netns: netns(h),
                vantage: k < cfg.vantage,
                churned: self.schedule.is_some() && k >= cfg.vantage,
                upload_bps: up(self.hosts[h].up_bps),
                download_bps: down(self.hosts[h].down_bps),
            });
        }
        v
    }
}

fn ip4(a: SocketAddr) -> Ipv4Addr {
    match a {
        SocketAddr::V4(v) => *v.ip(),
        SocketAddr::V6(_) => unreachable!("soplab plans IPv4 addresses only"),
    }
}

/// Appends the peers' hosts to `hosts` (vantage peers one per host, the others
/// `cfg.peers_per_host` to a host) and returns each peer's host index.
fn plan_peer_hosts(cfg: &SwarmConfig, prefix: &str, addrs: &Plan, hosts: &mut Vec<Host>) -> Vec<usize> {
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(cfg.seed ^ 0x11_4b5);
    let mut host_of_peer = Vec::with_capacity(cfg.peers);
    let mut i = 0;
    while i < cfg.peers {
        let n = if i < cfg.vantage { 1 } else { cfg.peers_per_host.min(cfg.peers - i) };
        let j = hosts.len() - 2;
        hosts.push(Host {
            ns: format!("{prefix}-p{j}"),
            port: format!("p{j}"),
            addrs: (i..i + n).map(|k| *addrs.peer(k).ip()).collect(),
            up_bps: cfg.upload.as_ref().map(|d| d.sample(j, &mut rng)),
            down_bps: cfg.download.as_ref().map(|d| d.sample(j, &mut rng)),
        });
        host_of_peer.extend(std::iter::repeat_n(hosts.len() - 1, n));
        i += n;
    }
    host_of_peer
}

/// The workload's schedule, whose clients are the non-vantage peers, saved as workload.csv.
/// The peers follow the schedule as the file records it (times to the millisecond), not the
/// generator's unrounded one: a session under 1 ms is empty in the file, so no peer plays it.
fn churn_schedule(cfg: &SwarmConfig, dir: &RunDir) -> Result<Option<Schedule>> {
    let Some(w) = &cfg.workload else { return Ok(None) };
    let churned = cfg.peers - cfg.vantage;
    let sch = crate::workload::preset_or_file(w, cfg.duration.as_secs_f64(), cfg.seed, Some(churned), cfg.time_scale)?;
    let clients = sch.sessions.iter().map(|x| x.client as usize + 1).max().unwrap_or(0);
    if clients > churned {
        bail!(
            "the workload has {clients} clients but only {churned} peers can churn ({} peers, {} vantage): \
             raise --peers to {}",
            cfg.peers,
            cfg.vantage,
            clients + cfg.vantage
        );
    }
    let file = dir.out.join("workload.csv");
    sch.write_csv(&file)?;
    Ok(Some(Schedule::read_csv(&file)?))
}

impl Swarm<'_> {
    /// In netns mode, creates every host's namespace, link and qdisc; returns how long that
    /// took. The topology is kept even when creation fails half-way, so the stop phase removes
    /// what was made.
    pub(super) fn make_namespaces(&mut self) -> Result<Option<f64>> {
        if self.hosts.mode != Mode::Netns {
            return Ok(None);
        }
        let t = Instant::now();
        let hosts = &self.hosts.hosts;
        self.started.topology.insert(Topology::new(&self.hosts.prefix, hosts.clone())).create()?;
        let took = t.elapsed().as_secs_f64();
        eprintln!(
            "soplab: {} namespaces (hub, tracker, source, {} peer hosts) ready in {took:.2} s",
            hosts.len() + 1,
            hosts.len() - 2
        );
        Ok(Some(took))
    }
}
