//! Peer settings. Defaults follow what Tang et al. and Borges et al. observed of SopCast.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use soplab_node::truth::Role as HostRole;
use soplab_node::{Micros, SECOND};
use soplab_wire::{BLOCK_LEN, Role};

/// Everything a peer (or the source, which is a peer that never requests) is configured with.
/// Serde both ways, for the daemons' `--config` files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerConfig {
    /// This node's own address (must be IPv4: peer exchange carries IPv4 addresses).
    pub addr: SocketAddr,
    pub tracker: SocketAddr,
    pub channel: u32,
    #[serde(serialize_with = "serialize_role", deserialize_with = "deserialize_role")]
    pub role: Role,
    /// Seeds nonces, peer choice and exploration, so runs are reproducible.
    pub seed: u64,
    /// Stream bitrate; sets how fast blocks are produced and played.
    pub bitrate_bps: u64,
    /// Most neighbours (established plus handshaking): the size of the peer list a peer keeps
    /// contact with. Tang et al.'s 10 s snapshots see 41.6 of 50 other peers at once, so
    /// SopCast's list holds fewer than a 51-peer swarm.
    pub max_neighbors: usize,
    /// Mean time between two keep-alives to one neighbour.
    pub keepalive_interval: Micros,
    /// Each keep-alive gap is drawn uniformly within this much either side of the interval, so
    /// the keep-alives of different neighbours drift apart as a real client's timers do.
    pub keepalive_jitter: Micros,
    /// Probability that a keep-alive to a neighbour that is not our child goes out late: Tang
    /// et al. see "temporary ceasing" of links and ascribe longer gaps to processing delay and
    /// congestion (section 5.2). A child's keep-alives carry the buffer map it requests from,
    /// so a client keeps those on time.
    pub keepalive_late: f64,
    /// Mean time between two keep-alives to a child (jittered like the others, never late): a
    /// child requests what the buffer map announces, so it hears of new blocks about as fast
    /// as they come (a block every 0.35 s at 233 kbit/s).
    pub child_keepalive_interval: Micros,
    /// A late keep-alive is held back by at least this much more...
    pub keepalive_late_min: Micros,
    /// ...and at most this much (uniformly in between).
    pub keepalive_late_max: Micros,
    /// While the neighbour table is full, the least useful neighbour (neither parent nor
    /// child, slowest as a parent) is dropped on average this often, making room to meet
    /// another peer (0: never). This is how a bounded peer list still meets the whole swarm
    /// within minutes (Tang et al. Fig. 3), while staying "relatively stable" (section 5.3).
    pub neighbor_refresh: Micros,
    /// A full peer list still lets in a peer it never met, replacing its least useful
    /// neighbour, at most once per this long (with `neighbor_refresh` set). Faster, and
    /// the whole swarm is met within the first minute; slower, and not within 5 minutes.
    pub newcomer_pace: Micros,
    /// A neighbour silent this long is dropped until it is chosen again.
    pub neighbor_timeout: Micros,
    /// A HELLO or reply left unanswered this long is abandoned.
    pub handshake_timeout: Micros,
    /// New HELLOs sent per second while below `max_neighbors`.
    pub hellos_per_second: u32,
    /// HELLOs a peer that just started may send at once, before `hellos_per_second` paces
    /// the rest. The tracker's list holds departed peers (it forgets them slowly, Borges et al.
    /// section 2), so one HELLO at a time can take seconds to reach a live peer; a handful at
    /// once gets the first answer within a round trip, which keeps the join delay (session
    /// start to first video) short and steady.
    pub hellos_at_start: u32,
    /// How often to re-register with the tracker (which also returns fresh peers).
    pub tracker_interval: Micros,
    /// Peers asked of the tracker each time.
    pub tracker_want: u16,
    /// Most parents with requests outstanding at once (gamma).
    pub gamma: usize,
    /// The stream is pulled as this many sub-streams (block `b` is in sub-stream
    /// `b % substreams`), each from one parent kept while it delivers, as CoolStreaming-style
    /// clients do. This is what keeps a child's parents few (1.86 per 2 s, Tang et al. Fig. 5)
    /// and its requests to one parent frequent (Fig. 2, right). 0: no sub-streams; each
    /// request picks afresh among the neighbours that have the blocks (the full-mesh profile).
    pub substreams: u32,
    /// A sub-stream's block announced within this long of the newest block seen waits for the
    /// sub-stream's parent; an older one goes to the best neighbour that has it, which then
    /// becomes the sub-stream's parent.
    pub parent_patience: Micros,
    /// Delivery rate (bytes/s) assumed of a neighbour never tried as a parent. Below what a
    /// proven parent delivers, children stay with the parents that served them well, which
    /// makes supernodes (Tang et al. section 5.4); untried ones come in by exploration or when
    /// the proven ones fail. Above it, every untried neighbour is tried first.
    pub parent_fresh_rate: f64,
    /// Parents are ranked by measured rate times a random factor within 1 ± this.
    pub parent_noise: f64,
    /// Probability, per request, that a sub-stream tries a random neighbour that has the
    /// blocks as its new parent: how better parents get found.
    pub parent_explore: f64,
    /// Most children served at once (11 for the source, unlimited for peers).
    pub max_children: usize,
    /// A child that has not requested for this long stops counting as a child.
    pub child_timeout: Micros,
    /// Upload cap in bits per second for video (None: unlimited).
    pub upload_bps: Option<u64>,
    /// Playback starts this far behind the newest block seen. SopCast plays tens of seconds
    /// behind; 10 s leaves a tree of sticky parents several hops deep (132 peers) time to
    /// deliver, where 4 s let a 132-peer swarm fall to continuity 0.67.
    pub lag: Micros,
    /// Blocks that must be in hand from the start point before playback begins...
    pub startup_blocks: u32,
    /// ...or this long after the start point was chosen, whichever comes first.
    pub startup_max: Micros,
    /// How far ahead of the playback point to request.
    pub request_ahead: Micros,
    /// Most blocks per request.
    pub request_blocks: u8,
    /// A response not complete after this long is given up and its missing blocks re-requested.
    pub request_timeout: Micros,
    /// A request with no packet back after this long is given up (the parent ignored it).
    pub answer_timeout: Micros,
    /// How long a parent that ignored a request is left alone (doubling, up to 16x).
    pub parent_backoff: Micros,
    /// Requests outstanding per parent.
    pub outstanding_per_parent: usize,
    /// Responses queued per child before further requests are refused.
    pub child_queue: usize,
    /// Scheduler and timer granularity.
    pub tick: Micros,
}

impl PeerConfig {
    /// A peer with the default settings: SopCast as Tang et al. measured it ([`Profile::SopCast`]).
    pub fn peer(addr: SocketAddr, tracker: SocketAddr, channel: u32, seed: u64) -> PeerConfig {
        PeerConfig {
            addr,
            tracker,
            channel,
            role: Role::Peer,
            seed,
            bitrate_bps: 500_000,
            max_neighbors: 42,
            keepalive_interval: SECOND,
            keepalive_jitter: 300_000,
            keepalive_late: 0.07,
            keepalive_late_min: 500_000,
            keepalive_late_max: 4_500_000,
            child_keepalive_interval: 500_000,
            neighbor_refresh: 8 * SECOND,
            newcomer_pace: SECOND,
            neighbor_timeout: 10 * SECOND,
            handshake_timeout: 3 * SECOND,
            hellos_per_second: 1,
            hellos_at_start: 4,
            tracker_interval: 30 * SECOND,
            tracker_want: 50,
            gamma: 4,
            substreams: 2,
            parent_patience: 1_500_000,
            parent_fresh_rate: 50_000.0,
            parent_noise: 0.2,
            parent_explore: 0.02,
            max_children: usize::MAX,
            child_timeout: 4 * SECOND,
            upload_bps: None,
            lag: 10 * SECOND,
            startup_blocks: 12,
            startup_max: 8 * SECOND,
            request_ahead: 20 * SECOND,
            request_blocks: 4,
            request_timeout: 3 * SECOND,
            answer_timeout: SECOND,
            parent_backoff: 5 * SECOND,
            outstanding_per_parent: 3,
            child_queue: 6,
            tick: 100_000,
        }
    }

    /// The source provider: serves at most 11 children and requests nothing.
    pub fn source(addr: SocketAddr, tracker: SocketAddr, channel: u32, seed: u64) -> PeerConfig {
        PeerConfig { role: Role::Source, max_children: 11, ..PeerConfig::peer(addr, tracker, channel, seed) }
    }

    /// The same peer with the knobs of `profile`.
    pub fn with_profile(self, profile: Profile) -> PeerConfig {
        match profile {
            Profile::SopCast => self.sopcast_knobs(),
            Profile::FullMesh => PeerConfig {
                max_neighbors: 60,
                hellos_per_second: 2,
                hellos_at_start: 1,
                keepalive_jitter: 0,
                keepalive_late: 0.0,
                child_keepalive_interval: self.keepalive_interval,
                neighbor_refresh: 0,
                neighbor_timeout: 6 * SECOND,
                substreams: 0,
                parent_patience: 0,
                parent_fresh_rate: 200_000.0,
                parent_noise: 0.5,
                parent_explore: 0.0,
                ..self
            },
        }
    }

    /// `self` with the behaviour knobs of the default (SopCast) profile and everything else kept.
    fn sopcast_knobs(self) -> PeerConfig {
        let d = PeerConfig::peer(self.addr, self.tracker, self.channel, self.seed);
        PeerConfig {
            max_neighbors: d.max_neighbors,
            keepalive_interval: d.keepalive_interval,
            keepalive_jitter: d.keepalive_jitter,
            keepalive_late: d.keepalive_late,
            keepalive_late_min: d.keepalive_late_min,
            keepalive_late_max: d.keepalive_late_max,
            child_keepalive_interval: d.child_keepalive_interval,
            hellos_per_second: d.hellos_per_second,
            hellos_at_start: d.hellos_at_start,
            neighbor_refresh: d.neighbor_refresh,
            newcomer_pace: d.newcomer_pace,
            neighbor_timeout: d.neighbor_timeout,
            substreams: d.substreams,
            parent_patience: d.parent_patience,
            parent_fresh_rate: d.parent_fresh_rate,
            parent_noise: d.parent_noise,
            parent_explore: d.parent_explore,
            ..self
        }
    }

    /// Time between two blocks at the configured bitrate.
    pub fn block_interval(&self) -> Micros {
        (BLOCK_LEN as u64 * 8 * 1_000_000) / self.bitrate_bps.max(1)
    }

    /// `d` expressed in blocks (rounded up).
    pub fn blocks_in(&self, d: Micros) -> u32 {
        u32::try_from(d.div_ceil(self.block_interval().max(1))).unwrap_or(u32::MAX)
    }

    /// Whether this is the source provider. The role is held here and only here: the core is
    /// given an `Origin` of blocks exactly when this is true.
    pub(crate) fn is_source(&self) -> bool {
        self.role == Role::Source
    }

    /// The role as the ground truth and run.json name hosts.
    pub(crate) fn host_role(&self) -> HostRole {
        host_role(self.role)
    }

    /// The role as the stats, the config and the ground truth spell it.
    pub(crate) fn role_name(&self) -> &'static str {
        self.host_role().as_str()
    }
}

/// A named set of behaviour knobs, so that runs of different behaviours can be compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, strum::EnumString, strum::Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
#[derive(clap::ValueEnum)]
pub enum Profile {
    /// SopCast as Tang et al. measured it: a bounded peer list refreshed now and then,
    /// irregular keep-alives, few sticky parents (the defaults).
    #[default]
    #[serde(rename = "sopcast")]
    #[strum(serialize = "sopcast")]
    #[value(name = "sopcast")]
    SopCast,
    /// soplab before it measured like SopCast: every neighbour kept alive exactly once a
    /// second, a full mesh within a minute, up to four parents at once chosen afresh for each
    /// request.
    FullMesh,
}

fn host_role(role: Role) -> HostRole {
    match role {
        Role::Peer => HostRole::Peer,
        Role::Source => HostRole::Source,
    }
}

fn serialize_role<S: serde::Serializer>(role: &Role, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(host_role(*role).as_str())
}

/// Reads what [`serialize_role`] writes.
fn deserialize_role<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Role, D::Error> {
    match HostRole::deserialize(d)? {
        HostRole::Peer => Ok(Role::Peer),
        HostRole::Source => Ok(Role::Source),
        HostRole::Tracker => Err(serde::de::Error::custom("a peer's role is \"peer\" or \"source\", not \"tracker\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> (SocketAddr, SocketAddr) {
        ("198.18.1.16:3908".parse().unwrap(), "198.18.0.1:3900".parse().unwrap())
    }

    #[test]
    fn profiles_switch_the_behaviour_knobs_and_nothing_else() {
        let (a, t) = addrs();
        let peer = PeerConfig { bitrate_bps: 233_000, upload_bps: Some(1_000_000), ..PeerConfig::peer(a, t, 1, 7) };
        let mesh = peer.clone().with_profile(Profile::FullMesh);
        assert_eq!((mesh.max_neighbors, mesh.substreams, mesh.keepalive_late), (60, 0, 0.0));
        assert_eq!((mesh.bitrate_bps, mesh.upload_bps, mesh.seed), (233_000, Some(1_000_000), 7));
        let back = mesh.with_profile(Profile::SopCast);
        assert_eq!(format!("{back:?}"), format!("{peer:?}"), "sopcast is the default, whatever came before");
        let source = PeerConfig::source(a, t, 1, 7).with_profile(Profile::FullMesh).with_profile(Profile::SopCast);
        assert_eq!((source.role, source.max_children), (Role::Source, 11));
        assert_eq!("full-mesh".parse::<Profile>().unwrap(), Profile::FullMesh);
        assert_eq!(Profile::SopCast.to_string(), "sopcast");
        assert_eq!(serde_json::to_string(&Profile::SopCast).unwrap(), "\"sopcast\"");
    }
}
