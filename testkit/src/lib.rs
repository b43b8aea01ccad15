//! `soplab-testkit`: what soplab's tests share, for tests only (a dev-dependency, never
//! published): a guard that kills a child process when a test fails and waits for it within a
//! bound, the checks that skip a test when a tool, root or network namespaces are missing (or
//! fail it under `SOPLAB_REQUIRE_TOOLS=1` / `SOPLAB_REQUIRE_NETNS=1`), per-process test
//! addresses, scratch and run directories, truth files, swarms' command lines and summaries, and
//! reading captures with tcpdump and ndpiReader; and how close an analysis must come to Tang et
//! al.'s numbers.
//!
//! It depends on std, serde_json, nix and soplab-rundir only, so that any crate of the workspace
//! (soplab-wire included) can dev-depend on it without a dependency cycle.

use std::sync::{Mutex, MutexGuard};

pub mod addr;
pub mod capture;
pub mod child;
pub mod files;
pub mod host;
pub mod paper;
pub mod swarm;

pub use addr::{test_ip, v4};
pub use capture::{UdpLine, ndpi_flows, tcpdump_udp, udp_frame};
pub use child::{Guard, check_help_and_bad_flag, output_within, run_ok};
pub use files::{TempDir, played_sessions, read_json, remove_run_dir, run_dir, truth_events, truth_lines};
pub use host::{
    assert_nothing_left, built_binary, find_on_path, namespaces, netns_available, on_path, processes_mentioning,
    require_tools, root_and_tools_available, soplab_exe, tool_available,
};
pub use swarm::{assert_continuity, netns_swarm_args};

/// One swarm at a time: swarms share the machine's two cores, and the checks that nothing is
/// left behind look at the whole machine.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
