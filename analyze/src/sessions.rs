//! Client sessions as spans of time, and how those found in captures match the ground truth's.
//!
//! A capture cannot tell two sessions of one client apart when the client was away for less
//! than the session gap: whatever is compared with what the analyzer found (the truth's
//! sessions, a played schedule) is first processed the same way, a client's sessions closer
//! than the gap merged ([`merge_close`]). A found session then matches a true one of the same
//! client when both its start and its end are within a tolerance (the session gap, by
//! default: the analyzer's own resolution for session boundaries), each used once.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::stats::Summary;

/// One session of one client (an IP address, as the client layer counts them):
/// `[start_us, end_us]` on the capture's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    pub client: IpAddr,
    pub start_us: i64,
    pub end_us: i64,
}

/// `sessions` with every client's sessions that lie at most `gap_us` apart (end of one to
/// start of the next) merged into one; sorted by client, then start.
pub fn merge_close(sessions: &[Span], gap_us: i64) -> Vec<Span> {
    let mut sorted = sessions.to_vec();
    sorted.sort_unstable();
    let mut out: Vec<Span> = Vec::with_capacity(sorted.len());
    for s in sorted {
        match out.last_mut() {
            Some(last) if last.client == s.client && s.start_us.saturating_sub(last.end_us) <= gap_us => {
                last.end_us = last.end_us.max(s.end_us);
            }
            _ => out.push(s),
        }
    }
    out
}

/// The sessions the truth's data make, by the analyzer's rule: every time a peer sent or
/// received video (a response's last packet sent, its arrival at the child), by IP, split
/// where two such times lie more than `gap_us` apart. This is what a perfect capture shows:
/// a logged session with no video in it leaves no trace, and a peer that gets no video for
/// longer than the gap looks gone. Responses with neither end a peer (the source, a timed-out
/// request) count for the peer end only.
pub fn truth_data_spans(truth: &crate::truth::Truth, gap_us: i64) -> Vec<Span> {
    let mut out = Vec::new();
    for (client, ts) in data_times(truth) {
        let mut start = ts[0];
        for w in ts.windows(2) {
            if w[1] - w[0] > gap_us {
                out.push(Span { client, start_us: start, end_us: w[0] });
                start = w[1];
            }
        }
        out.push(Span { client, start_us: start, end_us: *ts.last().expect("not empty") });
    }
    out
}

/// Every time each peer (by IP) sent or received video, sorted; see [`truth_data_spans`].
pub fn data_times(truth: &crate::truth::Truth) -> BTreeMap<IpAddr, Vec<i64>> {
    let peers: std::collections::HashSet<IpAddr> = truth.peers().map(|n| n.addr.ip()).collect();
    let mut times: BTreeMap<IpAddr, Vec<i64>> = BTreeMap::new();
    for r in &truth.responses {
        let Some(sent) = r.sent_us else { continue };
        let arrived = r.resolved_us.unwrap_or(sent).max(sent);
        for (node, t) in [(r.parent.ip(), sent), (r.child.ip(), sent), (r.child.ip(), arrived)] {
            if peers.contains(&node) {
                times.entry(node).or_default().push(t);
            }
        }
    }
    for ts in times.values_mut() {
        ts.sort_unstable();
    }
    times
}

/// The sessions the peers logged, and how long each took to its first video.
#[derive(Debug, Clone, Serialize)]
pub struct Logged {
    pub sessions: u64,
    /// Sessions in which the peer sent or received no video: no capture can see them.
    pub without_data: u64,
    /// From `session_start` to the first video, seconds (sessions with data).
    pub join_delay_s: Summary,
}

/// The logged sessions of `spans` against the data times of [`data_times`].
pub fn logged(spans: &[Span], data: &BTreeMap<IpAddr, Vec<i64>>) -> Logged {
    let mut delays = Vec::new();
    for s in spans {
        let Some(ts) = data.get(&s.client) else { continue };
        let i = ts.partition_point(|&t| t < s.start_us);
        if let Some(&t) = ts.get(i).filter(|&&t| t <= s.end_us) {
            delays.push((t - s.start_us) as f64 / 1e6);
        }
    }
    Logged {
        sessions: spans.len() as u64,
        without_data: (spans.len() - delays.len()) as u64,
        join_delay_s: Summary::of(&delays),
    }
}

/// The sessions of the truth's peers (the source and the tracker are no clients), by IP.
pub fn truth_spans(truth: &crate::truth::Truth) -> Vec<Span> {
    truth
        .peers()
        .flat_map(|n| n.sessions.iter().map(move |&(s, e)| Span { client: n.addr.ip(), start_us: s, end_us: e }))
        .collect()
}

/// The client layer's session quantities of `spans` (merged already), as
/// [`crate::clients`] computes them from captures: inter-arrival times of all starts in model
/// seconds (× `time_scale`), sessions per client, ON and OFF in percent of `transmission_s`.
pub fn quantities(spans: &[Span], time_scale: f64, transmission_s: f64) -> crate::clients::Samples {
    let mut s = crate::clients::Samples::default();
    let pct = |us: i64| us as f64 / 1e6 / transmission_s * 100.0;
    let mut starts: Vec<i64> = spans.iter().map(|x| x.start_us).collect();
    starts.sort_unstable();
    s.inter_arrival_s = starts.windows(2).map(|w| (w[1] - w[0]) as f64 / 1e6 * time_scale).collect();
    for client in spans.chunk_by(|a, b| a.client == b.client) {
        s.sessions_per_client.push(client.len() as f64);
        for (i, x) in client.iter().enumerate() {
            s.on_percent.push(pct(x.end_us - x.start_us));
            if let Some(next) = client.get(i + 1) {
                s.off_percent.push(pct(next.start_us - x.end_us));
            }
        }
    }
    s
}

/// The sessions of a played schedule on the run's clock: client `c` of `schedule` is the
/// `c`-th churned peer (`peers`, in run.json's order), its times count from `epoch_us`, and
/// sessions are cut at `end_us` (the run stopped every peer then; later ones never played).
pub fn played_spans(
    schedule: &soplab_rundir::schedule::Schedule,
    peers: &[IpAddr],
    epoch_us: i64,
    end_us: i64,
) -> Vec<Span> {
    let at = |s: f64| epoch_us.saturating_add((s * 1e6).round() as i64);
    schedule
        .sessions
        .iter()
        .filter_map(|x| {
            let client = *peers.get(x.client as usize)?;
            let (start, end) = (at(x.start), at(x.end).min(end_us));
            (start < end).then_some(Span { client, start_us: start, end_us: end })
        })
        .collect()
}

/// How the sessions found match the true ones.
#[derive(Debug, Clone, Serialize)]
pub struct SessionMatch {
    /// Sessions found in the captures.
    pub found: u64,
    /// True sessions, after merging those closer than the gap.
    pub truth: u64,
    /// Found sessions matched to a true one (start and end within the tolerance).
    pub matched: u64,
    /// matched / found (1 when nothing was found).
    pub precision: f64,
    /// matched / truth (1 when there was nothing to find).
    pub recall: f64,
    /// The tolerance used, seconds.
    pub tolerance_s: f64,
    /// Found start minus true start of the matched sessions, seconds (the join delay: the
    /// first data packet comes after the session starts).
    pub start_error_s: Summary,
    /// Found end minus true end of the matched sessions, seconds.
    pub end_error_s: Summary,
}

/// Matches `found` against `truth` (both already merged by the same gap): per client, in
/// order of start, a found session matches the first unmatched true one whose start and end
/// both lie within `tolerance_us` of its own.
pub fn match_sessions(found: &[Span], truth: &[Span], tolerance_us: i64) -> SessionMatch {
    let mut by_client: BTreeMap<IpAddr, Vec<(Span, bool)>> = BTreeMap::new();
    for t in truth {
        by_client.entry(t.client).or_default().push((*t, false));
    }
    for v in by_client.values_mut() {
        v.sort_unstable();
    }
    let (mut start_err, mut end_err) = (Vec::new(), Vec::new());
    let mut sorted = found.to_vec();
    sorted.sort_unstable();
    for f in &sorted {
        let Some(cands) = by_client.get_mut(&f.client) else { continue };
        let close = |t: &Span| {
            f.start_us.abs_diff(t.start_us) <= tolerance_us.unsigned_abs()
                && f.end_us.abs_diff(t.end_us) <= tolerance_us.unsigned_abs()
        };
        if let Some((t, used)) = cands.iter_mut().find(|(t, used)| !*used && close(t)) {
            *used = true;
            start_err.push((f.start_us - t.start_us) as f64 / 1e6);
            end_err.push((f.end_us - t.end_us) as f64 / 1e6);
        }
    }
    let matched = start_err.len() as u64;
    let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    SessionMatch {
        found: found.len() as u64,
        truth: truth.len() as u64,
        matched,
        precision: ratio(matched, found.len() as u64),
        recall: ratio(matched, truth.len() as u64),
        tolerance_s: tolerance_us as f64 / 1e6,
        start_error_s: Summary::of(&start_err),
        end_error_s: Summary::of(&end_err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn span(c: u8, start_s: i64, end_s: i64) -> Span {
        Span { client: IpAddr::from([198, 18, 1, c]), start_us: start_s * S, end_us: end_s * S }
    }

    #[test]
    fn close_sessions_of_one_client_merge_and_others_do_not() {
        let merged = merge_close(&[span(1, 500, 600), span(1, 0, 100), span(1, 200, 300), span(2, 110, 120)], 150 * S);
        assert_eq!(merged, vec![span(1, 0, 300), span(1, 500, 600), span(2, 110, 120)]);
        // Exactly the gap apart still merges (a gap must be exceeded to end a session).
        assert_eq!(merge_close(&[span(1, 0, 10), span(1, 160, 170)], 150 * S), vec![span(1, 0, 170)]);
        assert_eq!(merge_close(&[], S), vec![]);
    }

    #[test]
    fn found_sessions_match_true_ones_within_the_tolerance_once_each() {
        let truth = [span(1, 0, 100), span(1, 400, 500), span(2, 50, 60), span(3, 0, 10)];
        let found = [
            span(1, 1, 99),    // matches the first
            span(1, 2, 98),    // the first is taken
            span(1, 400, 700), // its end is too far
            span(2, 51, 60),   // matches
            span(4, 0, 10),    // nobody's
        ];
        let m = match_sessions(&found, &truth, 10 * S);
        assert_eq!((m.found, m.truth, m.matched), (5, 4, 2));
        assert_eq!((m.precision, m.recall), (0.4, 0.5));
        assert_eq!(m.start_error_s.mean, 1.0);
        assert_eq!(m.end_error_s.mean, -0.5);
        let none = match_sessions(&[], &[], S);
        assert_eq!((none.precision, none.recall), (1.0, 1.0));
    }
}
