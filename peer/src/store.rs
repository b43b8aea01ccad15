//! The blocks a peer holds: a ring of the newest blocks, indexed by block id.

use bytes::Bytes;

/// A fixed-capacity ring of blocks; inserting a block evicts whatever held its slot, so memory
/// stays at `capacity x BLOCK_LEN` however long the stream runs.
#[derive(Debug)]
pub struct BlockStore {
    slots: Vec<Option<(u32, Bytes)>>,
    newest: Option<u32>,
}

impl BlockStore {
    pub fn new(capacity: u32) -> BlockStore {
        BlockStore { slots: vec![None; capacity.max(1) as usize], newest: None }
    }

    fn slot(&self, id: u32) -> usize {
        id as usize % self.slots.len()
    }

    /// The oldest id the ring can still hold given the newest one.
    pub fn horizon(&self) -> u32 {
        self.newest.map_or(0, |n| n.saturating_sub(self.slots.len() as u32 - 1))
    }

    pub fn has(&self, id: u32) -> bool {
        matches!(&self.slots[self.slot(id)], Some((i, _)) if *i == id)
    }

    pub fn get(&self, id: u32) -> Option<&Bytes> {
        match &self.slots[self.slot(id)] {
            Some((i, b)) if *i == id => Some(b),
            _ => None,
        }
    }

    /// Stores a block unless it is older than the ring's horizon. Returns whether it was new.
    pub fn insert(&mut self, id: u32, data: Bytes) -> bool {
        if self.has(id) || (self.newest.is_some() && id < self.horizon()) {
            return false;
        }
        let at = self.slot(id);
        self.slots[at] = Some((id, data));
        if self.newest.is_none_or(|n| id > n) {
            self.newest = Some(id);
        }
        true
    }

    pub fn newest(&self) -> Option<u32> {
        self.newest
    }
}
