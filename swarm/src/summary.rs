//! summary.json: per-peer outcomes, the source's children and drop counters, from the cores'
//! stats and a check of every played block against the source's content.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use soplab_node::Media;
use soplab_peer::PeerStats;
pub use soplab_rundir::summary::Summary;
use soplab_rundir::summary::{PeerSummary, SourceSummary};
use soplab_rundir::truth::{Event, Line};
use soplab_source::Content;
use soplab_wire::BLOCK_LEN;

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

/// What a peer killed outright (`--fault kill-peers:...`) did, from its ground truth, since it
/// wrote no stats: its plays and continuity, requests and responses, bytes up and down, and
/// sessions. Counters the truth does not hold (parents, children, neighbours, drops) stay 0.
///
/// # Errors
/// When the truth file cannot be read or holds a line that is not a ground-truth event.
pub fn stats_from_truth(addr: SocketAddr, truth: &Path) -> anyhow::Result<PeerStats> {
    use anyhow::Context;
    let text = std::fs::read_to_string(truth).with_context(|| format!("cannot read {}", truth.display()))?;
    let mut s = PeerStats { addr: addr.to_string(), role: "peer".into(), ..PeerStats::default() };
    for line in text.lines() {
        let line = Line::parse(line).with_context(|| format!("bad line in {}", truth.display()))?;
        match line.event {
            Event::Play { block, hit } => {
                s.blocks_due += 1;
                if hit {
                    s.blocks_played += 1;
                    s.played_bytes += BLOCK_LEN as u64;
                    s.first_played_block.get_or_insert(block);
                }
            }
            Event::Stalled { blocks, .. } => s.blocks_due += u64::from(blocks),
            Event::SessionStart { .. } => s.sessions += 1,
            Event::RequestSent { .. } => s.requests_sent += 1,
            Event::RequestTimeout { .. } => s.requests_timed_out += 1,
            Event::ResponseSent { bytes, .. } => {
                (s.responses_sent, s.uploaded_bytes) = (s.responses_sent + 1, s.uploaded_bytes + bytes)
            }
            Event::ResponseReceived { bytes, .. } => s.downloaded_bytes += bytes,
            _ => {}
        }
    }
    s.continuity = (s.blocks_due > 0).then(|| s.blocks_played as f64 / s.blocks_due as f64);
    Ok(s)
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
                killed: false,
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

    #[test]
    fn a_killed_peer_is_summed_up_from_its_truth() {
        let addr: SocketAddr = "198.18.1.3:3908".parse().unwrap();
        let parent: SocketAddr = "198.18.0.2:3901".parse().unwrap();
        let path = std::env::temp_dir().join(format!("soplab-killed-{}.jsonl", std::process::id()));
        let lines = [
            Event::SessionStart { role: soplab_rundir::truth::Role::Peer },
            Event::RequestSent { parent, request: 1, first_block: 7, count: 2 },
            Event::ResponseReceived { parent, request: 1, first_block: 7, count: 2, bytes: 20_480 },
            Event::Play { block: 7, hit: true },
            Event::Play { block: 8, hit: true },
            Event::Play { block: 9, hit: false },
            Event::Stalled { first: 10, blocks: 3 },
            Event::Play { block: 13, hit: false },
            Event::ResponseSent { child: parent, request: 4, first_block: 7, count: 1, bytes: 10_240, packets: 8 },
        ];
        let text: String = lines.iter().map(|e| e.to_json_line(5, addr) + "\n").collect();
        std::fs::write(&path, text).unwrap();
        let s = stats_from_truth(addr, &path).unwrap();
        assert_eq!((s.blocks_due, s.blocks_played, s.played_bytes, s.first_played_block), (7, 2, 20_480, Some(7)));
        assert_eq!((s.sessions, s.requests_sent, s.responses_sent), (1, 1, 1));
        assert_eq!((s.uploaded_bytes, s.downloaded_bytes, s.continuity), (10_240, 20_480, Some(2.0 / 7.0)));
        std::fs::write(&path, "not json\n").unwrap();
        assert!(stats_from_truth(addr, &path).unwrap_err().to_string().contains("bad line"));
        std::fs::remove_file(&path).ok();
    }
}
