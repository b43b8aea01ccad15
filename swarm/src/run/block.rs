//! The loopback addresses of a run: the first block of [`LOOPBACK_BLOCKS`] that no other run
//! holds. Each block has a lock file that every soplab on the machine shares (in /run/lock, or
//! the temp directory where that is not writable), held for the run's life and released by the
//! kernel even when the run is killed; a block whose tracker address cannot be bound (a program
//! that takes no lock is there) is passed over too. The process id does not pick the block: runs
//! in containers or pid namespaces share process ids.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use soplab_rundir::lock::{self, Lock, Taken};
use soplab_rundir::plan::{LOOPBACK_BLOCKS, Plan};

/// A loopback block taken for one run.
pub(super) struct LoopbackBlock {
    /// 127.`block`.0.0/16.
    block: u8,
    pub plan: Plan,
    _lock: Lock,
}

impl LoopbackBlock {
    /// `127.x.0.0/16`.
    pub fn net(&self) -> String {
        format!("127.{}.0.0/16", self.block)
    }
}

/// Takes the first free loopback block.
///
/// # Errors
/// When every block is held or in use, or a lock file cannot be made.
pub(super) fn take() -> Result<LoopbackBlock> {
    take_in(&lock_dir())
}

/// [`take`] with the lock files in `dir`.
fn take_in(dir: &Path) -> Result<LoopbackBlock> {
    for block in LOOPBACK_BLOCKS {
        let path = dir.join(format!("soplab-loopback-127.{block}.lock"));
        let taken = lock::try_take(&path).with_context(|| format!("cannot lock {}", path.display()))?;
        let Taken::Got(lock) = taken else { continue };
        let plan = Plan::loopback(block);
        if let Err(e) = std::net::UdpSocket::bind(plan.tracker) {
            tracing::debug!(%block, error = %e, "loopback block in use by a program that takes no lock");
            continue;
        }
        return Ok(LoopbackBlock { block, plan, _lock: lock });
    }
    bail!(
        "every loopback block from 127.{}.0.0/16 to 127.{}.0.0/16 is held by another run, or its tracker \
         address (port {}) is taken: wait for a run to end, or use --mode netns or --mode virtual",
        LOOPBACK_BLOCKS.start(),
        LOOPBACK_BLOCKS.end(),
        soplab_rundir::plan::TRACKER_PORT
    )
}

/// /run/lock where this process may write there (every user's soplab sees the same files),
/// else the temp directory.
fn lock_dir() -> PathBuf {
    let run_lock = Path::new("/run/lock");
    match nix::unistd::access(run_lock, nix::unistd::AccessFlags::W_OK) {
        Ok(()) => run_lock.to_path_buf(),
        Err(_) => std::env::temp_dir(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_at_once_take_different_blocks_and_a_block_is_free_again_after_its_run() {
        let dir = std::env::temp_dir().join(format!("soplab-blocks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = take_in(&dir).unwrap();
        let b = take_in(&dir).unwrap();
        assert_ne!(a.plan, b.plan);
        let a_plan = a.plan;
        drop(a);
        let c = take_in(&dir).unwrap();
        assert_eq!(c.plan, a_plan, "the first free block");
        drop((b, c));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_block_whose_tracker_address_is_bound_is_passed_over() {
        let dir = std::env::temp_dir().join(format!("soplab-blocks-bound-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = Plan::loopback(*LOOPBACK_BLOCKS.start());
        // Another program on the first block's tracker address (another soplab may hold it: then
        // the block is passed over for its lock).
        let squatter = std::net::UdpSocket::bind(first.tracker);
        let taken = take_in(&dir).unwrap();
        assert_ne!(taken.plan, first);
        drop((squatter, taken));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
