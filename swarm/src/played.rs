//! The check of what each peer played against the source's content, from the peer's played
//! stream and the blocks its ground truth says it played (used by every mode).

use std::path::Path;

use anyhow::{Context, Result};
use soplab_rundir::truth::{Event, Line};
use soplab_source::Content;
use soplab_wire::BLOCK_LEN;

/// Compares a peer's played file with the source's content over the blocks its truth log says
/// it played. Returns (blocks checked, blocks that differ or are missing from the file).
///
/// `whole` is false for a peer killed outright: its file and its log each lost what they had
/// not written yet, so only the blocks both hold are compared, and the lengths may differ.
pub fn check_played(content: &Content, truth: &Path, played: &Path, whole: bool) -> Result<(u64, u64)> {
    let log = std::fs::read_to_string(truth).with_context(|| format!("cannot read {}", truth.display()))?;
    let data = std::fs::read(played).with_context(|| format!("cannot read {}", played.display()))?;
    let mut blocks = Vec::new();
    for line in log.lines() {
        let line = Line::parse(line).with_context(|| format!("bad line in {}", truth.display()))?;
        if let Event::Play { block, hit: true } = line.event {
            blocks.push(block);
        }
    }
    if !whole {
        blocks.truncate(data.len() / BLOCK_LEN);
    }
    let mut bad = 0;
    for (i, b) in blocks.iter().enumerate() {
        match data.get(i * BLOCK_LEN..(i + 1) * BLOCK_LEN) {
            Some(chunk) if chunk == &content.block(*b)[..] => {}
            _ => bad += 1,
        }
    }
    if whole && data.len() != blocks.len() * BLOCK_LEN {
        bad += 1;
    }
    Ok((blocks.len() as u64, bad))
}
