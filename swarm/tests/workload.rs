//! The churn workload generator against the model of Borges et al. (2012): the measured
//! inter-arrival, sessions-per-client, OFF and ON statistics of long schedules are held against
//! the model's own expectations (computed here from the published parameters, not from the
//! generator), and the shape of each component by a Kolmogorov–Smirnov test, plus determinism, the CSV format and its error messages, compression, the client
//! limit and the `soplab workload` command.

use std::path::Path;
use std::process::Command;

use soplab::workload::{
    Preset, Schedule, ScheduleModel, ScheduleStats, Session, WorkloadError, WorkloadSpec, preset_or_file,
};
use soplab_analyze::fit::{Params, ks_p_value, ks_statistic_with_atoms};
use soplab_testkit::TempDir;

/// The published parameters (seed-facts.md, "Client behaviour model").
const P_OFF: f64 = 0.398;
const OFF_RATE_PER_PERCENT: f64 = 0.054;

fn inter_arrival_params(p: Preset) -> (f64, f64) {
    match p {
        Preset::NonEvent => (-0.166, 1.318),
        Preset::Event => (0.108, 0.693),
    }
}

fn spec(preset: Preset, duration_s: f64, seed: u64) -> WorkloadSpec {
    WorkloadSpec { preset, duration_s, seed, clients: None, time_scale: 1.0 }
}

/// Simpson's rule over [a, b] with n (even) intervals.
fn simpson(f: impl Fn(f64) -> f64, a: f64, b: f64, n: usize) -> f64 {
    let h = (b - a) / n as f64;
    let inner: f64 = (1..n).map(|i| f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 }).sum();
    (f(a) + f(b) + inner) * h / 3.0
}

/// The model's mean ON time in percent of D once capped at 100%, computed numerically: the cap
/// is part of the model here, and for the event Weibull it moves the mean a lot (P(ON > 90%)
/// is about 14%), so the uncapped mean would be the wrong yardstick.
fn capped_on_mean_pct(p: Preset) -> f64 {
    match p {
        // E[min(exp(m + σZ), 100)] with Z standard normal.
        Preset::NonEvent => {
            let (m, s) = (0.823_f64, 1.459_f64);
            let phi = |z: f64| (-z * z / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
            simpson(|z| phi(z) * (m + s * z).exp().min(100.0), -12.0, 12.0, 200_000)
        }
        // E[min(X, 1)] = ∫₀¹ P(X > x) dx = ∫₀¹ exp(−α x^β) dx.
        Preset::Event => {
            let (alpha, beta) = (2.032_f64, 0.233_f64);
            100.0 * simpson(|x| (-alpha * x.powf(beta)).exp(), 0.0, 1.0, 200_000)
        }
    }
}

fn assert_within(what: &str, measured: Option<f64>, model: f64, tolerance: f64) {
    let measured = measured.unwrap_or_else(|| panic!("{what}: nothing measured"));
    let off = (measured - model).abs() / model;
    eprintln!("  {what}: measured {measured:.4}, model {model:.4} ({:+.1}%)", 100.0 * (measured - model) / model);
    assert!(off <= tolerance, "{what}: measured {measured}, model {model}: off by {:.1}%", 100.0 * off);
}

/// Sorted by start, end >= start, ON <= D, clients and sessions numbered from 0 in order of
/// first appearance, one session of a client at a time.
fn assert_well_formed(s: &Schedule, sampled_d: f64) {
    let mut next_client = 0;
    let mut sessions_of: Vec<u32> = Vec::new();
    let mut last_end: Vec<f64> = Vec::new();
    for (i, x) in s.sessions.iter().enumerate() {
        if i > 0 {
            assert!(s.sessions[i - 1].start <= x.start, "not sorted by start at {i}");
        }
        assert!(x.start >= 0.0 && x.end >= x.start, "bad times {x:?}");
        assert!(x.end - x.start <= sampled_d * (1.0 + 1e-12), "ON longer than D: {x:?}");
        if x.client == next_client {
            next_client += 1;
            sessions_of.push(0);
            last_end.push(f64::NEG_INFINITY);
        }
        assert!(x.client < next_client, "client {} appears before client {next_client}", x.client);
        let c = x.client as usize;
        assert_eq!(x.session, sessions_of[c], "session numbers of client {c}");
        assert!(x.start >= last_end[c], "client {c} overlaps itself: {x:?}");
        sessions_of[c] += 1;
        last_end[c] = x.end;
    }
}

fn check_model(preset: Preset) -> ScheduleStats {
    let d = 25_000.0;
    let schedule = Schedule::generate(&spec(preset, d, 7));
    assert_well_formed(&schedule, d);
    let st = schedule.stats(d);
    eprintln!("{preset}, D = {d} s: {st}");
    assert!(st.sessions >= 10_000, "only {} sessions", st.sessions);

    let (m, s) = inter_arrival_params(preset);
    assert_within("mean inter-arrival (s)", st.mean_inter_arrival_s, (m + s * s / 2.0).exp(), 0.10);
    // 3%, not 10%: the sampling error is about 0.5% here, and a 10% band would let P_off = 0.45
    // (share 0.55) pass.
    assert_within("single-session share", st.single_session_share, 1.0 - P_OFF, 0.03);
    assert_within("mean OFF (% of D)", st.mean_off_pct_of_d, 1.0 / OFF_RATE_PER_PERCENT, 0.10);
    assert_within("mean ON (% of D, capped)", st.mean_on_pct_of_d, capped_on_mean_pct(preset), 0.10);

    // New clients come only before D, so every client's first session starts before D.
    assert!(schedule.sessions.iter().filter(|x| x.session == 0).all(|x| x.start < d));
    assert!(st.sessions_from_d > 0, "no returning session past D: the schedule was cut at D");
    st
}

#[test]
fn event_preset_follows_the_model() {
    check_model(Preset::Event);
}

#[test]
fn non_event_preset_follows_the_model() {
    check_model(Preset::NonEvent);
}

/// The components of a long schedule as realised: session inter-arrival times (starts before
/// D), sessions per client, ON and OFF in percent of D.
///
/// All but OFF are the generator's draws themselves: every slot before D is taken when there is
/// no client limit, so consecutive starts before D are consecutive LogNormal draws; every
/// client keeps all its sessions (returning ones past D too), so its count is its full
/// Geometric; end − start is the drawn ON (capped at D). A realised OFF is the drawn OFF rounded
/// up to the next free slot: on average about one inter-arrival time (1.4 s to 2 s) on top of a
/// mean of 18.5% of D (6,660 s here), which moves the CDF by at most about λ × 2 s ≈ 3 × 10⁻⁴,
/// a hundredth of the KS critical value at these sample sizes.
struct Components {
    inter_arrival_s: Vec<f64>,
    sessions_per_client: Vec<f64>,
    on_pct: Vec<f64>,
    off_pct: Vec<f64>,
}

fn components(preset: Preset, d: f64, seed: u64) -> Components {
    let schedule = Schedule::generate(&spec(preset, d, seed));
    let mut starts: Vec<f64> = schedule.sessions.iter().map(|s| s.start).filter(|&t| t < d).collect();
    starts.sort_by(f64::total_cmp);
    let mut by_client: Vec<Vec<&Session>> = Vec::new();
    for s in &schedule.sessions {
        by_client.resize_with(by_client.len().max(s.client as usize + 1), Vec::new);
        by_client[s.client as usize].push(s);
    }
    // start + ON − start loses a few ulps: a capped ON comes back as 100% ± 1e-12.
    let pct = |seconds: f64| {
        let p = 100.0 * seconds / d;
        if (p - 100.0).abs() < 1e-6 { 100.0 } else { p }
    };
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v
    };
    Components {
        inter_arrival_s: sorted(starts.windows(2).map(|w| w[1] - w[0]).collect()),
        sessions_per_client: sorted(by_client.iter().map(|l| l.len() as f64).collect()),
        on_pct: sorted(schedule.sessions.iter().map(|s| pct(s.end - s.start)).collect()),
        off_pct: sorted(by_client.iter().flat_map(|l| l.windows(2).map(|w| pct(w[1].start - w[0].end))).collect()),
    }
}

/// KS p-value of a sorted sample against `model` applied to x / `unit`, capped at `cap` (an
/// atom there holding the mass above it).
fn ks_p(sorted: &[f64], model: Params, unit: f64, cap: f64) -> f64 {
    let cdf = |x: f64| if x >= cap { 1.0 } else { model.cdf(x / unit) };
    let below = |x: f64| if x > cap { 1.0 } else { model.cdf_below(x / unit) };
    ks_p_value(ks_statistic_with_atoms(sorted, cdf, below), sorted.len())
}

/// Each component passes a KS test against its model (p > 0.001), and fails it (p < 0.001)
/// against the same model with one parameter 10% off, which shows the test has the power to
/// see a wrong shape at this sample size.
fn check_shapes(preset: Preset) {
    let d = 36_000.0;
    let c = components(preset, d, 11);
    let (m, s) = inter_arrival_params(preset);
    // ON: the non-event LogNormal is in percent of D, the event Weibull on the fraction.
    let (on, on_wrong, on_unit) = match preset {
        Preset::NonEvent => {
            (Params::LogNormal { m: 0.823, sigma: 1.459 }, Params::LogNormal { m: 0.823, sigma: 1.1 * 1.459 }, 1.0)
        }
        Preset::Event => {
            (Params::Weibull { alpha: 2.032, beta: 0.233 }, Params::Weibull { alpha: 2.032, beta: 1.1 * 0.233 }, 100.0)
        }
    };
    let lambda = OFF_RATE_PER_PERCENT;
    let cases = [
        (
            "inter-arrival (s)",
            &c.inter_arrival_s,
            Params::LogNormal { m, sigma: s },
            Params::LogNormal { m, sigma: 1.1 * s },
            1.0,
            f64::INFINITY,
        ),
        (
            "sessions per client",
            &c.sessions_per_client,
            Params::Geometric { p_off: P_OFF },
            Params::Geometric { p_off: 1.1 * P_OFF },
            1.0,
            f64::INFINITY,
        ),
        ("ON (% of D)", &c.on_pct, on, on_wrong, on_unit, 100.0),
        (
            "OFF (% of D)",
            &c.off_pct,
            Params::Exponential { lambda },
            Params::Exponential { lambda: 1.1 * lambda },
            1.0,
            f64::INFINITY,
        ),
    ];
    for (what, sample, model, wrong, unit, cap) in cases {
        let (p, p_wrong) = (ks_p(sample, model, unit, cap), ks_p(sample, wrong, unit, cap));
        eprintln!("  {preset} {what}: n = {}, KS p = {p:.3}, with a parameter 10% off p = {p_wrong:.2e}", sample.len());
        assert!(p > 1e-3, "{preset} {what}: the KS test rejects the model (p = {p})");
        assert!(p_wrong < 1e-3, "{preset} {what}: the KS test cannot tell a parameter 10% off (p = {p_wrong})");
    }
}

#[test]
fn event_components_have_the_models_shape() {
    check_shapes(Preset::Event);
}

#[test]
fn non_event_components_have_the_models_shape() {
    check_shapes(Preset::NonEvent);
}

#[test]
fn the_numerical_capped_on_means_agree_with_the_seed_facts() {
    // seed-facts.md: the event Weibull capped at 1 has mean 20.4%.
    assert!((capped_on_mean_pct(Preset::Event) - 20.4).abs() < 0.1, "{}", capped_on_mean_pct(Preset::Event));
    // The non-event LogNormal has mean exp(m + σ²/2) = 6.60% uncapped. Capped at c = 100% it is
    // exp(m + σ²/2) Φ((ln c − m − σ²)/σ) + c (1 − Φ((ln c − m)/σ)) = 6.602 Φ(1.133) + 100 (1 − Φ(2.592))
    // = 6.602 × 0.8714 + 100 × 0.00477 = 6.23% (Φ from a normal table): the heavy tail beyond
    // 100% carries about 6% of the mean.
    let uncapped = (0.823_f64 + 1.459_f64 * 1.459 / 2.0).exp();
    let capped = capped_on_mean_pct(Preset::NonEvent);
    assert!((uncapped - 6.60).abs() < 0.01, "{uncapped}");
    assert!((capped - 6.23).abs() < 0.01, "{capped}");
}

#[test]
fn stats_of_a_hand_made_schedule() {
    let s = |client, session, start, end| Session { client, session, start, end };
    let schedule = Schedule { sessions: vec![s(0, 0, 0.0, 10.0), s(1, 0, 5.0, 20.0), s(0, 1, 30.0, 40.0)] };
    let st = schedule.stats(35.0);
    assert_eq!((st.sessions, st.clients, st.sessions_from_d, st.peak_concurrent), (3, 2, 0, 2));
    assert_eq!(st.mean_inter_arrival_s, Some(15.0));
    assert_eq!(st.single_session_share, Some(0.5));
    assert_eq!(st.mean_off_s, Some(20.0));
    assert_eq!(st.mean_on_s, Some(35.0 / 3.0));
    let st = schedule.stats(25.0);
    assert_eq!((st.sessions_from_d, st.mean_inter_arrival_s, st.mean_off_pct_of_d), (1, Some(5.0), Some(80.0)));
    // A client leaving as another joins is not an overlap.
    let touching = Schedule { sessions: vec![s(0, 0, 0.0, 10.0), s(1, 0, 10.0, 20.0)] };
    assert_eq!(touching.stats(100.0).peak_concurrent, 1);
}

#[test]
fn same_seed_same_schedule_other_seed_other_schedule() {
    for preset in Preset::ALL {
        let a = Schedule::generate(&spec(preset, 3600.0, 11));
        let b = Schedule::generate(&spec(preset, 3600.0, 11));
        let c = Schedule::generate(&spec(preset, 3600.0, 12));
        assert!(!a.sessions.is_empty());
        assert_eq!(a, b, "{preset}: same seed, different schedules");
        assert_ne!(a, c, "{preset}: different seeds, same schedule");
    }
}

#[test]
fn compress_divides_every_time() {
    let s = Schedule::generate(&spec(Preset::Event, 3600.0, 5));
    let c = s.compress(10.0);
    assert_eq!(c.sessions.len(), s.sessions.len());
    for (x, y) in s.sessions.iter().zip(&c.sessions) {
        assert_eq!((y.client, y.session), (x.client, x.session));
        assert!((y.start - x.start / 10.0).abs() < 1e-9 && (y.end - x.end / 10.0).abs() < 1e-9, "{x:?} -> {y:?}");
    }
}

#[test]
fn time_scale_samples_a_longer_transmission_and_compresses_it() {
    let scaled = Schedule::generate(&WorkloadSpec { time_scale: 10.0, ..spec(Preset::NonEvent, 600.0, 9) });
    let long = Schedule::generate(&spec(Preset::NonEvent, 6000.0, 9));
    assert_eq!(scaled, long.compress(10.0));
    // Arrivals come ten times as fast; OFF stays the same share of D.
    let (st, st_long) = (scaled.stats(600.0), long.stats(6000.0));
    let ratio = st_long.mean_inter_arrival_s.unwrap() / st.mean_inter_arrival_s.unwrap();
    assert!((ratio - 10.0).abs() < 1e-6, "{ratio}");
    assert!((st.mean_off_pct_of_d.unwrap() - st_long.mean_off_pct_of_d.unwrap()).abs() < 1e-6);
}

#[test]
fn client_limit_gives_exactly_that_many_clients() {
    for preset in Preset::ALL {
        let s = Schedule::generate(&WorkloadSpec { clients: Some(40), ..spec(preset, 3600.0, 2) });
        assert_well_formed(&s, 3600.0);
        assert_eq!(s.stats(3600.0).clients, 40, "{preset}");
        assert_eq!(s.sessions.iter().map(|x| x.client).max(), Some(39));
    }
    let none = Schedule::generate(&WorkloadSpec { clients: Some(0), ..spec(Preset::Event, 3600.0, 2) });
    assert!(none.sessions.is_empty());
}

#[test]
fn csv_roundtrip() {
    let dir = TempDir::new("workload-roundtrip");
    let s = Schedule::generate(&spec(Preset::NonEvent, 3600.0, 4));
    let path = dir.join("s.csv");
    s.write_csv(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("client,session,start,end\n"), "{}", &text[..40]);
    let back = Schedule::read_csv(&path).unwrap();
    assert_eq!(back.sessions.len(), s.sessions.len());
    for (x, y) in s.sessions.iter().zip(&back.sessions) {
        assert_eq!((y.client, y.session), (x.client, x.session));
        assert!((y.start - x.start).abs() <= 0.0005 && (y.end - x.end).abs() <= 0.0005, "{x:?} -> {y:?}");
    }
    // Rows in another order are read and sorted by start.
    let shuffled = dir.file("shuffled.csv", "client,session,start,end\n1,0,5,6\n0,0,1,2\n");
    let r = Schedule::read_csv(shuffled).unwrap();
    assert_eq!(r.sessions.iter().map(|x| x.client).collect::<Vec<_>>(), [0, 1]);
}

fn read_error(dir: &TempDir, name: &str, contents: &str) -> String {
    let p = dir.file(name, contents);
    match Schedule::read_csv(&p) {
        Ok(s) => panic!("{name}: accepted {s:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn read_csv_says_which_line_is_wrong() {
    let dir = TempDir::new("workload-bad");
    let good = "client,session,start,end\n0,0,0.5,10\n";
    let cases: [(&str, String, u64, &str); 9] = [
        ("header", "client,start,session,end\n0,0,1,2\n".into(), 1, "header"),
        ("empty", String::new(), 1, "empty"),
        ("negative", format!("{good}1,0,-3,4\n"), 3, ">= 0"),
        ("backwards", format!("{good}1,0,8,4\n"), 3, "before start"),
        ("word", format!("{good}1,0,2,3\n2,0,4,soon\n"), 4, "not a number"),
        ("fields", format!("{good}1,0,2\n"), 3, "4"),
        ("overlap", format!("{good}0,1,9,12\n"), 3, "one session at a time"),
        // Times that would overflow a clock once in microseconds past an epoch.
        ("huge", format!("{good}1,0,1,1e30\n"), 3, "at most 100 years"),
        ("umax", format!("{good}1,0,18446744073709551615,18446744073709551615\n"), 3, "at most 100 years"),
    ];
    for (name, contents, line, word) in cases {
        let msg = read_error(&dir, &format!("{name}.csv"), &contents);
        eprintln!("{name}: {msg}");
        assert!(msg.contains(&format!("{name}.csv:{line}: ")), "{name}: no line {line} in `{msg}`");
        assert!(msg.contains(word), "{name}: `{word}` not in `{msg}`");
    }
}

#[test]
fn preset_or_file_generates_presets_and_reads_files() {
    let dir = TempDir::new("workload-arg");
    let generated = preset_or_file("event", 600.0, 3, None, 1.0).unwrap();
    assert_eq!(generated, Schedule::generate(&spec(Preset::Event, 600.0, 3)));
    let path = dir.file("w.csv", "client,session,start,end\n0,0,1,2\n");
    let read = preset_or_file(path.to_str().unwrap(), 600.0, 3, None, 1.0).unwrap();
    assert_eq!(read.sessions, [Session { client: 0, session: 0, start: 1.0, end: 2.0 }]);
    assert!(matches!(preset_or_file("evnt", 600.0, 3, None, 1.0), Err(WorkloadError::NotPresetOrFile(_))));
    assert!(matches!(preset_or_file("event", 600.0, 3, None, 0.5), Err(WorkloadError::Spec(_))));
    assert_eq!("non-event".parse::<Preset>().unwrap().to_string(), "non-event");
}

#[test]
fn the_command_writes_a_readable_schedule() {
    let dir = TempDir::new("workload-cli");
    let out: &Path = &dir.join("sub").join("tmp.csv");
    let run = Command::new(env!("CARGO_BIN_EXE_soplab"))
        .args(["workload", "--preset", "event", "--duration", "10m", "--seed", "3", "--out"])
        .arg(out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "soplab workload failed: {}{stdout}", String::from_utf8_lossy(&run.stderr));
    eprintln!("{stdout}");
    let s = Schedule::read_csv(out).unwrap();
    assert!(!s.sessions.is_empty());
    let st = s.stats(600.0);
    assert!(stdout.contains(&format!("{} sessions, {} clients", st.sessions, st.clients)), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
}
