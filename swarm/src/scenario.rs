//! What a swarm run is: every setting `soplab swarm` takes, from flags, a TOML scenario file or
//! a named [`Preset`] (flags win over the file, the file over the preset), resolved into a
//! [`SwarmConfig`].
//!
//! A scenario file uses the flags' names with `_` for `-`; durations and rates are strings as on
//! the command line, and link settings may be distributions hosts draw from ([`crate::dist`]).
//! Unknown keys are errors, so a typo cannot be silently ignored:
//!
//! ```toml
//! peers = 200
//! duration = "10m"
//! vantage = 5
//! bridge_capture = true
//! upload = "choice(512k:0.5,2M:0.3,10M:0.2)"
//! download = "10M"
//! delay = "uniform(5ms,100ms)"
//! loss = "5%"
//! loss_burst = 4
//! workload = "event"
//! time_scale = 10
//! faults = ["restart-tracker:at=20s,down=5s", "kill-peers:at=75s,process=1"]
//! ```

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use soplab_node::impair::Impairment;
use soplab_peer::daemon::{DEFAULT_ADDR, DEFAULT_HTTP_PORT, DEFAULT_TRACKER};
use soplab_peer::{PeerConfig, Profile};
use soplab_shell::units::{parse_duration, parse_rate, parse_share};

pub use crate::dist::{DelayDist, RateDist};
pub use crate::fault::Fault;

/// Ports of one Linux bridge (the kernel's BR_MAX_PORTS): at most this many hosts per swarm.
pub const MAX_BRIDGE_PORTS: usize = 1024;

pub use soplab_rundir::run::Mode;

/// The stream bitrate of a run unless set: the peers' own default, as the peer daemon takes it.
fn default_bitrate() -> u64 {
    PeerConfig::peer(DEFAULT_ADDR, DEFAULT_TRACKER, 1, 0).bitrate_bps
}

/// A named scenario: settings that `--scenario FILE` and flags override. Each is a TOML file
/// under `scenarios/`, embedded here and parsed as the preset, so the two cannot differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Tang et al.'s PlanetLab set-up, as scenarios/tang.toml: 51 peers, every one a vantage
    /// peer (tcpdump at each), a 233 kbit/s stream for 40m, upload "lognormal(1M,1.0)", delay
    /// "uniform(5ms,100ms)", jitter 2ms, no loss.
    Tang,
}

impl Preset {
    /// The preset's scenario file, as shipped in `scenarios/`.
    pub fn toml(self) -> &'static str {
        match self {
            Preset::Tang => include_str!("../../scenarios/tang.toml"),
        }
    }

    /// The preset's settings.
    pub fn scenario(self) -> Scenario {
        toml::from_str(self.toml()).expect("every embedded preset parses (a test checks them)")
    }
}

/// Every setting of a swarm, each optional: from flags, from a scenario file, or both.
#[derive(Debug, Clone, Default, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Start from a named scenario; --scenario FILE and flags override any of its settings.
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    /// Where the daemons run: auto (netns when root with iproute2, else loopback), netns,
    /// loopback, or virtual (their cores in virtual time, in this process) [default: auto].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Number of peers, vantage peers included [default: 20].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<usize>,
    /// How long the swarm streams, e.g. 60s, 5m [default: 60s].
    #[arg(long, value_parser = parse_duration)]
    #[serde(default, with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
    /// Run directory (created if missing) [default: runs/latest]. It must be new, empty or an
    /// earlier soplab run's (marked .soplab-run): a rerun clears only the files soplab writes;
    /// any other non-empty directory, or one a live run holds, is refused.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out: Option<PathBuf>,
    /// Stream bitrate in bits/s, e.g. 500k [default: 500k].
    #[arg(long, value_parser = parse_rate)]
    #[serde(default, with = "opt_rate", skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<u64>,
    /// Seed of every random choice in the run (content, peers, links, workload) [default: 1].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Media file the source streams in a loop (any bytes) [default: synthetic bytes].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// Peer processes to spread the peers over [default: 1 per 250 peers, at least 1].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processes: Option<usize>,
    /// Peers that are not churned join over this long at the start [default: 5s].
    #[arg(long, value_parser = parse_duration)]
    #[serde(default, with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub stagger: Option<Duration>,
    /// Port on each peer's address where it serves its stream over HTTP (0: off) [default: 8902].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_port: Option<u16>,
    /// Vantage peers: tcpdump runs in each one's namespace (netns mode) and they stay for the
    /// whole run, like the crawlers of Borges et al. [default: 5 in netns mode].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vantage: Option<usize>,
    /// Also capture on the bridge, which sees every packet of the swarm (netns mode).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bridge_capture: Option<bool>,
    /// Peers per namespace for very large swarms; vantage peers always get their own [default:
    /// 1, or the fewest that fit the bridge's 1024 ports].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers_per_host: Option<usize>,
    /// Upload rate of each peer host (tc tbf): a rate, a distribution hosts draw from, or one
    /// rate per host: 2M, "choice(512k:0.5,2M:0.3,10M:0.2)", "uniform(256k,4M)",
    /// "lognormal(1M,0.8)", "list(1M,256k,4M)" [default: unlimited].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload: Option<String>,
    /// Download rate of each peer host (tc tbf on its bridge port), like --upload.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download: Option<String>,
    /// Upload rate of the source's host [default: unlimited].
    #[arg(long, value_parser = parse_rate)]
    #[serde(default, with = "opt_rate", skip_serializing_if = "Option::is_none")]
    pub source_upload: Option<u64>,
    /// One-way delay on everything a peer host sends (emulated in its peers' I/O shell): a
    /// duration, or a distribution each peer host draws from like --upload's: 40ms,
    /// "uniform(5ms,100ms)", "lognormal(30ms,0.6)", "choice(10ms:0.5,80ms:0.5)",
    /// "list(10ms,50ms)" [default: 0s].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
    /// Uniform random extra delay up to this much per datagram; a duration or a distribution
    /// each peer host draws from, like --delay [default: 0s].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
    /// Share of each peer's sent datagrams lost, as a fraction or a percentage: 0.05 or 5%
    /// (each peer's I/O shell drops them, seeded); losses are independent unless --loss-burst
    /// is given [default: 0].
    #[arg(long, value_parser = parse_share)]
    #[serde(default, with = "opt_share", skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// Lose in bursts: B consecutive datagrams on average, with --loss still the long-run
    /// share. A Gilbert-Elliott chain per peer moves, once per datagram sent, between a good
    /// state (nothing lost) and a bad one (everything lost); it leaves bad with probability
    /// r = 1/B and enters it with p = L/(B(1-L)), so bursts last B on average and L of all
    /// datagrams are lost. --loss 5% --loss-burst 4: r = 0.25, p = 0.0132. B = 1/(1-L) is the
    /// same as independent losses [default: independent losses].
    #[arg(long, value_name = "B")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_burst: Option<f64>,
    /// Churn: a schedule CSV (from `soplab workload`) or a preset, `event` or `non-event`,
    /// sampled for this run's duration and seed; the non-vantage peers are its clients.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// Compress the workload: sample a transmission this many times longer than --duration and
    /// play it faster (10: 100 minutes of behaviour in 10) [default: 1].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_scale: Option<f64>,
    /// In loopback mode, each peer writes its own pcap of what it sends and receives
    /// (pcap/peer-<ip>-<port>.pcap) since tcpdump is not used there [default: false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_capture: Option<bool>,
    /// How the peers and the source behave: `sopcast` (a bounded peer list, irregular
    /// keep-alives, few sticky parents: SopCast as Tang et al. measured it) or `full-mesh`
    /// (soplab before it: every neighbour kept alive each second, a full mesh, up to four
    /// parents chosen afresh per request), to compare the two [default: sopcast].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// Inject a fault into the running swarm (repeat for several; scenario key `faults`, a
    /// list): kill-peers:at=T,process=K (SIGKILL to peer process K of --processes: all its
    /// peers vanish at once), restart-tracker:at=T,down=D (SIGKILL to the tracker, started again
    /// D later with the same configuration and address; D defaults to 5s), stop-source:at=T,for=D
    /// (SIGSTOP to the source, SIGCONT D later; D defaults to 5s). T counts from the peers'
    /// time zero; each fault must be over before the run ends. run.json records when each step
    /// happened. Netns and loopback modes only.
    #[arg(long = "fault", value_name = "SPEC")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faults: Option<Vec<Fault>>,
}

macro_rules! merge_fields {
    ($a:ident, $b:ident, $($f:ident),*) => { Scenario { $($f: $a.$f.or($b.$f)),* } };
}

impl Scenario {
    /// Reads a TOML scenario.
    ///
    /// # Errors
    /// When the file cannot be read or has unknown keys or bad values (the message says which).
    pub fn load(path: &Path) -> Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the scenario {}; check --scenario", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{} is not a valid scenario", path.display()))
    }

    /// These settings over those of the preset they name, if any. The same again changes
    /// nothing: a preset's own settings name no preset.
    pub fn with_preset(self) -> Scenario {
        match self.preset {
            Some(p) => self.or(p.scenario()),
            None => self,
        }
    }

    /// Settings of `self`, and those of `base` where `self` has none.
    pub fn or(self, base: Scenario) -> Scenario {
        let a = self;
        let b = base;
        merge_fields!(
            a,
            b,
            preset,
            mode,
            peers,
            duration,
            out,
            bitrate,
            seed,
            file,
            processes,
            stagger,
            http_port,
            vantage,
            bridge_capture,
            peers_per_host,
            upload,
            download,
            source_upload,
            delay,
            jitter,
            loss,
            loss_burst,
            workload,
            time_scale,
            self_capture,
            profile,
            faults
        )
    }
}

/// A fully resolved swarm run.
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// The preset the settings started from, if any (kept for the record).
    pub preset: Option<Preset>,
    pub mode: Mode,
    pub peers: usize,
    pub duration: Duration,
    pub out: PathBuf,
    pub bitrate: u64,
    pub seed: u64,
    pub file: Option<PathBuf>,
    pub processes: usize,
    pub stagger: Duration,
    pub http_port: u16,
    pub vantage: usize,
    pub bridge_capture: bool,
    pub peers_per_host: usize,
    pub upload: Option<RateDist>,
    pub download: Option<RateDist>,
    pub source_upload: Option<u64>,
    /// One-way delay of each peer host, µs.
    pub delay: DelayDist,
    /// Jitter bound of each peer host, µs.
    pub jitter: DelayDist,
    pub loss: f64,
    /// Mean burst length of the losses (none: independent losses).
    pub loss_burst: Option<f64>,
    pub workload: Option<String>,
    pub time_scale: f64,
    pub self_capture: bool,
    pub profile: Profile,
    /// Faults to inject, in the order given.
    pub faults: Vec<Fault>,
}

impl SwarmConfig {
    /// Applies the preset named, then the defaults, and checks the values. `mode` must already
    /// be decided (not Auto).
    ///
    /// # Errors
    /// When a value is out of range; the message names the setting.
    pub fn resolve(s: Scenario, mode: Mode) -> Result<SwarmConfig> {
        let s = s.with_preset();
        let peers = s.peers.unwrap_or(20);
        if peers == 0 {
            bail!("peers must be at least 1");
        }
        let vantage = s.vantage.unwrap_or(if mode == Mode::Netns { 5.min(peers) } else { 0 });
        if vantage > peers {
            bail!("vantage ({vantage}) cannot exceed peers ({peers}); lower --vantage (e.g. --vantage {peers})");
        }
        let loss = s.loss.unwrap_or(0.0);
        check_loss(loss, s.loss_burst)?;
        let time_scale = s.time_scale.unwrap_or(1.0);
        if !(time_scale >= 1.0 && time_scale.is_finite()) {
            bail!("time_scale must be 1 or more (10 plays 100 minutes of behaviour in 10), got {time_scale}");
        }
        // A Linux bridge takes at most 1024 ports: tracker, source, one per vantage peer, and
        // the other peers K to a host.
        let hosts = |k: usize| 2 + vantage + (peers - vantage).div_ceil(k);
        let peers_per_host = match s.peers_per_host {
            Some(0) => bail!("peers_per_host must be at least 1"),
            Some(k) => k,
            None => (1..=peers.max(1)).find(|&k| hosts(k) <= MAX_BRIDGE_PORTS).unwrap_or(peers.max(1)),
        };
        if mode == Mode::Netns && hosts(peers_per_host) > MAX_BRIDGE_PORTS {
            bail!(
                "{} hosts would not fit on one bridge (at most {MAX_BRIDGE_PORTS} ports): raise peers_per_host \
                 (--peers-per-host) or lower vantage",
                hosts(peers_per_host)
            );
        }
        let processes = s.processes.unwrap_or(peers.div_ceil(250)).clamp(1, peers);
        let duration = s.duration.unwrap_or(Duration::from_secs(60));
        let faults = s.faults.unwrap_or_default();
        if !faults.is_empty() && mode == Mode::Virtual {
            bail!("faults are injected into daemon processes: use --mode netns or loopback, not virtual");
        }
        Fault::check_all(&faults, duration, processes).map_err(anyhow::Error::msg)?;
        if let Some(f) = s.file.as_ref().filter(|f| f.to_str().is_none()) {
            bail!(
                "the media file's path {} is not UTF-8, which scenario.toml and the source's configuration \
                 need; rename it, or link it from a UTF-8 path (ln -s)",
                f.display()
            );
        }
        Ok(SwarmConfig {
            preset: s.preset,
            mode,
            peers,
            duration,
            out: s.out.unwrap_or_else(|| PathBuf::from("runs/latest")),
            bitrate: s.bitrate.unwrap_or_else(default_bitrate),
            seed: s.seed.unwrap_or(1),
            file: s.file,
            processes,
            stagger: s.stagger.unwrap_or(Duration::from_secs(5)),
            http_port: s.http_port.unwrap_or(DEFAULT_HTTP_PORT),
            vantage,
            bridge_capture: s.bridge_capture.unwrap_or(false),
            peers_per_host,
            upload: dist(s.upload, "upload")?,
            download: dist(s.download, "download")?,
            source_upload: s.source_upload,
            delay: dist(s.delay, "delay")?.unwrap_or(DelayDist::fixed(0)),
            jitter: dist(s.jitter, "jitter")?.unwrap_or(DelayDist::fixed(0)),
            loss,
            loss_burst: s.loss_burst,
            workload: s.workload,
            time_scale,
            self_capture: s.self_capture.unwrap_or(false),
            profile: s.profile.unwrap_or_default(),
            faults,
        })
    }

    /// The effective scenario, every setting filled in: what the run directory keeps, and what
    /// `--scenario` takes to run it again.
    pub fn to_scenario(&self) -> Scenario {
        Scenario {
            preset: self.preset,
            mode: Some(self.mode),
            peers: Some(self.peers),
            duration: Some(self.duration),
            // TOML strings are UTF-8: a run directory named otherwise is left out (the file
            // lives in it anyway).
            out: self.out.to_str().map(PathBuf::from),
            bitrate: Some(self.bitrate),
            seed: Some(self.seed),
            file: self.file.clone(),
            processes: Some(self.processes),
            stagger: Some(self.stagger),
            http_port: Some(self.http_port),
            vantage: Some(self.vantage),
            bridge_capture: Some(self.bridge_capture),
            peers_per_host: Some(self.peers_per_host),
            upload: self.upload.as_ref().map(ToString::to_string),
            download: self.download.as_ref().map(ToString::to_string),
            source_upload: self.source_upload,
            delay: Some(self.delay.to_string()),
            jitter: Some(self.jitter.to_string()),
            loss: Some(self.loss),
            loss_burst: self.loss_burst,
            workload: self.workload.clone(),
            time_scale: Some(self.time_scale),
            self_capture: Some(self.self_capture),
            profile: Some(self.profile),
            faults: (!self.faults.is_empty()).then(|| self.faults.clone()),
        }
    }
}

/// Checks `--loss` and `--loss-burst` together, with the message of the shared model.
fn check_loss(loss: f64, loss_burst: Option<f64>) -> Result<()> {
    if loss_burst.is_some() && loss == 0.0 {
        bail!("loss_burst (--loss-burst) shapes the losses of --loss: give --loss too (e.g. --loss 5%)");
    }
    Impairment { loss, loss_burst, ..Impairment::default() }.check().map_err(|e| anyhow::anyhow!("--loss: {e}"))
}

/// The distribution `name` (a setting) says, if any.
fn dist<D: FromStr<Err = String>>(v: Option<String>, name: &str) -> Result<Option<D>> {
    v.map(|t| t.parse::<D>().map_err(|e| anyhow::anyhow!("{name}: {e}"))).transpose()
}

/// Durations in scenario files: strings as on the command line ("90s", "5m", "500ms").
mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) if d.subsec_millis() == 0 => s.serialize_str(&format!("{}s", d.as_secs())),
            Some(d) => s.serialize_str(&format!("{}ms", d.as_millis())),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = String::deserialize(d)?;
        soplab_shell::units::parse_duration(&s).map(Some).map_err(serde::de::Error::custom)
    }
}

/// Shares in scenario files: numbers (0.05) or strings as on the command line ("5%").
mod opt_share {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Share {
        Text(String),
        Number(f64),
    }

    pub fn serialize<S: serde::Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_f64(*v),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        match Share::deserialize(d)? {
            Share::Number(n) => Ok(Some(n)),
            Share::Text(t) => soplab_shell::units::parse_share(&t).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

/// Rates in scenario files: strings ("500k", "2M") or plain numbers of bits per second.
mod opt_rate {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Rate {
        Text(String),
        Number(u64),
    }

    pub fn serialize<S: Serializer>(r: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match r {
            Some(r) => s.serialize_u64(*r),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match Rate::deserialize(d)? {
            Rate::Number(n) => Ok(Some(n)),
            Rate::Text(t) => soplab_shell::units::parse_rate(&t).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_files_parse_reject_typos_and_round_trip() {
        let s: Scenario = toml::from_str(
            "peers = 30\nduration = \"3m\"\nvantage = 5\nbridge_capture = true\nbitrate = \"500k\"\n\
             upload = \"choice(512k:0.5,2M:0.5)\"\nworkload = \"event\"\ntime_scale = 10\n",
        )
        .unwrap();
        assert_eq!(s.peers, Some(30));
        assert_eq!(s.duration, Some(Duration::from_secs(180)));
        assert_eq!(s.bitrate, Some(500_000));
        let e = toml::from_str::<Scenario>("peer = 3\n").unwrap_err().to_string();
        assert!(e.contains("unknown field") && e.contains("peer"), "{e}");
        let e = toml::from_str::<Scenario>("duration = \"3 parsecs\"\n").unwrap_err().to_string();
        assert!(e.contains("duration") || e.contains("parsecs"), "{e}");

        let cfg = SwarmConfig::resolve(s, Mode::Netns).unwrap();
        let again: Scenario = toml::from_str(&toml::to_string(&cfg.to_scenario()).unwrap()).unwrap();
        let cfg2 = SwarmConfig::resolve(again, Mode::Netns).unwrap();
        assert_eq!(format!("{cfg:?}"), format!("{cfg2:?}"), "the effective scenario reproduces the run");
    }

    #[test]
    fn losses_take_percentages_and_bursts_and_faults_round_trip() {
        let s: Scenario = toml::from_str(
            "loss = \"5%\"\nloss_burst = 4\nprocesses = 2\nduration = \"100s\"\n\
             faults = [\"restart-tracker:at=20s\", \"kill-peers:at=75s,process=1\"]\n",
        )
        .unwrap();
        let cfg = SwarmConfig::resolve(s, Mode::Netns).unwrap();
        assert_eq!((cfg.loss, cfg.loss_burst), (0.05, Some(4.0)));
        assert_eq!(
            cfg.faults.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["restart-tracker:at=20s,down=5s", "kill-peers:at=75s,process=1"]
        );
        let text = toml::to_string(&cfg.to_scenario()).unwrap();
        assert!(text.contains("loss = 0.05\nloss_burst = 4.0\n"), "{text}");
        let again = SwarmConfig::resolve(toml::from_str(&text).unwrap(), Mode::Netns).unwrap();
        assert_eq!(format!("{cfg:?}"), format!("{again:?}"));
        assert_eq!(toml::from_str::<Scenario>("loss = 0\n").unwrap().loss, Some(0.0));

        let bad = |s: &str, mode| SwarmConfig::resolve(toml::from_str(s).unwrap(), mode).unwrap_err().to_string();
        assert!(bad("loss_burst = 4\n", Mode::Netns).contains("give --loss too"));
        assert!(bad("loss = 0.05\nloss_burst = 0.5\n", Mode::Netns).contains("1 datagram or more"));
        assert!(bad("faults = [\"stop-source:at=10s\"]\n", Mode::Virtual).contains("not virtual"));
        assert!(bad("faults = [\"kill-peers:at=10s,process=1\"]\n", Mode::Netns).contains("--processes"));
        assert!(toml::from_str::<Scenario>("faults = [\"reboot:at=1s\"]\n").is_err());
        assert!(toml::from_str::<Scenario>("loss = \"5 percent\"\n").is_err());
    }

    #[test]
    fn flags_win_over_the_file() {
        let file = Scenario { peers: Some(30), seed: Some(9), ..Scenario::default() };
        let flags = Scenario { peers: Some(10), ..Scenario::default() };
        let p: Scenario = toml::from_str("profile = \"full-mesh\"\n").unwrap();
        assert_eq!(p.profile, Some(Profile::FullMesh));
        assert!(toml::from_str::<Scenario>("profile = \"mesh\"\n").is_err());
        let d = SwarmConfig::resolve(Scenario::default(), Mode::Loopback).unwrap();
        assert_eq!(d.profile, Profile::SopCast, "SopCast as measured unless asked");
        let s = flags.or(file);
        assert_eq!((s.peers, s.seed), (Some(10), Some(9)));
    }

    #[test]
    fn resolve_checks_ranges() {
        let bad = |s: Scenario| SwarmConfig::resolve(s, Mode::Netns).unwrap_err().to_string();
        assert!(bad(Scenario { peers: Some(0), ..Default::default() }).contains("peers"));
        assert!(bad(Scenario { peers: Some(3), vantage: Some(4), ..Default::default() }).contains("vantage"));
        assert!(bad(Scenario { loss: Some(1.5), ..Default::default() }).contains("loss"));
        assert!(bad(Scenario { time_scale: Some(0.5), ..Default::default() }).contains("time_scale"));
        let big = Scenario { peers: Some(3000), peers_per_host: Some(1), ..Default::default() };
        assert!(bad(big).contains("--peers-per-host"));
        let auto = SwarmConfig::resolve(Scenario { peers: Some(3000), ..Default::default() }, Mode::Netns).unwrap();
        assert_eq!(auto.peers_per_host, 3, "2 + 5 + 2995/3 = 1006 hosts fit, 2 + 5 + 2995/2 do not");
        let small = SwarmConfig::resolve(Scenario { peers: Some(1017), ..Default::default() }, Mode::Netns).unwrap();
        assert_eq!(small.peers_per_host, 1);
        assert!(bad(Scenario { upload: Some("fast".into()), ..Default::default() }).contains("upload"));
        let e = bad(Scenario { jitter: Some("uniform(9ms,1ms)".into()), ..Default::default() });
        assert!(e.starts_with("jitter:") && e.contains("low value is above"), "{e}");
    }

    #[test]
    fn the_embedded_preset_is_scenarios_tang_toml() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/tang.toml");
        let shipped = Scenario::load(&file).unwrap();
        let tang = Preset::Tang.scenario();
        assert_eq!(format!("{tang:?}"), format!("{shipped:?}"));
        assert_eq!(tang.preset, None, "a preset names no preset");
        let cfg =
            SwarmConfig::resolve(Scenario { preset: Some(Preset::Tang), ..Default::default() }, Mode::Netns).unwrap();
        assert_eq!((cfg.peers, cfg.vantage, cfg.bitrate, cfg.duration), (51, 51, 233_000, Duration::from_secs(2400)));
        assert_eq!(cfg.upload, Some("lognormal(1M,1.0)".parse().unwrap()));
        assert_eq!((cfg.download, cfg.source_upload, cfg.loss), (None, None, 0.0));
        assert_eq!(cfg.delay, DelayDist::new(crate::dist::Shape::Uniform(5_000, 100_000)));
        assert_eq!(cfg.jitter, DelayDist::fixed(2_000));
        assert_eq!(cfg.peers_per_host, 1, "every vantage peer has its own namespace: 53 hosts on the bridge");
        assert_eq!(cfg.preset, Some(Preset::Tang));
    }

    #[test]
    fn flags_beat_the_file_which_beats_the_preset() {
        let preset = Scenario { preset: Some(Preset::Tang), ..Default::default() };
        let file: Scenario = toml::from_str("peers = 30\ndelay = \"list(10ms,50ms)\"\nseed = 4\n").unwrap();
        let flags = Scenario { peers: Some(10), ..Default::default() };
        let s = flags.or(file.or(preset)).with_preset();
        assert_eq!((s.peers, s.delay.as_deref(), s.seed), (Some(10), Some("list(10ms,50ms)"), Some(4)));
        assert_eq!((s.duration, s.jitter.as_deref()), (Some(Duration::from_secs(2400)), Some("2ms")), "the preset's");
        // A file may name the preset itself; the effective scenario records it and runs the same again.
        let named: Scenario = toml::from_str("preset = \"tang\"\nvantage = 3\n").unwrap();
        let cfg = SwarmConfig::resolve(named, Mode::Netns).unwrap();
        assert_eq!((cfg.peers, cfg.vantage), (51, 3));
        let text = toml::to_string(&cfg.to_scenario()).unwrap();
        assert!(text.starts_with("preset = \"tang\"\n") && text.contains("delay = \"uniform(5ms,100ms)\""), "{text}");
        let again = SwarmConfig::resolve(toml::from_str(&text).unwrap(), Mode::Netns).unwrap();
        assert_eq!(format!("{cfg:?}"), format!("{again:?}"));
        let without = SwarmConfig::resolve(Scenario::default(), Mode::Netns).unwrap();
        assert_eq!((without.peers, without.delay.to_string(), without.preset), (20, "0ms".into(), None), "defaults");
    }
}
