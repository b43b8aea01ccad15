//! `summary.json`: how a run went, per peer (continuity, whether it played the source's bytes)
//! and for the source and the tracker.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One peer's line in summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerSummary {
    pub address: String,
    pub continuity: Option<f64>,
    pub played_bytes: u64,
    pub played_matches_source: bool,
    pub max_parents: usize,
    pub neighbors: usize,
    pub blocks_due: u64,
    pub blocks_played: u64,
    pub uploaded_bytes: u64,
    pub downloaded_bytes: u64,
    /// The peer's process was killed by a fault (`--fault kill-peers:...`): it wrote no final
    /// counters, so its line comes from its ground truth up to the kill, and the counters the
    /// truth does not hold (parents, neighbours) are 0.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub killed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceSummary {
    pub address: String,
    pub max_children: usize,
    pub uploaded_bytes: u64,
}

/// The whole summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub peers: Vec<PeerSummary>,
    pub source: SourceSummary,
    /// Dropped inputs by reason, over the peers and the source.
    pub dropped: BTreeMap<String, u64>,
    /// The tracker's own counters (registrations, replies, expiries, drops by reason), when it
    /// ran as a daemon.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracker: Option<serde_json::Value>,
}
