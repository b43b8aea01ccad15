//! The peer daemon's command line: its flags and help, and how they become a [`DaemonConfig`]
//! (or `--config` reads one).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use anyhow::{Result, bail};
use soplab_node::impair::Impairment;
use soplab_shell::flags::{CommonArgs, load_config, micros, rate_text};
use soplab_shell::units::{parse_duration, parse_positive_duration, parse_rate, parse_share};

use super::config::{DaemonConfig, HostedPeer, Outputs, Truth, peer_addrs, read_sessions};
use super::{DEFAULT_ADDR, DEFAULT_HTTP_PORT, DEFAULT_TRACKER};
use crate::PeerConfig;

/// One line on what the daemon does (`-h`).
pub const ABOUT: &str = "soplab's peer: runs one or many SopCast-like peers in this process, each on its own \
address, that join a channel, pull its stream from each other and play it.";

/// What `--help` says before the options.
pub const LONG_ABOUT: &str = "soplab's peer, the SopCast client: joins a channel through the tracker, links with other
peers, pulls the stream's blocks and plays them.

This process hosts --count peers (1 by default). Peer i (from 0) listens on --addr's IPv4 address
plus i, on --addr's port: with --addr 127.0.0.1:3908 --count 3, on 127.0.0.1:3908,
127.0.0.2:3908 and 127.0.0.3:3908. Addresses must stay inside 127.0.0.0/8 (loopback; every
127.x.y.z is this machine on Linux) or 198.18.0.0/15 (soplab's test range for network
namespaces). Each peer has its own socket and task, and uses seed --seed + i. With --stagger
the peers join spread over that time (peer i after i * STAGGER / COUNT); by default all at once.

Each peer registers with the tracker every 30 s, links with up to --max-neighbors others (HELLO,
reply, ACK; a keep-alive with its buffer map about every second), refreshing that list now and
then, pulls the blocks it misses as sub-streams from at most --gamma parents at once (each kept
while it delivers), serves its neighbours' requests
(up to --upload bits per second if given; no tit-for-tat) and plays the stream 10 s behind the
newest block it has seen, at --bitrate, which must be the source's.

Outputs: --truth-dir DIR gets one ground-truth file per peer, peer-<ip>-<port>.jsonl (one JSON
object per event: links, requests, responses, plays, drops), or --truth FILE takes all peers'
events in one file. --played-dir DIR gets peer-<ip>-<port>.ts per peer: the blocks handed to the
player, in order, appended as they are played. With --http-port (8902 by default, 0 = off)
each peer also serves its stream on its own address as SopCast does for its player: play it
with `ffplay http://127.0.0.1:8902/` (new blocks from connection on; at most 8 players per
peer; a player that falls behind is dropped).

On Ctrl-C, SIGTERM or the end of --duration every peer leaves the tracker and stops, and the
process prints a JSON array of the peers' counters (continuity, blocks played, parents,
neighbours, bytes up and down, drops) on stdout, and writes it to --stats FILE if given. Logs
go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more.

Rates take bits per second with k, M or G: 500000, 500k, 1M. Durations take seconds or units:
300, 90s, 5m, 1h30m, 500ms.

--config FILE takes all of these settings from a JSON file instead of flags (and no other flag):
{\"template\": {every key of the peer core's PeerConfig: \"tracker\", \"channel\", \"bitrate_bps\", ...},
\"peers\": [{\"addr\": \"127.0.0.1:3908\", \"seed\": 7, \"netns\": null, \"start_delay_us\": 0,
\"sessions\": [{\"client\": 0, \"session\": 0, \"start\": 5.0, \"end\": 60.0}], optionally
\"impairment\": {its own, as below}}, ...],
\"schedule_epoch_us\": null, \"outputs\": {\"truth\": {\"dir\": \"truth\"} or {\"file\": \"peers.jsonl\"},
\"played_dir\": null, \"pcap_dir\": null, \"stats\": null, \"http_port\": 8902}, \"impairment\":
{\"delay\": 0, \"jitter\": 0, \"loss\": 0.0}, \"duration_us\": null}. Times in it are in microseconds,
session times in seconds from schedule_epoch_us.

Examples (`soplab peer` takes the same options):
  soplab-peer
  soplab-peer --addr 127.0.1.1:3908 --count 20 --stagger 10s --truth-dir truth --played-dir played
  soplab-peer --addr 127.0.1.1:3908 --tracker 127.0.0.1:3900 --duration 5m --stats peers.stats.json";

fn defaults() -> PeerConfig {
    PeerConfig::peer(DEFAULT_ADDR, DEFAULT_TRACKER, 1, 0)
}

/// The default stream bitrate as the flags show it (`500k`): [`PeerConfig::peer`]'s, which the
/// source's `--bitrate` shares.
pub fn default_bitrate() -> &'static str {
    static TEXT: LazyLock<String> = LazyLock::new(|| rate_text(defaults().bitrate_bps));
    TEXT.as_str()
}

/// The peer daemon's command-line options.
#[derive(clap::Args, Debug, Clone)]
#[command(about = ABOUT, long_about = LONG_ABOUT)]
pub struct Args {
    /// How many peers this process runs, on consecutive IPv4 addresses from --addr.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub count: u32,

    /// UDP address of the first peer; peer i gets this IPv4 address plus i, same port (port 0:
    /// a free port each, logged).
    #[arg(long, value_name = "IP:PORT", default_value_t = DEFAULT_ADDR)]
    pub addr: SocketAddr,

    /// The tracker's UDP address (the default is soplab-tracker's default).
    #[arg(long, value_name = "ADDR", default_value_t = DEFAULT_TRACKER)]
    pub tracker: SocketAddr,

    /// Channel to join (the source's --channel).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub channel: u32,

    /// Stream bitrate in bits/s (500k = 500,000), the source's --bitrate: sets the playback pace.
    #[arg(long, value_name = "BPS", default_value = default_bitrate(), value_parser = parse_rate)]
    pub bitrate: u64,

    /// Cap on each peer's video upload in bits/s, e.g. 1M (default: no cap).
    #[arg(long, value_name = "BPS", value_parser = parse_rate)]
    pub upload: Option<u64>,

    /// Most neighbours per peer, established or handshaking.
    #[arg(long, value_name = "N", default_value_t = defaults().max_neighbors)]
    pub max_neighbors: usize,

    /// Most parents a peer has requests outstanding with at once (gamma).
    #[arg(long, value_name = "N", default_value_t = defaults().gamma)]
    pub gamma: usize,

    /// A neighbour silent this long is dropped until it is chosen again, e.g. 6s.
    #[arg(long, value_name = "DURATION", default_value = "6s", value_parser = parse_positive_duration)]
    pub neighbor_timeout: std::time::Duration,

    // (`help` rather than a doc comment: rustdoc would take `<ip>` for HTML.)
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "truth",
        help = "Write each peer's ground-truth events to DIR/peer-<ip>-<port>.jsonl (DIR is created)"
    )]
    pub truth_dir: Option<PathBuf>,

    #[arg(
        long,
        value_name = "DIR",
        help = "Write each peer's played stream to DIR/peer-<ip>-<port>.ts (DIR is created)"
    )]
    pub played_dir: Option<PathBuf>,

    /// TCP port where each peer serves its played stream over HTTP on its own address (0: off).
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_HTTP_PORT)]
    pub http_port: u16,

    /// Spread the peers' start over this long: peer i starts at i * STAGGER / COUNT (0: all at once).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub stagger: Duration,

    /// Network namespaces to bind the peers in (made with `ip netns add`; needs root): one name
    /// for all peers, or a comma-separated list with one name per peer.
    #[arg(long, value_name = "NAME[,NAME...]", value_delimiter = ',')]
    pub netns: Vec<String>,

    /// Extra delay on every datagram a peer sends, e.g. 20ms. Emulated in the peer's I/O shell
    /// (seeded), so it works on kernels without sch_netem.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub delay: Duration,

    /// Uniform random extra delay of up to this much per datagram (reorders, as real jitter does).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub jitter: Duration,

    /// Share of the datagrams each peer sends that are lost, from 0 to 1 (0.01 or 1%), seeded.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0, value_parser = parse_share)]
    pub loss: f64,

    /// Lose in bursts of this many consecutive datagrams on average (a Gilbert-Elliott chain
    /// with the same long-run --loss; see `soplab swarm --help`) [default: independent losses].
    #[arg(long, value_name = "DATAGRAMS")]
    pub loss_burst: Option<f64>,

    // (`help` rather than a doc comment: rustdoc would take `<ip>` for HTML.)
    #[arg(
        long,
        value_name = "DIR",
        help = "Write each peer's own capture of what it sends and receives to DIR/peer-<ip>-<port>.pcap \
                (IPv4/UDP, link type RAW; for runs without tcpdump)"
    )]
    pub pcap_dir: Option<PathBuf>,

    /// Churn schedule, a CSV file with the header `client,session,start,end` (times in seconds
    /// from --schedule-epoch-ms): client i is peer i of this process, which runs only during its
    /// sessions and vanishes at each end without telling anyone, as SopCast clients do. Peers
    /// without rows run the whole time. `soplab workload` writes such files.
    #[arg(long, value_name = "FILE")]
    pub schedule: Option<PathBuf>,

    /// Wall-clock time zero of --schedule, in milliseconds since the Unix epoch (default: now),
    /// so that several processes follow one schedule.
    #[arg(long, value_name = "UNIX_MS", requires = "schedule")]
    pub schedule_epoch_ms: Option<u64>,

    #[command(flatten)]
    pub common: CommonArgs,
}

impl Args {
    /// The configuration these flags say, or the one `--config` names: the daemon runs either
    /// the same way. Peer `i` gets `--addr` plus `i`, seed `--seed` + `i`, its namespace, its
    /// share of `--stagger` and its sessions of `--schedule`.
    ///
    /// # Errors
    /// When `--config` cannot be read or parsed, the addresses leave soplab's blocks, `--netns`
    /// names neither one namespace nor one per peer, or the schedule is not valid.
    pub fn into_config(self) -> Result<DaemonConfig> {
        if let Some(path) = &self.common.config {
            return Ok(load_config(path, "peer daemon")?);
        }
        let addrs = peer_addrs(self.addr, self.count)?;
        let count = addrs.len();
        if !(self.netns.len() <= 1 || self.netns.len() == count) {
            bail!(
                "--netns takes one namespace for all peers or one per peer: {count} peers, {} names",
                self.netns.len()
            );
        }
        let sessions = match &self.schedule {
            Some(path) => read_sessions(path, count)?,
            None => vec![Vec::new(); count],
        };
        let seed = self.common.seed();
        let peers = addrs
            .into_iter()
            .zip(sessions)
            .enumerate()
            .map(|(i, (addr, sessions))| HostedPeer {
                addr,
                seed: seed.wrapping_add(i as u64),
                netns: self.netns.get(if self.netns.len() == 1 { 0 } else { i }).cloned(),
                start_delay_us: micros(self.stagger.mul_f64(i as f64 / count as f64)),
                sessions,
                impairment: None,
            })
            .collect();
        let template = PeerConfig {
            bitrate_bps: self.bitrate,
            upload_bps: self.upload,
            max_neighbors: self.max_neighbors,
            gamma: self.gamma,
            neighbor_timeout: micros(self.neighbor_timeout),
            ..PeerConfig::peer(self.addr, self.tracker, self.channel, seed)
        };
        let truth = match (self.truth_dir, self.common.truth.clone()) {
            (Some(dir), _) => Some(Truth::Dir(dir)),
            (None, file) => file.map(Truth::File),
        };
        let outputs = Outputs {
            truth,
            played_dir: self.played_dir,
            pcap_dir: self.pcap_dir,
            stats: self.common.stats.clone(),
            http_port: self.http_port,
        };
        Ok(DaemonConfig {
            template,
            peers,
            schedule_epoch_us: self.schedule_epoch_ms.map(|ms| ms.saturating_mul(1000)),
            outputs,
            impairment: Impairment {
                delay: micros(self.delay),
                jitter: micros(self.jitter),
                loss: self.loss,
                loss_burst: self.loss_burst,
            },
            duration_us: self.common.duration_us(),
        })
    }
}

#[cfg(test)]
mod tests {
    use soplab_shell::flags::{parse_args, save_config};

    use super::*;

    #[test]
    fn cli_defaults_follow_peer_config() {
        let a = parse_args::<Args>(["soplab-peer"]).unwrap();
        let d = defaults();
        assert_eq!((a.count, a.addr, a.tracker, a.channel), (1, DEFAULT_ADDR, DEFAULT_TRACKER, 1));
        assert_eq!((a.bitrate, a.max_neighbors, a.gamma), (d.bitrate_bps, d.max_neighbors, d.gamma));
        assert_eq!((a.http_port, a.stagger), (8902, Duration::ZERO));
        assert!(
            a.common.seed.is_none() && a.upload.is_none() && a.common.stats.is_none() && a.common.duration.is_none()
        );
        assert!(a.common.truth.is_none() && a.truth_dir.is_none() && a.played_dir.is_none());
        let a = parse_args::<Args>(["soplab-peer", "--stagger", "2500ms", "--upload", "1M", "--count", "3"]).unwrap();
        assert_eq!((a.stagger, a.upload, a.count), (Duration::from_millis(2500), Some(1_000_000), 3));
        assert!(parse_args::<Args>(["soplab-peer", "--count", "0"]).is_err());
        assert!(parse_args::<Args>(["soplab-peer", "--truth", "a", "--truth-dir", "b"]).is_err());
    }

    #[test]
    fn flags_and_config_file_give_one_config() {
        let dir = std::env::temp_dir().join(format!("soplab-peer-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let schedule = dir.join("s.csv");
        std::fs::write(&schedule, "client,session,start,end\n1,0,5,60\n1,1,90,120\n").unwrap();
        let argv = ["soplab-peer", "--addr", "127.0.0.10:0", "--count", "2", "--seed", "7", "--stagger", "2s"];
        let more = ["--netns", "a,b", "--delay", "20ms", "--truth-dir", "t", "--gamma", "2", "--duration", "5m"];
        let epoch = ["--schedule".as_ref(), schedule.as_os_str(), "--schedule-epoch-ms".as_ref(), "1000".as_ref()];
        let argv = argv.iter().chain(&more).map(AsRef::as_ref).chain(epoch);
        let config = parse_args::<Args>(argv).unwrap().into_config().unwrap();
        let (p0, p1) = (&config.peers[0], &config.peers[1]);
        assert_eq!(
            (p0.addr, p0.seed, p0.netns.as_deref(), p0.start_delay_us),
            ("127.0.0.10:0".parse().unwrap(), 7, Some("a"), 0)
        );
        assert_eq!(
            (p1.addr, p1.seed, p1.netns.as_deref(), p1.start_delay_us),
            ("127.0.0.11:0".parse().unwrap(), 8, Some("b"), 1_000_000)
        );
        assert!(p0.sessions.is_empty() && p1.sessions.len() == 2);
        assert_eq!(
            (config.template.gamma, config.impairment.delay, config.schedule_epoch_us),
            (2, 20_000, Some(1_000_000))
        );
        assert_eq!(config.outputs.truth, Some(Truth::Dir("t".into())));
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(serde_json::to_value(serde_json::from_value::<DaemonConfig>(json.clone()).unwrap()).unwrap(), json);

        let file = dir.join("peers.json");
        save_config(&config, &file).unwrap();
        let loaded = parse_args::<Args>(["soplab-peer".as_ref(), "--config".as_ref(), file.as_os_str()]).unwrap();
        assert_eq!(serde_json::to_value(loaded.into_config().unwrap()).unwrap(), json);
        let shared = parse_args::<Args>(["soplab-peer", "--truth", "all.jsonl"]).unwrap().into_config().unwrap();
        assert_eq!(shared.outputs.truth, Some(Truth::File("all.jsonl".into())));
        std::fs::remove_dir_all(&dir).ok();
    }
}
