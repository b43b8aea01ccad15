//! The hosts of a netns swarm: one Linux network namespace per host, all joined by veth pairs
//! to a bridge in a hub namespace, addressed from 198.18.0.0/15 with no default route, with
//! optional tbf rate limits; and the sweeping of what a killed run left behind.
//!
//! Everything is named `soplab-<pid>-...` after the orchestrator's process id, so a later run
//! can tell a live run's namespaces from a dead one's. Hundreds of namespaces are made with a
//! few `ip -batch` calls (namespaces, then the bridge and every veth from the hub) plus one
//! small batch inside each host for its addresses, run several at a time: about 3 s for 500
//! hosts on the 2-core test machine, against minutes for one `ip` process per command.

use std::collections::HashSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Every soplab namespace starts with this.
pub const PREFIX: &str = "soplab-";

/// Hosts are configured this many at a time.
const PARALLEL: usize = 16;

/// The per-run prefix of this process: `soplab-<pid>`.
pub fn run_prefix() -> String {
    format!("{PREFIX}{}", std::process::id())
}

/// One host: a namespace with `eth0` (addresses `addrs`, all /15) whose other end, `port`,
/// sits on the hub's bridge. Rates in bits per second: `up` shapes what the host sends (tbf on
/// its eth0), `down` what it receives (tbf on the bridge port, which sends to it).
#[derive(Debug, Clone)]
pub struct Host {
    pub ns: String,
    pub port: String,
    pub addrs: Vec<Ipv4Addr>,
    pub up_bps: Option<u64>,
    pub down_bps: Option<u64>,
}

/// The namespaces of one run. Dropping it removes them all.
#[derive(Debug)]
pub struct Topology {
    pub prefix: String,
    pub hub: String,
    pub hosts: Vec<Host>,
    created: Vec<String>,
}

/// Runs `ip` (or `tc`) with `args`, feeding `batch` on stdin; fails with its stderr.
fn run_batch(program: &str, args: &[&str], batch: &str) -> Result<()> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run `{program}`; install iproute2 (apt-get install -y iproute2)"))?;
    child.stdin.take().context("no stdin")?.write_all(batch.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!("`{program} {}` failed: {}", args.join(" "), err.trim());
    }
    Ok(())
}

/// The MAC address of host `k`'s eth0: locally administered (02:...), unique in the run.
fn host_mac(k: usize) -> String {
    format!("02:53:00:{:02x}:{:02x}:{:02x}", (k >> 16) & 0xff, (k >> 8) & 0xff, k & 0xff)
}

/// A tbf qdisc line for `dev` at `bps`: a burst of 20 ms of traffic (at least 4 kB, so a
/// 1320-byte packet always fits) and a queue of 200 ms of traffic but at least 64 kB, so that a
/// whole video response (up to 4 blocks, 41 kB) waits in it as it would in a home router's
/// uplink buffer instead of being cut short by drops.
fn tbf(dev: &str, bps: u64) -> String {
    let burst = (bps / 8 / 50).max(4096);
    let limit = (bps / 8 / 5).max(65536);
    format!("qdisc replace dev {dev} root tbf rate {bps}bit burst {burst} limit {limit}\n")
}

impl Topology {
    /// A plan (nothing is created yet): hub `<prefix>-hub`.
    pub fn new(prefix: &str, hosts: Vec<Host>) -> Topology {
        Topology { prefix: prefix.to_string(), hub: format!("{prefix}-hub"), hosts, created: Vec::new() }
    }

    /// Creates every namespace, link, address and qdisc. On error, what was made is removed
    /// when the topology is dropped.
    pub fn create(&mut self) -> Result<()> {
        self.add_namespaces()?;
        self.build_bridge()?;
        self.configure_hosts()
    }

    /// One `ip -batch` adding the hub's namespace and every host's.
    fn add_namespaces(&mut self) -> Result<()> {
        let mut names: Vec<String> = vec![self.hub.clone()];
        names.extend(self.hosts.iter().map(|h| h.ns.clone()));
        let mut seen = HashSet::new();
        if let Some(dup) = names.iter().find(|n| !seen.insert(n.as_str())) {
            bail!("two hosts share the namespace name {dup}");
        }
        let batch: String = names.iter().map(|n| format!("netns add {n}\n")).collect();
        // Recorded first: a half-done batch is still swept.
        self.created = names;
        run_batch("ip", &["-batch", "-"], &batch).context("cannot create network namespaces (are you root?)")
    }

    /// In the hub: the bridge, every host's veth pair, a static forwarding table, and the
    /// download rates (tbf on each host's bridge port).
    fn build_bridge(&self) -> Result<()> {
        let mut hub = String::from(
            "link add br0 type bridge\nlink set dev br0 addrgenmode none\nlink set dev br0 up\nlink set dev lo up\n",
        );
        for (k, h) in self.hosts.iter().enumerate() {
            hub.push_str(&format!(
                "link add name {p} type veth peer name eth0 address {mac} netns {ns}\n\
                 link set dev {p} addrgenmode none\nlink set dev {p} master br0 up\n",
                p = h.port,
                ns = h.ns,
                mac = host_mac(k)
            ));
        }
        run_batch("ip", &["-n", &self.hub, "-batch", "-"], &hub).context("cannot build the bridge and veth links")?;
        // The bridge knows every host's port from the start: no flooding of unknown unicast.
        let fdb: String = self
            .hosts
            .iter()
            .enumerate()
            .map(|(k, h)| format!("fdb replace {} dev {} master static\n", host_mac(k), h.port))
            .collect();
        run_batch("bridge", &["-n", &self.hub, "-batch", "-"], &fdb).context("cannot fill the bridge's table")?;
        let tc_hub: String = self.hosts.iter().filter_map(|h| h.down_bps.map(|r| tbf(&h.port, r))).collect();
        if !tc_hub.is_empty() {
            run_batch("tc", &["-n", &self.hub, "-batch", "-"], &tc_hub)
                .context("cannot set download rates (tc tbf)")?;
        }
        Ok(())
    }

    /// Inside each host: addresses, links up, every other host's MAC address, upload rate;
    /// [`PARALLEL`] hosts at a time.
    ///
    /// Static neighbours instead of ARP: on one bridge, N hosts each resolving their partners
    /// broadcast N * partners requests to N ports; at 500 hosts that storm alone overran the
    /// kernel's queues and left most peers without a tracker. With static entries the captures
    /// also hold only the swarm's own traffic.
    fn configure_hosts(&self) -> Result<()> {
        let neighbours: String = self
            .hosts
            .iter()
            .enumerate()
            .flat_map(|(k, h)| {
                let mac = host_mac(k);
                h.addrs.iter().map(move |a| format!("neigh replace {a} lladdr {mac} dev eth0 nud permanent\n"))
            })
            .collect();
        let jobs: Vec<(String, String, Option<String>)> = self
            .hosts
            .iter()
            .map(|h| {
                let mut b = String::from("link set dev lo up\nlink set dev eth0 addrgenmode none\n");
                for a in &h.addrs {
                    b.push_str(&format!("addr add {a}/15 dev eth0\n"));
                }
                b.push_str("link set dev eth0 up\n");
                b.push_str(&neighbours);
                (h.ns.clone(), b, h.up_bps.map(|r| tbf("eth0", r)))
            })
            .collect();
        for chunk in jobs.chunks(PARALLEL) {
            std::thread::scope(|s| -> Result<()> {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|(ns, ip, tc)| {
                        s.spawn(move || -> Result<()> {
                            run_batch("ip", &["-n", ns, "-batch", "-"], ip)
                                .with_context(|| format!("cannot configure host {ns}"))?;
                            if let Some(tc) = tc {
                                run_batch("tc", &["-n", ns, "-batch", "-"], tc)
                                    .with_context(|| format!("cannot set the upload rate of {ns}"))?;
                            }
                            Ok(())
                        })
                    })
                    .collect();
                for h in handles {
                    h.join().map_err(|_| anyhow::anyhow!("a host set-up thread panicked"))??;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Removes every namespace of the run (their links and qdiscs go with them).
    pub fn destroy(&mut self) -> Result<()> {
        if self.created.is_empty() {
            return Ok(());
        }
        kill_processes_in(&self.created);
        let r = delete_namespaces(&self.created);
        self.created.clear();
        r
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if let Err(e) = self.destroy() {
            eprintln!("soplab: could not remove every namespace: {e:#}; run `soplab cleanup`");
        }
    }
}

/// Deletes the named namespaces with one `ip -batch` (`-force`: go on past ones already gone).
fn delete_namespaces(names: &[String]) -> Result<()> {
    let batch: String = names.iter().map(|n| format!("netns del {n}\n")).collect();
    run_batch("ip", &["-force", "-batch", "-"], &batch).or_else(|e| {
        // -force still reports failures; only namespaces that remain are a problem.
        let left: Vec<&String> = names.iter().filter(|n| crate::netns::exists(n)).collect();
        if left.is_empty() { Ok(()) } else { Err(e.context(format!("{} namespaces remain", left.len()))) }
    })
}

/// Whether namespace `name` exists.
pub fn exists(name: &str) -> bool {
    soplab_shell::netns::path(name).exists()
}

/// soplab's namespaces on this machine, by name.
pub fn list() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/run/netns") else { return Vec::new() };
    let mut v: Vec<String> =
        dir.flatten().filter_map(|e| e.file_name().into_string().ok()).filter(|n| n.starts_with(PREFIX)).collect();
    v.sort();
    v
}

/// The orchestrator pid in a namespace name `soplab-<pid>-...`.
fn owner(name: &str) -> Option<i32> {
    name.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

/// Whether `pid` is a live soplab orchestrator (and not this process).
fn owner_alive(pid: i32) -> bool {
    if pid as u32 == std::process::id() {
        return true;
    }
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "soplab")
}

/// SIGKILLs every process whose network namespace is one of `names` (found through
/// /proc/*/ns/net, which is what `ip netns pids` reads).
fn kill_processes_in(names: &[String]) {
    let inodes: HashSet<u64> =
        names.iter().filter_map(|n| std::fs::metadata(soplab_shell::netns::path(n)).ok()).map(|m| m.ino()).collect();
    if inodes.is_empty() {
        return;
    }
    let Ok(proc_dir) = std::fs::read_dir("/proc") else { return };
    for e in proc_dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        if pid as u32 == std::process::id() {
            continue;
        }
        if let Ok(m) = std::fs::metadata(Path::new("/proc").join(pid.to_string()).join("ns/net"))
            && inodes.contains(&m.ino())
        {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Removes what dead runs left: namespaces whose orchestrator is gone, and the processes in
/// them. With `all`, also the namespaces of live runs. Returns the names removed.
///
/// # Errors
/// When namespaces remain after deletion.
pub fn sweep(all: bool) -> Result<Vec<String>> {
    let stale: Vec<String> = list().into_iter().filter(|n| all || owner(n).is_none_or(|p| !owner_alive(p))).collect();
    if stale.is_empty() {
        return Ok(stale);
    }
    kill_processes_in(&stale);
    delete_namespaces(&stale)?;
    Ok(stale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_come_from_the_name() {
        assert_eq!(owner("soplab-1234-hub"), Some(1234));
        assert_eq!(owner("soplab-77-p12"), Some(77));
        assert_eq!(owner("soplab-x-hub"), None);
        assert_eq!(owner("other-1-hub"), None);
        assert!(owner_alive(std::process::id() as i32));
    }

    #[test]
    fn macs_are_unique_and_local() {
        assert_eq!(host_mac(0), "02:53:00:00:00:00");
        assert_eq!(host_mac(70_000), "02:53:00:01:11:70");
    }

    #[test]
    fn tbf_bursts_hold_a_packet() {
        assert_eq!(tbf("eth0", 100_000), "qdisc replace dev eth0 root tbf rate 100000bit burst 4096 limit 65536\n");
        assert!(tbf("p1", 100_000_000).contains("burst 250000 limit 2500000"));
    }
}
