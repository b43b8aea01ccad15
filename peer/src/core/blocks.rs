//! Where a node's blocks come from: the source reads its [`Origin`], a peer its
//! [`BlockStore`] of what it pulled. Buffer maps, HELLOs and uploads all ask here.

use bytes::Bytes;
use soplab_node::Micros;
use soplab_wire::{BufferMap, MAP_BLOCKS};

use super::Peer;
use crate::store::BlockStore;

/// Where the source's blocks come from: the peer core asks it for the newest block at a given
/// time and for a block's bytes. Implemented by `soplab-source`.
pub trait Origin: Send + 'static {
    /// The newest block published by `now` (time since the source started), if any.
    fn newest(&self, now: Micros) -> Option<u32>;
    /// The 10,240 bytes of block `id`.
    fn block(&mut self, id: u32) -> Bytes;
}

/// The blocks this node can serve and play.
pub(super) struct Blocks {
    /// Present exactly for the source (`Peer::new` checks it against the role).
    origin: Option<Box<dyn Origin>>,
    /// What a peer pulled; the source keeps it empty.
    store: BlockStore,
}

impl Blocks {
    pub(super) fn new(origin: Option<Box<dyn Origin>>) -> Blocks {
        // A buffer map's window, and some slack.
        Blocks { origin, store: BlockStore::new(MAP_BLOCKS + 64) }
    }

    /// A peer's pulled blocks.
    pub(super) fn store(&self) -> &BlockStore {
        &self.store
    }

    pub(super) fn store_mut(&mut self) -> &mut BlockStore {
        &mut self.store
    }
}

impl Peer {
    /// The newest block this node has: the origin's latest at `now`, or the newest stored.
    pub(super) fn newest(&self, now: Micros) -> Option<u32> {
        match &self.blocks.origin {
            Some(o) => o.newest(now.saturating_sub(self.started.unwrap_or(now))),
            None => self.blocks.store.newest(),
        }
    }

    /// Whether block `id` can be served: the source has every block of the last buffer map's
    /// window, a peer what it stored.
    pub(super) fn has_block(&self, id: u32, now: Micros) -> bool {
        match &self.blocks.origin {
            Some(_) => self.newest(now).is_some_and(|n| id <= n && n - id < MAP_BLOCKS),
            None => self.blocks.store.has(id),
        }
    }

    pub(super) fn block(&mut self, id: u32) -> Option<Bytes> {
        match &mut self.blocks.origin {
            Some(o) => Some(o.block(id)),
            None => self.blocks.store.get(id).cloned(),
        }
    }

    /// What we announce in keep-alives.
    pub(super) fn buffer_map(&self, now: Micros) -> BufferMap {
        match self.newest(now) {
            Some(n) => BufferMap::from_fn(n, |id| self.has_block(id, now)),
            None => BufferMap::empty(),
        }
    }
}
