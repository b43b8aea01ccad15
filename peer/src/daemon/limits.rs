//! The open-file limit: a process hosting hundreds of peers needs far more descriptors than
//! the usual soft limit of 1024.

use anyhow::{Result, bail};

use super::config::{DaemonConfig, Truth};
use super::http;

/// Makes sure the process may open the descriptors its peers need (a socket and up to two
/// files each, an HTTP listener and its players), raising the soft limit up to the hard one.
pub(super) fn raise_fd_limit(config: &DaemonConfig) -> Result<()> {
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        let count = config.peers.len();
        let out = &config.outputs;
        let per_peer = 1
            + usize::from(matches!(out.truth, Some(Truth::Dir(_))))
            + usize::from(out.played_dir.is_some())
            + if out.http_port == 0 { 0 } else { 1 + http::MAX_CLIENTS / 2 };
        let need = (count * per_peer + 64) as u64;
        let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return Ok(()) };
        if soft >= need {
            return Ok(());
        }
        let want = need.max(soft).min(hard);
        if want > soft && setrlimit(Resource::RLIMIT_NOFILE, want, hard).is_ok() {
            tracing::debug!(from = soft, to = want, "raised the open-file limit");
        }
        if want < need {
            bail!(
                "{count} peers need about {need} open files but this process may open only {hard}; raise the \
                 limit (ulimit -n {need}, as root if needed) or spread the peers over several processes"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = config;
    Ok(())
}
