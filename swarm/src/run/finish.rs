//! The end of a run: everything started is stopped in order and the namespaces removed, then
//! run.json and summary.json are written.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use soplab_peer::PeerStats;
use soplab_rundir::run::{CaptureInfo, Failure, RunInfo};
use soplab_rundir::stem::host_stem;
use soplab_source::Content;

use super::dir::RunDir;
use super::launch::capture_info;
use super::{Ran, Started, Swarm};
use crate::played::check_played;
use crate::process::Daemon;
use crate::scenario::Mode;
use crate::summary::{PlayCheck, Summary};
use crate::tcpdump::PcapCounter;

/// How long a daemon has to exit after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(15);

/// What stopping found out, for run.json.
pub(super) struct Stopped {
    /// The daemons that failed: exited early, or not with status 0 when stopped.
    pub failures: Vec<Failure>,
    /// tcpdump's pcaps, with their packets counted and what tcpdump said it dropped.
    pub pcaps: Vec<CaptureInfo>,
    pub ended_us: u64,
    pub netns_teardown_s: Option<f64>,
}

impl Started {
    /// Stops the peers first (they leave the tracker), then the source and the tracker, then
    /// tcpdump, so that every packet of the run is captured; then removes the namespaces. A
    /// failure to stop one does not keep the others running: every step is taken, and the
    /// first error is returned.
    pub(super) async fn stop(&mut self, out: &Path) -> Result<Stopped> {
        let mut first_error = None;
        let mut note = |e: anyhow::Error| {
            first_error.get_or_insert(e);
        };
        let mut failures = Vec::new();
        // A peer process a fault killed is already gone.
        let peers = self.peers.iter_mut().filter(|p| !p.killed).map(|p| &mut p.daemon);
        let daemons = peers.chain(self.source.iter_mut());
        for d in daemons.chain(self.tracker.iter_mut()) {
            match stop_daemon(d, out).await {
                Ok(failed) => failures.extend(failed),
                Err(e) => note(e),
            }
        }
        let mut pcaps = Vec::new();
        for mut c in self.captures.drain(..) {
            match c.tcpdump.stop().await {
                Ok(dropped) => c.info.dropped_by_kernel = dropped,
                Err(e) => note(e),
            }
            c.info.packets = c.tcpdump.packets();
            pcaps.push(c.info);
        }
        let ended_us = soplab_shell::realtime_us();
        let netns_teardown_s = self.topology.take().map(|mut topology| {
            let t = Instant::now();
            topology.destroy().unwrap_or_else(&mut note);
            t.elapsed().as_secs_f64()
        });
        match first_error {
            Some(e) => Err(e),
            None => Ok(Stopped { failures, pcaps, ended_us, netns_teardown_s }),
        }
    }
}

/// Stops `d`; if it failed (exited before it was stopped, or not with status 0), says how and
/// why, with its log relative to the run directory `out`.
async fn stop_daemon(d: &mut Daemon, out: &Path) -> Result<Option<Failure>> {
    let early = d.child.try_wait()?.is_some();
    if d.stop(GRACE).await? && !early {
        return Ok(None);
    }
    let status = match d.child.try_wait()? {
        Some(s) if early => format!("exited early ({s})"),
        Some(s) => format!("{s} when stopped"),
        None => "still running after SIGKILL".to_string(),
    };
    let log = std::fs::read_to_string(&d.log).unwrap_or_default();
    let error =
        log.lines().rev().find_map(|l| l.strip_prefix("error: ")).map_or_else(|| status.clone(), str::to_string);
    let log = d.log.strip_prefix(out).unwrap_or(&d.log).display().to_string();
    Ok(Some(Failure { daemon: d.name.clone(), status, error, log }))
}

impl Swarm<'_> {
    /// Writes run.json, then checks what every peer played against `content` and writes
    /// summary.json.
    pub(super) fn write_outputs(
        &self,
        content: &Content,
        ran: Ran,
        stopped: Stopped,
        started_us: u64,
        swept: Vec<String>,
    ) -> Result<(Summary, RunInfo)> {
        let mut pcaps = stopped.pcaps;
        pcaps.extend(self.self_captures());
        let info = RunInfo {
            mode: self.cfg.mode,
            prefix: self.hosts.prefix.clone(),
            started_us,
            epoch_us: ran.epoch_us,
            ended_us: stopped.ended_us,
            duration_s: self.cfg.duration.as_secs_f64(),
            interrupted: ran.interrupted,
            netns_setup_s: ran.netns_setup_s,
            netns_teardown_s: stopped.netns_teardown_s,
            swept,
            hosts: self.hosts.infos(self.cfg),
            pcaps,
            workload: self.hosts.schedule.as_ref().map(|_| "workload.csv".to_string()),
            workload_preset: self.cfg.workload.as_deref().and_then(crate::workload::preset_name),
            time_scale: self.hosts.schedule.as_ref().map(|_| self.cfg.time_scale),
            faults: self.faults.records.clone(),
            failures: stopped.failures,
        };
        self.dir.write_json("run.json", &info)?;
        self.faults.join_tracker_truth(&self.dir.truth)?;
        let (killed, alive): (Vec<_>, Vec<_>) = self.started.peers.iter().partition(|p| p.killed);
        let stats: Vec<PathBuf> = alive.iter().map(|p| p.stats.clone()).collect();
        let killed: Vec<SocketAddr> =
            killed.iter().flat_map(|p| p.peers.clone()).map(|k| self.hosts.addrs.peer(k).into()).collect();
        let outputs = Outputs { peer_stats: &stats, killed: &killed, tracker_killed: self.faults.killed_tracker() };
        let summary = summarise(content, &outputs, &self.dir)?;
        self.dir.write_json("summary.json", &summary)?;
        Ok((summary, info))
    }

    /// The pcaps the peers wrote themselves (loopback's --self-capture), one per peer.
    fn self_captures(&self) -> Vec<CaptureInfo> {
        if !self.cfg.self_capture || self.cfg.mode == Mode::Netns {
            return Vec::new();
        }
        (0..self.cfg.peers)
            .map(|k| {
                let a = self.hosts.addrs.peer(k);
                let mut info = capture_info(host_stem(a.into()), Some(a), "", "self");
                info.packets = PcapCounter::default().update(&self.dir.path(&info.file));
                info
            })
            .collect()
    }
}

/// What the daemons left for the summary.
struct Outputs<'a> {
    /// The stats files of the peer processes that stopped.
    peer_stats: &'a [PathBuf],
    /// The peers of processes a fault killed: they wrote no stats.
    killed: &'a [SocketAddr],
    /// A fault killed the tracker: it may have written no stats.
    tracker_killed: bool,
}

/// The summary: the peers' and the source's final stats (a killed peer's from its truth), the
/// tracker's, and a check of every peer's played stream against the source's content.
fn summarise(content: &Content, outputs: &Outputs, dir: &RunDir) -> Result<Summary> {
    let read = |p: &PathBuf| -> Result<Vec<u8>> {
        std::fs::read(p)
            .with_context(|| format!("cannot read {} (did the daemon stop cleanly? see its log)", p.display()))
    };
    let mut peers: Vec<PeerStats> = Vec::new();
    for f in outputs.peer_stats {
        let v: Vec<PeerStats> =
            serde_json::from_slice(&read(f)?).with_context(|| format!("{} is not peer stats", f.display()))?;
        peers.extend(v);
    }
    for &addr in outputs.killed {
        peers.push(crate::summary::stats_from_truth(addr, &dir.truth_of(addr))?);
    }
    let source: PeerStats = serde_json::from_slice(&read(&dir.logs.join("source.stats.json"))?)?;
    let tracker_stats = dir.logs.join("tracker.stats.json");
    let tracker = match read(&tracker_stats) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes)?),
        // Killed and not started again before the end: it wrote none.
        Err(_) if outputs.tracker_killed && !tracker_stats.exists() => None,
        Err(e) => return Err(e),
    };
    let mut plays = PlayCheck::default();
    for st in &peers {
        let addr: SocketAddr = st.addr.parse()?;
        let whole = !outputs.killed.contains(&addr);
        let (checked, bad) = check_played(content, &dir.truth_of(addr), &dir.played_of(addr), whole)?;
        plays.record(addr, checked, bad);
    }
    let mut summary = crate::summary::build(&source, &peers, &plays);
    for p in &mut summary.peers {
        let Some(addr) = p.address.parse().ok().filter(|a: &SocketAddr| outputs.killed.contains(a)) else { continue };
        // Its played file holds what it wrote before the kill, which need not be every block
        // its truth names: what it holds must be the source's.
        let (checked, bad) = plays.of(addr);
        (p.killed, p.played_matches_source) = (true, checked > 0 && bad == 0);
    }
    summary.tracker = tracker;
    Ok(summary)
}
