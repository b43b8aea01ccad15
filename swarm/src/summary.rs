//! summary.json: per-peer outcomes, the source's children and drop counters, from the cores'
//! stats and a check of every played block against the source's content.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;

use bytes::Bytes;
use soplab_node::Media;
use soplab_peer::PeerStats;
pub use soplab_rundir::summary::Summary;
use soplab_rundir::summary::{PeerSummary, SourceSummary};
use soplab_source::Content;

/// Checks played blocks against the content the source publishes.
#[derive(Debug, Default)]
pub struct PlayCheck {
    per_peer: HashMap<SocketAddr, (u64, u64)>,
    /// The source's blocks most recently checked: every peer plays each block within seconds
    /// of the others, so each is made once rather than once per peer.
    recent: VecDeque<(u32, Bytes)>,
}

/// How many of the source's blocks [`PlayCheck`] keeps at hand.
const RECENT_BLOCKS: usize = 64;

impl PlayCheck {
    /// Records one played block of `peer`: counts it, and counts it as a mismatch unless its
    /// bytes equal the source's block.
    pub fn check(&mut self, content: &Content, peer: SocketAddr, m: &Media) {
        let same = match self.recent.iter().find(|(id, _)| *id == m.block) {
            Some((_, block)) => *block == m.data,
            None => {
                let block = content.block(m.block);
                let same = block == m.data;
                if self.recent.len() == RECENT_BLOCKS {
                    self.recent.pop_front();
                }
                self.recent.push_back((m.block, block));
                same
            }
        };
        let e = self.per_peer.entry(peer).or_default();
        e.0 += 1;
        e.1 += u64::from(!same);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn played_blocks_are_checked_against_the_content_cached_or_not() {
        let content = Content::Synthetic { seed: 3 };
        let (a, b): (SocketAddr, SocketAddr) = ("198.18.1.1:3908".parse().unwrap(), "198.18.1.2:3908".parse().unwrap());
        let mut plays = PlayCheck::default();
        let good = |block| Media { block, data: content.block(block) };
        for id in 0..100 {
            plays.check(&content, a, &good(id));
        }
        // Block 99 is at hand, block 1 no longer: a wrong copy of either is a mismatch.
        plays.check(&content, b, &good(99));
        plays.check(&content, b, &Media { block: 99, data: content.block(98) });
        plays.check(&content, b, &Media { block: 1, data: content.block(2) });
        plays.check(&content, b, &good(1));
        assert_eq!(plays.of(a), (100, 0));
        assert_eq!(plays.of(b), (4, 2));
    }
}
