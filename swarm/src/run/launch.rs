//! Starting a run's processes: tcpdump first, then the tracker, the source and the peer
//! processes. Each daemon's command line is built by one function here ([`tracker_args`],
//! [`source_args`], [`peer_args`]), so that what the swarm asks of a daemon is in one place.

use std::net::SocketAddrV4;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use soplab_rundir::plan::Plan;
use soplab_rundir::run::CaptureInfo;
use soplab_rundir::stem::host_stem;

use super::Swarm;
use super::dir::RunDir;
use super::hosts::{HostPlan, SOURCE_HOST, TRACKER_HOST};
use crate::process::{Daemon, spawn_soplab};
use crate::scenario::SwarmConfig;
use crate::tcpdump::{self, Tcpdump};
use crate::workload::Schedule;

/// One tcpdump and what run.json will say of its pcap.
pub(super) struct Capture {
    pub tcpdump: Tcpdump,
    pub info: CaptureInfo,
}

/// One peer process and the stats file it writes when it stops.
pub(super) struct PeerProcess {
    pub daemon: Daemon,
    pub stats: PathBuf,
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
        let Swarm { cfg, dir, hosts, started } = self;
        let tracker = tracker_args(cfg, &hosts.addrs, dir);
        started.tracker = Some(spawn_soplab("tracker", &tracker, &dir.logs, hosts.netns_of(TRACKER_HOST))?);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let source = source_args(cfg, &hosts.addrs, dir);
        started.source = Some(spawn_soplab("source", &source, &dir.logs, hosts.netns_of(SOURCE_HOST))?);
        tokio::time::sleep(Duration::from_millis(200)).await;

        let epoch_us = soplab_shell::realtime_us() + 1_000_000 + cfg.peers as u64 * 2_000;
        for (k, peers) in peer_ranges(cfg.peers, cfg.processes).into_iter().enumerate() {
            let stats = dir.logs.join(format!("peers-{k}.stats.json"));
            let schedule = match &hosts.schedule {
                Some(sch) => Some(write_process_schedule(dir, k, &process_schedule(sch, cfg.vantage, peers.clone()))?),
                None => None,
            };
            let args = peer_args(cfg, hosts, dir, peers.clone(), &stats, schedule.as_deref().map(|f| (f, epoch_us)));
            // The process lives in its first peer's namespace; each socket is bound in its own.
            let name = format!("peers-{k}");
            let daemon = spawn_soplab(&name, &args, &dir.logs, hosts.netns_of_peer(peers.start))?;
            started.peers.push(PeerProcess { daemon, stats });
        }
        Ok(epoch_us)
    }
}

fn s(v: impl ToString) -> String {
    v.to_string()
}

fn p(f: &Path) -> String {
    f.display().to_string()
}

/// The tracker's command line.
fn tracker_args(cfg: &SwarmConfig, addrs: &Plan, dir: &RunDir) -> Vec<String> {
    vec![
        s("tracker"),
        s("--listen"),
        s(addrs.tracker),
        s("--seed"),
        s(cfg.seed),
        s("--truth"),
        p(&dir.truth.join("tracker.jsonl")),
        s("--stats"),
        p(&dir.logs.join("tracker.stats.json")),
    ]
}

/// The source's command line: the run's file, or synthetic content from the run's seed.
fn source_args(cfg: &SwarmConfig, addrs: &Plan, dir: &RunDir) -> Vec<String> {
    let mut args = vec![
        s("source"),
        s("--listen"),
        s(addrs.source),
        s("--tracker"),
        s(addrs.tracker),
        s("--bitrate"),
        s(cfg.bitrate),
        s("--seed"),
        s(cfg.seed + 1),
        s("--truth"),
        p(&dir.truth.join("source.jsonl")),
        s("--stats"),
        p(&dir.logs.join("source.stats.json")),
    ];
    match &cfg.file {
        Some(f) => args.extend([s("--file"), p(f)]),
        None => args.extend([s("--synthetic-seed"), s(cfg.seed)]),
    }
    args
}

/// The command line of the process running `peers` (indices of the run's peers), writing its
/// final counters to `stats` and following `schedule` (its file, and time zero in µs) if the
/// run is churned.
fn peer_args(
    cfg: &SwarmConfig,
    hosts: &HostPlan,
    dir: &RunDir,
    peers: Range<usize>,
    stats: &Path,
    schedule: Option<(&Path, u64)>,
) -> Vec<String> {
    let (first, count) = (peers.start, peers.len());
    let mut args = vec![
        s("peer"),
        s("--addr"),
        s(hosts.addrs.peer(first)),
        s("--count"),
        s(count),
        s("--tracker"),
        s(hosts.addrs.tracker),
        s("--bitrate"),
        s(cfg.bitrate),
        s("--seed"),
        s(cfg.seed + 1000 + first as u64),
        s("--truth-dir"),
        p(&dir.truth),
        s("--played-dir"),
        p(&dir.played),
        s("--stats"),
        p(stats),
        s("--http-port"),
        s(cfg.http_port),
        s("--stagger"),
        format!("{}ms", cfg.stagger.as_millis() * count as u128 / cfg.peers as u128),
        s("--delay"),
        format!("{}ms", cfg.delay.as_millis()),
        s("--jitter"),
        format!("{}ms", cfg.jitter.as_millis()),
        s("--loss"),
        s(cfg.loss),
    ];
    match peers.map(|k| hosts.netns_of_peer(k)).collect::<Option<Vec<&str>>>() {
        // netns mode: each peer's socket is bound in its host's namespace.
        Some(names) => args.extend([s("--netns"), names.join(",")]),
        // Loopback has no tcpdump: the peers may write their own pcaps.
        None if cfg.self_capture => args.extend([s("--pcap-dir"), p(&dir.pcap)]),
        None => {}
    }
    if let Some((file, epoch_us)) = schedule {
        args.extend([s("--schedule"), p(file), s("--schedule-epoch-ms"), s(epoch_us / 1000)]);
    }
    args
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

/// Writes peer process `k`'s schedule to logs/peers-<k>.schedule.csv.
fn write_process_schedule(dir: &RunDir, k: usize, sch: &Schedule) -> Result<PathBuf> {
    let file = dir.logs.join(format!("peers-{k}.schedule.csv"));
    sch.write_csv(&file)?;
    Ok(file)
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
