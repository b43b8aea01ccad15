//! `soplab-source`: the source provider (SP). It publishes a stream as 10,240-byte blocks with
//! increasing ids at a fixed bitrate — from a media file played in a loop, like the 2-minute
//! cartoon of Tang et al., or from synthetic bytes — registers with the tracker, and serves
//! requested blocks only (no push) to at most 11 children at a time.
//!
//! The protocol logic is the peer core ([`soplab_peer::Peer`]) with an [`Origin`] of blocks;
//! this crate supplies the origins ([`Content`]) and the source's defaults.

pub mod daemon;

use std::path::Path;

use bytes::Bytes;
use soplab_node::Micros;
use soplab_peer::{Origin, Peer, PeerConfig};
use soplab_wire::BLOCK_LEN;

/// Why content could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("cannot read media file {path}: {source} (give an existing, readable file)")]
    Read { path: String, source: std::io::Error },
    #[error("media file {0} is empty: give a file with at least one byte")]
    Empty(String),
}

/// The bytes of the stream, by block id. Both kinds are deterministic, so anyone holding the
/// same content can check that a peer played exactly the source's bytes.
#[derive(Debug, Clone)]
pub enum Content {
    /// A file played in a loop: block `k` is bytes `k*10240 ..` of the file repeated forever.
    File(Bytes),
    /// Pseudo-random bytes derived from the block id and a seed.
    Synthetic { seed: u64 },
}

impl Content {
    /// Loads a media file (any bytes).
    pub fn file(path: &Path) -> Result<Content, ContentError> {
        let data =
            std::fs::read(path).map_err(|source| ContentError::Read { path: path.display().to_string(), source })?;
        if data.is_empty() {
            return Err(ContentError::Empty(path.display().to_string()));
        }
        Ok(Content::File(Bytes::from(data)))
    }

    /// The 10,240 bytes of block `id`.
    pub fn block(&self, id: u32) -> Bytes {
        match self {
            Content::File(data) => {
                let len = data.len();
                let start = (u64::from(id) * BLOCK_LEN as u64 % len as u64) as usize;
                if start + BLOCK_LEN <= len {
                    data.slice(start..start + BLOCK_LEN)
                } else {
                    let mut out = Vec::with_capacity(BLOCK_LEN);
                    let mut at = start;
                    while out.len() < BLOCK_LEN {
                        let take = (BLOCK_LEN - out.len()).min(len - at);
                        out.extend_from_slice(&data[at..at + take]);
                        at = (at + take) % len;
                    }
                    Bytes::from(out)
                }
            }
            Content::Synthetic { seed } => {
                // splitmix64 over (seed, id, word index): fast, stable across releases.
                let mut out = Vec::with_capacity(BLOCK_LEN);
                let mut x = seed ^ (u64::from(id) << 32) ^ 0x9e37_79b9_7f4a_7c15;
                for _ in 0..BLOCK_LEN / 8 {
                    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    let mut z = x;
                    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                    out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
                }
                Bytes::from(out)
            }
        }
    }
}

/// An [`Origin`] that publishes `content` at a bitrate: block k appears at k block intervals
/// after the source starts.
#[derive(Debug)]
pub struct Stream {
    content: Content,
    interval: Micros,
}

impl Stream {
    pub fn new(content: Content, bitrate_bps: u64) -> Stream {
        Stream { content, interval: (BLOCK_LEN as u64 * 8 * 1_000_000) / bitrate_bps.max(1) }
    }
}

impl Origin for Stream {
    fn newest(&self, now: Micros) -> Option<u32> {
        Some((now / self.interval.max(1)).min(u64::from(u32::MAX - 1)) as u32)
    }

    fn block(&mut self, id: u32) -> Bytes {
        self.content.block(id)
    }
}

/// A source core: the peer core configured as the SP (11 children, no requests) over `content`.
pub fn source(cfg: PeerConfig, content: Content) -> Peer {
    let stream = Stream::new(content, cfg.bitrate_bps);
    Peer::new(cfg, Some(Box::new(stream)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_content_loops() {
        let data: Vec<u8> = (0..15_000u32).map(|i| (i % 253) as u8).collect();
        let c = Content::File(Bytes::from(data.clone()));
        let b1 = c.block(1);
        assert_eq!(b1.len(), BLOCK_LEN);
        let expected: Vec<u8> = (BLOCK_LEN..2 * BLOCK_LEN).map(|i| data[i % data.len()]).collect();
        assert_eq!(&b1[..], &expected[..]);
    }

    #[test]
    fn synthetic_is_deterministic_and_distinct() {
        let c = Content::Synthetic { seed: 7 };
        assert_eq!(c.block(3), c.block(3));
        assert_ne!(c.block(3), c.block(4));
        assert_ne!(c.block(3), Content::Synthetic { seed: 8 }.block(3));
    }
}
