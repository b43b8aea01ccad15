//! `soplab-analyze`: rebuilds from tcpdump traces what Tang et al. measured of SopCast, and
//! checks it against soplab's ground truth.
//!
//! It reads pcap and pcapng captures (soplab's or anyone's), classifies UDP datagrams by their
//! payload size (Table 1 of Tang et al.), and rebuilds the two-layer overlay of their section 5:
//! the neighbour graph G_N (pairs exchanging keep-alives) and the video graph G_V (parent ->
//! child pairs carrying video), in snapshots of length tau and accumulated over [0, T]. It
//! writes every figure's data (report.json, CSV tables) and plots (PNG, SVG). `validate`
//! compares the overlay rebuilt from a run's captures with the run's ground truth
//! (docs/GROUND_TRUTH.md) and reports precision and recall per layer.
//!
//! It depends on `soplab-wire` for sizes and the header cross-check only, never on the
//! daemons, so it reads traces of any implementation. docs/ANALYZE.md describes the method,
//! the definitions and the output files.

mod activity;
pub mod analysis;
pub mod capture;
pub mod classify;
pub mod cli;
pub mod clients;
pub mod coverage;
mod error;
pub mod fit;
pub mod output;
pub mod overlay;
pub mod paper;
#[cfg(feature = "plots")]
pub mod plot;
pub mod rundir;
pub mod series;
pub mod sessions;
pub mod stats;
pub mod trace;
pub mod truth;
pub mod validate;
pub mod validate_clients;

pub use error::{Error, Result};
