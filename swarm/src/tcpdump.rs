//! Capture with real tcpdump inside the hosts' namespaces, and a cheap live count of the
//! packets written so far to a pcap (tcpdump's, or one a peer writes itself).

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::process::{Daemon, spawn};

/// One tcpdump: where it listens and where it writes.
pub struct Tcpdump {
    pub daemon: Daemon,
    pub file: PathBuf,
    pub counter: PcapCounter,
}

/// Starts `tcpdump -i iface -w file` in `netns` and waits until it is listening, so that no
/// packet sent afterwards is missed. `-U` writes each packet as it comes (the live counter
/// reads the file), `-s 0` keeps whole packets, `-Z root` keeps tcpdump able to write the run
/// directory, `-n` skips name lookups.
pub async fn start(name: &str, netns: &str, iface: &str, file: &Path, logs: &Path) -> Result<Tcpdump> {
    let args: Vec<OsString> = ["-i", iface, "-n", "-s", "0", "-U", "-Z", "root", "-w"]
        .iter()
        .map(OsString::from)
        .chain([file.as_os_str().to_owned()])
        .collect();
    let mut daemon = spawn(name, "tcpdump", &args, logs, Some(netns), None)
        .context("cannot start tcpdump; install it (apt-get install -y tcpdump)")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
        if log.contains("listening on") {
            break;
        }
        if let Some(status) = daemon.child.try_wait()? {
            bail!("tcpdump on {iface} in {netns} exited ({status}): {}", log.trim());
        }
        if Instant::now() > deadline {
            bail!("tcpdump on {iface} in {netns} did not start listening within 10 s: {}", log.trim());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Tcpdump { daemon, file: file.to_path_buf(), counter: PcapCounter::default() })
}

impl Tcpdump {
    /// Packets in its pcap so far (complete records only).
    pub fn packets(&mut self) -> u64 {
        self.counter.update(&self.file)
    }

    /// Stops tcpdump (SIGINT: it writes what it holds and prints its counters) and returns the
    /// kernel-drop count it reported.
    pub async fn stop(&mut self) -> Result<Option<u64>> {
        self.daemon.stop_with(nix::sys::signal::Signal::SIGINT, Duration::from_secs(10)).await?;
        let log = std::fs::read_to_string(&self.daemon.log).unwrap_or_default();
        Ok(log
            .lines()
            .find(|l| l.ends_with("packets dropped by kernel"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok()))
    }
}

/// Counts the records of a growing pcap file, reading only what was added since last time.
#[derive(Debug, Default)]
pub struct PcapCounter {
    offset: u64,
    big_endian: Option<bool>,
    pub packets: u64,
}

impl PcapCounter {
    /// Reads the records appended to `path` since the last call; returns the total so far.
    /// A record still being written is counted on a later call.
    pub fn update(&mut self, path: &Path) -> u64 {
        let Ok(mut f) = File::open(path) else { return self.packets };
        if self.big_endian.is_none() {
            let mut h = [0u8; 24];
            if f.read_exact(&mut h).is_err() {
                return self.packets;
            }
            self.big_endian = match h[0..4] {
                [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => Some(true),
                [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => Some(false),
                _ => return self.packets,
            };
            self.offset = 24;
        }
        let Ok(len) = f.metadata().map(|m| m.len()) else { return self.packets };
        let mut rec = [0u8; 16];
        while self.offset + 16 <= len {
            if f.seek(SeekFrom::Start(self.offset + 8)).is_err() || f.read_exact(&mut rec[..4]).is_err() {
                break;
            }
            let caplen = if self.big_endian == Some(true) {
                u32::from_be_bytes([rec[0], rec[1], rec[2], rec[3]])
            } else {
                u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]])
            };
            let next = self.offset + 16 + u64::from(caplen);
            if next > len {
                break;
            }
            self.offset = next;
            self.packets += 1;
        }
        self.packets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_records_as_they_are_appended() {
        let path = std::env::temp_dir().join(format!("soplab-counter-{}.pcap", std::process::id()));
        let mut tap = soplab_shell::tap::PcapTap::create(&path).unwrap();
        let (a, b) = ("127.0.0.1:1".parse().unwrap(), "127.0.0.2:2".parse().unwrap());
        let mut c = PcapCounter::default();
        tap.flush().unwrap();
        assert_eq!(c.update(&path), 0);
        for i in 0..5 {
            tap.record(i, a, b, &[0; 42]).unwrap();
        }
        tap.flush().unwrap();
        assert_eq!(c.update(&path), 5);
        tap.record(9, a, b, &[0; 1320]).unwrap();
        tap.finish().unwrap();
        assert_eq!(c.update(&path), 6);
        // A half-written record is not counted yet.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0; 10]);
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(c.update(&path), 6);
        std::fs::remove_file(&path).ok();
    }
}
