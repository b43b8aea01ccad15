//! `soplab swarm --loopback`: a tracker, a source and N peers as real processes speaking UDP on
//! 127.0.0.0/8, each on its own address, stopped cleanly at the end; then summary.json.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use soplab_peer::PeerStats;
use soplab_source::Content;
use soplab_wire::BLOCK_LEN;
use tokio::process::{Child, Command};

use crate::summary::{PlayCheck, Summary};

/// What `soplab swarm --loopback` runs.
#[derive(Debug, Clone)]
pub struct LoopbackSwarm {
    pub peers: usize,
    pub duration: Duration,
    pub out: PathBuf,
    pub bitrate: u64,
    pub seed: u64,
    /// A media file to stream in a loop; synthetic bytes when `None`.
    pub file: Option<PathBuf>,
    /// Peer processes (peers are spread over them).
    pub processes: usize,
    /// Peers join over this long at the start.
    pub stagger: Duration,
    /// Serve each peer's stream over HTTP on this port of its address (0: off).
    pub http_port: u16,
}

/// The addresses of one run: a /16 of loopback picked from the process id so that two runs on
/// one machine do not collide.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub tracker: SocketAddr,
    pub source: SocketAddr,
    pub first_peer: SocketAddrV4,
}

impl Plan {
    pub fn for_run(run: u32) -> Plan {
        let x = 100 + (run % 100) as u8;
        Plan {
            tracker: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, x, 0, 1), 3900)),
            source: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, x, 0, 2), 3901)),
            first_peer: SocketAddrV4::new(Ipv4Addr::new(127, x, 1, 1), 3908),
        }
    }

    /// Address of peer `i`: the first one's IPv4 address plus `i`, same port.
    pub fn peer(&self, i: usize) -> SocketAddrV4 {
        let ip = u32::from(*self.first_peer.ip()) + i as u32;
        SocketAddrV4::new(Ipv4Addr::from(ip), self.first_peer.port())
    }
}

/// A daemon process with its name and log file, killed if dropped.
struct Daemon {
    name: String,
    child: Child,
    log: PathBuf,
}

fn spawn(name: &str, args: &[String], logs: &Path) -> Result<Daemon> {
    let exe = std::env::current_exe().context("cannot find the soplab executable to start daemons")?;
    let log = logs.join(format!("{name}.log"));
    let file = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .env("SOPLAB_RUN_ROLE", name)
        .kill_on_drop(true);
    // SAFETY: the closure only calls prctl(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            // If the orchestrator dies (even by SIGKILL), its daemons get SIGTERM.
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                .map_err(|e| std::io::Error::from_raw_os_error(e as i32))
        });
    }
    let child = cmd.spawn().with_context(|| format!("cannot start the {name} daemon"))?;
    Ok(Daemon { name: name.to_string(), child, log })
}

impl Daemon {
    /// SIGTERM, then up to `grace` for a clean exit, then SIGKILL. Returns whether it exited 0.
    async fn stop(&mut self, grace: Duration) -> Result<bool> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status.success());
        }
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => Ok(status?.success()),
            Err(_) => {
                tracing::warn!(daemon = %self.name, "did not stop within {grace:?}; killing it");
                self.child.kill().await?;
                Ok(false)
            }
        }
    }
}

fn s(v: impl ToString) -> String {
    v.to_string()
}

impl LoopbackSwarm {
    /// Runs the swarm and writes `out/summary.json`; returns the summary.
    pub async fn run(&self) -> Result<Summary> {
        if self.peers == 0 {
            bail!("--peers must be at least 1");
        }
        let (truth, played, logs) = (self.out.join("truth"), self.out.join("played"), self.out.join("logs"));
        for d in [&truth, &played, &logs] {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}: check --out", d.display()))?;
        }
        let plan = Plan::for_run(std::process::id());
        let content = match &self.file {
            Some(f) => Content::file(f)?,
            None => Content::Synthetic { seed: self.seed },
        };
        let p = |f: &Path| f.display().to_string();
        let content_args: Vec<String> = match &self.file {
            Some(f) => vec![s("--file"), p(f)],
            None => vec![s("--synthetic-seed"), s(self.seed)],
        };

        let mut tracker = spawn(
            "tracker",
            &[
                s("tracker"),
                s("--listen"),
                s(plan.tracker),
                s("--seed"),
                s(self.seed),
                s("--truth"),
                p(&truth.join("tracker.jsonl")),
                s("--stats"),
                p(&logs.join("tracker.stats.json")),
            ],
            &logs,
        )?;
        let mut source_args = vec![
            s("source"),
            s("--listen"),
            s(plan.source),
            s("--tracker"),
            s(plan.tracker),
            s("--bitrate"),
            s(self.bitrate),
            s("--seed"),
            s(self.seed + 1),
            s("--truth"),
            p(&truth.join("source.jsonl")),
            s("--stats"),
            p(&logs.join("source.stats.json")),
        ];
        source_args.extend(content_args);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut source = spawn("source", &source_args, &logs)?;
        tokio::time::sleep(Duration::from_millis(200)).await;

        let procs = self.processes.clamp(1, self.peers);
        let mut peer_daemons = Vec::new();
        let mut first = 0;
        for k in 0..procs {
            let count = self.peers / procs + usize::from(k < self.peers % procs);
            let stats = logs.join(format!("peers-{k}.stats.json"));
            let args = vec![
                s("peer"),
                s("--addr"),
                s(plan.peer(first)),
                s("--count"),
                s(count),
                s("--tracker"),
                s(plan.tracker),
                s("--bitrate"),
                s(self.bitrate),
                s("--seed"),
                s(self.seed + 1000 + first as u64),
                s("--truth-dir"),
                p(&truth),
                s("--played-dir"),
                p(&played),
                s("--stats"),
                p(&stats),
                s("--http-port"),
                s(self.http_port),
                s("--stagger"),
                format!("{}ms", self.stagger.as_millis() * count as u128 / self.peers as u128),
            ];
            peer_daemons.push((spawn(&format!("peers-{k}"), &args, &logs)?, stats));
            first += count;
        }

        // Wait for the duration (or Ctrl-C / SIGTERM), watching that every daemon stays up.
        let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            ProgressBar::new(self.duration.as_secs().max(1))
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{spinner} swarm [{elapsed_precise}] {bar:40} {pos}/{len} s  {msg}")
                .expect("static template"),
        );
        bar.set_message(format!("tracker, source and {} peers on loopback", self.peers));
        let start = Instant::now();
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut interrupted = false;
        while start.elapsed() < self.duration {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = tokio::signal::ctrl_c() => { interrupted = true; }
                _ = sigterm.recv() => { interrupted = true; }
            }
            if interrupted {
                bar.println("interrupted: stopping the swarm");
                break;
            }
            bar.set_position(start.elapsed().as_secs());
            for d in std::iter::once(&mut tracker)
                .chain(std::iter::once(&mut source))
                .chain(peer_daemons.iter_mut().map(|(d, _)| d))
            {
                if let Some(status) = d.child.try_wait()? {
                    bar.finish_and_clear();
                    bail!("the {} daemon exited early ({status}); see {}", d.name, d.log.display());
                }
            }
        }
        bar.finish_and_clear();

        // Peers first (they leave the tracker), then the source, then the tracker.
        let grace = Duration::from_secs(15);
        let mut clean = true;
        for (d, _) in &mut peer_daemons {
            clean &= d.stop(grace).await?;
        }
        clean &= source.stop(grace).await?;
        clean &= tracker.stop(grace).await?;
        if !clean {
            tracing::warn!("a daemon did not exit cleanly; see {}", logs.display());
        }

        let summary = self.summarise(
            &content,
            &peer_daemons.iter().map(|(_, s)| s.clone()).collect::<Vec<_>>(),
            &logs,
            &truth,
            &played,
        )?;
        let path = self.out.join("summary.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(summary)
    }

    fn summarise(
        &self,
        content: &Content,
        peer_stats: &[PathBuf],
        logs: &Path,
        truth: &Path,
        played: &Path,
    ) -> Result<Summary> {
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
        let mut summary = Summary::build(&source, &peers, &plays);
        summary.tracker = Some(tracker);
        Ok(summary)
    }
}

/// Compares a peer's played file with the source's content over the blocks its truth log says
/// it played. Returns (blocks checked, blocks that differ or are missing from the file).
pub fn check_played(content: &Content, truth: &Path, played: &Path) -> Result<(u64, u64)> {
    let log = std::fs::read_to_string(truth).with_context(|| format!("cannot read {}", truth.display()))?;
    let data = std::fs::read(played).with_context(|| format!("cannot read {}", played.display()))?;
    let mut blocks = Vec::new();
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("bad line in {}", truth.display()))?;
        if v["event"] == "play" && v["hit"] == true {
            blocks.push(v["block"].as_u64().context("play event without a block")? as u32);
        }
    }
    let mut bad = 0;
    for (i, b) in blocks.iter().enumerate() {
        match data.get(i * BLOCK_LEN..(i + 1) * BLOCK_LEN) {
            Some(chunk) if chunk == &content.block(*b)[..] => {}
            _ => bad += 1,
        }
    }
    if data.len() != blocks.len() * BLOCK_LEN {
        bad += 1;
    }
    Ok((blocks.len() as u64, bad))
}
