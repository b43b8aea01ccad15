//! Errors of the analyzer. Problems inside a capture (truncated files, garbage records, packets
//! that are not UDP) are not errors: they are counted in the input report and the analysis goes
//! on. Errors are for what stops the job: a file that cannot be opened or is not a capture, an
//! output that cannot be written, a run directory without captures.

use std::path::PathBuf;

/// Result with the analyzer's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What stopped an analysis or a validation; every message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input file could not be opened or read.
    #[error("cannot read {}: {cause}; check the path and its permissions", path.display())]
    Read {
        path: PathBuf,
        // Not named `source` (thiserror would make it the error's source): the message already
        // says it, and `{:#}` printers would repeat it.
        cause: std::io::Error,
    },
    /// An input file is not a pcap or pcapng capture.
    #[error(
        "{} is not a packet capture ({why}); give pcap or pcapng files as written by `tcpdump -w`, or a run \
         directory with pcap/*.pcap",
        path.display()
    )]
    NotACapture { path: PathBuf, why: String },
    /// No capture files were given or found.
    #[error("no capture files in {}: {hint}", path.display())]
    NoCaptures { path: PathBuf, hint: String },
    /// An output file or directory could not be written.
    #[error("cannot write {}: {cause}; check that the directory is writable and the disk is not full", path.display())]
    Write {
        path: PathBuf,
        // Not named `source` (thiserror would make it the error's source): the message already
        // says it, and `{:#}` printers would repeat it.
        cause: std::io::Error,
    },
    /// The output directory is another run's, or holds files soplab did not write.
    #[error(transparent)]
    Out(#[from] soplab_rundir::claim::ClaimError),
    /// A CSV table could not be written.
    #[error("cannot write the table {}: {cause}", path.display())]
    Csv { path: PathBuf, cause: csv::Error },
    /// A plot could not be drawn.
    #[error("cannot draw the plot {}: {why}", path.display())]
    Plot { path: PathBuf, why: String },
    /// A ground-truth or run description file could not be understood.
    #[error("{}:{line}: {why}; the file should follow docs/GROUND_TRUTH.md (run.json: docs/ANALYZE.md)", path.display())]
    Truth { path: PathBuf, line: usize, why: String },
    /// A run directory without ground truth was given to `validate`.
    #[error("no ground truth in {}: validate needs RUN_DIR/truth/*.jsonl as written by `soplab swarm`", path.display())]
    NoTruth { path: PathBuf },
    /// A run's workload.csv could not be read (its message says which line and why).
    #[error(transparent)]
    Schedule(#[from] soplab_rundir::schedule::ScheduleError),
    /// An option has a value the analyzer cannot use.
    #[error("{0}")]
    Option(String),
}
