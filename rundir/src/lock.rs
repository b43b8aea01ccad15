//! Advisory file locks (flock) that soplab's runs take on their output directory and on their
//! loopback address block. The kernel releases a lock when its holder dies, however it dies, so
//! a crashed run never blocks the next one (a pid file would); the holder writes its pid into
//! the file so that a refused run can say who holds it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::Path;

/// A lock held until dropped (or until the process ends).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// What [`try_take`] found.
#[derive(Debug)]
pub enum Taken {
    Got(Lock),
    /// Another process holds it: its pid, when it wrote one.
    Held {
        holder: Option<u32>,
    },
}

/// Takes the lock on `path` (created if missing) without waiting.
///
/// # Errors
/// When the file can be neither created nor opened, or the lock call fails.
pub fn try_take(path: &Path) -> io::Result<Taken> {
    let (mut file, writable) = match OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path) {
        Ok(f) => (f, true),
        // Another user's lock file in a sticky directory (/run/lock, /tmp): flock needs no
        // write access, only the pid is left unwritten.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => (File::open(path)?, false),
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        Ok(()) => {
            if writable {
                file.set_len(0)?;
                write!(file, "{}", std::process::id())?;
            }
            Ok(Taken::Got(Lock { _file: file }))
        }
        Err(TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok());
            Ok(Taken::Held { holder })
        }
        Err(TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_named_by_its_pid_and_released_on_drop() {
        let dir = std::env::temp_dir().join(format!("soplab-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.lock");
        let Taken::Got(held) = try_take(&path).unwrap() else { panic!("a fresh lock is free") };
        // A second open file description of the same file, as another process would have.
        match try_take(&path).unwrap() {
            Taken::Held { holder } => assert_eq!(holder, Some(std::process::id())),
            Taken::Got(_) => panic!("taken twice"),
        }
        drop(held);
        assert!(matches!(try_take(&path).unwrap(), Taken::Got(_)), "released when dropped");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
