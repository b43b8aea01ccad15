//! The `soplab` command line: swarms of SopCast-like daemons, and the daemons themselves.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};
use soplab_shell::units;

/// soplab: an open emulation of the SopCast P2PTV system.
///
/// A tracker, a source provider and peers speak a reconstructed SopCast wire format over real
/// UDP (HELLO 52, reply 80, ACK 28, keep-alive 42, request 46 bytes, video packets of at most
/// 1320 bytes), and every daemon logs what it really did as ground truth.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a swarm: a tracker, a source and N peers as processes speaking UDP; capture it.
    ///
    /// Modes (--mode, auto by default): as root with iproute2, every host (tracker, source,
    /// each peer) gets its own network namespace, joined to a bridge in a hub namespace by a
    /// veth pair, with an address in 198.18.0.0/15 and no default route; tcpdump captures at
    /// --vantage peers (5 by default) and, with --bridge-capture, on the bridge, which sees
    /// every packet. Otherwise (or with --loopback) every daemon is a process on its own
    /// 127.x.y.z address, and --self-capture makes each peer write its own pcap. With --mode
    /// virtual (never picked by auto) the same daemons' cores run in soplab's deterministic
    /// virtual-time network inside this process, on the netns addresses, in seconds rather than
    /// minutes, with one capture of every datagram as the bridge would see it
    /// (pcap/bridge.pcap, 128 bytes of each packet and its true length); each peer's --upload
    /// rate caps its core's video upload, --delay/--jitter/--loss are its path in the network,
    /// and --download is not applied. The same seed gives the same bytes.
    ///
    /// Links: --upload/--download shape each peer host with tc tbf (a rate or a distribution:
    /// "choice(512k:0.5,2M:0.3,10M:0.2)", "uniform(256k,4M)", "lognormal(1M,0.8)"); --delay,
    /// --jitter and --loss are applied in each peer's I/O shell, seeded (no sch_netem needed),
    /// and --delay and --jitter too may be distributions each peer host draws from
    /// ("uniform(5ms,100ms)"). --loss 5% --loss-burst 4 loses 5% in bursts of 4 datagrams on
    /// average (a Gilbert-Elliott chain per peer; see docs/SWARMS.md).
    ///
    /// Faults: --fault kill-peers:at=75s,process=1 (SIGKILL to peer process 1 of --processes),
    /// --fault restart-tracker:at=20s,down=5s (SIGKILL, then the same tracker again),
    /// --fault stop-source:at=40s,for=5s (SIGSTOP, then SIGCONT); repeatable; run.json records
    /// when each step happened, and summary.json marks the killed peers.
    ///
    /// Churn: --workload event|non-event|FILE.csv starts and stops the non-vantage peers on the
    /// Borges et al. client-behaviour model (see `soplab workload --help`); a leaving peer just
    /// goes silent. Vantage peers stay for the whole run.
    ///
    /// Every setting can come from a TOML file (--scenario FILE; flags win) or a preset
    /// (--preset tang: Tang et al.'s 51 PlanetLab peers, as scenarios/tang.toml; the file and
    /// flags win over it). The run directory gets scenario.toml (the effective settings),
    /// run.json (hosts with their rates and delays, addresses, namespaces, pcaps and what
    /// tcpdump reported), pcap/*.pcap, truth/*.jsonl (ground truth of every daemon),
    /// played/*.ts, logs/, workload.csv (if churned) and summary.json. Namespaces,
    /// links, qdiscs and processes are removed at the end, on Ctrl-C and on SIGTERM; a killed
    /// run's leftovers are swept by the next run or by `soplab cleanup`.
    ///
    /// Examples:
    ///   soplab swarm --preset tang --out runs/tang
    ///   soplab swarm --peers 30 --vantage 5 --bridge-capture --duration 3m --out runs/n30
    ///   soplab swarm --peers 100 --workload event --time-scale 10 --duration 10m --out runs/churn
    ///   soplab swarm --loopback --peers 20 --duration 60s --out runs/lo
    ///   soplab swarm --mode virtual --peers 51 --bitrate 233k --duration 40m --out runs/v51
    ///   soplab swarm --peers 20 --processes 2 --duration 100s --fault restart-tracker:at=15s,down=5s
    ///     --fault stop-source:at=50s,for=5s --fault kill-peers:at=75s,process=1 --out runs/faults
    ///   soplab swarm --peers 10 --duration 30s --loss 5% --loss-burst 4 --out runs/bursts
    Swarm(SwarmArgs),
    /// A short swarm with capture, to see soplab work: netns with tcpdump where it can (root,
    /// iproute2, tcpdump), else loopback with each peer writing its own pcap. Says which and
    /// why, then analyses the run (RUN/analysis, as `soplab analyze`) and validates it
    /// (RUN/validation.json, as `soplab validate`): prints Tang et al.'s numbers next to the
    /// run's, precision and recall per layer and where the figures are, and ends by printing
    /// where the pcaps and the summary are.
    Demo(DemoArgs),
    /// Remove what killed runs left: soplab namespaces whose orchestrator is gone, with their
    /// links, qdiscs and processes. Every run does this at start too.
    Cleanup(CleanupArgs),
    #[command(about = "Run the tracker (what `soplab-tracker` runs)", long_about = soplab_tracker::daemon::LONG_ABOUT)]
    Tracker(soplab_tracker::daemon::Args),
    #[command(about = "Run the source provider (what `soplab-source` runs)", long_about = soplab_source::daemon::LONG_ABOUT)]
    Source(soplab_source::daemon::Args),
    #[command(about = "Run one or many peers in this process (what `soplab-peer` runs)", long_about = soplab_peer::daemon::LONG_ABOUT)]
    Peer(soplab_peer::daemon::Args),
    #[command(
        about = "Rebuild the overlay of Tang et al. from captures: report.json, CSV tables, plots",
        long_about = soplab_analyze::cli::ANALYZE_ABOUT
    )]
    Analyze(soplab_analyze::cli::AnalyzeArgs),
    #[command(
        about = "Check the overlay rebuilt from a run's captures against its ground truth",
        long_about = soplab_analyze::cli::VALIDATE_ABOUT
    )]
    Validate(soplab_analyze::cli::ValidateArgs),
    /// Generate a churn workload: when each client's sessions start and end, as a CSV file.
    ///
    /// Clients follow the hierarchical ON/OFF model Borges et al. (2012) fitted to SopCast:
    ///   session inter-arrival (s)  LogNormal: non-event m=-0.166 σ=1.318 (mean 2.02 s),
    ///                              event m=0.108 σ=0.693 (mean 1.42 s), between any two
    ///                              consecutive session starts, whoever's they are
    ///   sessions per client        Geometric: after a session, OFF with P=0.398, else gone
    ///   ON (share of D)            non-event LogNormal m=0.823 σ=1.459 in percent of D;
    ///                              event Weibull F(x)=1-exp(-2.032 x^0.233); capped at D
    ///   OFF (share of D)           Exponential 0.054 per percent of D (mean 18.5% of D)
    ///
    /// Session starts are drawn first (LogNormal gaps from 0); each start goes to the earliest
    /// returning client ready by then, else to a new client if it is before D (and --clients
    /// is not reached). New clients arrive only before D, but returning clients' sessions are
    /// kept even past D, so sessions per client and OFF times follow the model; a swarm plays
    /// only what starts before D and stops everything at D.
    ///
    /// Output columns: client,session,start,end (seconds from the start of the run, 3
    /// decimals, sorted by start; client and session numbered from 0). A summary line with the
    /// measured statistics goes to stdout. See docs/WORKLOAD.md.
    ///
    /// Example: soplab workload --preset event --duration 10m --seed 3 --out runs/event.csv
    #[command(verbatim_doc_comment)]
    Workload(WorkloadArgs),
}

#[derive(clap::Args, Debug)]
struct SwarmArgs {
    /// Same as --mode loopback.
    #[arg(long, conflicts_with = "mode")]
    loopback: bool,
    /// TOML file with any of the settings below (keys as the flags, `_` for `-`); flags win.
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    #[command(flatten)]
    settings: soplab::scenario::Scenario,
}

#[derive(clap::Args, Debug)]
struct CleanupArgs {
    /// Also remove the namespaces of runs that are still going.
    #[arg(long)]
    all: bool,
}

#[derive(clap::Args, Debug)]
struct DemoArgs {
    /// Run directory: new, empty or an earlier soplab run's (a rerun clears only the files
    /// soplab writes there).
    #[arg(long, default_value = "runs/demo")]
    out: PathBuf,
    /// How long the demo swarm streams.
    #[arg(long, default_value = "60s", value_parser = units::parse_positive_duration)]
    duration: Duration,
    /// Number of peers.
    #[arg(long, default_value_t = 20)]
    peers: usize,
}

#[derive(clap::Args, Debug)]
struct WorkloadArgs {
    /// Client population: `event` (a popular live event) or `non-event` (an ordinary channel).
    #[arg(long)]
    preset: soplab::workload::Preset,
    /// Length D of the run, e.g. 10m, 100m, 1h30m: new clients arrive only before D.
    #[arg(long, default_value = "100m", value_parser = units::parse_positive_duration)]
    duration: Duration,
    /// Seed of every draw: the same arguments give the same file.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// At most N clients ever arrive (those who return still come back).
    #[arg(long)]
    clients: Option<usize>,
    /// F >= 1: sample a transmission of D×F and divide every time by F, so a 100-minute
    /// transmission plays in 10 minutes with --duration 10m --time-scale 10; arrivals come F
    /// times as fast, ON and OFF stay the same shares of D.
    #[arg(long, default_value_t = 1.0, value_parser = soplab::workload::parse_time_scale)]
    time_scale: f64,
    /// CSV file to write (its directory is created if missing).
    #[arg(long)]
    out: PathBuf,
}

impl WorkloadArgs {
    fn run(self) -> Result<()> {
        use soplab::workload::{Schedule, ScheduleModel, WorkloadSpec};
        let d = self.duration.as_secs_f64();
        let spec = WorkloadSpec {
            preset: self.preset,
            duration_s: d,
            seed: self.seed,
            clients: self.clients,
            time_scale: self.time_scale,
        };
        spec.check()?;
        let schedule = Schedule::generate(&spec);
        if let Some(dir) = self.out.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        schedule.write_csv(&self.out)?;
        println!("{}: {} D={d}s x{}: {}", self.out.display(), self.preset, self.time_scale, schedule.stats(d));
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    soplab_shell::process::main(async move {
        match cli.command {
            Cmd::Swarm(a) => swarm(a).await,
            Cmd::Demo(a) => demo(a).await,
            Cmd::Cleanup(a) => cleanup(a),
            Cmd::Tracker(a) => soplab_tracker::daemon::run(a.into_config()?).await,
            Cmd::Source(a) => soplab_source::daemon::run(a.into_config()?).await,
            Cmd::Peer(a) => soplab_peer::daemon::run(a.into_config()?).await,
            Cmd::Workload(a) => a.run(),
            Cmd::Analyze(a) => Ok(soplab_analyze::cli::analyze(&a)?),
            Cmd::Validate(a) => Ok(soplab_analyze::cli::validate(&a)?),
        }
    })
}

async fn swarm(a: SwarmArgs) -> Result<()> {
    use soplab::scenario::{Mode, Scenario, SwarmConfig};
    let mut settings = a.settings;
    if a.loopback {
        settings.mode = Some(Mode::Loopback);
    }
    if let Some(file) = &a.scenario {
        settings = settings.or(Scenario::load(file)?);
    }
    let settings = settings.with_preset();
    let wants_capture = settings.vantage != Some(0) || settings.bridge_capture == Some(true);
    let (mode, why) = match settings.mode.unwrap_or(Mode::Auto) {
        Mode::Auto => soplab::run::auto_mode(wants_capture),
        m => (m, "as asked".to_string()),
    };
    let cfg = SwarmConfig::resolve(settings, mode)?;
    let out = soplab::run::claim_out(&cfg.out, "soplab swarm")?;
    let info = run_swarm(&cfg, &why, &out).await?;
    print_paths(&cfg, &info);
    Ok(())
}

/// Runs the swarm in the claimed run directory `out` and prints how it went; [`print_paths`]
/// then says where its files are.
async fn run_swarm(
    cfg: &soplab::scenario::SwarmConfig,
    why: &str,
    out: &soplab_rundir::claim::Claimed,
) -> Result<soplab_rundir::run::RunInfo> {
    use soplab::scenario::Mode;
    let mode = match cfg.mode {
        Mode::Netns => "netns",
        Mode::Virtual => "virtual-time",
        Mode::Loopback | Mode::Auto => "loopback",
    };
    eprintln!(
        "soplab: {mode} swarm ({why}) of {} peers for {:?}{}, writing {}",
        cfg.peers,
        cfg.duration,
        cfg.workload.as_ref().map(|w| format!(" with workload {w}")).unwrap_or_default(),
        cfg.out.display()
    );
    let (s, info) = soplab::run::run(cfg, out).await?;
    let cont: Vec<f64> = s.peers.iter().filter_map(|p| p.continuity).collect();
    let min = cont.iter().copied().fold(f64::INFINITY, f64::min);
    let mean = cont.iter().sum::<f64>() / cont.len().max(1) as f64;
    let matches = s.peers.iter().filter(|p| p.played_matches_source).count();
    let max_parents = s.peers.iter().map(|p| p.max_parents).max().unwrap_or(0);
    println!(
        "{} peers ({} played): continuity mean {mean:.4}, min {min:.4}; {matches} played exactly the source's \
         bytes; max parents {max_parents}; source max children {}; dropped inputs {}",
        s.peers.len(),
        cont.len(),
        s.source.max_children,
        s.dropped.values().sum::<u64>()
    );
    for line in soplab::run::fault_report(&cfg.out, &info)? {
        println!("{line}");
    }
    if let Some(t) = info.netns_setup_s {
        println!("namespaces: set up in {t:.2} s, removed in {:.2} s", info.netns_teardown_s.unwrap_or_default());
    }
    Ok(info)
}

/// Where a run's captures, summary, description and ground truth are (the last lines of
/// `swarm` and `demo`).
fn print_paths(cfg: &soplab::scenario::SwarmConfig, info: &soplab_rundir::run::RunInfo) {
    let packets: u64 = info.pcaps.iter().map(|p| p.packets).sum();
    if !info.pcaps.is_empty() {
        println!("pcaps: {} files, {packets} packets, in {}", info.pcaps.len(), cfg.out.join("pcap").display());
    }
    println!("summary: {}", cfg.out.join("summary.json").display());
    println!("run: {} (hosts, addresses, captures)", cfg.out.join("run.json").display());
    println!("ground truth: {}", cfg.out.join("truth").display());
}

fn cleanup(a: CleanupArgs) -> Result<()> {
    let removed = soplab::netns::sweep(a.all)?;
    if removed.is_empty() {
        println!("nothing to remove: no soplab namespaces{}", if a.all { "" } else { " of dead runs" });
    } else {
        println!("removed {} namespaces (and the processes in them)", removed.len());
    }
    let left = soplab::netns::list();
    if !left.is_empty() {
        println!("{} namespaces of live runs remain (use --all to remove them too)", left.len());
    }
    Ok(())
}

async fn demo(a: DemoArgs) -> Result<()> {
    use soplab::scenario::{Mode, Scenario, SwarmConfig};
    let (mode, why) = soplab::run::auto_mode(true);
    let settings = Scenario {
        mode: Some(mode),
        peers: Some(a.peers),
        duration: Some(a.duration),
        out: Some(a.out.clone()),
        vantage: Some(if mode == Mode::Netns { 5.min(a.peers) } else { 0 }),
        bridge_capture: Some(mode == Mode::Netns),
        self_capture: Some(mode == Mode::Loopback),
        ..Scenario::default()
    };
    let cfg = SwarmConfig::resolve(settings, mode)?;
    // Held until the analysis and the validation are written too: they are part of the run.
    let out = soplab::run::claim_out(&cfg.out, "soplab demo")?;
    match mode {
        Mode::Netns => {
            eprintln!("soplab demo: network namespaces with tcpdump at 5 vantage peers and on the bridge ({why})")
        }
        _ => eprintln!(
            "soplab demo: loopback swarm whose peers write their own pcaps ({why}; run as root with iproute2 \
             and tcpdump for namespaces and real tcpdump captures)"
        ),
    }
    let info = run_swarm(&cfg, &why, &out).await?;
    let checked = check_demo(&a.out);
    print_paths(&cfg, &info);
    println!("pcaps are in {}; read one with: tcpdump -n -r FILE | head", a.out.join("pcap").display());
    checked
}

/// Analyses the demo's run as `soplab analyze RUN --out RUN/analysis` and validates it as
/// `soplab validate RUN` would, through the library (no second program), so that a demo shows
/// the paper's numbers next to its own and how exact the captures are.
fn check_demo(run: &std::path::Path) -> Result<()> {
    use soplab_analyze::analysis::AnalyzeOptions;
    use soplab_analyze::cli;
    let out = run.join("analysis");
    let done = cli::analyze_into(&[run.to_path_buf()], &out, AnalyzeOptions::default(), true)?;
    let validation = run.join("validation.json");
    let v = cli::validate_into(run, &cli::validate_defaults(), &validation)?;
    println!();
    cli::print_comparison(&done.report);
    println!("validation against the ground truth ({}):", validation.display());
    for line in cli::validation_lines(&v) {
        println!("  {line}");
    }
    cli::print_outputs(&done, &out);
    Ok(())
}
