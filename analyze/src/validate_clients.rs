//! The client layer checked against ground truth: the sessions found in the captures against
//! the sessions the peers logged, and the model the run's workload was drawn from recovered
//! from the captures (docs/ANALYZE.md, Validation of the client layer).
//!
//! Sessions are compared with those the truth's own video makes by the analyzer's rule (a
//! peer's video times split where they lie more than the session gap apart): that is what a
//! perfect capture shows. How the logged sessions differ from it (sessions without video, the
//! join delay) is reported beside.
//! The model is the one `soplab workload` draws from (Borges et al.'s fits, by preset), in
//! model time: the client layer already reports model time when the run was compressed.

use std::collections::HashSet;
use std::net::IpAddr;

use serde::Serialize;

use crate::clients::Clients;
use crate::fit::{self, Family, Params};
use crate::sessions::{self, SessionMatch};
use crate::truth::Truth;

/// The client layer of a validation.
#[derive(Debug, Clone, Serialize)]
pub struct ClientValidation {
    /// Model seconds, and as applied to the captures (divided by the time scale).
    pub session_gap_s: f64,
    pub session_gap_capture_s: f64,
    pub time_scale: f64,
    /// The workload preset the run was driven by (run.json), if any.
    pub preset: Option<String>,
    /// Found sessions against those the truth's video makes by the same rule
    /// ([`sessions::truth_data_spans`]; vantage peers left out of both, as the client layer
    /// leaves them out), matched by start and end within the session gap.
    pub sessions: SessionMatch,
    /// The sessions the peers logged (vantage peers left out): how many had no video to be
    /// seen by, and the join delay, which shifts every session start a capture sees.
    pub logged: sessions::Logged,
    /// The model's parameters against what the captures give; empty without a preset.
    pub recovery: Vec<Recovery>,
    /// The played schedule against the captures, for a churned run (workload.csv).
    pub played: Option<PlayedCheck>,
}

/// One parameter of the model (or of the played schedule) and its value recovered from the
/// captures.
#[derive(Debug, Clone, Serialize)]
pub struct Recovery {
    pub key: &'static str,
    pub description: &'static str,
    /// What the model (or the played schedule) says.
    pub model: f64,
    /// `None` when the captures give no sample for it.
    pub measured: Option<f64>,
    /// measured - model.
    pub difference: Option<f64>,
    /// (measured - model) / model.
    pub relative: Option<f64>,
}

/// The client model `soplab workload` draws from, by preset: Borges et al.'s fits
/// ([`crate::paper::BORGES_FITS`], Tables 2-4; the ON time's first fit, the one the workload
/// draws from).
#[derive(Clone, Copy)]
pub struct ClientModel {
    /// LogNormal of the session inter-arrival time, seconds.
    pub inter_arrival: (f64, f64),
    pub p_off: f64,
    /// ON time in percent of the transmission, before the cap at 100%.
    pub on_percent: &'static crate::paper::BorgesFit,
    /// Rate of the Exponential OFF time, per percent of the transmission.
    pub off_rate_per_percent: f64,
}

impl ClientModel {
    /// The model of `preset` (`event` or `non-event`).
    pub fn of(preset: &str) -> Option<ClientModel> {
        if !matches!(preset, "event" | "non-event") {
            return None;
        }
        let first = |quantity| crate::paper::borges_fits(quantity, preset).into_iter().next();
        let Params::LogNormal { m, sigma } = first("inter_arrival_s")?.params else { return None };
        let Params::Geometric { p_off } = first("sessions_per_client")?.params else { return None };
        let Params::Exponential { lambda } = first("off_percent")?.params else { return None };
        Some(ClientModel {
            inter_arrival: (m, sigma),
            p_off,
            on_percent: first("on_percent")?,
            off_rate_per_percent: lambda,
        })
    }

    /// Mean ON time in percent, the cap at 100% (a session cannot outlast its transmission)
    /// included: the integral of 1 − F over [0, 100].
    pub fn on_mean_percent(&self) -> f64 {
        // Midpoints on a grid dense near 0, where the event Weibull rises steeply: x = 100 u^4.
        let n = 20_000;
        (0..n)
            .map(|i| {
                let (u0, u1) = (i as f64 / n as f64, (i + 1) as f64 / n as f64);
                let (x0, x1) = (100.0 * u0.powi(4), 100.0 * u1.powi(4));
                (1.0 - self.on_percent.cdf((x0 + x1) / 2.0)) * (x1 - x0)
            })
            .sum()
    }

    pub fn off_mean_percent(&self) -> f64 {
        1.0 / self.off_rate_per_percent
    }
}

/// The client layer of `clients` against the truth's sessions, the model of `preset`, and,
/// for a churned run, the schedule the peers played (`played`).
pub fn validate_clients(clients: &Clients, truth: &Truth, played: Option<&[sessions::Span]>) -> ClientValidation {
    let gap_us = (clients.session_gap_capture_s * 1e6).round() as i64;
    let vantage: HashSet<IpAddr> = clients.vantage.iter().filter_map(|v| v.parse().ok()).collect();
    let logged: Vec<sessions::Span> =
        sessions::truth_spans(truth).into_iter().filter(|s| !vantage.contains(&s.client)).collect();
    let data_spans: Vec<sessions::Span> =
        sessions::truth_data_spans(truth, gap_us).into_iter().filter(|s| !vantage.contains(&s.client)).collect();
    let found = &clients.samples.sessions;
    let measured = Estimates::of_samples(&clients.samples);
    let model = clients.preset.as_deref().and_then(ClientModel::of);
    ClientValidation {
        session_gap_s: clients.session_gap_s,
        session_gap_capture_s: clients.session_gap_capture_s,
        time_scale: clients.time_scale,
        preset: clients.preset.clone(),
        sessions: sessions::match_sessions(found, &data_spans, gap_us),
        logged: sessions::logged(&logged, &sessions::data_times(truth)),
        recovery: model.map(|m| compare(&Estimates::of_model(&m), &measured)).unwrap_or_default(),
        played: played.map(|spans| {
            let merged = sessions::merge_close(spans, gap_us);
            let s = sessions::quantities(&merged, clients.time_scale, clients.transmission_length_s);
            PlayedCheck {
                sessions: sessions::match_sessions(found, &merged, gap_us),
                recovery: compare(&Estimates::of_samples(&s), &measured),
            }
        }),
    }
}

/// The schedule the peers played (workload.csv), processed as the captures are: a client's
/// sessions closer than the session gap merged.
#[derive(Debug, Clone, Serialize)]
pub struct PlayedCheck {
    /// Found sessions against the played ones (start and end within the session gap).
    pub sessions: SessionMatch,
    /// The played schedule's estimates (`model` here) against the captures'.
    pub recovery: Vec<Recovery>,
}

/// What the model comparisons are made of: the inter-arrival LogNormal (by maximum
/// likelihood over the positive times: starts in one slot give 0, which no LogNormal has),
/// P_off = 1 - 1 / (mean sessions per client), and the mean ON and OFF.
#[derive(Debug, Clone, Copy, Default)]
struct Estimates {
    m: Option<f64>,
    sigma: Option<f64>,
    p_off: Option<f64>,
    on_mean: Option<f64>,
    off_mean: Option<f64>,
}

impl Estimates {
    fn of_samples(s: &crate::clients::Samples) -> Estimates {
        let lognormal = fit::fit(s.inter_arrival_s.iter().copied().filter(|&x| x > 0.0), &[Family::LogNormal]);
        let (m, sigma) = match lognormal.mle.as_ref().map(|f| f.params) {
            Some(Params::LogNormal { m, sigma }) => (Some(m), Some(sigma)),
            _ => (None, None),
        };
        let mean = |xs: &[f64]| (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64);
        Estimates {
            m,
            sigma,
            p_off: mean(&s.sessions_per_client).map(|k| 1.0 - 1.0 / k),
            on_mean: mean(&s.on_percent),
            off_mean: mean(&s.off_percent),
        }
    }

    fn of_model(m: &ClientModel) -> Estimates {
        Estimates {
            m: Some(m.inter_arrival.0),
            sigma: Some(m.inter_arrival.1),
            p_off: Some(m.p_off),
            on_mean: Some(m.on_mean_percent()),
            off_mean: Some(m.off_mean_percent()),
        }
    }
}

/// One row per estimate that `expected` has.
fn compare(expected: &Estimates, measured: &Estimates) -> Vec<Recovery> {
    let rows = [
        (
            "inter_arrival_m",
            "LogNormal m of the positive session inter-arrival times (MLE), ln s",
            expected.m,
            measured.m,
        ),
        (
            "inter_arrival_sigma",
            "LogNormal sigma of the positive session inter-arrival times (MLE)",
            expected.sigma,
            measured.sigma,
        ),
        ("p_off", "P_off = 1 - 1 / mean sessions per client", expected.p_off, measured.p_off),
        ("on_mean_percent", "mean ON time, % of the transmission", expected.on_mean, measured.on_mean),
        ("off_mean_percent", "mean OFF time, % of the transmission", expected.off_mean, measured.off_mean),
    ];
    rows.into_iter()
        .filter_map(|(key, description, model, measured)| {
            let model = model?;
            Some(Recovery {
                key,
                description,
                model,
                measured,
                difference: measured.map(|x| x - model),
                relative: measured.filter(|_| model != 0.0).map(|x| (x - model) / model),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_models_capped_on_means_are_the_papers() {
        // seed-facts.md: the event Weibull capped at the transmission has mean 20.4%.
        let event = ClientModel::of("event").unwrap();
        assert!((event.on_mean_percent() - 20.4).abs() < 0.1, "{}", event.on_mean_percent());
        // Non-event LogNormal: mean e^(m + σ²/2) = 6.60% uncapped; the cap takes the tail
        // above 100% (closed form: 6.23%).
        let non_event = ClientModel::of("non-event").unwrap();
        let (m, s) = (0.823f64, 1.459f64);
        let phi = |z: f64| crate::stats::normal_cdf(z, 0.0, 1.0);
        let c = 100f64.ln();
        let capped = (m + s * s / 2.0).exp() * phi((c - m - s * s) / s) + 100.0 * (1.0 - phi((c - m) / s));
        assert!((non_event.on_mean_percent() - capped).abs() < 0.01, "{} vs {capped}", non_event.on_mean_percent());
        assert!((event.off_mean_percent() - 18.52).abs() < 0.01);
        assert!(ClientModel::of("film").is_none());
    }
}
