//! summary.json: per-peer outcomes, the source's children and drop counters, from the cores'
//! stats and a check of every played block against the source's content.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use soplab_node::Media;
use soplab_peer::PeerStats;
pub use soplab_rundir::summary::Summary;
use soplab_rundir::summary::{PeerSummary, SourceSummary};
use soplab_source::Content;

/// Checks played blocks against the content the source publishes.
#[derive(Debug, Default)]
pub struct PlayCheck {
    per_peer: HashMap<SocketAddr, (u64, u64)>,
}

impl PlayCheck {
    /// Records one played block of `peer`: counts it, and counts it as a mismatch unless its
    /// bytes equal the source's block.
    pub fn check(&mut self, content: &Content, peer: SocketAddr, m: &Media) {
        let e = self.per_peer.entry(peer).or_default();
        e.0 += 1;
        if content.block(m.block) != m.data {
            e.1 += 1;
        }
    }

    /// Records a peer's totals checked elsewhere (from its played file and truth log).
    pub fn record(&mut self, peer: SocketAddr, checked: u64, mismatches: u64) {
        self.per_peer.insert(peer, (checked, mismatches));
    }

    /// (blocks checked, mismatches) for `peer`.
    pub fn of(&self, peer: SocketAddr) -> (u64, u64) {
        self.per_peer.get(&peer).copied().unwrap_or_default()
    }
}

/// Builds the summary from final stats and the play check.
pub fn build(source: &PeerStats, peers: &[PeerStats], plays: &PlayCheck) -> Summary {
    let mut dropped = BTreeMap::new();
    for s in peers.iter().chain(std::iter::once(source)) {
        for (k, v) in &s.dropped {
            *dropped.entry(k.clone()).or_insert(0) += v;
        }
    }
    let peers = peers
        .iter()
        .map(|s| {
            // A stats file with an unreadable address simply has no checked plays.
            let (checked, bad) = s.addr.parse::<SocketAddr>().map_or((0, 0), |a| plays.of(a));
            PeerSummary {
                address: s.addr.clone(),
                continuity: s.continuity,
                played_bytes: s.played_bytes,
                played_matches_source: checked == s.blocks_played && bad == 0 && checked > 0,
                max_parents: s.max_parents,
                neighbors: s.neighbors,
                blocks_due: s.blocks_due,
                blocks_played: s.blocks_played,
                uploaded_bytes: s.uploaded_bytes,
                downloaded_bytes: s.downloaded_bytes,
            }
        })
        .collect();
    Summary {
        peers,
        source: SourceSummary {
            address: source.addr.clone(),
            max_children: source.max_children,
            uploaded_bytes: source.uploaded_bytes,
        },
        dropped,
        tracker: None,
    }
}
