//! Waiting out a run: until the peers' time zero plus the duration, Ctrl-C or SIGTERM, or a
//! process that exits early; with a live progress line (peers online, mean continuity, packets
//! captured) read from the growing ground truth and pcaps.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use soplab_rundir::stem::parse_host_stem;
use soplab_rundir::truth::{Event, Line};
use tokio::signal::unix::{SignalKind, signal};

use super::{Started, Swarm};
use crate::tcpdump::PcapCounter;

/// How often the progress line is refreshed.
const REPORT_EVERY: Duration = Duration::from_secs(2);

impl Swarm<'_> {
    /// Waits until `epoch_us` (CLOCK_REALTIME µs) plus the run's duration; returns true when
    /// Ctrl-C or SIGTERM cut it short. A process that exits meanwhile ends the wait: stopping
    /// then finds out why and run.json names it.
    pub(super) async fn watch(&mut self, epoch_us: u64) -> Result<bool> {
        let epoch = Instant::now() + Duration::from_micros(epoch_us.saturating_sub(soplab_shell::realtime_us()));
        let mut progress = Progress::new(self.cfg.duration);
        let watched = self.wait(epoch, &mut progress).await;
        progress.bar.finish_and_clear();
        watched
    }

    async fn wait(&mut self, epoch: Instant, progress: &mut Progress) -> Result<bool> {
        let end = epoch + self.cfg.duration;
        let mut sigterm = signal(SignalKind::terminate())?;
        while Instant::now() < end {
            let tick = (Instant::now() + Duration::from_secs(1)).min(end);
            let wake = self.faults.next_due(epoch).map_or(tick, |f| f.min(tick));
            let interrupted = tokio::select! {
                _ = tokio::time::sleep_until(wake.into()) => false,
                _ = tokio::signal::ctrl_c() => true,
                _ = sigterm.recv() => true,
            };
            if interrupted {
                progress.bar.println("interrupted: stopping the swarm and removing its namespaces");
                return Ok(true);
            }
            self.run_due_faults(epoch).await?;
            if let Some(name) = self.started.exited_early()? {
                progress.bar.println(format!("{name} exited early: stopping the swarm"));
                return Ok(false);
            }
            let t = Instant::now().saturating_duration_since(epoch).as_secs();
            progress.bar.set_position(t);
            if progress.last_report.elapsed() >= REPORT_EVERY || Instant::now() >= end {
                progress.last_report = Instant::now();
                self.report(progress, t);
            }
        }
        Ok(false)
    }

    /// Refreshes the progress line at `t` seconds into the run; without a terminal, prints it
    /// every 30 s instead.
    fn report(&mut self, progress: &mut Progress, t: u64) {
        let live = &mut progress.live;
        live.update(&self.dir.truth);
        let captured: u64 = self.started.captures.iter_mut().map(|c| c.tcpdump.packets()).sum::<u64>()
            + if self.cfg.self_capture { live.self_captured(&self.dir.pcap) } else { 0 };
        let msg = format!(
            "{} peers online of {} · continuity {} · {} packets captured",
            live.online(),
            self.cfg.peers,
            live.mean_continuity().map_or("-".into(), |c| format!("{c:.3}")),
            captured
        );
        if !progress.bar.is_hidden() {
            progress.bar.set_message(msg);
        } else if t % 30 < 2 {
            eprintln!("soplab: t={t}s {msg}");
        }
    }
}

impl Started {
    /// The name of a process that has exited while the run goes on (other than by a fault),
    /// if one has.
    fn exited_early(&mut self) -> Result<Option<String>> {
        let peers = self.peers.iter_mut().filter(|p| !p.killed).map(|p| &mut p.daemon);
        let daemons = self.tracker.iter_mut().chain(self.source.iter_mut()).chain(peers);
        for d in daemons.chain(self.captures.iter_mut().map(|c| &mut c.tcpdump.daemon)) {
            if d.child.try_wait()?.is_some() {
                return Ok(Some(d.name.clone()));
            }
        }
        Ok(None)
    }
}

/// The progress bar (hidden without a terminal) and what it shows.
struct Progress {
    bar: ProgressBar,
    live: Live,
    last_report: Instant,
}

impl Progress {
    fn new(duration: Duration) -> Progress {
        let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            ProgressBar::new(duration.as_secs().max(1))
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{spinner} swarm [{elapsed_precise}] {bar:30} {pos}/{len} s  {msg}")
                .expect("static template"),
        );
        Progress { bar, live: Live::default(), last_report: Instant::now() }
    }
}

/// What the progress line shows, read from the growing ground-truth files: which peers are in
/// a session, and how many of their due blocks they played.
#[derive(Default)]
struct Live {
    /// Per truth file: how far it has been read, and a last line not yet complete.
    files: HashMap<PathBuf, (u64, Vec<u8>)>,
    peers: BTreeMap<SocketAddr, PeerLive>,
    self_counters: HashMap<PathBuf, PcapCounter>,
}

#[derive(Default)]
struct PeerLive {
    online: bool,
    hits: u64,
    plays: u64,
}

impl Live {
    /// Reads the lines the peers' truth files gained since the last call.
    fn update(&mut self, truth: &Path) {
        let Ok(dir) = std::fs::read_dir(truth) else { return };
        for e in dir.flatten() {
            let Some(peer) = parse_host_stem(&e.file_name().to_string_lossy()) else { continue };
            let Some(complete) = self.read_new_lines(e.path()) else { continue };
            let p = self.peers.entry(peer).or_default();
            for line in complete.split(|&b| b == b'\n') {
                let Some(line) = std::str::from_utf8(line).ok().and_then(|l| Line::parse(l).ok()) else { continue };
                match line.event {
                    Event::Play { hit, .. } => {
                        p.plays += 1;
                        p.hits += u64::from(hit);
                    }
                    Event::Stalled { blocks, .. } => p.plays += u64::from(blocks),
                    Event::SessionStart { .. } => p.online = true,
                    Event::SessionEnd { .. } => p.online = false,
                    _ => {}
                }
            }
        }
    }

    /// The whole lines appended to `path` since the last call, if any.
    fn read_new_lines(&mut self, path: PathBuf) -> Option<Vec<u8>> {
        let Ok(mut f) = std::fs::File::open(&path) else { return None };
        let (offset, partial) = self.files.entry(path).or_default();
        f.seek(SeekFrom::Start(*offset)).ok()?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).ok()?;
        *offset += buf.len() as u64;
        partial.extend_from_slice(&buf);
        let last_nl = partial.iter().rposition(|&b| b == b'\n')?;
        Some(partial.drain(..=last_nl).collect())
    }

    fn online(&self) -> usize {
        self.peers.values().filter(|p| p.online).count()
    }

    fn mean_continuity(&self) -> Option<f64> {
        let c: Vec<f64> = self.peers.values().filter(|p| p.plays > 0).map(|p| p.hits as f64 / p.plays as f64).collect();
        (!c.is_empty()).then(|| c.iter().sum::<f64>() / c.len() as f64)
    }

    /// Packets in the pcaps the peers write themselves (loopback's --self-capture).
    fn self_captured(&mut self, pcap_dir: &Path) -> u64 {
        let Ok(dir) = std::fs::read_dir(pcap_dir) else { return 0 };
        let mut total = 0;
        for e in dir.flatten() {
            let path = e.path();
            total += self.self_counters.entry(path.clone()).or_default().update(&path);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_reads_sessions_and_plays_from_growing_truth_files() {
        let dir = std::env::temp_dir().join(format!("soplab-live-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let node: SocketAddr = "127.0.0.9:3908".parse().unwrap();
        let file = dir.join(format!("{}.jsonl", soplab_rundir::stem::host_stem(node)));
        let line = |e: Event| e.to_json_line(1, node) + "\n";
        let start = line(Event::SessionStart { role: soplab_rundir::truth::Role::Peer });
        let hit = line(Event::Play { block: 1, hit: true });
        let miss = line(Event::Play { block: 2, hit: false });
        std::fs::write(&file, format!("{start}{hit}{}", &miss[..10])).unwrap();
        std::fs::write(dir.join("tracker.jsonl"), &start).unwrap();
        let mut live = Live::default();
        live.update(&dir);
        assert_eq!((live.online(), live.mean_continuity()), (1, Some(1.0)), "a half-written line waits");
        std::fs::write(&file, format!("{start}{hit}{miss}{}", line(Event::SessionEnd { graceful: false }))).unwrap();
        live.update(&dir);
        assert_eq!((live.online(), live.mean_continuity()), (0, Some(0.5)));
        std::fs::remove_dir_all(&dir).ok();
    }
}
