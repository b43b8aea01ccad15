//! The host plan of a run: every daemon's address, which peers share a host (one network
//! namespace each in netns mode; vantage peers always alone), the link rates and delays each
//! host draws, and which peers churn on which schedule; and the namespaces built from it.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use anyhow::{Result, bail};
use rand::SeedableRng;
use soplab_node::impair::Impairment;
use soplab_rundir::plan::Plan;
use soplab_rundir::run::HostInfo;
use soplab_rundir::stem::host_stem;
use soplab_rundir::truth::Role;

use super::Swarm;
use super::block::{self, LoopbackBlock};
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
    /// What the I/O shells of each host's peers do to what they send, by `hosts` index (none
    /// for the tracker's and the source's hosts, whose daemons send unimpaired).
    pub paths: Vec<Option<Impairment>>,
    /// The churn of the non-vantage peers, if any.
    pub schedule: Option<Schedule>,
    mode: Mode,
    /// A loopback run's address block, held until the run ends.
    _block: Option<LoopbackBlock>,
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
    /// Plans the run's hosts, drawing their rates and delays from the run's seed, and reads or
    /// samples the workload (saved as workload.csv).
    pub fn new(cfg: &SwarmConfig, dir: &RunDir) -> Result<HostPlan> {
        let prefix = netns::run_prefix();
        let block = match cfg.mode {
            Mode::Netns | Mode::Virtual => None,
            Mode::Loopback | Mode::Auto => Some(block::take()?),
        };
        let addrs = block.as_ref().map_or_else(Plan::netns, |b| b.plan);
        if let Some(b) = &block {
            let net = b.net();
            eprintln!("soplab: this run's addresses are in {net} (capture them: tcpdump -i lo udp and net {net})");
        }
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
        let mut paths = vec![None; hosts.len()];
        let host_of_peer = plan_peer_hosts(cfg, &prefix, &addrs, &mut hosts, &mut paths);
        Ok(HostPlan { prefix, addrs, hosts, host_of_peer, paths, schedule, mode: cfg.mode, _block: block })
    }

    /// The namespace of host `h` in netns mode; `None` otherwise.
    pub fn netns_of(&self, h: usize) -> Option<&str> {
        (self.mode == Mode::Netns).then(|| self.hosts[h].ns.as_str())
    }

    /// What peer `k`'s host does to what it sends. Every mode reads a peer's link settings here
    /// and only here.
    pub fn peer_link(&self, k: usize) -> PeerLink {
        let host = &self.hosts[self.host_of_peer[k]];
        PeerLink { upload_bps: host.up_bps, path: self.path_of_peer(k) }
    }

    /// The namespace of peer `k`'s host in netns mode; `None` on loopback.
    pub fn netns_of_peer(&self, k: usize) -> Option<&str> {
        self.netns_of(self.host_of_peer[k])
    }

    /// The impairment of peer `k`'s I/O shell: its host's.
    fn path_of_peer(&self, k: usize) -> Impairment {
        self.paths[self.host_of_peer[k]].unwrap_or_default()
    }

    /// run.json's hosts: the tracker, the source, then every peer; rates only where they were
    /// applied (netns mode: both; virtual time: the upload rate, by the cores), delays where
    /// the peers' shells or the virtual network apply them (every peer).
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
                delay_us: None,
                jitter_us: None,
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
                delay_us: None,
                jitter_us: None,
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
                delay_us: self.paths[h].map(|p| p.delay),
                jitter_us: self.paths[h].map(|p| p.jitter),
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
/// `cfg.peers_per_host` to a host) and their impairments to `paths`; returns each peer's host
/// index.
fn plan_peer_hosts(
    cfg: &SwarmConfig,
    prefix: &str,
    addrs: &Plan,
    hosts: &mut Vec<Host>,
    paths: &mut Vec<Option<Impairment>>,
) -> Vec<usize> {
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(cfg.seed ^ 0x11_4b5);
    // Delays draw from a stream of their own, so that a delay distribution leaves the rates a
    // seed gives each host as they were without one.
    let mut delay_rng = rand_pcg::Pcg64Mcg::seed_from_u64(cfg.seed ^ 0xde1a_7000);
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
        let delay = cfg.delay.sample(j, &mut delay_rng);
        let jitter = cfg.jitter.sample(j, &mut delay_rng);
        paths.push(Some(Impairment { delay, jitter, loss: cfg.loss, loss_burst: cfg.loss_burst }));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    /// The peer hosts `settings` plan (netns addresses) and their shells' impairments.
    fn plan(settings: Scenario) -> (Vec<Host>, Vec<Option<Impairment>>) {
        let cfg = SwarmConfig::resolve(settings, Mode::Netns).unwrap();
        let (mut hosts, mut paths) = (Vec::new(), Vec::new());
        // Two placeholders stand for the tracker's and the source's hosts.
        for _ in 0..2 {
            hosts.push(Host { ns: String::new(), port: String::new(), addrs: vec![], up_bps: None, down_bps: None });
            paths.push(None);
        }
        plan_peer_hosts(&cfg, "t", &Plan::netns(), &mut hosts, &mut paths);
        (hosts.split_off(2), paths.split_off(2))
    }

    #[test]
    fn each_host_draws_its_delay_and_the_rates_stay_as_they_were() {
        let base = Scenario { peers: Some(40), upload: Some("lognormal(1M,1.0)".into()), ..Default::default() };
        let (hosts, paths) = plan(base.clone());
        assert!(paths.iter().all(|p| *p == Some(Impairment::default())), "no delay unless asked");
        let delayed = Scenario {
            delay: Some("uniform(5ms,100ms)".into()),
            jitter: Some("list(1ms,3ms)".into()),
            loss: Some(0.01),
            ..base
        };
        let (hosts2, paths2) = plan(delayed);
        let rates = |h: &[Host]| h.iter().map(|h| h.up_bps).collect::<Vec<_>>();
        assert_eq!(rates(&hosts), rates(&hosts2), "a delay distribution leaves the seed's rates alone");
        let paths2: Vec<Impairment> = paths2.into_iter().map(Option::unwrap).collect();
        assert!(paths2.iter().all(|p| (5_000..=100_000).contains(&p.delay) && p.loss == 0.01));
        let distinct: std::collections::HashSet<u64> = paths2.iter().map(|p| p.delay).collect();
        assert!(distinct.len() > 30, "40 hosts drew {} distinct delays", distinct.len());
        assert_eq!(paths2.iter().map(|p| p.jitter).take(3).collect::<Vec<_>>(), [1_000, 3_000, 1_000]);
    }
}
