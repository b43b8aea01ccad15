//! `soplab swarm`: a tracker, a source and N peers as real processes speaking UDP, either each
//! host in its own network namespace on a bridge (198.18.0.0/15, captured by tcpdump at vantage
//! peers and on the bridge), or on loopback addresses; optionally churned by a workload; stopped
//! and torn down at the end, on Ctrl-C, on SIGTERM and on errors; then summary.json and
//! run.json. Or the same daemons' cores in virtual time, in this process ([`virtual_time`]).
//!
//! A run goes in phases, each in its own module: [`dir`] claims and prepares the run directory,
//! [`hosts`] plans the hosts (on loopback, in a block of addresses [`block`] takes for the run)
//! and builds their namespaces, [`launch`] starts the captures and the daemons,
//! [`monitor`] waits out the run with a live progress line, and [`finish`] stops everything in
//! order, removes the namespaces and writes run.json and summary.json. [`run`] reads as that
//! sequence; [`Started`] holds what has to be taken down, whichever phase failed. While the
//! run goes, [`faults`] injects the faults it was asked for.

mod block;
mod dir;
mod faults;
mod finish;
mod hosts;
mod launch;
mod monitor;
mod virtual_time;

use anyhow::{Result, bail};
use soplab_rundir::claim::Claimed;
use soplab_rundir::run::RunInfo;
use soplab_source::Content;

use crate::netns::{self, Topology};
use crate::process::Daemon;
use crate::scenario::{Mode, SwarmConfig};
use crate::summary::Summary;
use dir::RunDir;
pub use dir::claim_out;
use hosts::HostPlan;
use launch::{Capture, PeerProcess};

pub use faults::fault_report;

/// Why `Mode::Auto` picks what it picks: (mode, reason).
pub fn auto_mode(need_tcpdump: bool) -> (Mode, String) {
    if !nix::unistd::geteuid().is_root() {
        return (Mode::Loopback, "not running as root, so no network namespaces".into());
    }
    if !on_path("ip") {
        return (Mode::Loopback, "`ip` (iproute2) is not installed".into());
    }
    if need_tcpdump && !on_path("tcpdump") {
        return (Mode::Loopback, "tcpdump is not installed".into());
    }
    (Mode::Netns, "running as root with iproute2 and tcpdump".into())
}

/// Whether `program` is on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// Most peers a netns run can address: 198.18.1.1 up to 198.19.255.254.
pub const MAX_NETNS_PEERS: usize = (1 << 17) - 256 - 2;

/// Most peers a loopback run can address in its /16: 127.x.1.1 up to 127.x.255.254.
pub const MAX_LOOPBACK_PEERS: usize = (1 << 16) - 256 - 2;

/// Everything a run has started, which [`Started::stop`] takes down in order. Fields drop in
/// this order too, so a panic still kills the processes (they are `kill_on_drop`) before the
/// topology's `Drop` removes the namespaces.
#[derive(Default)]
struct Started {
    peers: Vec<PeerProcess>,
    source: Option<Daemon>,
    tracker: Option<Daemon>,
    captures: Vec<Capture>,
    topology: Option<Topology>,
}

/// What the phases share: the settings, the run directory, the host plan, what has been
/// started so far, and the faults to inject.
struct Swarm<'a> {
    cfg: &'a SwarmConfig,
    dir: RunDir,
    hosts: HostPlan,
    started: Started,
    faults: faults::FaultRun,
}

/// What starting and running the swarm found out, for run.json.
struct Ran {
    netns_setup_s: Option<f64>,
    /// The peers' time zero, CLOCK_REALTIME microseconds.
    epoch_us: u64,
    interrupted: bool,
}

/// Runs the swarm described by `cfg` (mode already decided) and writes the run directory `out`,
/// claimed by [`claim_out`] (the caller keeps it claimed for as long as it works there);
/// returns the summary. A virtual-time run runs here without awaiting.
pub async fn run(cfg: &SwarmConfig, out: &Claimed) -> Result<(Summary, RunInfo)> {
    check_address_block(cfg)?;
    if cfg.mode == Mode::Virtual {
        return run_virtual_in(cfg, out);
    }
    let dir = RunDir::prepare(cfg, out)?;
    let started_us = soplab_shell::realtime_us();
    let swept = sweep_stale(cfg)?;
    let hosts = HostPlan::new(cfg, &dir)?;
    let content = content(cfg)?;
    let faults = faults::FaultRun::new(&cfg.faults);
    let mut swarm = Swarm { cfg, dir, hosts, started: Started::default(), faults };
    // The one cleanup path: whatever starting or running did (an error, an early exit, Ctrl-C,
    // SIGTERM), what was started is stopped in order and the namespaces are removed before
    // anything is returned.
    let ran = swarm.start_and_run().await;
    let stopped = swarm.started.stop(&swarm.dir.out).await;
    let (ran, stopped) = match (ran, stopped) {
        (Ok(ran), Ok(stopped)) => (ran, stopped),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => return Err(e),
        (Err(e), Err(stop)) => {
            eprintln!("soplab: stopping the swarm after the error below also failed: {stop:#}");
            return Err(e);
        }
    };
    let failed = stopped.failures.first().cloned();
    let outputs = swarm.write_outputs(&content, ran, stopped, started_us, swept);
    let Some(f) = failed else { return outputs };
    let failure = format!("{} failed ({}): {}", f.daemon, f.status, f.error);
    match outputs {
        Ok(_) => {
            let out = swarm.dir.out.display();
            bail!("{failure}; run.json and summary.json in {out} name it; its log is {out}/{}", f.log)
        }
        Err(e) => Err(e.context(failure)),
    }
}

/// Runs the swarm described by `cfg` in virtual time ([`Mode::Virtual`]), in this thread, and
/// writes the run directory `cfg.out` (claimed for the run) as a netns run would (see
/// [`virtual_time`]); returns the summary.
///
/// # Errors
/// When the run directory, the workload or the media file cannot be used.
pub fn run_virtual(cfg: &SwarmConfig) -> Result<(Summary, RunInfo)> {
    check_address_block(cfg)?;
    run_virtual_in(cfg, &claim_out(&cfg.out, "soplab swarm")?)
}

/// [`run_virtual`] in the claimed directory `out`.
fn run_virtual_in(cfg: &SwarmConfig, out: &Claimed) -> Result<(Summary, RunInfo)> {
    let dir = RunDir::prepare(cfg, out)?;
    let hosts = HostPlan::new(cfg, &dir)?;
    virtual_time::run(cfg, &dir, &hosts, &content(cfg)?)
}

/// What the source streams: the run's file, or synthetic bytes from the run's seed.
fn content(cfg: &SwarmConfig) -> Result<Content> {
    Ok(match &cfg.file {
        Some(f) => Content::file(f)?,
        None => Content::Synthetic { seed: cfg.seed },
    })
}

/// Netns and virtual runs address their peers in 198.18.0.0/15, loopback runs in a /16 of
/// their own: checks they fit (a peer outside its run's block could be another run's).
fn check_address_block(cfg: &SwarmConfig) -> Result<()> {
    if matches!(cfg.mode, Mode::Netns | Mode::Virtual) && cfg.peers > MAX_NETNS_PEERS {
        bail!("at most {MAX_NETNS_PEERS} peers fit in 198.18.0.0/15");
    }
    if matches!(cfg.mode, Mode::Loopback | Mode::Auto) && cfg.peers > MAX_LOOPBACK_PEERS {
        bail!("at most {MAX_LOOPBACK_PEERS} peers fit in a loopback run's /16: use --mode netns for more");
    }
    Ok(())
}

/// In netns mode, removes what killed runs left; returns the names of the namespaces removed.
fn sweep_stale(cfg: &SwarmConfig) -> Result<Vec<String>> {
    if cfg.mode != Mode::Netns {
        return Ok(Vec::new());
    }
    let swept = netns::sweep(false)?;
    if !swept.is_empty() {
        eprintln!("soplab: removed {} namespaces left by a killed run", swept.len());
    }
    Ok(swept)
}

impl Swarm<'_> {
    /// The phases that start things: namespaces, captures (before any daemon, so no packet is
    /// missed), daemons; then the wait.
    async fn start_and_run(&mut self) -> Result<Ran> {
        let netns_setup_s = self.make_namespaces()?;
        self.start_captures().await?;
        let epoch_us = self.start_daemons().await?;
        let interrupted = self.watch(epoch_us).await?;
        Ok(Ran { netns_setup_s, epoch_us, interrupted })
    }
}
