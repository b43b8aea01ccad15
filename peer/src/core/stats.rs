//! What a peer reports of a session: counters and outcomes for the run's summary, and how the
//! sessions of one churned client add up.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Counters and outcomes reported in a run's summary.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PeerStats {
    pub addr: String,
    pub role: String,
    /// Blocks played on time / blocks due, after start-up (None before playback starts).
    pub continuity: Option<f64>,
    pub blocks_due: u64,
    pub blocks_played: u64,
    pub played_bytes: u64,
    pub first_played_block: Option<u32>,
    /// Most parents with requests outstanding at once.
    pub max_parents: usize,
    /// Most children at once.
    pub max_children: usize,
    /// Established neighbours now (or when the session ended).
    pub neighbors: usize,
    pub neighbors_max: usize,
    pub uploaded_bytes: u64,
    pub downloaded_bytes: u64,
    pub requests_sent: u64,
    pub requests_timed_out: u64,
    pub responses_sent: u64,
    /// Responses dropped unsent from the upload queue: the child had given up on them.
    #[serde(default)]
    pub responses_expired: u64,
    pub dropped: BTreeMap<String, u64>,
    /// Sessions this address ran (a churned client has several; 0 if it never started).
    #[serde(default)]
    pub sessions: u32,
}

impl PeerStats {
    /// Adds a later session of the same client: counters add up, maxima take the larger,
    /// `neighbors` is the later session's, and continuity is recomputed over both.
    pub fn merge(&mut self, later: &PeerStats) {
        self.blocks_due += later.blocks_due;
        self.blocks_played += later.blocks_played;
        self.played_bytes += later.played_bytes;
        self.first_played_block = self.first_played_block.or(later.first_played_block);
        self.max_parents = self.max_parents.max(later.max_parents);
        self.max_children = self.max_children.max(later.max_children);
        self.neighbors = later.neighbors;
        self.neighbors_max = self.neighbors_max.max(later.neighbors_max);
        self.uploaded_bytes += later.uploaded_bytes;
        self.downloaded_bytes += later.downloaded_bytes;
        self.requests_sent += later.requests_sent;
        self.requests_timed_out += later.requests_timed_out;
        self.responses_sent += later.responses_sent;
        self.responses_expired += later.responses_expired;
        for (k, v) in &later.dropped {
            *self.dropped.entry(k.clone()).or_default() += v;
        }
        self.sessions += later.sessions;
        self.continuity = self.computed_continuity();
    }

    /// Blocks played on time over blocks due, from the counters (None before any block is due).
    pub(super) fn computed_continuity(&self) -> Option<f64> {
        (self.blocks_due > 0).then(|| self.blocks_played as f64 / self.blocks_due as f64)
    }
}
