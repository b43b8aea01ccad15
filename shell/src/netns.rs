//! Opening sockets inside Linux network namespaces made with `ip netns add`.
//!
//! A namespace is a property of a thread, not of a socket: a socket belongs, for life, to the
//! namespace its creating thread was in. So one process can host peers in hundreds of
//! namespaces by creating each socket on a short-lived thread that first enters the namespace
//! with setns(2), then handing the socket to tokio. The process's other threads stay where they
//! were; that is why this never calls setns on a runtime thread.

use std::fs::File;
use std::io;
use std::path::PathBuf;

/// Where iproute2 keeps the handle of a named namespace.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

/// Opens the handle of namespace `name`, with an error that says how to check it.
pub fn open(name: &str) -> io::Result<File> {
    File::open(path(name)).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot open network namespace {name:?} ({}: {e}); list them with `ip netns list` (creating and \
                 entering namespaces needs root)",
                path(name).display()
            ),
        )
    })
}

/// Runs `f` on a new thread that has entered namespace `name`, and returns its result. Sockets
/// `f` creates stay in that namespace wherever they are used afterwards.
///
/// # Errors
/// When the namespace does not exist, setns(2) fails (not root), or `f` fails.
pub fn run_in<T, F>(name: &str, f: F) -> io::Result<T>
where
    T: Send,
    F: FnOnce() -> io::Result<T> + Send,
{
    let ns = open(name)?;
    std::thread::scope(|s| {
        s.spawn(move || {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                io::Error::other(format!("cannot enter network namespace {name:?}: {e} (setns needs root)"))
            })?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the thread entering a network namespace panicked")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_namespace_is_a_clear_error() {
        let e = run_in("soplab-no-such-namespace", || Ok(())).unwrap_err().to_string();
        assert!(e.contains("soplab-no-such-namespace") && e.contains("ip netns list"), "{e}");
    }
}
