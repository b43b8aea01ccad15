//! Churn schedules: which client is in the swarm when, as `soplab workload` writes them
//! (`workload.csv` in a run directory) and as the peer daemons follow them. CSV with the
//! header `client,session,start,end`, times in seconds from the schedule's time zero.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The latest time a schedule may name, in seconds: 100 years. Session times become
/// microseconds past an epoch (the Unix epoch's, virtual time's 10^15 µs); this keeps them far
/// from overflowing any clock.
pub const MAX_TIME_S: f64 = 100.0 * 365.0 * 86_400.0;

/// The header line of a schedule file.
pub const CSV_HEADER: [&str; 4] = ["client", "session", "start", "end"];

/// Why a schedule could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: {source}", path.display())]
    Csv { path: PathBuf, source: csv::Error },
    #[error("{}:{line}: {message}", path.display())]
    Invalid { path: PathBuf, line: u64, message: String },
}

/// One session of one client: it is in the swarm from `start` to `end` (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Numbered from 0 in order of first appearance.
    pub client: u32,
    /// The client's session number, from 0.
    pub session: u32,
    pub start: f64,
    pub end: f64,
}

/// A workload: every session of every client, sorted by start.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Schedule {
    pub sessions: Vec<Session>,
}

impl Schedule {
    /// The same schedule played `factor` times faster: every time divided by `factor`.
    ///
    /// # Panics
    ///
    /// If `factor` is not a finite number above 0.
    pub fn compress(&self, factor: f64) -> Schedule {
        assert!(factor.is_finite() && factor > 0.0, "compress factor must be finite and > 0, not {factor}");
        let sessions =
            self.sessions.iter().map(|s| Session { start: s.start / factor, end: s.end / factor, ..*s }).collect();
        Schedule { sessions }
    }

    /// The sessions of the clients in `clients`, renumbered from its start: what one peer
    /// process that hosts those clients follows.
    pub fn for_clients(&self, clients: std::ops::Range<u32>) -> Schedule {
        let sessions = self
            .sessions
            .iter()
            .filter(|s| clients.contains(&s.client))
            .map(|s| Session { client: s.client - clients.start, ..*s })
            .collect();
        Schedule { sessions }
    }

    /// Each client's sessions, in order of start.
    pub fn by_client(&self) -> std::collections::BTreeMap<u32, Vec<Session>> {
        let mut out: std::collections::BTreeMap<u32, Vec<Session>> = Default::default();
        for s in &self.sessions {
            out.entry(s.client).or_default().push(*s);
        }
        for v in out.values_mut() {
            v.sort_by(|a, b| a.start.total_cmp(&b.start));
        }
        out
    }

    /// Writes `client,session,start,end` rows (times with 3 decimals), sorted by start.
    pub fn write_csv(&self, path: impl AsRef<Path>) -> Result<(), ScheduleError> {
        let path = path.as_ref();
        let csv_err = |source| ScheduleError::Csv { path: path.to_path_buf(), source };
        let mut w = csv::Writer::from_path(path).map_err(csv_err)?;
        w.write_record(CSV_HEADER).map_err(csv_err)?;
        let mut sorted: Vec<&Session> = self.sessions.iter().collect();
        sorted.sort_by(|a, b| a.start.total_cmp(&b.start));
        for s in sorted {
            let row = [s.client.to_string(), s.session.to_string(), format!("{:.3}", s.start), format!("{:.3}", s.end)];
            w.write_record(&row).map_err(csv_err)?;
        }
        w.flush().map_err(|source| ScheduleError::Io { path: path.to_path_buf(), source })
    }

    /// Reads a schedule written by [`Schedule::write_csv`] (or by hand): the exact header
    /// `client,session,start,end`, then one session a line. Times must be finite, start ≥ 0,
    /// at most [`MAX_TIME_S`],
    /// end ≥ start, and a client's sessions must not overlap. Rows may come in any order; the
    /// schedule is sorted by start.
    pub fn read_csv(path: impl AsRef<Path>) -> Result<Schedule, ScheduleError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| ScheduleError::Io { path: path.to_path_buf(), source })?;
        let invalid = |line: u64, message: String| ScheduleError::Invalid { path: path.to_path_buf(), line, message };
        let mut reader =
            csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(file);
        let mut records = reader.records();

        let header = match records.next() {
            None => return Err(invalid(1, format!("empty file; the first line must be `{}`", CSV_HEADER.join(",")))),
            Some(r) => r.map_err(|source| ScheduleError::Csv { path: path.to_path_buf(), source })?,
        };
        if header.iter().ne(CSV_HEADER) {
            let line = header.position().map_or(1, |p| p.line());
            let found = header.iter().collect::<Vec<_>>().join(",");
            return Err(invalid(line, format!("the header must be `{}`, not `{found}`", CSV_HEADER.join(","))));
        }

        let mut rows: Vec<(Session, u64)> = Vec::new();
        for record in records {
            let record = record.map_err(|source| ScheduleError::Csv { path: path.to_path_buf(), source })?;
            let line = record.position().map_or(0, |p| p.line());
            if record.len() != CSV_HEADER.len() {
                return Err(invalid(
                    line,
                    format!("{} fields; every line needs 4: {}", record.len(), CSV_HEADER.join(",")),
                ));
            }
            let id = |i: usize| {
                record[i].parse::<u32>().map_err(|_| {
                    invalid(line, format!("{} `{}` is not a whole number >= 0", CSV_HEADER[i], &record[i]))
                })
            };
            let time = |i: usize| match record[i].parse::<f64>() {
                Ok(t) if t.is_finite() && (0.0..=MAX_TIME_S).contains(&t) => Ok(t),
                Ok(t) if t > MAX_TIME_S => Err(invalid(
                    line,
                    format!("{} `{}` must be at most 100 years ({MAX_TIME_S} s)", CSV_HEADER[i], &record[i]),
                )),
                Ok(_) => {
                    Err(invalid(line, format!("{} `{}` must be a time >= 0 in seconds", CSV_HEADER[i], &record[i])))
                }
                Err(_) => Err(invalid(line, format!("{} `{}` is not a number of seconds", CSV_HEADER[i], &record[i]))),
            };
            let session = Session { client: id(0)?, session: id(1)?, start: time(2)?, end: time(3)? };
            if session.end < session.start {
                return Err(invalid(line, format!("end {} is before start {}", &record[3], &record[2])));
            }
            rows.push((session, line));
        }

        // Stable, so rows with equal starts keep the file's order.
        rows.sort_by(|a, b| a.0.start.total_cmp(&b.0.start));
        let mut last: HashMap<u32, (f64, u64)> = HashMap::new();
        let mut seen: HashMap<(u32, u32), u64> = HashMap::new();
        for &(s, line) in &rows {
            if let Some(first) = seen.insert((s.client, s.session), line) {
                return Err(invalid(
                    line,
                    format!("client {} session {} appears again (first at line {first})", s.client, s.session),
                ));
            }
            if let Some(&(end, prev)) = last.get(&s.client)
                && s.start < end
            {
                return Err(invalid(
                    line,
                    format!(
                        "client {} starts a session at {} before its session at line {prev} ends at {end}; \
                         a client is in one session at a time",
                        s.client, s.start
                    ),
                ));
            }
            last.insert(s.client, (s.end, line));
        }
        Ok(Schedule { sessions: rows.into_iter().map(|(s, _)| s).collect() })
    }
}
