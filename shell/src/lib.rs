//! `soplab-shell`: the I/O around soplab's sans-IO cores (`soplab-node`), kept out of the
//! protocol crate so that the cores build, fuzz and simulate without tokio or sockets.
//!
//! - [`udp`]: the tokio shell that drives one core over a real UDP socket (its items are
//!   re-exported here: [`run`], [`run_with_options`], [`bind_udp`], ...);
//! - [`tap`]: a pcap of what one node sends and receives, for runs without tcpdump;
//! - [`netns`]: binding sockets inside a network namespace;
//! - [`process`]: what every daemon process does: stop on Ctrl-C, SIGTERM or `--duration`,
//!   explain a failed bind, create outputs, set up logging and the exit code;
//! - [`flags`]: the flags every daemon takes (`--seed`, `--truth`, `--stats`, `--duration`,
//!   `--config`) and their typed form;
//! - [`units`]: durations and bit rates as users write them (`90s`, `500k`).

pub mod flags;
pub mod netns;
pub mod process;
pub mod tap;
pub mod udp;
pub mod units;

pub use udp::{
    Options, RECV_BUF_LEN, SOCKET_BUF_LEN, Stop, TRUTH_FLUSH_INTERVAL, bind_udp, bind_udp_std, realtime_us, run,
    run_with_options,
};
