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
    /// Most neighbours (established plus handshaking).
    pub max_neighbors: usize,
    /// Keep-alive period per neighbour ("roughly every second").
    pub keepalive_interval: Micros,
    /// A neighbour silent this long is dropped until it is chosen again.
    pub neighbor_timeout: Micros,
    /// A HELLO or reply left unanswered this long is abandoned.
    pub handshake_timeout: Micros,
    /// New HELLOs sent per second while below `max_neighbors`.
    pub hellos_per_second: u32,
    /// How often to re-register with the tracker (which also returns fresh peers).
    pub tracker_interval: Micros,
    /// Peers asked of the tracker each time.
    pub tracker_want: u16,
    /// Most parents with requests outstanding at once (gamma).
    pub gamma: usize,
    /// Most children served at once (11 for the source, unlimited for peers).
    pub max_children: usize,
    /// A child that has not requested for this long stops counting as a child.
    pub child_timeout: Micros,
    /// Upload cap in bits per second for video (None: unlimited).
    pub upload_bps: Option<u64>,
    /// Playback starts this far behind the newest block seen.
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
    /// A peer with the default settings.
    pub fn peer(addr: SocketAddr, tracker: SocketAddr, channel: u32, seed: u64) -> PeerConfig {
        PeerConfig {
            addr,
            tracker,
            channel,
            role: Role::Peer,
            seed,
            bitrate_bps: 500_000,
            max_neighbors: 60,
            keepalive_interval: SECOND,
            neighbor_timeout: 6 * SECOND,
            handshake_timeout: 3 * SECOND,
            hellos_per_second: 2,
            tracker_interval: 30 * SECOND,
            tracker_want: 50,
            gamma: 4,
            max_children: usize::MAX,
            child_timeout: 4 * SECOND,
            upload_bps: None,
            lag: 4 * SECOND,
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

    /// Time between two blocks at the configured bitrate.
    pub fn block_interval(&self) -> Micros {
        (BLOCK_LEN as u64 * 8 * 1_000_000) / self.bitrate_bps.max(1)
    }

    /// `d` expressed in blocks (rounded up).
    pub fn blocks_in(&self, d: Micros) -> u32 {
        d.div_ceil(self.block_interval().max(1)) as u32
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
