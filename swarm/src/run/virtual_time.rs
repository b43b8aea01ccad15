//! `--mode virtual`: the daemons a netns run would start, configured by the same functions
//! ([`super::launch`]), run as cores in the deterministic virtual-time network inside this
//! process ([`crate::virtual_swarm`]). The run directory gets what a netns run's gets (run.json,
//! truth/*.jsonl as the daemons write them, summary.json, workload.csv, logs/*.config.json),
//! with one capture, `pcap/bridge.pcap`, of every datagram as the bridge would see it, cut to
//! [`SNAPLEN`] bytes.
//!
//! Virtual time `t` is written as [`BASE_US`] + `t` µs since the Unix epoch, in the truth, the
//! capture and run.json alike, so that the same seed gives the same bytes.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use soplab_node::impair::Impairment;
use soplab_node::{Event, Micros, SECOND};
use soplab_peer::PeerConfig;
use soplab_rundir::run::RunInfo;
use soplab_rundir::truth::LineWriter;
use soplab_shell::flags::micros;
use soplab_shell::tap::PcapTap;
use soplab_source::Content;

use super::dir::RunDir;
use super::hosts::{HostPlan, SOURCE_HOST};
use super::launch::{self, capture_info};
use crate::scenario::SwarmConfig;
use crate::summary::Summary;
use crate::virtual_swarm::{Setup, Sink, VirtualPeer};

/// Virtual time zero as the run directory writes it: 2001-09-09 01:46:40 UTC (10^15 µs since
/// the Unix epoch), fixed so that the same seed gives byte-identical files.
pub const BASE_US: u64 = 1_000_000_000_000_000;

/// When the source starts, and the peers' time zero (the schedule's): 200 ms apart, as a netns
/// run starts its daemons. The tracker starts at 0.
const SOURCE_AT: Micros = 200_000;
const PEERS_AT: Micros = 400_000;

/// Bytes of each packet the bridge capture keeps: the IPv4 and UDP headers and the first 100
/// bytes of payload, as `tcpdump -s 128` would. The records keep every packet's true length,
/// which is all the analyzer classifies by.
pub const SNAPLEN: u32 = 128;

/// The capture's name, as a netns run's `--bridge-capture` names it.
const BRIDGE: &str = "bridge";

/// Runs the swarm `cfg` describes in virtual time and writes its run directory.
pub(super) fn run(cfg: &SwarmConfig, dir: &RunDir, hosts: &HostPlan, content: &Content) -> Result<(Summary, RunInfo)> {
    let wall = Instant::now();
    let setup = setup(cfg, dir, hosts, content)?;
    let files = Files::create(dir, &setup, cfg.duration)?;
    let (ran, files) = setup.run(files);
    let packets = files.finish()?;
    let mut capture = capture_info(BRIDGE.into(), None, "", "virtual");
    capture.packets = packets;
    capture.dropped_by_kernel = Some(0);
    let info = RunInfo {
        mode: cfg.mode,
        prefix: String::new(),
        started_us: BASE_US,
        epoch_us: BASE_US + PEERS_AT,
        ended_us: BASE_US + ran.ended,
        duration_s: cfg.duration.as_secs_f64(),
        interrupted: false,
        netns_setup_s: None,
        netns_teardown_s: None,
        swept: Vec::new(),
        hosts: hosts.infos(cfg),
        pcaps: vec![capture],
        workload: hosts.schedule.as_ref().map(|_| "workload.csv".to_string()),
        workload_preset: cfg.workload.as_deref().and_then(crate::workload::preset_name),
        time_scale: hosts.schedule.as_ref().map(|_| cfg.time_scale),
        faults: Vec::new(),
        failures: Vec::new(),
    };
    dir.write_json("run.json", &info)?;
    let summary = ran.summary();
    dir.write_json("summary.json", &summary)?;
    eprintln!(
        "soplab: {:.0} s of virtual time in {:.1} s of wall time ({} datagrams)",
        cfg.duration.as_secs_f64(),
        wall.elapsed().as_secs_f64(),
        ran.net.delivered + ran.net.unroutable
    );
    Ok((summary, info))
}

/// The run's nodes: the daemons' configurations, as a netns run builds them (and saves them
/// in logs/), each peer with its host's upload rate as its core's cap and its host's path as
/// its path in the network.
fn setup(cfg: &SwarmConfig, dir: &RunDir, hosts: &HostPlan, content: &Content) -> Result<Setup> {
    let tracker = launch::tracker_config(cfg, &hosts.addrs, dir);
    launch::write_config("tracker", &tracker, dir)?;
    let source = launch::source_config(cfg, &hosts.addrs, dir);
    launch::write_config("source", &source, dir)?;
    let mut peers = Vec::with_capacity(cfg.peers);
    for p in launch::peer_processes(cfg, hosts, dir, BASE_US + PEERS_AT) {
        launch::write_config(&p.name, &p.config, dir)?;
        for (k, hosted) in p.peers.clone().zip(&p.config.peers) {
            let link = hosts.peer_link(k);
            let at = |t: Micros| PEERS_AT.saturating_add(t);
            peers.push(VirtualPeer {
                cfg: PeerConfig { upload_bps: link.upload_bps, ..hosted.config(&p.config.template) },
                link: Some(link.path),
                spans: hosted.spans_us().into_iter().map(|(s, e)| (at(s), e.map(at))).collect(),
            });
        }
    }
    Ok(Setup {
        seed: cfg.seed,
        // The bridge adds nothing; each peer's host has its own path.
        link: Impairment::default(),
        tracker: tracker.tracker,
        source: PeerConfig { upload_bps: hosts.hosts[SOURCE_HOST].up_bps, ..source.source },
        content: content.clone(),
        source_at: SOURCE_AT,
        peers,
        end: PEERS_AT.saturating_add(micros(cfg.duration)),
    })
}

/// Where a virtual run writes: every node's truth file, the bridge capture, and the progress
/// bar. The first write error is kept (and later writes skipped) until [`Files::finish`].
struct Files {
    /// Each node's truth file and the writer that folds its floods of drops.
    truth: Vec<(BufWriter<File>, LineWriter)>,
    of_node: HashMap<SocketAddr, usize>,
    pcap: PcapTap,
    error: Option<io::Error>,
    progress: Progress,
}

impl Files {
    /// Creates the truth files (truth/tracker.jsonl, truth/source.jsonl, one per peer, as the
    /// daemons name them) and pcap/bridge.pcap.
    fn create(dir: &RunDir, setup: &Setup, duration: Duration) -> Result<Files> {
        let mut paths = vec![
            (setup.tracker.addr, dir.truth.join("tracker.jsonl")),
            (setup.source.addr, dir.truth.join("source.jsonl")),
        ];
        paths.extend(setup.peers.iter().map(|p| (p.cfg.addr, dir.truth_of(p.cfg.addr))));
        let mut truth = Vec::with_capacity(paths.len());
        let mut of_node = HashMap::with_capacity(paths.len());
        for (addr, path) in paths {
            let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            of_node.insert(addr, truth.len());
            truth.push((BufWriter::new(file), LineWriter::new(addr)));
        }
        let pcap = PcapTap::create_snapped(&dir.path(&RunDir::pcap_of(BRIDGE)), SNAPLEN)?;
        Ok(Files { truth, of_node, pcap, error: None, progress: Progress::new(duration) })
    }

    fn keep(&mut self, r: io::Result<()>) {
        if let Err(e) = r {
            self.error.get_or_insert(e);
        }
    }

    /// Flushes everything; returns the packets captured, or the first write error.
    fn finish(mut self) -> Result<u64> {
        self.progress.bar.finish_and_clear();
        let flushed: io::Result<()> =
            self.truth.iter_mut().try_for_each(|(file, lines)| lines.close(file).and_then(|()| file.flush()));
        self.keep(flushed);
        let r = self.pcap.finish();
        self.keep(r);
        match self.error {
            Some(e) => Err(e).context("cannot write the run directory: check the disk and --out"),
            None => Ok(self.pcap.packets),
        }
    }
}

impl Sink for Files {
    fn event(&mut self, t: Micros, node: SocketAddr, event: &Event) {
        if self.error.is_some() {
            return;
        }
        if let Some(&i) = self.of_node.get(&node) {
            let (file, lines) = &mut self.truth[i];
            let r = lines.write(file, event, BASE_US + t);
            self.keep(r);
        }
    }

    fn datagram(&mut self, t: Micros, from: SocketAddr, to: SocketAddr, payload: &[u8]) {
        if self.error.is_none() {
            let r = self.pcap.record(BASE_US + t, from, to, payload);
            self.keep(r);
        }
    }

    fn progress(&mut self, t: Micros, online: usize) {
        let secs = t.saturating_sub(PEERS_AT) / SECOND;
        self.progress.show(secs, online, self.pcap.packets);
    }
}

/// A bar over the run's virtual seconds (hidden without a terminal: then a line every tenth of
/// the run).
struct Progress {
    bar: ProgressBar,
    len: u64,
}

impl Progress {
    fn new(duration: Duration) -> Progress {
        let len = duration.as_secs().max(1);
        let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            ProgressBar::new(len)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{spinner} virtual [{elapsed_precise}] {bar:30} {pos}/{len} s  {msg}")
                .expect("static template"),
        );
        Progress { bar, len }
    }

    fn show(&mut self, secs: u64, online: usize, packets: u64) {
        let msg = format!("{online} peers online · {packets} packets captured");
        if !self.bar.is_hidden() {
            self.bar.set_position(secs.min(self.len));
            self.bar.set_message(msg);
        } else if secs > 0 && secs.is_multiple_of((self.len / 10).max(1)) && secs <= self.len {
            eprintln!("soplab: virtual t={secs}s of {} s: {msg}", self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Mode, Scenario};

    #[test]
    fn each_peer_gets_its_hosts_rate_and_path_and_the_netns_settings() {
        let out = std::env::temp_dir().join(format!("soplab-virtual-setup-{}", std::process::id()));
        let s = Scenario {
            peers: Some(4),
            out: Some(out.clone()),
            bitrate: Some(233_000),
            stagger: Some(Duration::from_secs(4)),
            upload: Some("list(1M,256k)".into()),
            source_upload: Some(3_000_000),
            delay: Some("list(30ms,60ms)".into()),
            jitter: Some("5ms".into()),
            loss: Some(0.01),
            ..Scenario::default()
        };
        let cfg = SwarmConfig::resolve(s, Mode::Virtual).unwrap();
        let claimed = super::super::claim_out(&out, "soplab swarm").unwrap();
        let dir = RunDir::prepare(&cfg, &claimed).unwrap();
        let hosts = HostPlan::new(&cfg, &dir).unwrap();
        let setup = setup(&cfg, &dir, &hosts, &Content::Synthetic { seed: 1 }).unwrap();
        let netns = launch::peer_processes(&cfg, &hosts, &dir, 0);
        for (k, p) in setup.peers.iter().enumerate() {
            assert_eq!(p.cfg.addr, SocketAddr::from(hosts.addrs.peer(k)));
            assert_eq!(p.cfg.upload_bps, Some([1_000_000, 256_000][k % 2]), "peer {k}'s host's rate");
            let path = Impairment { delay: [30_000, 60_000][k % 2], jitter: 5_000, loss: 0.01, loss_burst: None };
            assert_eq!(p.link, Some(path), "peer {k}'s host's path");
            assert_eq!(p.spans, [(PEERS_AT + k as u64 * 1_000_000, None)], "peers join over --stagger");
            // Everything else as the netns peer process would be configured.
            let template = &netns[0].config.template;
            assert_eq!(p.cfg.bitrate_bps, 233_000);
            let want = PeerConfig { upload_bps: p.cfg.upload_bps, ..netns[0].config.peers[k].config(template) };
            assert_eq!(format!("{:?}", p.cfg), format!("{want:?}"));
        }
        assert_eq!(setup.source.upload_bps, Some(3_000_000));
        assert_eq!(setup.end, PEERS_AT + 60 * SECOND);
        assert!(dir.logs.join("peers-0.config.json").is_file() && dir.logs.join("tracker.config.json").is_file());
        std::fs::remove_dir_all(&out).ok();
    }
}
