//! Starting a run's processes: tcpdump first, then the tracker, the source and the peer
//! processes. Each daemon gets a typed configuration built by one function here
//! ([`tracker_config`], [`source_config`], [`peer_config`]), written to
//! `logs/<name>.config.json` and handed over with `--config`, so that what the swarm asks of a
//! daemon is in one place and never makes a round trip through command-line strings.

use std::net::SocketAddrV4;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use soplab_peer::PeerConfig;
use soplab_peer::daemon::{HostedPeer, Outputs as PeerOutputs, Truth};
use soplab_rundir::plan::Plan;
use soplab_rundir::run::CaptureInfo;
use soplab_rundir::stem::host_stem;
use soplab_shell::flags::{Outputs, micros, save_config};
use soplab_source::daemon::ContentSpec;

use super::Swarm;
use super::dir::RunDir;
use super::hosts::{HostPlan, SOURCE_HOST, TRACKER_HOST};
use crate::process::{Daemon, spawn_soplab};
use crate::scenario::SwarmConfig;
use crate::tcpdump::{self, Tcpdump};
use crate::workload::Schedule;

/// The channel every run streams on.
const CHANNEL: u32 = 1;

/// One tcpdump and what run.json will say of its pcap.
pub(super) struct Capture {
    pub tcpdump: Tcpdump,
    pub info: CaptureInfo,
}

/// One peer process, the run's peers it hosts and the stats file it writes when it stops.
pub(super) struct PeerProcess {
    pub daemon: Daemon,
    pub peers: Range<usize>,
    pub stats: PathBuf,
    /// A fault killed it: it writes no stats, and its exit is no failure.
    pub killed: bool,
}

/// What run.json says of one pcap, before its packets are counted.
pub(super) fn capture_info(host: String, address: Option<SocketAddrV4>, netns: &str, interface: &str) -> CaptureInfo {
    CaptureInfo {
        file: RunDir::pcap_of(&host),
        host,
        address: address.map(|a| a.to_string()),
        netns: netns.to_string(),
        interface: interface.to_string(),
        packets: 0,
        dropped_by_kernel: None,
    }
}

impl Swarm<'_> {
    /// In netns mode, starts tcpdump at every vantage peer (its eth0) and, if asked, on the
    /// bridge; each is listening before this returns.
    pub(super) async fn start_captures(&mut self) -> Result<()> {
        let Some(topology) = &self.started.topology else { return Ok(()) };
        let hub = topology.hub.clone();
        for k in 0..self.cfg.vantage {
            let a = self.hosts.addrs.peer(k);
            let ns = self.hosts.hosts[self.hosts.host_of_peer[k]].ns.clone();
            self.start_capture(capture_info(host_stem(a.into()), Some(a), &ns, "eth0")).await?;
        }
        if self.cfg.bridge_capture {
            self.start_capture(capture_info("bridge".into(), None, &hub, "br0")).await?;
        }
        Ok(())
    }

    async fn start_capture(&mut self, info: CaptureInfo) -> Result<()> {
        let (name, file) = (format!("tcpdump-{}", info.host), self.dir.path(&info.file));
        let tcpdump = tcpdump::start(&name, &info.netns, &info.interface, &file, &self.dir.logs).await?;
        self.started.captures.push(Capture { tcpdump, info });
        Ok(())
    }

    /// Starts the tracker, then the source, then the peer processes, 200 ms apart so that each
    /// finds the one before it listening. Returns the peers' time zero (CLOCK_REALTIME µs),
    /// which leaves them a moment to bind.
    pub(super) async fn start_daemons(&mut self) -> Result<u64> {
        let Swarm { cfg, dir, hosts, started, .. } = self;
        let tracker = tracker_config(cfg, &hosts.addrs, dir);
        started.tracker = Some(spawn_with_config("tracker", "tracker", &tracker, dir, hosts.netns_of(TRACKER_HOST))?);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let source = source_config(cfg, &hosts.addrs, dir);
        started.source = Some(spawn_with_config("source", "source", &source, dir, hosts.netns_of(SOURCE_HOST))?);
        tokio::time::sleep(Duration::from_millis(200)).await;

        let epoch_us = soplab_shell::realtime_us() + 1_000_000 + cfg.peers as u64 * 2_000;
        for p in peer_processes(cfg, hosts, dir, epoch_us) {
            // The process lives in its first peer's namespace; each socket is bound in its own.
            let daemon = spawn_with_config(&p.name, "peer", &p.config, dir, hosts.netns_of_peer(p.peers.start))?;
            started.peers.push(PeerProcess { daemon, peers: p.peers, stats: p.stats, killed: false });
        }
        Ok(epoch_us)
    }
}

/// One peer process of a run: its name, the run's peers it hosts, its configuration and the
/// stats file that configuration names.
pub(super) struct PeerProcessConfig {
    pub name: String,
    pub peers: Range<usize>,
    pub config: soplab_peer::daemon::DaemonConfig,
    pub stats: PathBuf,
}

/// The peer processes of a run (`peers-<k>`, `cfg.processes` of them), whose schedule (if
/// churned) has its time zero at `epoch_us`.
pub(super) fn peer_processes(
    cfg: &SwarmConfig,
    hosts: &HostPlan,
    dir: &RunDir,
    epoch_us: u64,
) -> Vec<PeerProcessConfig> {
    let ranges = peer_ranges(cfg.peers, cfg.processes).into_iter().enumerate();
    ranges
        .map(|(k, peers)| {
            let stats = dir.logs.join(format!("peers-{k}.stats.json"));
            let schedule = hosts.schedule.as_ref().map(|sch| process_schedule(sch, cfg.vantage, peers.clone()));
            let schedule = schedule.as_ref().map(|sch| (sch, epoch_us));
            let config = peer_config(cfg, hosts, dir, peers.clone(), &stats, schedule);
            PeerProcessConfig { name: format!("peers-{k}"), peers, config, stats }
        })
        .collect()
}

/// Writes a daemon's configuration to logs/<name>.config.json and starts `soplab <daemon>
/// --config FILE` in `netns`: the daemon gets the typed settings themselves, not a command line
/// to parse back.
fn spawn_with_config<T: Serialize>(
    name: &str,
    daemon: &str,
    config: &T,
    dir: &RunDir,
    netns: Option<&str>,
) -> Result<Daemon> {
    let file = write_config(name, config, dir)?;
    let args = [daemon.into(), "--config".into(), in_run(dir, &file).into_os_string()];
    spawn_soplab(name, &args, &dir.logs, netns, &dir.out)
}

/// `path` relative to the run directory, where the daemons start: the paths in their
/// configurations are then short, and valid JSON strings even when the run directory's name is
/// not UTF-8.
fn in_run(dir: &RunDir, path: &Path) -> PathBuf {
    path.strip_prefix(&dir.out).unwrap_or(path).to_path_buf()
}

/// Writes a daemon's configuration to logs/<name>.config.json; returns the file.
pub(super) fn write_config<T: Serialize>(name: &str, config: &T, dir: &RunDir) -> Result<PathBuf> {
    let file = dir.logs.join(format!("{name}.config.json"));
    save_config(config, &file).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(file)
}

/// The tracker's configuration.
pub(super) fn tracker_config(cfg: &SwarmConfig, addrs: &Plan, dir: &RunDir) -> soplab_tracker::daemon::DaemonConfig {
    soplab_tracker::daemon::DaemonConfig {
        tracker: soplab_tracker::Config { seed: cfg.seed, ..soplab_tracker::Config::new(addrs.tracker) },
        outputs: Outputs {
            truth: Some(in_run(dir, &dir.truth.join("tracker.jsonl"))),
            stats: Some(in_run(dir, &dir.logs.join("tracker.stats.json"))),
        },
        duration_us: None,
    }
}

/// The source's configuration: the run's file, or synthetic content from the run's seed.
pub(super) fn source_config(cfg: &SwarmConfig, addrs: &Plan, dir: &RunDir) -> soplab_source::daemon::DaemonConfig {
    soplab_source::daemon::DaemonConfig {
        source: PeerConfig {
            bitrate_bps: cfg.bitrate,
            ..PeerConfig::source(addrs.source, addrs.tracker, CHANNEL, cfg.seed + 1).with_profile(cfg.profile)
        },
        content: match &cfg.file {
            // Absolute: the source starts in the run directory.
            Some(f) => ContentSpec::File(std::path::absolute(f).unwrap_or_else(|_| f.clone())),
            None => ContentSpec::SyntheticSeed(cfg.seed),
        },
        outputs: Outputs {
            truth: Some(in_run(dir, &dir.truth.join("source.jsonl"))),
            stats: Some(in_run(dir, &dir.logs.join("source.stats.json"))),
        },
        duration_us: None,
    }
}

/// The configuration of the process running `peers` (indices of the run's peers), writing its
/// final counters to `stats` and following `schedule` (with its time zero in µs) if the run is
/// churned.
fn peer_config(
    cfg: &SwarmConfig,
    hosts: &HostPlan,
    dir: &RunDir,
    peers: Range<usize>,
    stats: &Path,
    schedule: Option<(&Schedule, u64)>,
) -> soplab_peer::daemon::DaemonConfig {
    let first = peers.start;
    let seed = cfg.seed + 1000 + first as u64;
    let mut sessions = schedule.map(|(sch, _)| sch.by_client()).unwrap_or_default();
    let stagger_us = micros(cfg.stagger);
    // The process's first peer sets the daemon-wide impairment; a peer whose host drew another
    // carries its own.
    let impairment = hosts.peer_link(first).path;
    let hosted = peers
        .clone()
        .enumerate()
        .map(|(i, k)| HostedPeer {
            addr: hosts.addrs.peer(k),
            seed: seed + i as u64,
            // netns mode: each peer's socket is bound in its host's namespace.
            netns: hosts.netns_of_peer(k).map(str::to_string),
            start_delay_us: stagger_us * i as u64 / cfg.peers as u64,
            sessions: sessions.remove(&(i as u32)).unwrap_or_default(),
            impairment: Some(hosts.peer_link(k).path).filter(|&own| own != impairment),
        })
        .collect();
    let netns = hosts.netns_of_peer(first).is_some();
    soplab_peer::daemon::DaemonConfig {
        template: PeerConfig {
            bitrate_bps: cfg.bitrate,
            ..PeerConfig::peer(hosts.addrs.peer(first).into(), hosts.addrs.tracker, CHANNEL, seed)
                .with_profile(cfg.profile)
        },
        peers: hosted,
        schedule_epoch_us: schedule.map(|(_, epoch_us)| epoch_us),
        outputs: PeerOutputs {
            truth: Some(Truth::Dir(in_run(dir, &dir.truth))),
            played_dir: Some(in_run(dir, &dir.played)),
            // Loopback has no tcpdump: the peers may write their own pcaps.
            pcap_dir: (cfg.self_capture && !netns).then(|| in_run(dir, &dir.pcap)),
            stats: Some(in_run(dir, stats)),
            http_port: cfg.http_port,
        },
        impairment,
        duration_us: None,
    }
}

/// How the peers are spread over `processes` processes: contiguous ranges, the first ones one
/// peer longer when the division is not exact.
fn peer_ranges(peers: usize, processes: usize) -> Vec<Range<usize>> {
    let procs = processes.clamp(1, peers);
    let mut first = 0;
    (0..procs)
        .map(|k| {
            let count = peers / procs + usize::from(k < peers % procs);
            first += count;
            first - count..first
        })
        .collect()
}

/// The sessions of the churned peers among `peers` (indices of the run), with clients numbered
/// as the process numbers its peers, from `peers.start`. Client c of the workload is peer
/// `vantage + c`.
fn process_schedule(sch: &Schedule, vantage: usize, peers: Range<usize>) -> Schedule {
    let (lo, hi) = (peers.start.max(vantage), peers.end.max(vantage));
    let mut own = sch.for_clients((lo - vantage) as u32..(hi - vantage) as u32);
    for x in &mut own.sessions {
        x.client += (lo - peers.start) as u32;
    }
    own
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Session;

    #[test]
    fn peers_spread_over_processes_in_contiguous_ranges() {
        assert_eq!(peer_ranges(7, 3), [0..3, 3..5, 5..7]);
        assert_eq!(peer_ranges(2, 5), [0..1, 1..2]);
        assert_eq!(peer_ranges(4, 0), vec![0..4], "at least one process");
    }

    #[test]
    fn a_process_schedule_numbers_clients_as_its_peers() {
        let at = |client, session, start| Session { client, session, start, end: start + 1.0 };
        let sch = Schedule { sessions: vec![at(0, 0, 0.5), at(1, 0, 1.0), at(2, 0, 1.5), at(0, 1, 3.0)] };
        // Two vantage peers: client c is peer 2 + c. Peers 0..3 hold client 0 as their third.
        let first = process_schedule(&sch, 2, 0..3);
        assert_eq!(first.sessions, [at(2, 0, 0.5), at(2, 1, 3.0)]);
        // Peers 3..5 hold clients 1 and 2 as their first and second.
        assert_eq!(process_schedule(&sch, 2, 3..5).sessions, [at(0, 0, 1.0), at(1, 0, 1.5)]);
        // Vantage peers only: nothing churns.
        assert!(process_schedule(&sch, 2, 0..2).sessions.is_empty());
    }
}
