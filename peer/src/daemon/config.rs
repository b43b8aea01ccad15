//! The peer daemon's typed configuration: everything a run needs, as `--config FILE` holds it
//! (JSON) and as the flags build it ([`super::cli`]), plus the policies both follow: where
//! peers may be bound ([`peer_addrs`]) and how a churn schedule becomes each peer's sessions
//! ([`read_sessions`]).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use soplab_node::Micros;
use soplab_node::impair::Impairment;
use soplab_rundir::plan::range_of;
use soplab_rundir::schedule::{Schedule, Session};

use crate::PeerConfig;

/// Everything a peer-daemon run needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// The settings every hosted peer runs with: all of [`PeerConfig`], so that a new knob
    /// needs no new flag. Each peer's own `addr` and `seed` (in [`DaemonConfig::peers`])
    /// replace the template's.
    pub template: PeerConfig,
    /// The peers this process hosts; peer `i` of the schedule and of the logs is `peers[i]`.
    pub peers: Vec<HostedPeer>,
    /// Wall-clock time zero of the peers' sessions, in µs since the Unix epoch, so that several
    /// processes follow one schedule (none: when this process starts its peers).
    pub schedule_epoch_us: Option<u64>,
    pub outputs: Outputs,
    /// Delay and jitter (µs) and loss (0 to 1) on every datagram each peer sends, emulated in
    /// its I/O shell and seeded per peer, so it works on kernels without `sch_netem`. A peer
    /// with its own [`HostedPeer::impairment`] uses that instead.
    pub impairment: Impairment,
    /// Stop by itself after this many microseconds (none: run until Ctrl-C or SIGTERM).
    pub duration_us: Option<Micros>,
}

/// One peer of the process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostedPeer {
    /// Its UDP address, inside 127.0.0.0/8 or 198.18.0.0/15 (port 0: a free port, logged).
    pub addr: SocketAddrV4,
    /// Seed of its random choices (each session of a churned peer derives its own from it).
    pub seed: u64,
    /// The network namespace its sockets are bound in (none: this process's own).
    #[serde(default)]
    pub netns: Option<String>,
    /// How long after the start a peer without sessions joins, in µs.
    #[serde(default)]
    pub start_delay_us: Micros,
    /// Its churn sessions, in seconds from `schedule_epoch_us`: it runs only during them and
    /// vanishes at each end. Empty: it runs the whole time.
    #[serde(default)]
    pub sessions: Vec<Session>,
    /// Its own impairment, when its host's path differs from the others' (heterogeneous
    /// delays); none: the daemon-wide [`DaemonConfig::impairment`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impairment: Option<Impairment>,
}

impl HostedPeer {
    /// What its I/O shell does to what it sends: its own impairment, or the daemon's.
    pub fn impairment_or(&self, daemon_wide: Impairment) -> Impairment {
        self.impairment.unwrap_or(daemon_wide)
    }
}

impl HostedPeer {
    /// Its core settings: the process's `template` with its own address and seed.
    pub fn config(&self, template: &PeerConfig) -> PeerConfig {
        PeerConfig { addr: self.addr.into(), seed: self.seed, ..template.clone() }
    }

    /// When it runs, in µs: each session of its schedule as (start, end) from the schedule's
    /// time zero; without sessions, one session from its start delay (counted from when its
    /// process starts the peers) to the stop (`None`). An empty session (end <= start) is kept,
    /// so session `k` is the schedule's `k`-th, but never played.
    pub fn spans_us(&self) -> Vec<(Micros, Option<Micros>)> {
        if self.sessions.is_empty() {
            return vec![(self.start_delay_us, None)];
        }
        let us = |secs: f64| (secs * 1e6).round() as Micros;
        self.sessions.iter().map(|s| (us(s.start), Some(us(s.end)))).collect()
    }
}

/// The core settings of session `k` of a peer configured as `cfg`: each session is a fresh
/// client, with a seed of its own derived from the peer's.
pub fn session_config(cfg: &PeerConfig, k: usize) -> PeerConfig {
    PeerConfig { seed: cfg.seed.wrapping_add(k as u64 * 0x9e37_79b9), ..cfg.clone() }
}

/// Where the hosted peers write; every per-peer file is named by the peer's address,
/// `peer-<ip>-<port>.<ext>` ([`soplab_rundir::stem::host_stem`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outputs {
    /// Ground-truth events (none: no ground truth).
    pub truth: Option<Truth>,
    /// A folder for each peer's played stream, `.ts`.
    pub played_dir: Option<PathBuf>,
    /// A folder for each peer's own capture of what it sends and receives, `.pcap`.
    pub pcap_dir: Option<PathBuf>,
    /// The peers' final counters, as a JSON array (none: stdout only).
    pub stats: Option<PathBuf>,
    /// TCP port where each peer serves its played stream over HTTP on its own address (0: off).
    pub http_port: u16,
}

/// Where ground truth goes: `{"dir": DIR}` (a `.jsonl` file per peer) or `{"file": FILE}`
/// (every peer's lines in one file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Truth {
    Dir(PathBuf),
    File(PathBuf),
}

impl Truth {
    pub fn path(&self) -> &Path {
        match self {
            Truth::Dir(p) | Truth::File(p) => p,
        }
    }
}

impl DaemonConfig {
    /// Refuses what a configuration file can say but the flags cannot: no peers, a peer outside
    /// soplab's address blocks, a session that is not a span of time, a loss share outside 0..1.
    ///
    /// # Errors
    /// The first such mistake, named.
    pub fn check(&self) -> Result<()> {
        if self.peers.is_empty() {
            bail!("the configuration hosts no peers; list at least one under \"peers\"");
        }
        for (i, p) in self.peers.iter().enumerate() {
            if range_of(*p.addr.ip()).is_none() {
                bail!(
                    "peer {i}'s address {} is outside 127.0.0.0/8 and 198.18.0.0/15: soplab only ever binds peers \
                     to loopback or its test range",
                    p.addr
                );
            }
            let bad = |s: &&Session| !(s.start.is_finite() && s.end.is_finite() && 0.0 <= s.start && s.start <= s.end);
            if let Some(s) = p.sessions.iter().find(bad) {
                bail!(
                    "peer {i} has a session from {} to {}; a session needs 0 <= start <= end (seconds)",
                    s.start,
                    s.end
                );
            }
        }
        let own = self.peers.iter().filter_map(|p| p.impairment);
        if let Some(e) = std::iter::once(self.impairment).chain(own).find_map(|i| i.check().err()) {
            bail!("the impairment cannot be used: {e}");
        }
        Ok(())
    }

    /// How long the daemon runs, if not until a signal.
    pub fn duration(&self) -> Option<Duration> {
        self.duration_us.map(Duration::from_micros)
    }
}

/// The addresses of `count` peers from `first`: its IPv4 address plus 0, 1, ..., same port,
/// all inside one block of [`soplab_rundir::plan::RANGES`].
///
/// # Errors
/// When `first` is IPv6 or outside those blocks, or the last address would fall past the end
/// of the block `first` is in.
pub fn peer_addrs(first: SocketAddr, count: u32) -> Result<Vec<SocketAddrV4>> {
    let SocketAddr::V4(first) = first else {
        bail!("--addr {first} is IPv6; soplab peers speak IPv4 only: use e.g. --addr 127.0.0.1:3908");
    };
    let ip = u32::from(*first.ip());
    let Some((net, prefix, name)) = range_of(*first.ip()) else {
        bail!(
            "--addr {} is outside 127.0.0.0/8 and 198.18.0.0/15: soplab only ever binds peers to loopback or \
             its test range; use e.g. --addr 127.0.0.1:3908",
            first.ip()
        );
    };
    let end = u32::from(net) | (u32::MAX >> prefix); // last address of the block
    let last = ip.checked_add(count.saturating_sub(1)).filter(|&l| l <= end);
    if last.is_none() {
        let room = end - ip + 1;
        bail!(
            "--count {count} from --addr {} would need addresses past {}, the end of {name}; start lower \
             (e.g. --addr {}:{}) or run at most {room} peers from there",
            first.ip(),
            Ipv4Addr::from(end),
            Ipv4Addr::from(u32::from(net) + 1),
            first.port()
        );
    }
    Ok((0..count).map(|i| SocketAddrV4::new(Ipv4Addr::from(ip + i), first.port())).collect())
}

/// Each of `count` peers' sessions in the churn schedule at `path` (client `i` is peer `i`), in
/// order, as the run-directory reader checks them (header, numbers, spans, overlaps).
///
/// # Errors
/// When the file cannot be read or is not a valid schedule (the message names the line), or
/// it names a client past the last peer.
pub fn read_sessions(path: &Path, count: usize) -> Result<Vec<Vec<Session>>> {
    let schedule =
        Schedule::read_csv(path).map_err(|e| anyhow!("{e}; check --schedule (`soplab workload` writes such files)"))?;
    let mut by_client = schedule.by_client();
    if let Some((&c, _)) = by_client.range(u32::try_from(count).unwrap_or(u32::MAX)..).next() {
        bail!("the schedule names client {c}, but this process runs peers 0 to {}", count - 1);
    }
    Ok((0..count as u32).map(|i| by_client.remove(&i).unwrap_or_default()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_count_up_and_stay_in_range() {
        let a = peer_addrs("127.0.0.254:3908".parse().unwrap(), 3).unwrap();
        let want: Vec<SocketAddrV4> =
            ["127.0.0.254:3908", "127.0.0.255:3908", "127.0.1.0:3908"].iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(a, want);
        assert_eq!(peer_addrs("198.19.255.255:1".parse().unwrap(), 1).unwrap().len(), 1);
        assert_eq!(peer_addrs("127.255.255.250:1".parse().unwrap(), 6).unwrap().len(), 6);

        let e = peer_addrs("127.255.255.250:1".parse().unwrap(), 7).unwrap_err().to_string();
        assert!(e.contains("past 127.255.255.255") && e.contains("at most 6 peers"), "{e}");
        let e = peer_addrs("198.19.255.255:1".parse().unwrap(), 2).unwrap_err().to_string();
        assert!(e.contains("198.18.0.0/15"), "{e}");
        let e = peer_addrs("10.0.0.1:1".parse().unwrap(), 1).unwrap_err().to_string();
        assert!(e.contains("outside 127.0.0.0/8 and 198.18.0.0/15"), "{e}");
        assert!(peer_addrs("198.20.0.1:1".parse().unwrap(), 1).is_err());
        assert!(peer_addrs("[::1]:1".parse().unwrap(), 1).is_err());
    }

    #[test]
    fn a_hosted_peer_may_carry_its_own_impairment() {
        let daemon_wide = Impairment { delay: 10_000, jitter: 0, loss: 0.0, loss_burst: None };
        let plain: HostedPeer = serde_json::from_str(r#"{"addr": "127.0.0.2:3908", "seed": 1}"#).unwrap();
        assert_eq!(plain.impairment, None);
        assert_eq!(plain.impairment_or(daemon_wide), daemon_wide);
        assert!(!serde_json::to_string(&plain).unwrap().contains("impairment"), "left out when none");
        let own: HostedPeer = serde_json::from_str(
            r#"{"addr": "127.0.0.3:3908", "seed": 2, "impairment": {"delay": 80000, "jitter": 2000, "loss": 0.0}}"#,
        )
        .unwrap();
        let want = Impairment { delay: 80_000, jitter: 2_000, loss: 0.0, loss_burst: None };
        assert_eq!(own.impairment_or(daemon_wide), want);
        assert_eq!(serde_json::from_str::<HostedPeer>(&serde_json::to_string(&own).unwrap()).unwrap(), own);

        let mut config: DaemonConfig = serde_json::from_value(serde_json::json!({
            "template": crate::PeerConfig::peer("127.0.0.2:3908".parse().unwrap(), "127.0.0.1:3900".parse().unwrap(), 1, 0),
            "peers": [plain, own],
            "schedule_epoch_us": null,
            "outputs": Outputs::default(),
            "impairment": daemon_wide,
            "duration_us": null,
        }))
        .unwrap();
        config.check().unwrap();
        config.peers[1].impairment = Some(Impairment { loss: 2.0, ..want });
        let e = config.check().unwrap_err().to_string();
        assert!(e.contains("loss 2"), "a peer's own loss is checked too: {e}");
        config.peers[1].impairment = Some(Impairment { loss: 0.05, loss_burst: Some(0.5), ..want });
        let e = config.check().unwrap_err().to_string();
        assert!(e.contains("burst 0.5"), "and its burst length: {e}");
    }

    #[test]
    fn schedules_are_read_per_client_and_bad_lines_are_named() {
        let dir = std::env::temp_dir().join(format!("soplab-schedule-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s.csv");
        std::fs::write(&p, "client,session,start,end\n1,0,5.5,9\n0,0,1,2\n1,1,20,30.25\n").unwrap();
        let s = read_sessions(&p, 2).unwrap();
        let at = |client, session, start, end| Session { client, session, start, end };
        assert_eq!(s[0], vec![at(0, 0, 1.0, 2.0)]);
        assert_eq!(s[1], vec![at(1, 0, 5.5, 9.0), at(1, 1, 20.0, 30.25)]);
        let e = read_sessions(&p, 1).unwrap_err().to_string();
        assert!(e.contains("names client 1") && e.contains("peers 0 to 0"), "{e}");
        for (text, want) in [
            ("c,s,a,b\n", ":1: the header"),
            ("client,session,start,end\n0,0,x,1\n", ":2:"),
            ("client,session,start,end\n0,0,1,1\n0,1,5,4\n", ":3:"),
            ("client,session,start,end\n0,0,-1,4\n", ">= 0"),
            ("client,session,start,end\n0,0,1,5\n0,1,4,6\n", "one session at a time"),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = read_sessions(&p, 1).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("check --schedule"), "{text:?}: {e}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
