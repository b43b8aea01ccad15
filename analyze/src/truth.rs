//! Ground truth (docs/GROUND_TRUTH.md) turned into intervals: when each node considered each
//! other node an established neighbour, and when each response was asked for and sent.

use std::collections::HashMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;
use soplab_rundir::truth::{Event, Line, Role};

use crate::error::{Error, Result};

/// One daemon's sessions as its truth file tells them.
#[derive(Debug, Clone, Serialize)]
pub struct NodeHistory {
    pub addr: SocketAddr,
    pub role: Role,
    /// Sessions: (start, end). The end is `session_end`'s time, or the last event of the session
    /// when the node went silent without one (a churned or killed peer).
    pub sessions: Vec<(i64, i64)>,
    /// Sessions that ended with `session_end graceful: false`, or with no end at all.
    pub silent_ends: u32,
    pub first_us: i64,
    pub last_us: i64,
}

/// `from` considered `to` an established neighbour over `[up_us, down_us)`.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub up_us: i64,
    pub down_us: i64,
}

/// One video request and its response.
#[derive(Debug, Clone, Copy)]
pub struct Response {
    pub parent: SocketAddr,
    pub child: SocketAddr,
    /// `request_sent` at the child.
    pub requested_us: Option<i64>,
    /// `response_sent` at the parent: the last packet left.
    pub sent_us: Option<i64>,
    /// `response_received` or `request_timeout` at the child.
    pub resolved_us: Option<i64>,
}

impl Response {
    /// The interval in which video packets of this response can have been on the wire: from the
    /// request to the last packet's arrival at the child (or, with no `response_received`, to
    /// the parent's `response_sent`). A capture sees a packet up to the path's delay after its
    /// daemon logged it sent: a host's emulated delay holds packets back in its I/O shell.
    pub fn possible(&self) -> Option<(i64, i64)> {
        let start = match (self.requested_us, self.sent_us) {
            (Some(q), Some(s)) => q.min(s),
            (q, s) => q.or(s)?,
        };
        let end = match (self.sent_us, self.resolved_us) {
            (Some(s), Some(r)) => s.max(r),
            (s, r) => s.or(r).unwrap_or(start),
        };
        Some((start, end.max(start)))
    }
}

/// The whole run's ground truth.
#[derive(Debug, Clone, Default)]
pub struct Truth {
    pub nodes: Vec<NodeHistory>,
    pub links: Vec<Link>,
    /// Times a link was up but quiet, by (from, to): from a `keepalive_late` to the late
    /// keep-alive, sorted.
    pub quiet: HashMap<(SocketAddr, SocketAddr), Vec<(i64, i64)>>,
    pub responses: Vec<Response>,
    pub files: Vec<PathBuf>,
    pub first_us: i64,
    pub last_us: i64,
}

impl Truth {
    /// Reads every `*.jsonl` in `dir`.
    pub fn read_dir(dir: &Path) -> Result<Truth> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|_| Error::NoTruth { path: dir.into() })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::NoTruth { path: dir.into() });
        }
        let mut t = Truth { first_us: i64::MAX, last_us: i64::MIN, ..Truth::default() };
        let mut steps: Steps = HashMap::new();
        for f in &files {
            t.read_file(f, &mut steps)?;
        }
        t.files = files;
        t.responses = match_responses(steps);
        t.responses.sort_by_key(|r| (r.requested_us.or(r.sent_us), r.parent, r.child));
        if t.first_us > t.last_us {
            t.first_us = 0;
            t.last_us = 0;
        }
        Ok(t)
    }

    fn read_file(&mut self, path: &Path, steps: &mut Steps) -> Result<()> {
        let f = std::fs::File::open(path).map_err(|e| Error::Read { path: path.into(), cause: e })?;
        let is_tracker = path.file_name().is_some_and(|n| n == "tracker.jsonl");
        let mut reader = FileReader::new(if is_tracker { Role::Tracker } else { Role::Peer });
        for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
            let line = line.map_err(|e| Error::Read { path: path.into(), cause: e })?;
            reader.line(&line, &mut self.links, &mut self.quiet, steps).map_err(|e| Error::Truth {
                path: path.into(),
                line: i + 1,
                why: e.to_string(),
            })?;
        }
        let Some(n) = reader.finish(&mut self.links) else { return Ok(()) };
        self.first_us = self.first_us.min(n.first_us);
        self.last_us = self.last_us.max(n.last_us);
        self.nodes.push(n);
        Ok(())
    }

    pub fn tracker(&self) -> Option<SocketAddr> {
        self.nodes.iter().find(|n| n.role == Role::Tracker).map(|n| n.addr)
    }

    pub fn source(&self) -> Option<SocketAddr> {
        self.nodes.iter().find(|n| n.role == Role::Source).map(|n| n.addr)
    }

    /// Peers (role peer).
    pub fn peers(&self) -> impl Iterator<Item = &NodeHistory> {
        self.nodes.iter().filter(|n| n.role == Role::Peer)
    }

    /// Earliest session start of any peer or the source.
    pub fn start_us(&self) -> Option<i64> {
        self.nodes.iter().filter(|n| n.role != Role::Tracker).flat_map(|n| n.sessions.iter().map(|s| s.0)).min()
    }
}

/// One truth file while it is read: the node so far, its open links and its open session.
struct FileReader {
    /// The role until a `session_start` says "source".
    role: Role,
    node: Option<NodeHistory>,
    /// Established neighbours and since when.
    open: HashMap<SocketAddr, i64>,
    session_start: Option<i64>,
    /// The latest time of any line, playback included.
    last: i64,
}

impl FileReader {
    fn new(role: Role) -> FileReader {
        FileReader { role, node: None, open: HashMap::new(), session_start: None, last: i64::MIN }
    }

    /// Takes one line of the file.
    fn line(
        &mut self,
        text: &str,
        links: &mut Vec<Link>,
        quiet: &mut Quiet,
        steps: &mut Steps,
    ) -> serde_json::Result<()> {
        // Playback events are the bulk of a peer's file and say nothing about edges.
        if text.trim().is_empty() || text.contains("\"event\":\"play\"") {
            if let Some(ts) = quick_ts(text) {
                self.last = self.last.max(ts);
            }
            return Ok(());
        }
        let Line { ts_us: ts, node: me, event } = Line::parse(text)?;
        let role = self.role;
        let n = self.node.get_or_insert_with(|| NodeHistory {
            addr: me,
            role,
            sessions: Vec::new(),
            silent_ends: 0,
            first_us: ts,
            last_us: ts,
        });
        match event {
            Event::SessionStart { role } => {
                if role == Role::Source {
                    n.role = Role::Source;
                }
                if let Some(s) = self.session_start.take() {
                    // A new session without an end: the previous one went silent.
                    close_all(&mut self.open, links, me, self.last);
                    n.sessions.push((s, self.last.max(s)));
                    n.silent_ends += 1;
                }
                self.session_start = Some(ts);
            }
            Event::SessionEnd { graceful } => {
                close_all(&mut self.open, links, me, ts);
                if !graceful {
                    n.silent_ends += 1;
                }
                n.sessions.push((self.session_start.take().unwrap_or(n.first_us), ts));
            }
            Event::NeighborUp { peer, .. } => {
                if let Some(up) = self.open.insert(peer, ts) {
                    links.push(Link { from: me, to: peer, up_us: up, down_us: ts });
                }
            }
            Event::NeighborDown { peer, .. } => {
                if let Some(up) = self.open.remove(&peer) {
                    links.push(Link { from: me, to: peer, up_us: up, down_us: ts.max(up) });
                }
            }
            Event::KeepaliveLate { peer, gap_us } => {
                let end = ts.saturating_add(i64::try_from(gap_us).unwrap_or(i64::MAX));
                quiet.entry((me, peer)).or_default().push((ts, end));
            }
            other => add_step(steps, me, ts, &other),
        }
        self.last = self.last.max(ts);
        n.last_us = n.last_us.max(ts);
        Ok(())
    }

    /// The node the file told of, its open session and links closed at its last event; `None`
    /// for a file without events.
    fn finish(mut self, links: &mut Vec<Link>) -> Option<NodeHistory> {
        let mut n = self.node.take()?;
        n.last_us = n.last_us.max(self.last);
        if let Some(s) = self.session_start.take() {
            // No session_end: the node went silent (or was killed) after its last event.
            n.sessions.push((s, n.last_us));
            n.silent_ends += 1;
        }
        close_all(&mut self.open, links, n.addr, n.last_us);
        if n.role == Role::Tracker && n.sessions.is_empty() {
            n.sessions.push((n.first_us, n.last_us));
        }
        Some(n)
    }
}

/// Ends every open link of `me` at `at`.
fn close_all(open: &mut HashMap<SocketAddr, i64>, links: &mut Vec<Link>, me: SocketAddr, at: i64) {
    for (to, up) in open.drain() {
        links.push(Link { from: me, to, up_us: up, down_us: at.max(up) });
    }
}

/// Records a step of a request that `me` logged at `ts` (other events are no steps).
fn add_step(steps: &mut Steps, me: SocketAddr, ts: i64, event: &Event) {
    let (key, step) = match *event {
        Event::RequestSent { parent, request, .. } => ((parent, me, request), Step::Requested),
        Event::ResponseReceived { parent, request, .. } | Event::RequestTimeout { parent, request, .. } => {
            ((parent, me, request), Step::Resolved)
        }
        Event::ResponseSent { child, request, .. } => ((me, child, request), Step::Sent),
        _ => return,
    };
    steps.entry(key).or_default().push((ts, step));
}

/// What happened to a request, from either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    /// `request_sent` at the child.
    Requested,
    /// `response_sent` at the parent.
    Sent,
    /// `response_received` or `request_timeout` at the child.
    Resolved,
}

/// Quiet times of links, by (from, to).
type Quiet = HashMap<(SocketAddr, SocketAddr), Vec<(i64, i64)>>;

/// Steps per (parent, child, request id).
type Steps = HashMap<(SocketAddr, SocketAddr, u32), Vec<(i64, Step)>>;

/// How much later than the parent's `response_sent` a child may log its `request_sent` (the
/// two daemons write their lines independently).
const LOG_SLACK_US: i64 = 100_000;

/// Pairs the steps of each (parent, child, request id) into responses. A child starts its
/// request ids again in every session, so one key can hold several requests: each
/// `response_sent` belongs to the latest request sent before it (within the logging slack),
/// each resolution to the latest request before it.
fn match_responses(steps: Steps) -> Vec<Response> {
    let mut out = Vec::new();
    for ((parent, child, _), mut v) in steps {
        // A request may be logged a little after its response: order it by its time less the
        // slack (requests that share an id are whole sessions apart).
        v.sort_by_key(|&(ts, step)| (if step == Step::Requested { ts - LOG_SLACK_US } else { ts }, step));
        let mut open: Vec<Response> = Vec::new();
        let new = |requested_us| Response { parent, child, requested_us, sent_us: None, resolved_us: None };
        for &(ts, step) in &v {
            match step {
                Step::Requested => open.push(new(Some(ts))),
                Step::Sent => {
                    let r = open.iter_mut().rev().find(|r| r.sent_us.is_none());
                    match r {
                        Some(r) => r.sent_us = Some(ts),
                        None => open.push(Response { sent_us: Some(ts), ..new(None) }),
                    }
                }
                Step::Resolved => {
                    if let Some(r) = open.iter_mut().rev().find(|r| r.resolved_us.is_none() && r.requested_us.is_some())
                    {
                        r.resolved_us = Some(ts);
                    }
                }
            }
        }
        out.extend(open);
    }
    out
}

/// The `ts_us` of a line without parsing it all.
fn quick_ts(line: &str) -> Option<i64> {
    let rest = line.strip_prefix("{\"ts_us\":")?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_is_possible_until_its_last_packet_arrives() {
        let a: SocketAddr = "198.18.1.1:3908".parse().unwrap();
        let b: SocketAddr = "198.18.1.2:3908".parse().unwrap();
        // Sent at 2.0 s by a parent whose host delays what it sends by 80 ms: the child's
        // capture sees the last packet at 2.08 s.
        let r = Response {
            parent: a,
            child: b,
            requested_us: Some(1_900_000),
            sent_us: Some(2_000_000),
            resolved_us: Some(2_080_000),
        };
        assert_eq!(r.possible(), Some((1_900_000, 2_080_000)));
        let lost = Response { resolved_us: None, ..r };
        assert_eq!(lost.possible(), Some((1_900_000, 2_000_000)));
        let unsent = Response { sent_us: None, ..r };
        assert_eq!(unsent.possible(), Some((1_900_000, 2_080_000)));
    }

    fn write(dir: &Path, name: &str, lines: &[&str]) {
        std::fs::write(dir.join(name), lines.join("\n") + "\n").unwrap();
    }

    #[test]
    fn links_and_responses() {
        let dir = std::env::temp_dir().join(format!("soplab-truth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write(
            &dir,
            "tracker.jsonl",
            &[
                r#"{"ts_us":5,"node":"10.0.0.1:3900","event":"tracker_register","peer":"10.0.1.1:3908","channel":1,"new":true}"#,
            ],
        );
        write(
            &dir,
            "peer-a.jsonl",
            &[
                r#"{"ts_us":10,"node":"10.0.1.1:3908","event":"session_start","role":"peer"}"#,
                r#"{"ts_us":20,"node":"10.0.1.1:3908","event":"neighbor_up","peer":"10.0.1.2:3908","initiator":true}"#,
                r#"{"ts_us":25,"node":"10.0.1.1:3908","event":"request_sent","parent":"10.0.1.2:3908","request":7,"first_block":0,"count":1}"#,
                r#"{"ts_us":30,"node":"10.0.1.1:3908","event":"neighbor_down","peer":"10.0.1.2:3908","reason":"timeout"}"#,
                r#"{"ts_us":40,"node":"10.0.1.1:3908","event":"neighbor_up","peer":"10.0.1.3:3908","initiator":true}"#,
                r#"{"ts_us":45,"node":"10.0.1.1:3908","event":"play","block":1,"hit":true}"#,
            ],
        );
        write(
            &dir,
            "peer-b.jsonl",
            &[
                r#"{"ts_us":11,"node":"10.0.1.2:3908","event":"session_start","role":"peer"}"#,
                r#"{"ts_us":27,"node":"10.0.1.2:3908","event":"response_sent","child":"10.0.1.1:3908","request":7,"first_block":0,"count":1,"bytes":10240,"packets":8}"#,
                r#"{"ts_us":50,"node":"10.0.1.2:3908","event":"session_end","graceful":true}"#,
            ],
        );
        let t = Truth::read_dir(&dir).unwrap();
        assert_eq!(t.tracker(), Some("10.0.0.1:3900".parse().unwrap()));
        assert_eq!(t.peers().count(), 2);
        let a: SocketAddr = "10.0.1.1:3908".parse().unwrap();
        let mut links: Vec<_> = t.links.iter().filter(|l| l.from == a).map(|l| (l.up_us, l.down_us)).collect();
        links.sort();
        // The second link never went down: it ends at the node's last event (the play at 45).
        assert_eq!(links, vec![(20, 30), (40, 45)]);
        assert_eq!(t.responses.len(), 1);
        assert_eq!(t.responses[0].possible(), Some((25, 27)));
        let pa = t.nodes.iter().find(|n| n.addr == a).unwrap();
        assert_eq!((pa.sessions.clone(), pa.silent_ends), (vec![(10, 45)], 1));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn request_ids_reused_in_a_later_session_make_separate_responses() {
        let mut steps: Steps = HashMap::new();
        let (p, c): (SocketAddr, SocketAddr) = ("10.0.1.2:3908".parse().unwrap(), "10.0.1.1:3908".parse().unwrap());
        steps.insert(
            (p, c, 1),
            vec![
                (1_000, Step::Requested),
                (1_200, Step::Sent),
                (1_300, Step::Resolved),
                // Second session: the child logs its request 50 us after the parent's answer.
                (90_000_050, Step::Requested),
                (90_000_000, Step::Sent),
                (90_000_100, Step::Resolved),
                // Third: a request never answered.
                (200_000_000, Step::Requested),
                (201_000_000, Step::Resolved),
            ],
        );
        let mut r: Vec<_> = match_responses(steps).iter().map(|r| (r.requested_us, r.sent_us, r.resolved_us)).collect();
        r.sort();
        assert_eq!(
            r,
            vec![
                (Some(1_000), Some(1_200), Some(1_300)),
                (Some(90_000_050), Some(90_000_000), Some(90_000_100)),
                (Some(200_000_000), None, Some(201_000_000)),
            ]
        );
    }
}
