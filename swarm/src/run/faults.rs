//! Injecting a run's faults ([`crate::fault`]) into its daemons while it runs, and what that
//! leaves to mend afterwards: the truth files a SIGKILL cut mid-line, and the tracker's truth
//! split between its lives.
//!
//! A killed tracker's truth file is set aside as `truth/tracker.jsonl.<n>` before the tracker
//! is started again (with the same `logs/tracker.config.json`, which names
//! `truth/tracker.jsonl`); at the end the parts are joined in order into `truth/tracker.jsonl`,
//! where a reader sees one tracker whose sessions end silently at each kill.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::Signal;
use soplab_rundir::continuity::{Plays, Slide};
use soplab_rundir::run::{FaultAction, FaultInfo, RunInfo};
use soplab_rundir::stem::host_stem;
use soplab_rundir::truth::{Line, Role};

use super::Swarm;
use super::hosts::TRACKER_HOST;
use crate::fault::{Fault, Step};
use crate::process::spawn_soplab;

/// The faults of a run: the steps still to take, and what has been done.
#[derive(Debug, Default)]
pub(super) struct FaultRun {
    /// (due after the peers' time zero, fault index, step), latest first.
    pending: Vec<(Duration, usize, Step)>,
    /// One per fault, in the order given: run.json's `faults`.
    pub records: Vec<FaultInfo>,
    /// How many times the tracker has been killed: its truth parts `tracker.jsonl.1` ...
    tracker_kills: usize,
}

impl FaultRun {
    pub fn new(faults: &[Fault]) -> FaultRun {
        let mut pending: Vec<(Duration, usize, Step)> =
            faults.iter().enumerate().flat_map(|(i, f)| f.steps().into_iter().map(move |(t, s)| (t, i, s))).collect();
        // A stable sort, then reversed: the earliest step last, and steps due at once taken in
        // the order given.
        pending.sort_by_key(|p| p.0);
        pending.reverse();
        let records =
            faults.iter().map(|f| FaultInfo { spec: f.to_string(), actions: Vec::new(), peers: Vec::new() }).collect();
        FaultRun { pending, records, tracker_kills: 0 }
    }

    /// When the next step is due, given the peers' time zero.
    pub fn next_due(&self, epoch: Instant) -> Option<Instant> {
        self.pending.last().map(|p| epoch + p.0)
    }

    /// Whether a fault has killed the tracker.
    pub fn killed_tracker(&self) -> bool {
        self.tracker_kills > 0
    }

    /// Joins the tracker's truth parts and its last life's file into `truth/tracker.jsonl`.
    ///
    /// # Errors
    /// When a part cannot be read or the joined file written.
    pub fn join_tracker_truth(&self, truth: &Path) -> Result<()> {
        if self.tracker_kills == 0 {
            return Ok(());
        }
        let whole = truth.join("tracker.jsonl");
        let joined = truth.join("tracker.jsonl.joined");
        let mut out = std::fs::File::create(&joined).with_context(|| format!("cannot create {}", joined.display()))?;
        let parts = (1..=self.tracker_kills).map(|n| tracker_part(truth, n));
        for part in parts.clone().chain([whole.clone()]) {
            match std::fs::read(&part) {
                Ok(bytes) => out.write_all(&bytes).with_context(|| format!("cannot write {}", joined.display()))?,
                // The tracker was down when the run ended: its last life has no file.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && part == whole => {}
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", part.display())),
            }
        }
        drop(out);
        std::fs::rename(&joined, &whole).with_context(|| format!("cannot write {}", whole.display()))?;
        for part in parts {
            std::fs::remove_file(&part).with_context(|| format!("cannot remove {}", part.display()))?;
        }
        Ok(())
    }
}

/// The truth of the tracker's `n`-th life, set aside when it was killed.
fn tracker_part(truth: &Path, n: usize) -> PathBuf {
    truth.join(format!("tracker.jsonl.{n}"))
}

/// Cuts a truth file after its last whole line: a process killed outright may have written
/// part of one. Returns the bytes cut. A missing file is left missing.
fn trim_torn_line(path: &Path) -> Result<u64> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if keep < bytes.len() {
        let f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.set_len(keep as u64).with_context(|| format!("cannot trim {}", path.display()))?;
    }
    Ok((bytes.len() - keep) as u64)
}

impl Swarm<'_> {
    /// Takes every fault step due by now (the peers' time zero is `epoch`), recording each.
    /// A step that fails is recorded with its error and the run goes on.
    pub(super) async fn run_due_faults(&mut self, epoch: Instant) -> Result<()> {
        while let Some(&(at, i, step)) = self.faults.pending.last() {
            if epoch + at > Instant::now() {
                break;
            }
            self.faults.pending.pop();
            let ts_us = soplab_shell::realtime_us();
            let (target, action, result) = self.take_step(step).await;
            let error = result.as_ref().err().map(|e| format!("{e:#}"));
            if let Some(e) = &error {
                tracing::warn!("fault {}: {action} {target} failed: {e}", self.faults.records[i].spec);
            }
            let record = &mut self.faults.records[i];
            record.actions.push(FaultAction { action: action.into(), target, ts_us, error });
            if let Ok(peers) = result {
                record.peers.extend(peers);
            }
        }
        Ok(())
    }

    /// Takes one step: (the process it acts on, the action, the peers it killed or an error).
    async fn take_step(&mut self, step: Step) -> (String, &'static str, Result<Vec<String>>) {
        match step {
            Step::KillPeers(k) => (format!("peers-{k}"), "sigkill", self.kill_peers(k).await),
            Step::KillTracker => ("tracker".into(), "sigkill", self.kill_tracker().await.map(|()| Vec::new())),
            Step::StartTracker => ("tracker".into(), "restart", self.start_tracker().map(|()| Vec::new())),
            Step::StopSource => ("source".into(), "sigstop", self.signal_source(Signal::SIGSTOP).map(|()| Vec::new())),
            Step::ContinueSource => {
                ("source".into(), "sigcont", self.signal_source(Signal::SIGCONT).map(|()| Vec::new()))
            }
        }
    }

    /// SIGKILL to peer process `k`; its peers' truth files are cut after their last whole line.
    /// Returns the peers killed.
    async fn kill_peers(&mut self, k: usize) -> Result<Vec<String>> {
        let p = self.started.peers.get_mut(k).with_context(|| format!("there is no peer process {k}"))?;
        p.daemon.kill_now().await?;
        p.killed = true;
        let peers: Vec<_> = p.peers.clone().map(|i| self.hosts.addrs.peer(i)).collect();
        for a in &peers {
            trim_torn_line(&self.dir.truth_of((*a).into()))?;
        }
        Ok(peers.iter().map(ToString::to_string).collect())
    }

    /// SIGKILL to the tracker; its truth file, cut after its last whole line, is set aside.
    async fn kill_tracker(&mut self) -> Result<()> {
        let mut tracker = self.started.tracker.take().context("the tracker is not running")?;
        tracker.kill_now().await?;
        let file = self.dir.truth.join("tracker.jsonl");
        trim_torn_line(&file)?;
        self.faults.tracker_kills += 1;
        let part = tracker_part(&self.dir.truth, self.faults.tracker_kills);
        std::fs::rename(&file, &part).with_context(|| format!("cannot move {} aside", file.display()))
    }

    /// Starts the tracker again with its configuration, logging to `logs/tracker-<n>.log`.
    fn start_tracker(&mut self) -> Result<()> {
        let config = self.dir.logs.join("tracker.config.json");
        let name = format!("tracker-{}", self.faults.tracker_kills + 1);
        // Daemons run in the run directory, with run-relative paths (as `launch` starts them).
        let config = config.strip_prefix(&self.dir.out).unwrap_or(&config).as_os_str().to_owned();
        let args = ["tracker".into(), "--config".into(), config];
        let daemon = spawn_soplab(&name, &args, &self.dir.logs, self.hosts.netns_of(TRACKER_HOST), &self.dir.out)?;
        self.started.tracker = Some(daemon);
        Ok(())
    }

    fn signal_source(&mut self, signal: Signal) -> Result<()> {
        self.started.source.as_mut().context("the source is not running")?.signal(signal)
    }
}

/// Continuity is judged over 5 s windows, one every half second, in the report of a fault.
const SLIDE: Slide = Slide { width_us: 5_000_000, step_us: 500_000 };
/// A window counts as streaming at this continuity or more.
const STREAMING: f64 = 0.95;
/// How long after a fault ends its effect is looked at: a peer plays 10 s behind the stream,
/// so a fault can show in its plays that much later.
const AFTERMATH_US: i64 = 10_000_000;

/// One line per fault of a finished run, from its run.json and its peers' truth: when each step
/// happened (seconds after the peers' time zero), and the continuity of the peers that kept
/// running, over 5 s windows, from the fault to 10 s after it ended (to the end of the run,
/// for a kill, with how soon they were back at 0.95).
///
/// # Errors
/// When a peer's truth file cannot be read or holds a line that is not a ground-truth event.
pub fn fault_report(run: &Path, info: &RunInfo) -> Result<Vec<String>> {
    if info.faults.is_empty() {
        return Ok(Vec::new());
    }
    let killed: Vec<&str> = info.faults.iter().flat_map(|f| f.peers.iter().map(String::as_str)).collect();
    let mut plays: Vec<(bool, Plays)> = Vec::new();
    for h in info.hosts.iter().filter(|h| h.role == Role::Peer) {
        let Ok(addr) = h.address.parse::<SocketAddr>() else { continue };
        let file = run.join("truth").join(format!("{}.jsonl", host_stem(addr)));
        let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
        let lines: Vec<Line> = text
            .lines()
            .map(Line::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("bad line in {}", file.display()))?;
        plays.push((killed.contains(&h.address.as_str()), Plays::of(addr, &lines)));
    }
    let end_us = (info.epoch_us as i64).saturating_add((info.duration_s * 1e6) as i64);
    Ok(info.faults.iter().map(|f| fault_line(f, &plays, info.epoch_us as i64, end_us)).collect())
}

/// The report of one fault (see [`fault_report`]); `plays` are every peer's, each marked if a
/// fault killed it.
fn fault_line(f: &FaultInfo, plays: &[(bool, Plays)], epoch_us: i64, end_us: i64) -> String {
    let at = |ts: u64| (ts as i64 - epoch_us) as f64 / 1e6;
    let steps: Vec<String> =
        f.actions.iter().map(|a| format!("{} {} at {:.2} s", a.action, a.target, at(a.ts_us))).collect();
    let mut line = format!("fault {}: {}", f.spec, steps.join(", "));
    let (Some(first), Some(last)) = (f.actions.first(), f.actions.last()) else { return line };
    let kill = !f.peers.is_empty();
    let from = first.ts_us as i64;
    let to = if kill { end_us } else { (last.ts_us as i64 + AFTERMATH_US).min(end_us) };
    // The peers playing before the fault and still playing after it, killed ones aside.
    let running: Vec<&Plays> = plays
        .iter()
        .filter(|(dead, p)| !dead && p.within(0, from).due > 0 && p.last_us().is_some_and(|t| t >= to - SLIDE.width_us))
        .map(|(_, p)| p)
        .collect();
    let worst = running.iter().filter_map(|p| p.worst(from, to, SLIDE)).map(|w| w.continuity()).reduce(f64::min);
    let Some(worst) = worst else { return line };
    line += &format!(
        "; {} running peers' worst 5 s continuity from {:.1} s to {:.1} s: {worst:.3}",
        running.len(),
        at(from as u64),
        at(to as u64)
    );
    if kill {
        let back = running.iter().map(|p| p.recovery_us(from, to, SLIDE, STREAMING)).max().unwrap_or(0);
        line += &format!(", all >= {STREAMING} again after {:.1} s", back as f64 / 1e6);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_lines_are_cut_and_whole_files_kept() {
        let dir = std::env::temp_dir().join(format!("soplab-faults-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("t.jsonl");
        std::fs::write(&f, "{\"a\":1}\n{\"b\":").unwrap();
        assert_eq!(trim_torn_line(&f).unwrap(), 5);
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "{\"a\":1}\n");
        assert_eq!(trim_torn_line(&f).unwrap(), 0);
        assert_eq!(trim_torn_line(&dir.join("missing.jsonl")).unwrap(), 0);

        // Two lives of the tracker, then a third still running at the end.
        std::fs::write(tracker_part(&dir, 1), "one\n").unwrap();
        std::fs::write(tracker_part(&dir, 2), "two\n").unwrap();
        std::fs::write(dir.join("tracker.jsonl"), "three\n").unwrap();
        let run = FaultRun { tracker_kills: 2, ..FaultRun::default() };
        run.join_tracker_truth(&dir).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("tracker.jsonl")).unwrap(), "one\ntwo\nthree\n");
        assert!(!tracker_part(&dir, 1).exists() && !tracker_part(&dir, 2).exists());
        // Killed and never started again: the parts alone.
        std::fs::remove_file(dir.join("tracker.jsonl")).unwrap();
        std::fs::write(tracker_part(&dir, 1), "one\n").unwrap();
        FaultRun { tracker_kills: 1, ..FaultRun::default() }.join_tracker_truth(&dir).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("tracker.jsonl")).unwrap(), "one\n");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn steps_wait_in_time_order() {
        let faults: Vec<Fault> =
            ["stop-source:at=45s,for=5s", "restart-tracker:at=20s,down=5s", "kill-peers:at=45s,process=0"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect();
        let run = FaultRun::new(&faults);
        let order: Vec<(u64, Step)> = run.pending.iter().rev().map(|p| (p.0.as_secs(), p.2)).collect();
        assert_eq!(
            order,
            [
                (20, Step::KillTracker),
                (25, Step::StartTracker),
                (45, Step::StopSource),
                (45, Step::KillPeers(0)),
                (50, Step::ContinueSource)
            ]
        );
        assert_eq!(run.records.len(), 3);
    }

    /// A peer's plays: a block every 200 ms over `[from_s, to_s)`, missed in `[miss_from_s,
    /// miss_to_s)`.
    fn plays(k: u8, from_s: i64, to_s: i64, miss: (i64, i64)) -> Plays {
        let node: SocketAddr = format!("198.18.1.{k}:3908").parse().unwrap();
        let lines: Vec<Line> = (from_s * 5..to_s * 5)
            .map(|i| {
                let ts_us = i * 200_000;
                let hit = !(miss.0 * 1_000_000..miss.1 * 1_000_000).contains(&ts_us);
                Line { ts_us, node, event: soplab_rundir::truth::Event::Play { block: i as u32, hit } }
            })
            .collect();
        Plays::of(node, &lines)
    }

    #[test]
    fn a_fault_line_says_when_and_how_the_running_peers_played() {
        let s = |t: u64| t * 1_000_000;
        let act = |action: &str, target: &str, ts_us| FaultAction {
            action: action.into(),
            target: target.into(),
            ts_us,
            error: None,
        };
        let stop = FaultInfo {
            spec: "stop-source:at=20s,for=5s".into(),
            actions: vec![act("sigstop", "source", s(20)), act("sigcont", "source", s(25))],
            peers: Vec::new(),
        };
        // One peer missed 30-32 s; one joined after the fault (not counted); one was killed.
        let all =
            [(false, plays(1, 0, 60, (30, 32))), (false, plays(2, 22, 60, (0, 0))), (true, plays(3, 0, 40, (0, 0)))];
        let line = fault_line(&stop, &all, 0, s(60) as i64);
        assert_eq!(
            line,
            "fault stop-source:at=20s,for=5s: sigstop source at 20.00 s, sigcont source at 25.00 s; 1 running peers' \
             worst 5 s continuity from 20.0 s to 35.0 s: 0.600"
        );
        let kill = FaultInfo {
            spec: "kill-peers:at=28s,process=1".into(),
            actions: vec![act("sigkill", "peers-1", s(28))],
            peers: vec!["198.18.1.3:3908".into()],
        };
        let line = fault_line(&kill, &all, 0, s(60) as i64);
        assert!(
            line.ends_with(
                "2 running peers' worst 5 s continuity from 28.0 s to 60.0 s: 0.600, all >= 0.95 again after 4.0 s"
            ),
            "{line}"
        );
    }
}
