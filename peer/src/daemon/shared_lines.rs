//! Many peers' ground truth in one file (`--truth FILE`): each peer writes through its own
//! [`SharedLines`], which hands the file whole lines only.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::{Arc, Mutex};

/// Ground-truth lines of many peers into one file: each writer buffers up to its last newline,
/// so lines from different peers never interleave.
pub(super) struct SharedLines {
    out: Arc<Mutex<BufWriter<File>>>,
    pending: Vec<u8>,
}

impl SharedLines {
    pub(super) fn new(out: Arc<Mutex<BufWriter<File>>>) -> SharedLines {
        SharedLines { out, pending: Vec::new() }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, BufWriter<File>> {
        self.out.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Write for SharedLines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if let Some(end) = self.pending.iter().rposition(|&b| b == b'\n') {
            self.lock().write_all(&self.pending[..=end])?;
            self.pending.drain(..=end);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.lock().flush()
    }
}

#[cfg(test)]
mod tests {
    use soplab_shell::process::create_output;

    use super::*;

    #[test]
    fn shared_lines_never_interleave() {
        let path = std::env::temp_dir().join(format!("soplab-shared-lines-{}.jsonl", std::process::id()));
        let out = Arc::new(Mutex::new(create_output(&path, "ground-truth file").unwrap()));
        let (mut a, mut b) = (SharedLines::new(out.clone()), SharedLines::new(out.clone()));
        a.write_all(b"{\"a\":").unwrap();
        b.write_all(b"{\"b\":1}").unwrap();
        a.write_all(b"1}").unwrap();
        b.write_all(b"\n").unwrap();
        a.write_all(b"\n").unwrap();
        a.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"b\":1}\n{\"a\":1}\n");
        std::fs::remove_file(&path).ok();
    }
}
