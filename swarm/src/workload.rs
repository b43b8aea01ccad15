//! Churn workloads: when each client's sessions start and end, drawn from the hierarchical
//! ON/OFF model that Borges et al. (2012) fitted to SopCast clients.
//!
//! # The model
//!
//! A client has one or more sessions (ON), separated by OFF periods. After each session it goes
//! OFF with probability [`P_OFF`] = 0.398 and comes back, or leaves for good, so the number of
//! sessions per client is Geometric (P(1 session) = 0.602). ON and OFF are fractions of the
//! transmission length D; session inter-arrival times are absolute seconds:
//!
//! | component | non-event | event |
//! |---|---|---|
//! | session inter-arrival (s) | LogNormal m=-0.166 σ=1.318 (mean 2.019) | LogNormal m=0.108 σ=0.693 (mean 1.416) |
//! | sessions per client | Geometric, P_off = 0.398 | same |
//! | ON (share of D) | LogNormal m=0.823 σ=1.459 in percent of D | Weibull F(x) = 1 − exp(−2.032 x^0.233), x a fraction of D |
//! | OFF (share of D) | Exponential λ=0.054 per percent of D (mean 18.5% of D) | same |
//!
//! ON is capped at D (a session cannot outlast the whole transmission it belongs to).
//!
//! # The generator
//!
//! The paper's session inter-arrival time is measured between *any* two consecutive session
//! starts, new or returning client alike. So the generator draws the start times first and hands
//! them out to clients afterwards, which keeps every marginal of the model:
//!
//! 1. Session start *slots* come from a LogNormal renewal process starting at 0 (the first slot
//!    is at the first inter-arrival time).
//! 2. The slots are walked in time order with a min-heap of returning clients keyed by the time
//!    they are ready (end of their previous session + OFF). At each slot, the earliest ready
//!    client takes it if it is ready by then; otherwise, if the slot is before D and the client
//!    limit is not reached, a new client arrives and takes it; otherwise the slot stays empty.
//! 3. Each session draws its ON time; its end is start + ON, not clipped to D. At the end the
//!    client goes OFF with probability 0.398 (drawing its OFF time and joining the heap) or
//!    leaves.
//! 4. New clients arrive only at slots before D, but the sessions of returning clients are kept
//!    even when they start at or after D: slots keep coming until the heap is empty. Cutting
//!    them at D would make single-session clients look more common and OFF periods shorter
//!    than the model says. A swarm runs only the sessions that start before D and stops
//!    everything at D; [`ScheduleStats::sessions_from_d`] says how many lie beyond.
//!
//! Two consequences worth knowing: a returning client's realised OFF time is its drawn OFF
//! rounded up to the next free slot (a few seconds on top of minutes), and slots before D are
//! never empty unless `clients` is reached, so the inter-arrival times of sessions that start
//! before D follow the LogNormal exactly.
//!
//! # Time scale
//!
//! `time_scale` F ≥ 1 samples a transmission of D×F and divides every time by F: `D = 10 min,
//! F = 10` plays a 100-minute transmission in 10 minutes, with arrivals F times as fast (mean
//! inter-arrival 1.416 s / 10 for the event preset) and ON and OFF the same shares of D.
//!
//! # Files
//!
//! A schedule is a CSV file with the header `client,session,start,end` (seconds from the start
//! of the run, sorted by start); clients and sessions are numbered from 0 in order of first
//! appearance. [`Schedule::read_csv`] checks every line and says which one is wrong.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::io;
use std::str::FromStr;

use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Exp, LogNormal};
use rand_pcg::Pcg64Mcg;
use serde::Serialize;
pub use soplab_rundir::schedule::{CSV_HEADER, Schedule, ScheduleError, Session};

/// Probability that a client comes back (goes OFF) after a session instead of leaving for good.
pub const P_OFF: f64 = 0.398;

/// Rate of the Exponential OFF time, per percent of the transmission (mean 1/0.054 = 18.5%).
pub const OFF_RATE_PER_PERCENT: f64 = 0.054;

/// Which of the paper's two fitted client populations to draw from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    /// A popular live event: sessions arrive faster and last longer.
    Event,
    /// An ordinary transmission.
    NonEvent,
}

impl Preset {
    /// Both presets, for loops over the model.
    pub const ALL: [Preset; 2] = [Preset::Event, Preset::NonEvent];

    /// `(m, σ)` of the LogNormal session inter-arrival time in seconds.
    pub fn inter_arrival(self) -> (f64, f64) {
        match self {
            Preset::Event => (0.108, 0.693),
            Preset::NonEvent => (-0.166, 1.318),
        }
    }

    /// The model's mean inter-arrival time in seconds, exp(m + σ²/2).
    pub fn mean_inter_arrival_s(self) -> f64 {
        let (m, s) = self.inter_arrival();
        (m + s * s / 2.0).exp()
    }

    /// Draws one ON time as a fraction of the transmission, capped at 1.
    fn on_fraction(self, on_lognormal: &LogNormal<f64>, rng: &mut Pcg64Mcg) -> f64 {
        let x = match self {
            // The paper fits the non-event ON time in percent of the transmission.
            Preset::NonEvent => on_lognormal.sample(rng) / 100.0,
            // The event fit is F(x) = 1 − exp(−α x^β) on the fraction itself; invert it. u is
            // in [0, 1), so 1 − u is in (0, 1] and the logarithm is finite.
            Preset::Event => {
                let (alpha, beta) = (2.032_f64, 0.233_f64);
                let u: f64 = rng.random();
                (-(1.0 - u).ln() / alpha).powf(1.0 / beta)
            }
        };
        x.min(1.0)
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Preset::Event => "event",
            Preset::NonEvent => "non-event",
        })
    }
}

impl FromStr for Preset {
    type Err = WorkloadError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "event" => Ok(Preset::Event),
            "non-event" => Ok(Preset::NonEvent),
            other => Err(WorkloadError::UnknownPreset(other.to_string())),
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkloadSpec {
    pub preset: Preset,
    /// Length D of the run in seconds: new clients arrive only before D.
    pub duration_s: f64,
    /// Seed of every draw: the same spec gives the same schedule.
    pub seed: u64,
    /// At most this many clients ever arrive (returning clients still come back); `None`: no limit.
    pub clients: Option<usize>,
    /// F ≥ 1: sample a transmission of D×F and divide every time by F.
    pub time_scale: f64,
}

impl WorkloadSpec {
    /// Says what is wrong with the spec, if anything ([`ScheduleModel::generate`] panics on it).
    pub fn check(&self) -> Result<(), WorkloadError> {
        if !(self.duration_s.is_finite() && self.duration_s >= 0.0) {
            return Err(WorkloadError::Spec(format!(
                "the duration must be a finite number of seconds >= 0, not {}",
                self.duration_s
            )));
        }
        if !(self.time_scale.is_finite() && self.time_scale >= 1.0) {
            return Err(WorkloadError::Spec(format!(
                "the time scale must be a number >= 1 (1 plays the transmission in real time), not {}",
                self.time_scale
            )));
        }
        Ok(())
    }
}

/// What a schedule looks like against the model, over a run of length `duration_s`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleStats {
    /// The D the statistics were taken for.
    pub duration_s: f64,
    pub sessions: usize,
    pub clients: usize,
    /// Mean gap between consecutive session starts before D (`None` with fewer than 2).
    pub mean_inter_arrival_s: Option<f64>,
    /// Share of clients with exactly one session (the model: 1 − P_off = 0.602).
    pub single_session_share: Option<f64>,
    /// Mean gap between the end of a client's session and the start of its next, over all such
    /// pairs, including those past D.
    pub mean_off_s: Option<f64>,
    /// `mean_off_s` in percent of D (the model: 18.5).
    pub mean_off_pct_of_d: Option<f64>,
    /// Mean session length over all sessions, including those past D.
    pub mean_on_s: Option<f64>,
    /// `mean_on_s` in percent of D.
    pub mean_on_pct_of_d: Option<f64>,
    /// Sessions that start at or after D: kept for the model, never played.
    pub sessions_from_d: usize,
    /// Most clients in a session at once before D.
    pub peak_concurrent: usize,
}

/// Why a workload could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("unknown workload preset `{0}`; use `event` or `non-event`")]
    UnknownPreset(String),
    #[error("`{0}` is neither a workload preset (`event`, `non-event`) nor an existing CSV file")]
    NotPresetOrFile(String),
    #[error("{0}")]
    Spec(String),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
}

/// A returning client in the heap, ordered by the time it is ready (then by id, so that ties
/// are broken the same way on every run).
#[derive(Debug, Clone, Copy)]
struct Ready {
    at: f64,
    client: u32,
}

impl PartialEq for Ready {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ready {}

impl PartialOrd for Ready {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ready {
    fn cmp(&self, other: &Self) -> Ordering {
        self.at.total_cmp(&other.at).then(self.client.cmp(&other.client))
    }
}

/// The client-behaviour model's side of a [`Schedule`] (the schedule itself is a run-directory
/// format, in `soplab-rundir`).
pub trait ScheduleModel {
    /// Draws a schedule with the slot algorithm described in the [module docs](self).
    ///
    /// # Panics
    ///
    /// If [`WorkloadSpec::check`] fails.
    fn generate(spec: &WorkloadSpec) -> Schedule;

    /// How the schedule compares with the model over a run of `d` seconds.
    fn stats(&self, d: f64) -> ScheduleStats;
}

impl ScheduleModel for Schedule {
    /// Draws a schedule with the slot algorithm described in the [module docs](self).
    ///
    /// # Panics
    ///
    /// If [`WorkloadSpec::check`] fails.
    fn generate(spec: &WorkloadSpec) -> Schedule {
        if let Err(e) = spec.check() {
            panic!("invalid workload spec: {e}");
        }
        // The transmission actually sampled; compressed back to D at the end.
        let d = spec.duration_s * spec.time_scale;
        let limit = spec.clients.unwrap_or(usize::MAX);
        let mut rng = Pcg64Mcg::seed_from_u64(spec.seed);
        let (m, s) = spec.preset.inter_arrival();
        let gap = LogNormal::new(m, s).expect("the inter-arrival parameters are valid");
        let on_lognormal = LogNormal::new(0.823, 1.459).expect("the ON parameters are valid");
        let off_pct = Exp::new(OFF_RATE_PER_PERCENT).expect("the OFF rate is valid");

        let mut returning: BinaryHeap<Reverse<Ready>> = BinaryHeap::new();
        // Sessions each client has had so far; its length is the number of clients.
        let mut sessions_of: Vec<u32> = Vec::new();
        let mut sessions = Vec::new();
        let mut t = 0.0;
        loop {
            t += gap.sample(&mut rng);
            let client = match returning.peek() {
                Some(&Reverse(r)) if r.at <= t => {
                    returning.pop();
                    r.client
                }
                _ if t < d && sessions_of.len() < limit => {
                    sessions_of.push(0);
                    u32::try_from(sessions_of.len() - 1).expect("fewer than 2^32 clients")
                }
                // No new client may come any more: stop once nobody is left to return.
                _ if returning.is_empty() => break,
                _ => continue,
            };
            let session = sessions_of[client as usize];
            sessions_of[client as usize] += 1;
            let end = t + spec.preset.on_fraction(&on_lognormal, &mut rng) * d;
            if rng.random_bool(P_OFF) {
                let off = off_pct.sample(&mut rng) / 100.0 * d;
                returning.push(Reverse(Ready { at: end + off, client }));
            }
            sessions.push(Session { client, session, start: t, end });
        }
        Schedule { sessions }.compress(spec.time_scale)
    }

    /// How the schedule compares with the model over a run of `d` seconds.
    fn stats(&self, d: f64) -> ScheduleStats {
        let mean = |xs: &[f64]| (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64);
        let pct = |x: Option<f64>| x.map(|x| 100.0 * x / d);

        let mut starts: Vec<f64> = self.sessions.iter().map(|s| s.start).filter(|&t| t < d).collect();
        starts.sort_by(f64::total_cmp);
        let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();

        // Each client's sessions in time order, for its session count and its OFF gaps.
        let mut by_client: HashMap<u32, Vec<&Session>> = HashMap::new();
        for s in &self.sessions {
            by_client.entry(s.client).or_default().push(s);
        }
        let mut offs = Vec::new();
        for list in by_client.values_mut() {
            list.sort_by(|a, b| a.start.total_cmp(&b.start));
            offs.extend(list.windows(2).map(|w| w[1].start - w[0].end));
        }
        let single = by_client.values().filter(|l| l.len() == 1).count();
        let ons: Vec<f64> = self.sessions.iter().map(|s| s.end - s.start).collect();

        // Concurrency only rises at a start, so its peak before D is at a start before D. At
        // equal times an end goes first: a client leaving as another joins is not an overlap.
        let mut edges: Vec<(f64, i64)> = Vec::new();
        for s in self.sessions.iter().filter(|s| s.start < d) {
            edges.push((s.start, 1));
            edges.push((s.end, -1));
        }
        edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let (mut now, mut peak) = (0i64, 0i64);
        for (_, delta) in edges {
            now += delta;
            peak = peak.max(now);
        }

        let mean_off_s = mean(&offs);
        let mean_on_s = mean(&ons);
        ScheduleStats {
            duration_s: d,
            sessions: self.sessions.len(),
            clients: by_client.len(),
            mean_inter_arrival_s: mean(&gaps),
            single_session_share: (!by_client.is_empty()).then(|| single as f64 / by_client.len() as f64),
            mean_off_s,
            mean_off_pct_of_d: pct(mean_off_s),
            mean_on_s,
            mean_on_pct_of_d: pct(mean_on_s),
            sessions_from_d: self.sessions.iter().filter(|s| s.start >= d).count(),
            peak_concurrent: peak as usize,
        }
    }
}

/// What `soplab swarm --workload ARG` takes: `event` or `non-event` generates that preset with
/// the other arguments; anything else is read as a CSV file, as is (its times are already the
/// played times, so `time_scale` and `clients` do not apply to it).
pub fn preset_or_file(
    arg: &str,
    duration_s: f64,
    seed: u64,
    clients: Option<usize>,
    time_scale: f64,
) -> Result<Schedule, WorkloadError> {
    if let Ok(preset) = arg.parse::<Preset>() {
        let spec = WorkloadSpec { preset, duration_s, seed, clients, time_scale };
        spec.check()?;
        return Ok(Schedule::generate(&spec));
    }
    match Schedule::read_csv(arg) {
        Err(ScheduleError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            Err(WorkloadError::NotPresetOrFile(arg.to_string()))
        }
        other => Ok(other?),
    }
}

/// The preset `arg` names, as run.json records it (`None` for a schedule file).
pub fn preset_name(arg: &str) -> Option<String> {
    arg.parse::<Preset>().ok().map(|p| p.to_string())
}

/// Parses `--time-scale`: a number >= 1.
pub fn parse_time_scale(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 1.0 => Ok(f),
        _ => Err(format!("`{text}` is not a time scale; write a number >= 1 (10 plays a transmission of 10×D in D)")),
    }
}

impl fmt::Display for ScheduleStats {
    /// One line: the numbers to hold against the model.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let num = |x: Option<f64>, digits: usize| x.map_or("-".to_string(), |x| format!("{x:.digits$}"));
        write!(
            f,
            "{} sessions, {} clients; mean inter-arrival {} s; single-session clients {}%; \
             mean OFF {} s ({}% of D); mean ON {} s ({}% of D); peak {} concurrent; \
             {} sessions start at/after D (kept for the model, not played)",
            self.sessions,
            self.clients,
            num(self.mean_inter_arrival_s, 3),
            num(self.single_session_share.map(|x| 100.0 * x), 1),
            num(self.mean_off_s, 1),
            num(self.mean_off_pct_of_d, 1),
            num(self.mean_on_s, 1),
            num(self.mean_on_pct_of_d, 1),
            self.peak_concurrent,
            self.sessions_from_d,
        )
    }
}
