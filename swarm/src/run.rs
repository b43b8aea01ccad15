//! `soplab swarm`: a tracker, a source and N peers as real processes speaking UDP, either each
//! host in its own network namespace on a bridge (198.18.0.0/15, captured by tcpdump at vantage
//! peers and on the bridge), or on loopback addresses; optionally churned by a workload; stopped
//! and torn down at the end, on Ctrl-C, on SIGTERM and on errors; then summary.json and
//! run.json.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use soplab_peer::PeerStats;
use soplab_source::Content;

use crate::netns::{self, Host, Topology};
use crate::played::check_played;
use crate::process::{Daemon, spawn_soplab};
use crate::scenario::{Mode, SwarmConfig};
use crate::summary::{PlayCheck, Summary};
use crate::tcpdump::{self, Tcpdump};
use crate::workload::Schedule;
use soplab_rundir::plan::Plan;
use soplab_rundir::run::{CaptureInfo, HostInfo, RunInfo};
use soplab_rundir::truth::Role;

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

fn s(v: impl ToString) -> String {
    v.to_string()
}

/// Most peers a netns run can address: 198.18.1.1 up to 198.19.255.254.
pub const MAX_NETNS_PEERS: usize = (1 << 17) - 256 - 2;

fn peer_name(a: SocketAddrV4) -> String {
    format!("peer-{}-{}", a.ip(), a.port())
}

/// One peer process: which peers (a contiguous range) and its stats file.
struct PeerProcess {
    daemon: Daemon,
    stats: PathBuf,
}

/// Runs the swarm described by `cfg` (mode already decided) and writes the run directory;
/// returns the summary.
pub async fn run(cfg: &SwarmConfig) -> Result<(Summary, RunInfo)> {
    let out = &cfg.out;
    let (truth, played, logs, pcap_dir) = (out.join("truth"), out.join("played"), out.join("logs"), out.join("pcap"));
    // A run directory is this run's alone: stale outputs would mix into the analysis.
    for d in [&truth, &played, &logs, &pcap_dir] {
        if d.exists() {
            std::fs::remove_dir_all(d).with_context(|| format!("cannot clear {}", d.display()))?;
        }
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}: check --out", d.display()))?;
    }
    // So are the files a previous run (or its analysis) left at the top.
    for f in ["run.json", "summary.json", "workload.csv", "validation.json"] {
        let _ = std::fs::remove_file(out.join(f));
    }
    let _ = std::fs::remove_dir_all(out.join("analysis"));
    std::fs::write(out.join("scenario.toml"), toml::to_string(&cfg.to_scenario())?)
        .with_context(|| format!("cannot write {}", out.join("scenario.toml").display()))?;
    let started_us = soplab_shell::realtime_us();
    let netns_mode = cfg.mode == Mode::Netns;
    if netns_mode && cfg.peers > MAX_NETNS_PEERS {
        bail!("at most {MAX_NETNS_PEERS} peers fit in 198.18.0.0/15");
    }
    let prefix = netns::run_prefix();
    let swept = if netns_mode { netns::sweep(false)? } else { Vec::new() };
    if !swept.is_empty() {
        eprintln!("soplab: removed {} namespaces left by a killed run", swept.len());
    }

    let addrs = if netns_mode { Plan::netns() } else { Plan::for_run(std::process::id()) };

    // Churn: the non-vantage peers are the workload's clients.
    let churned = cfg.peers - cfg.vantage;
    let schedule = match &cfg.workload {
        Some(w) => {
            let sch = crate::workload::preset_or_file(
                w,
                cfg.duration.as_secs_f64(),
                cfg.seed,
                Some(churned),
                cfg.time_scale,
            )?;
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
            sch.write_csv(out.join("workload.csv"))?;
            Some(sch)
        }
        None => None,
    };

    // Hosts: tracker, source, then peers (vantage peers one per host).
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(cfg.seed ^ 0x11_4b5);
    let mut host_of_peer: Vec<usize> = Vec::with_capacity(cfg.peers);
    let mut hosts: Vec<Host> = Vec::new();
    let ip4 = |a: SocketAddr| match a {
        SocketAddr::V4(v) => *v.ip(),
        SocketAddr::V6(_) => unreachable!("soplab plans IPv4 addresses only"),
    };
    hosts.push(Host {
        ns: format!("{prefix}-tracker"),
        port: "t".into(),
        addrs: vec![ip4(addrs.tracker)],
        up_bps: None,
        down_bps: None,
    });
    hosts.push(Host {
        ns: format!("{prefix}-source"),
        port: "s".into(),
        addrs: vec![ip4(addrs.source)],
        up_bps: cfg.source_upload,
        down_bps: None,
    });
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

    let mut topology = None;
    let mut setup_s = None;
    if netns_mode {
        let t = Instant::now();
        let mut topo = Topology::new(&prefix, hosts.clone());
        let made = topo.create();
        topology = Some(topo);
        made?;
        setup_s = Some(t.elapsed().as_secs_f64());
        eprintln!(
            "soplab: {} namespaces (hub, tracker, source, {} peer hosts) ready in {:.2} s",
            hosts.len() + 1,
            hosts.len() - 2,
            t.elapsed().as_secs_f64()
        );
    }
    let ns_of = |h: usize| netns_mode.then(|| hosts[h].ns.clone());

    // Captures start before any daemon.
    let mut dumps: Vec<(Tcpdump, CaptureInfo)> = Vec::new();
    if netns_mode {
        for k in 0..cfg.vantage {
            let a = addrs.peer(k);
            let host = &hosts[host_of_peer[k]];
            let file = pcap_dir.join(format!("{}.pcap", peer_name(a)));
            let d = tcpdump::start(&format!("tcpdump-{}", peer_name(a)), &host.ns, "eth0", &file, &logs).await?;
            dumps.push((
                d,
                CaptureInfo {
                    file: format!("pcap/{}.pcap", peer_name(a)),
                    host: peer_name(a),
                    address: Some(a.to_string()),
                    netns: host.ns.clone(),
                    interface: "eth0".into(),
                    packets: 0,
                    dropped_by_kernel: None,
                },
            ));
        }
        if cfg.bridge_capture {
            let hub = format!("{prefix}-hub");
            let file = pcap_dir.join("bridge.pcap");
            let d = tcpdump::start("tcpdump-bridge", &hub, "br0", &file, &logs).await?;
            dumps.push((
                d,
                CaptureInfo {
                    file: "pcap/bridge.pcap".into(),
                    host: "bridge".into(),
                    address: None,
                    netns: hub,
                    interface: "br0".into(),
                    packets: 0,
                    dropped_by_kernel: None,
                },
            ));
        }
    }

    let content = match &cfg.file {
        Some(f) => Content::file(f)?,
        None => Content::Synthetic { seed: cfg.seed },
    };
    let p = |f: &Path| f.display().to_string();
    let mut tracker = spawn_soplab(
        "tracker",
        &[
            s("tracker"),
            s("--listen"),
            s(addrs.tracker),
            s("--seed"),
            s(cfg.seed),
            s("--truth"),
            p(&truth.join("tracker.jsonl")),
            s("--stats"),
            p(&logs.join("tracker.stats.json")),
        ],
        &logs,
        ns_of(0).as_deref(),
    )?;
    let mut source_args = vec![
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
        p(&truth.join("source.jsonl")),
        s("--stats"),
        p(&logs.join("source.stats.json")),
    ];
    match &cfg.file {
        Some(f) => source_args.extend([s("--file"), p(f)]),
        None => source_args.extend([s("--synthetic-seed"), s(cfg.seed)]),
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut source = spawn_soplab("source", &source_args, &logs, ns_of(1).as_deref())?;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Peers: contiguous ranges per process; time zero leaves them a moment to bind.
    let epoch_us = soplab_shell::realtime_us() + 1_000_000 + cfg.peers as u64 * 2_000;
    let procs = cfg.processes.clamp(1, cfg.peers);
    let mut peer_procs: Vec<PeerProcess> = Vec::new();
    let mut first = 0;
    for k in 0..procs {
        let count = cfg.peers / procs + usize::from(k < cfg.peers % procs);
        let stats = logs.join(format!("peers-{k}.stats.json"));
        let mut args = vec![
            s("peer"),
            s("--addr"),
            s(addrs.peer(first)),
            s("--count"),
            s(count),
            s("--tracker"),
            s(addrs.tracker),
            s("--bitrate"),
            s(cfg.bitrate),
            s("--seed"),
            s(cfg.seed + 1000 + first as u64),
            s("--truth-dir"),
            p(&truth),
            s("--played-dir"),
            p(&played),
            s("--stats"),
            p(&stats),
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
        if netns_mode {
            let names: Vec<String> = (first..first + count).map(|i| hosts[host_of_peer[i]].ns.clone()).collect();
            args.extend([s("--netns"), names.join(",")]);
        }
        if cfg.self_capture && !netns_mode {
            args.extend([s("--pcap-dir"), p(&pcap_dir)]);
        }
        if let Some(sch) = &schedule {
            let file = logs.join(format!("peers-{k}.schedule.csv"));
            let mut text = String::from("client,session,start,end\n");
            for x in &sch.sessions {
                let peer = cfg.vantage + x.client as usize;
                if (first..first + count).contains(&peer) {
                    text.push_str(&format!("{},{},{:.3},{:.3}\n", peer - first, x.session, x.start, x.end));
                }
            }
            std::fs::write(&file, text)?;
            args.extend([s("--schedule"), p(&file), s("--schedule-epoch-ms"), s(epoch_us / 1000)]);
        }
        // The process lives in its first peer's namespace; each socket is bound in its own.
        let daemon = spawn_soplab(&format!("peers-{k}"), &args, &logs, ns_of(host_of_peer[first]).as_deref())?;
        peer_procs.push(PeerProcess { daemon, stats });
        first += count;
    }

    // Wait until time zero plus the duration, or Ctrl-C / SIGTERM, watching the daemons.
    let epoch = Instant::now() + Duration::from_micros(epoch_us.saturating_sub(soplab_shell::realtime_us()));
    let end = epoch + cfg.duration;
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::new(cfg.duration.as_secs().max(1))
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} swarm [{elapsed_precise}] {bar:30} {pos}/{len} s  {msg}")
            .expect("static template"),
    );
    let mut live = Live::default();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupted = false;
    let mut last_report = Instant::now();
    let mut failure: Option<anyhow::Error> = None;
    while Instant::now() < end {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1).min(end.saturating_duration_since(Instant::now()))) => {}
            _ = tokio::signal::ctrl_c() => { interrupted = true; }
            _ = sigterm.recv() => { interrupted = true; }
        }
        if interrupted {
            bar.println("interrupted: stopping the swarm and removing its namespaces");
            break;
        }
        let mut all = vec![&mut tracker, &mut source];
        all.extend(peer_procs.iter_mut().map(|p| &mut p.daemon));
        all.extend(dumps.iter_mut().map(|(d, _)| &mut d.daemon));
        for d in all {
            if let Some(status) = d.child.try_wait()? {
                failure = Some(anyhow::anyhow!("{} exited early ({status}); see {}", d.name, d.log.display()));
            }
        }
        if failure.is_some() {
            break;
        }
        let t = Instant::now().saturating_duration_since(epoch).as_secs();
        bar.set_position(t);
        if last_report.elapsed() >= Duration::from_secs(2) || Instant::now() >= end {
            last_report = Instant::now();
            live.update(&truth);
            let captured: u64 = dumps.iter_mut().map(|(d, _)| d.counter.update(&d.file)).sum::<u64>()
                + if cfg.self_capture { live.self_captured(&pcap_dir) } else { 0 };
            let msg = format!(
                "{} peers online of {} · continuity {} · {} packets captured",
                live.online(),
                cfg.peers,
                live.mean_continuity().map_or("-".into(), |c| format!("{c:.3}")),
                captured
            );
            if bar.is_hidden() {
                if t % 30 < 2 {
                    eprintln!("soplab: t={t}s {msg}");
                }
            } else {
                bar.set_message(msg);
            }
        }
    }
    bar.finish_and_clear();

    // Peers first (they leave the tracker), then the source and the tracker, then the
    // captures, so that every packet of the run is in them.
    let grace = Duration::from_secs(15);
    let mut clean = true;
    for pp in &mut peer_procs {
        clean &= pp.daemon.stop(grace).await?;
    }
    clean &= source.stop(grace).await?;
    clean &= tracker.stop(grace).await?;
    let mut pcaps = Vec::new();
    for (d, mut info) in dumps {
        let mut d = d;
        info.dropped_by_kernel = d.stop().await?;
        info.packets = d.counter.update(&d.file);
        pcaps.push(info);
    }
    let ended_us = soplab_shell::realtime_us();
    let mut teardown_s = None;
    if let Some(mut topo) = topology.take() {
        let t = Instant::now();
        topo.destroy()?;
        teardown_s = Some(t.elapsed().as_secs_f64());
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if !clean {
        tracing::warn!("a daemon did not exit cleanly; see {}", logs.display());
    }
    if cfg.self_capture && !netns_mode {
        for k in 0..cfg.peers {
            let a = addrs.peer(k);
            let file = format!("pcap/{}.pcap", peer_name(a));
            let packets = tcpdump::PcapCounter::default().update(&out.join(&file));
            pcaps.push(CaptureInfo {
                file,
                host: peer_name(a),
                address: Some(a.to_string()),
                netns: String::new(),
                interface: "self".into(),
                packets,
                dropped_by_kernel: None,
            });
        }
    }

    let host_infos = host_infos(cfg, &addrs, &hosts, &host_of_peer, netns_mode, schedule.as_ref());
    let info = RunInfo {
        mode: cfg.mode,
        prefix,
        started_us,
        epoch_us,
        ended_us,
        duration_s: cfg.duration.as_secs_f64(),
        interrupted,
        netns_setup_s: setup_s,
        netns_teardown_s: teardown_s,
        swept,
        hosts: host_infos,
        pcaps,
        workload: schedule.as_ref().map(|_| "workload.csv".to_string()),
    };
    std::fs::write(out.join("run.json"), serde_json::to_vec_pretty(&info)?)?;

    let stats_files: Vec<PathBuf> = peer_procs.iter().map(|p| p.stats.clone()).collect();
    let summary = summarise(&content, &stats_files, &logs, &truth, &played)?;
    let path = out.join("summary.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&summary)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok((summary, info))
}

fn host_infos(
    cfg: &SwarmConfig,
    addrs: &Plan,
    hosts: &[Host],
    host_of_peer: &[usize],
    netns_mode: bool,
    schedule: Option<&Schedule>,
) -> Vec<HostInfo> {
    let ns = |h: usize| netns_mode.then(|| hosts[h].ns.clone());
    let mut v = vec![
        HostInfo {
            name: "tracker".into(),
            role: Role::Tracker,
            address: addrs.tracker.to_string(),
            netns: ns(0),
            vantage: false,
            churned: false,
            upload_bps: None,
            download_bps: None,
        },
        HostInfo {
            name: "source".into(),
            role: Role::Source,
            address: addrs.source.to_string(),
            netns: ns(1),
            vantage: false,
            churned: false,
            upload_bps: netns_mode.then_some(hosts[1].up_bps).flatten(),
            download_bps: None,
        },
    ];
    for (k, &h) in host_of_peer.iter().enumerate() {
        let a = addrs.peer(k);
        v.push(HostInfo {
            name: peer_name(a),
            role: Role::Peer,
            address: a.to_string(),
            netns: ns(h),
            vantage: k < cfg.vantage,
            churned: schedule.is_some() && k >= cfg.vantage,
            upload_bps: netns_mode.then_some(hosts[h].up_bps).flatten(),
            download_bps: netns_mode.then_some(hosts[h].down_bps).flatten(),
        });
    }
    v
}

fn summarise(content: &Content, peer_stats: &[PathBuf], logs: &Path, truth: &Path, played: &Path) -> Result<Summary> {
    let read = |p: &Path| -> Result<Vec<u8>> {
        std::fs::read(p)
            .with_context(|| format!("cannot read {} (did the daemon stop cleanly? see its log)", p.display()))
    };
    let mut peers: Vec<PeerStats> = Vec::new();
    for f in peer_stats {
        let v: Vec<PeerStats> =
            serde_json::from_slice(&read(f)?).with_context(|| format!("{} is not peer stats", f.display()))?;
        peers.extend(v);
    }
    let source: PeerStats = serde_json::from_slice(&read(&logs.join("source.stats.json"))?)?;
    let tracker: serde_json::Value = serde_json::from_slice(&read(&logs.join("tracker.stats.json"))?)?;
    let mut plays = PlayCheck::default();
    for st in &peers {
        let addr: SocketAddr = st.addr.parse()?;
        let name = format!("peer-{}-{}", addr.ip(), addr.port());
        let (checked, bad) =
            check_played(content, &truth.join(format!("{name}.jsonl")), &played.join(format!("{name}.ts")))?;
        plays.record(addr, checked, bad);
    }
    let mut summary = crate::summary::build(&source, &peers, &plays);
    summary.tracker = Some(tracker);
    Ok(summary)
}

/// What the progress line shows, read from the growing ground-truth files: which peers are in
/// a session, and how many of their due blocks they played.
#[derive(Default)]
struct Live {
    files: HashMap<PathBuf, (u64, Vec<u8>)>,
    peers: BTreeMap<String, PeerLive>,
    self_counters: HashMap<PathBuf, tcpdump::PcapCounter>,
}

#[derive(Default)]
struct PeerLive {
    online: bool,
    hits: u64,
    plays: u64,
}

impl Live {
    fn update(&mut self, truth: &Path) {
        let Ok(dir) = std::fs::read_dir(truth) else { return };
        for e in dir.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if !name.starts_with("peer-") {
                continue;
            }
            let (offset, partial) = self.files.entry(path.clone()).or_default();
            let Ok(mut f) = std::fs::File::open(&path) else { continue };
            if f.seek(SeekFrom::Start(*offset)).is_err() {
                continue;
            }
            let mut buf = Vec::new();
            if f.read_to_end(&mut buf).is_err() {
                continue;
            }
            *offset += buf.len() as u64;
            partial.extend_from_slice(&buf);
            let Some(last_nl) = partial.iter().rposition(|&b| b == b'\n') else { continue };
            let complete: Vec<u8> = partial.drain(..=last_nl).collect();
            let p = self.peers.entry(name).or_default();
            for line in complete.split(|&b| b == b'\n') {
                let l = String::from_utf8_lossy(line);
                if l.contains("\"event\":\"play\"") {
                    p.plays += 1;
                    p.hits += u64::from(l.contains("\"hit\":true"));
                } else if l.contains("\"event\":\"session_start\"") {
                    p.online = true;
                } else if l.contains("\"event\":\"session_end\"") {
                    p.online = false;
                }
            }
        }
    }

    fn online(&self) -> usize {
        self.peers.values().filter(|p| p.online).count()
    }

    fn mean_continuity(&self) -> Option<f64> {
        let c: Vec<f64> = self.peers.values().filter(|p| p.plays > 0).map(|p| p.hits as f64 / p.plays as f64).collect();
        (!c.is_empty()).then(|| c.iter().sum::<f64>() / c.len() as f64)
    }

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
