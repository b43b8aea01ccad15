//! The client layer (Borges et al.) on hand-made captures whose sessions are known: a source
//! S feeding B all along, and clients exchanging data packets with B (and C with D) once a
//! second in known intervals. Times in seconds from the first datagram, slots of 0.1 s.
//!
//! - A <-> B in [10, 400] and [700, 1000]: two sessions, 299.5 s apart;
//! - C <-> B in [100, 300]; C <-> D in [200, 250];
//! - D <-> B in [200, 260] and [290, 500]: one session (29.5 s of silence < 150 s).

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;

use common::*;
use soplab_analyze::analysis::{self, AnalyzeOptions};
use soplab_analyze::clients::{ClientOptions, Clients};

const T0: i64 = 1_700_000_000_000_000;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}
fn s_() -> SocketAddr {
    addr("198.18.0.2:3901")
}
fn a() -> SocketAddr {
    addr("198.18.1.1:3908")
}
fn b() -> SocketAddr {
    addr("198.18.1.2:3908")
}
fn c() -> SocketAddr {
    addr("198.18.1.3:3908")
}
fn d() -> SocketAddr {
    addr("198.18.1.4:3908")
}

/// (time µs, from, to, payload)
type Dgram = (i64, SocketAddr, SocketAddr, Vec<u8>);

/// Data both ways once a second for each k in `ks`: x -> y at k + `at` s, y -> x half a
/// second later; and a request x -> y.
fn exchange(out: &mut Vec<Dgram>, x: SocketAddr, y: SocketAddr, ks: impl Iterator<Item = i64>, at_ms: i64) {
    for k in ks {
        let t = T0 + k * 1_000_000 + at_ms * 1000;
        out.push((t, x, y, video(k as u32, 1, 1)[0].clone()));
        out.push((t + 500_000, y, x, video(k as u32, 2, 1)[0].clone()));
        out.push((t - 30_000, x, y, request(k as u32, 3)));
    }
}

fn scenario() -> Vec<Dgram> {
    let mut v = Vec::new();
    for k in 0..=1000 {
        v.push((T0 + k * 1_000_000, s_(), b(), video(k as u32, 9, 1)[0].clone()));
        v.push((T0 + k * 1_000_000 + 10_000, b(), s_(), request(k as u32, 9)));
    }
    exchange(&mut v, a(), b(), (10..=400).chain(700..=1000), 50);
    exchange(&mut v, c(), b(), 100..=300, 50);
    exchange(&mut v, d(), b(), (200..=260).chain(290..=500), 50);
    exchange(&mut v, c(), d(), 200..=250, 250);
    v.sort_by_key(|x| x.0);
    v
}

fn pcap_of(dgrams: &[Dgram]) -> Vec<u8> {
    let recs: Vec<Rec> = dgrams.iter().map(|(t, s, d, p)| Rec::new(*t, frame(1, &ip_udp(*s, *d, p)))).collect();
    pcap(1, &recs, false, false)
}

fn opts(clients: ClientOptions) -> AnalyzeOptions {
    AnalyzeOptions { progress: false, clients, ..AnalyzeOptions::default() }
}

fn analyse(files: &[PathBuf], vantage: &[Option<SocketAddr>], clients: ClientOptions) -> Clients {
    let o = opts(clients);
    let ing = analysis::ingest(files, &o, vantage).unwrap();
    analysis::report(&ing, &o).unwrap().clients
}

fn bridge(dir: &TempDir, clients: ClientOptions) -> Clients {
    let p = dir.file("bridge.pcap", &pcap_of(&scenario()));
    analyse(&[p], &[None], clients)
}

fn close(x: f64, want: f64) -> bool {
    (x - want).abs() < 1e-9
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

fn assert_all_close(got: &[f64], want: &[f64]) {
    let (g, w) = (sorted(got), sorted(want));
    assert_eq!(g.len(), w.len(), "{g:?} against {w:?}");
    for (x, y) in g.iter().zip(&w) {
        assert!((x - y).abs() < 1e-6, "{g:?} against {w:?}");
    }
}

/// Partners of each client per 1 s snapshot k (0..=999: whole snapshots of the trace).
fn partners_at(k: i64) -> [u32; 4] {
    let a = (10..=400).contains(&k) || (700..=1000).contains(&k);
    let c = (100..=300).contains(&k);
    let d = (200..=260).contains(&k) || (290..=500).contains(&k);
    let cd = (200..=250).contains(&k);
    [u32::from(a), u32::from(a) + u32::from(c) + u32::from(d), 1 + u32::from(cd), u32::from(d) + u32::from(cd)]
}

#[test]
fn sessions_on_off_and_inter_arrivals_of_a_bridge_capture() {
    let dir = TempDir::new("clients-bridge");
    let c = bridge(&dir, ClientOptions::default());
    assert_eq!(c.view, "full");
    assert_eq!((c.clients, c.characterized_clients), (4, 4));
    assert_eq!(c.excluded, vec!["198.18.0.2".to_string()], "the source is no client");
    // A twice, B, C, D once: starts at 0 (B), 10 (A), 100 (C), 200 (D), 700 (A).
    assert_eq!(c.sessions, 5);
    assert_all_close(&c.samples.inter_arrival_s, &[10.0, 90.0, 100.0, 500.0]);
    assert_all_close(&c.samples.sessions_per_client, &[2.0, 1.0, 1.0, 1.0]);
    assert!(close(c.sessions_per_client.mean, 1.25));
    // ON: from the start of the first active slot to the end of the last, clipped to the trace
    // (1000.55 s long); OFF: the silent slots between A's sessions (400.6 s .. 700.0 s).
    let len = 1000.55;
    assert!(close(c.transmission_length_s, len));
    let pct = |s: f64| s / len * 100.0;
    assert_all_close(&c.samples.on_percent, &[pct(390.6), pct(300.55), pct(1000.55), pct(200.6), pct(300.6)]);
    assert_all_close(&c.samples.off_percent, &[pct(299.4)]);
    assert_eq!(c.sessions_at_trace_start, 3, "B, A and C start within 150 s of the start");
    assert_eq!(c.sessions_at_trace_end, 2);
    // Inter-activity: A's 299.5 s and D's 29.5 s of silence are the only gaps of 5 s or more.
    assert_all_close(&c.samples.inter_activity_s, &[299.5, 29.5]);
    assert!(c.inter_activity.under_5s_share > 0.99 && c.inter_activity.gaps > 1000);
    assert_eq!(c.inter_activity.knee_s, None, "two gaps have no knee");
    assert_eq!((c.session_gap_s, c.session_gap_capture_s, c.time_scale), (150.0, 150.0, 1.0));
}

#[test]
fn partners_and_partnerships_of_a_bridge_capture() {
    let dir = TempDir::new("clients-partners");
    let c = bridge(&dir, ClientOptions::default());
    // Per snapshot of each client's ON time (zeros included: D in 261..=289).
    let on: [&[(i64, i64)]; 4] = [&[(10, 400), (700, 999)], &[(0, 999)], &[(100, 300)], &[(200, 500)]];
    let mut want = Vec::new();
    for (i, ranges) in on.iter().enumerate() {
        for &(lo, hi) in *ranges {
            want.extend((lo..=hi).map(|k| f64::from(partners_at(k)[i])));
        }
    }
    assert_eq!(c.partners_snapshot_s, 1.0);
    assert_all_close(&c.samples.partners, &want);
    // Partnerships over the remaining ON time at their first slot: A-B, B-A and the ends of
    // C's and D's sessions are whole; B's with C and D and the C-D one are not.
    assert_all_close(
        &c.samples.partnership_fraction,
        &[1.0, 1.0, 1.0, 2006.0 / 9006.0, 3006.0 / 8006.0, 1.0, 506.0 / 1004.0, 1.0, 506.0 / 3004.0],
    );
    let coverage = &c.coverage;
    assert!(coverage.rows.is_empty() && coverage.note.as_deref().is_some_and(|n| n.contains("per-peer captures")));
    assert!(c.overlap.rows.is_empty());
    // Beside the paper's values.
    let row = c.paper_comparison.iter().find(|r| r.measurement == "sessions_one_share").unwrap();
    assert_eq!((row.paper_event, row.measured, row.paper_preset), (0.54, Some(0.75), None));
}

/// Compressed ten times: the gap is 15 s of capture time, so D's 29.5 s silence splits it, and
/// inter-arrival times are model seconds (ten times the captured ones).
#[test]
fn time_scale_divides_the_gap_and_multiplies_the_times() {
    let dir = TempDir::new("clients-scale");
    let c = bridge(&dir, ClientOptions { time_scale: 10.0, ..ClientOptions::default() });
    assert!(close(c.session_gap_capture_s, 15.0));
    assert_eq!((c.time_scale, c.sessions), (10.0, 6));
    assert_all_close(&c.samples.inter_arrival_s, &[100.0, 900.0, 1000.0, 900.0, 4100.0]);
    assert!(c.samples.inter_activity_s.contains(&295.0), "D's gap in model seconds");
    assert!(close(c.resolution_model_s, 1.0));
    // ON and OFF are shares of the transmission: the same at any scale.
    let plain = bridge(&TempDir::new("clients-scale-1"), ClientOptions::default());
    assert!(c.samples.on_percent.contains(&plain.samples.on_percent[0]));
}

/// Captures at B and C only: the others are the clients, B and C the crawlers.
#[test]
fn vantage_captures_give_the_coverage_and_overlap_tables() {
    let dir = TempDir::new("clients-vantage");
    let all = scenario();
    let at = |v: SocketAddr| pcap_of(&all.iter().filter(|x| x.1 == v || x.2 == v).cloned().collect::<Vec<_>>());
    let files = [dir.file("peer-b.pcap", &at(b())), dir.file("peer-c.pcap", &at(c()))];
    let cl = analyse(&files, &[Some(b()), Some(c())], ClientOptions::default());
    assert_eq!(cl.view, "vantage");
    assert_eq!(sorted_strings(&cl.vantage), vec!["198.18.1.2", "198.18.1.3"]);
    assert_eq!((cl.clients, cl.characterized_clients, cl.sessions), (4, 2, 3));
    assert_all_close(&cl.samples.inter_arrival_s, &[190.0, 500.0]);
    assert_all_close(&cl.samples.partnership_fraction, &[1.0, 1.0, 1.0, 506.0 / 3004.0]);
    // Partners are counted for the crawlers only (they see all of theirs).
    let want: Vec<f64> = (0..=999)
        .map(|k| f64::from(partners_at(k)[1]))
        .chain((100..=300).map(|k| f64::from(partners_at(k)[2])))
        .collect();
    assert_all_close(&cl.samples.partners, &want);
    // Table 1: A is seen by B in 691 snapshots, D by B in 272, by C too in 51 of them.
    let rows = &cl.coverage.rows;
    assert_eq!(rows.iter().map(|r| (r.k, r.draws)).collect::<Vec<_>>(), vec![(1, 2), (2, 1)]);
    assert!(close(rows[0].share, (1.0 + 51.0 / 963.0) / 2.0), "{}", rows[0].share);
    assert!(close(rows[1].share, 1.0));
    // Table 6: B and C both have partners in 100..=300; they share D in 200..=250, where the
    // union is {A, B, C, D}; they are partners of each other throughout.
    let o = &cl.overlap.rows;
    assert_eq!(o.len(), 1);
    assert_eq!((o[0].group_size, o[0].random.groups, o[0].random.all, o[0].partners.groups), (2, 201, true, 201));
    assert!(close(o[0].random.mean, 51.0 * 0.25 / 201.0) && close(o[0].partners.mean, o[0].random.mean));
    assert!(close(o[0].paper_random, 0.06576));
}

fn sorted_strings(v: &[String]) -> Vec<&str> {
    let mut v: Vec<&str> = v.iter().map(String::as_str).collect();
    v.sort_unstable();
    v
}

#[test]
fn degenerate_captures() {
    let dir = TempDir::new("clients-degenerate");
    // No data packet: keep-alives only.
    let ka: Vec<Dgram> = (0..100).map(|k| (T0 + k * 1_000_000, a(), b(), keepalive(k as u32))).collect();
    let c = analyse(&[dir.file("ka.pcap", &pcap_of(&ka))], &[None], ClientOptions::default());
    assert_eq!((c.clients, c.sessions, c.inter_arrival_s.samples, c.partners.samples), (0, 0, 0, 0));
    assert_eq!(c.inter_activity.knee_s, None);
    assert!(c.paper_comparison.iter().all(|r| r.measured.is_none()), "nothing measured");
    // One client fed by the source only, all along: one session of 100%, no partner.
    let fed: Vec<Dgram> = (0..=100)
        .flat_map(|k| {
            let t = T0 + k * 1_000_000;
            [(t, s_(), a(), video(k as u32, 1, 1)[0].clone()), (t + 1000, a(), s_(), request(k as u32, 1))]
        })
        .collect();
    let c = analyse(&[dir.file("fed.pcap", &pcap_of(&fed))], &[None], ClientOptions::default());
    assert_eq!((c.clients, c.sessions, c.inter_arrival_s.samples), (1, 1, 0));
    assert_all_close(&c.samples.on_percent, &[100.0]);
    assert!(c.samples.off_percent.is_empty() && c.samples.partnership_fraction.is_empty());
    assert!(c.samples.partners.iter().all(|&p| p == 0.0) && c.partners.samples == 100);
}

#[test]
fn a_given_transmission_length_scales_on_and_off() {
    let dir = TempDir::new("clients-length");
    let c = bridge(&dir, ClientOptions { transmission_length_s: Some(2001.1), ..ClientOptions::default() });
    assert_eq!(c.transmission_length_from, "option");
    assert_all_close(&c.samples.off_percent, &[299.4 / 2001.1 * 100.0]);
}

/// A run directory's run.json gives the time scale and the preset; an option wins over it.
#[test]
fn run_json_gives_the_time_scale_and_the_preset() {
    let dir = TempDir::new("clients-run");
    dir.file("run/pcap/bridge.pcap", &pcap_of(&scenario()));
    dir.file("run/run.json", br#"{"started_us": 0, "time_scale": 10, "workload_preset": "event"}"#);
    let run = dir.0.join("run");
    let done = soplab_analyze::cli::analyze_into(
        std::slice::from_ref(&run),
        &dir.0.join("out"),
        opts(ClientOptions::default()),
        false,
    )
    .unwrap();
    let c = &done.report.clients;
    assert_eq!((c.time_scale, c.time_scale_from, c.preset.as_deref()), (10.0, "run.json", Some("event")));
    assert!(close(c.session_gap_capture_s, 15.0));
    let row = c.paper_comparison.iter().find(|r| r.measurement == "on_mean_percent").unwrap();
    assert_eq!(row.paper_preset, Some(23.59));
    let asked = ClientOptions { time_scale: 2.0, time_scale_from: "option", ..ClientOptions::default() };
    let done = soplab_analyze::cli::analyze_into(&[run], &dir.0.join("out2"), opts(asked), false).unwrap();
    assert_eq!((done.report.clients.time_scale, done.report.clients.time_scale_from), (2.0, "option"));
    assert!(dir.0.join("out/clients_partners.csv").is_file());
}

fn json_of(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap()
}

/// report.json has `clients.fits.<quantity>.lse` and `.mle` with `family`, `params`, `ks` and
/// `aic`, and they are what fit.rs gives on the quantity's samples.
#[test]
fn report_json_holds_the_fits_of_every_quantity() {
    let dir = TempDir::new("clients-fits");
    let p = dir.file("bridge.pcap", &pcap_of(&scenario()));
    let out = dir.0.join("out");
    let done = soplab_analyze::cli::analyze_into(&[p], &out, opts(ClientOptions::default()), false).unwrap();
    let c = &done.report.clients;
    let json = json_of(&out);
    let fits = &json["clients"]["fits"];
    for q in ["inter_arrival_s", "on_percent", "off_percent", "partners", "partnership_fraction"] {
        assert!(fits[q]["all"].is_array(), "{q}: {fits}");
    }
    for q in ["inter_arrival_s", "on_percent", "partners", "partnership_fraction"] {
        for method in ["lse", "mle"] {
            let f = &fits[q][method];
            assert!(f["family"].is_string() && f["ks"].is_f64(), "{q}.{method}: {f}");
            let params = f["params"].as_object().unwrap();
            assert!(!params.is_empty() && params.values().all(|v| v.as_f64().is_some_and(f64::is_finite)), "{f}");
            assert!(f.get("aic").is_some(), "{f}");
        }
    }
    // One OFF time: too few to fit anything but the Exponential; a single value has no spread.
    assert_eq!(fits["off_percent"]["lse"]["family"], "exponential");
    assert_eq!(c.fits.on_percent, soplab_analyze::fit::fit_continuous(&c.samples.on_percent));
    assert_eq!(c.fits.partners, soplab_analyze::fit::fit_continuous(&c.samples.partners));
    // Sessions per client 2, 1, 1, 1: the Geometric, and P_off from its least-squares fit.
    let s = &json["clients"]["sessions_per_client"];
    assert_eq!(s["fits"]["lse"]["family"], "geometric");
    let want = soplab_analyze::fit::fit_sessions_per_client(&[2, 1, 1, 1]);
    assert_eq!(c.sessions_per_client.fits, want);
    assert_eq!(s["p_off"].as_f64(), Some(want.lse.unwrap().params.values()[0]));
    let csv = std::fs::read_to_string(out.join("clients_fits.csv")).unwrap();
    assert!(csv.starts_with("quantity,method,family,params,ks,aic,selected\n"), "{csv}");
    assert!(csv.lines().any(|l| l.starts_with("sessions_per_client,lse,geometric,p_off=")), "{csv}");
    assert!(csv.lines().any(|l| l.starts_with("partners,mle,normal,mu=") && l.ends_with(",true")), "{csv}");
}

/// Above `FIT_SAMPLES` values a quantity is fitted on evenly spaced order statistics.
#[test]
fn large_samples_are_thinned_before_fitting() {
    use soplab_analyze::clients::{ClientFits, FIT_SAMPLES, Samples};
    let n = 3 * FIT_SAMPLES + 1;
    let on: Vec<f64> = (0..n).map(|i| 1.0 + (i as f64 / n as f64) * 50.0).collect();
    let fits = ClientFits::of(&Samples { on_percent: on.clone(), ..Samples::default() });
    assert_eq!(fits.on_percent.samples, FIT_SAMPLES);
    // Ranks j (n - 1) / (FIT_SAMPLES - 1), rounded: the smallest and the largest included.
    let rank = |j: usize| (j as f64 * (n - 1) as f64 / (FIT_SAMPLES - 1) as f64).round() as usize;
    let thinned: Vec<f64> = (0..FIT_SAMPLES).map(|j| on[rank(j)]).collect();
    assert_eq!((thinned[0], thinned[FIT_SAMPLES - 1]), (on[0], on[n - 1]));
    assert_eq!(fits.on_percent, soplab_analyze::fit::fit_continuous(&thinned));
    // Empty quantities: every family skipped, and nothing that JSON cannot hold.
    assert!(fits.partners.lse.is_none() && fits.partners.all.iter().all(|f| f.skipped == Some("no samples")));
    let text = serde_json::to_string(&fits).unwrap();
    assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
}

/// The client figures (`clients_<quantity>.png` and `.svg`) are written, also when every
/// quantity has no samples.
#[cfg(feature = "plots")]
#[test]
fn client_figures_are_written_even_without_samples() {
    let dir = TempDir::new("clients-plots");
    let no_data: Vec<Dgram> = (0..50).map(|k| (T0 + k * 1_000_000, a(), b(), request(k as u32, 1))).collect();
    for (name, dgrams) in [("full", scenario()), ("empty", no_data)] {
        let p = dir.file(&format!("{name}.pcap"), &pcap_of(&dgrams));
        let out = dir.0.join(name);
        let done = soplab_analyze::cli::analyze_into(&[p], &out, opts(ClientOptions::default()), true).unwrap();
        assert_eq!(done.report.clients.samples.on_percent.is_empty(), name == "empty");
        for q in [
            "inter_activity",
            "inter_arrival_s",
            "sessions_per_client",
            "on_percent",
            "off_percent",
            "partners",
            "partnership_fraction",
        ] {
            let png = std::fs::read(out.join(format!("clients_{q}.png"))).unwrap();
            assert_eq!(&png[..4], b"\x89PNG", "{name} {q}");
            let svg = std::fs::read_to_string(out.join(format!("clients_{q}.svg"))).unwrap();
            assert!(svg.contains("<svg") && svg.contains("CDF"), "{name} {q}");
            assert_eq!(svg.contains("no samples"), name == "empty", "{name} {q}");
        }
        let svg = std::fs::read_to_string(out.join("clients_on_percent.svg")).unwrap();
        if name == "full" {
            assert!(svg.contains("least squares") && svg.contains("Borges et al., event (preset unknown"), "legend");
        }
    }
}

/// run.json's hosts marked `vantage` are the crawlers even when only a bridge captured the
/// run: the session quantities leave them out.
#[test]
fn run_json_names_the_vantage_peers_of_a_bridge_capture() {
    let dir = TempDir::new("clients-vantage");
    dir.file("run/pcap/bridge.pcap", &pcap_of(&scenario()));
    dir.file(
        "run/run.json",
        br#"{"started_us": 0, "hosts": [
            {"name": "b", "role": "peer", "address": "198.18.1.2:3908", "vantage": true},
            {"name": "a", "role": "peer", "address": "198.18.1.1:3908", "vantage": false}]}"#,
    );
    let run = dir.0.join("run");
    let analyse = |name: &str, input: &PathBuf| {
        let out = dir.0.join(name);
        soplab_analyze::cli::analyze_into(std::slice::from_ref(input), &out, opts(ClientOptions::default()), false)
            .unwrap()
            .report
            .clients
    };
    let c = analyse("out", &run);
    assert_eq!((c.view, c.vantage.clone()), ("full", vec!["198.18.1.2".to_string()]));
    // The same capture given as a file: b is one more client with sessions.
    let plain = analyse("out-file", &run.join("pcap/bridge.pcap"));
    assert!(plain.vantage.is_empty());
    assert_eq!(plain.characterized_clients, c.characterized_clients + 1);
}
