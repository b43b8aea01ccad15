//! soplab swarms as tests start and judge them: the `soplab swarm` command line, and how each
//! peer of a summary played.

use std::ffi::OsString;
use std::path::Path;

use soplab_rundir::summary::PeerSummary;

/// The arguments of `soplab swarm --mode netns --peers <peers> --vantage <vantage> <more...>
/// --out <out>`, the run most end-to-end tests start.
pub fn netns_swarm_args(peers: usize, vantage: usize, more: &[&str], out: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["swarm", "--mode", "netns", "--peers", &peers.to_string()]
        .into_iter()
        .chain(["--vantage", &vantage.to_string()])
        .chain(more.iter().copied())
        .map(OsString::from)
        .collect();
    args.extend(["--out".into(), out.as_os_str().to_owned()]);
    args
}

/// Fails the test unless peer `p` started playback and played with continuity `min` or more;
/// `context` ends the message (say, which peer did worst). Returns the continuity.
pub fn assert_continuity(p: &PeerSummary, min: f64, context: &str) -> f64 {
    let c = p.continuity.expect("every peer started playback");
    assert!(
        c >= min,
        "peer {} continuity {c:.4} < {min} ({} of {} blocks){context}",
        p.address,
        p.blocks_played,
        p.blocks_due
    );
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netns_swarm_args_put_the_run_directory_last() {
        let args = netns_swarm_args(3, 1, &["--duration", "10s"], Path::new("/tmp/run"));
        let words: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            words,
            ["swarm", "--mode", "netns", "--peers", "3", "--vantage", "1", "--duration", "10s", "--out", "/tmp/run"]
        );
    }
}
