//! Faults a swarm run injects into its own daemons (`soplab swarm --fault SPEC`, scenario key
//! `faults`), to see how the swarm copes: a peer process killed outright, the tracker killed and
//! started again, the source frozen for a while.
//!
//! A spec is a kind, a colon, and `key=value` settings separated by commas; times count from
//! the peers' time zero, like the workload's:
//!
//! | spec | what happens |
//! |---|---|
//! | `kill-peers:at=75s,process=1` | SIGKILL to peer process 1 (`logs/peers-1.log`): all its peers vanish at once, for good |
//! | `restart-tracker:at=20s,down=5s` | SIGKILL to the tracker; `down` later it is started again with the same configuration and address (an empty table) |
//! | `stop-source:at=40s,for=5s` | SIGSTOP to the source, SIGCONT `for` later: it resumes where it was, its clock having run on |

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use soplab_shell::units::parse_duration;

/// How long the tracker stays down, or the source stopped, unless the spec says.
pub const DEFAULT_OUTAGE: Duration = Duration::from_secs(5);

/// One fault: what, and when after the peers' time zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub at: Duration,
    pub kind: FaultKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// SIGKILL to peer process `process` (`peers-<process>`).
    KillPeers { process: usize },
    /// SIGKILL to the tracker, started again `down` later.
    RestartTracker { down: Duration },
    /// SIGSTOP to the source, SIGCONT `pause` later.
    StopSource { pause: Duration },
}

/// One step of a fault, at a time after the peers' time zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    KillPeers(usize),
    KillTracker,
    StartTracker,
    StopSource,
    ContinueSource,
}

impl Fault {
    /// The fault's steps and when each is due, in order.
    pub fn steps(&self) -> Vec<(Duration, Step)> {
        match self.kind {
            FaultKind::KillPeers { process } => vec![(self.at, Step::KillPeers(process))],
            FaultKind::RestartTracker { down } => {
                vec![(self.at, Step::KillTracker), (self.at + down, Step::StartTracker)]
            }
            FaultKind::StopSource { pause } => {
                vec![(self.at, Step::StopSource), (self.at + pause, Step::ContinueSource)]
            }
        }
    }

    /// When the fault is over: its last step.
    pub fn end(&self) -> Duration {
        self.steps().last().map_or(self.at, |s| s.0)
    }

    /// The spec's kind, as written.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            FaultKind::KillPeers { .. } => "kill-peers",
            FaultKind::RestartTracker { .. } => "restart-tracker",
            FaultKind::StopSource { .. } => "stop-source",
        }
    }

    /// Checks a run's faults against its length and peer processes: each must be over before
    /// the run ends, name a process that exists, and not overlap another on the same daemon.
    ///
    /// # Errors
    /// The first fault that cannot be run, with what to change.
    pub fn check_all(faults: &[Fault], duration: Duration, processes: usize) -> Result<(), String> {
        for (i, f) in faults.iter().enumerate() {
            if f.end() >= duration {
                return Err(format!(
                    "fault {f} ends at {:?}, not before the run does ({duration:?}); make it earlier or raise --duration",
                    f.end()
                ));
            }
            if let FaultKind::KillPeers { process } = f.kind
                && process >= processes
            {
                return Err(format!(
                    "fault {f}: the run has peer processes 0 to {} (--processes {processes}); name one of them or \
                     raise --processes",
                    processes - 1
                ));
            }
            if let Some(g) = faults[..i].iter().find(|g| g.overlaps(f)) {
                return Err(format!("faults {g} and {f} act on the same daemon at overlapping times; space them out"));
            }
        }
        Ok(())
    }

    /// Whether the two act on the same daemon at once (or kill the same process twice).
    fn overlaps(&self, other: &Fault) -> bool {
        let same = match (self.kind, other.kind) {
            (FaultKind::KillPeers { process: a }, FaultKind::KillPeers { process: b }) => return a == b,
            (a, b) => std::mem::discriminant(&a) == std::mem::discriminant(&b),
        };
        same && self.at <= other.end() && other.at <= self.end()
    }
}

/// A duration as a spec writes it: whole seconds as `75s`, anything else in milliseconds.
fn duration_text(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:at={}", self.kind_name(), duration_text(self.at))?;
        match self.kind {
            FaultKind::KillPeers { process } => write!(f, ",process={process}"),
            FaultKind::RestartTracker { down } => write!(f, ",down={}", duration_text(down)),
            FaultKind::StopSource { pause } => write!(f, ",for={}", duration_text(pause)),
        }
    }
}

/// What each kind takes besides `at`, for the error messages.
const USAGE: &str = "write kill-peers:at=75s,process=1, restart-tracker:at=20s,down=5s or stop-source:at=40s,for=5s";

impl FromStr for Fault {
    type Err = String;

    fn from_str(text: &str) -> Result<Fault, String> {
        let (kind, settings) = text.split_once(':').unwrap_or((text, ""));
        let keys: &[&str] = match kind.trim() {
            "kill-peers" => &["at", "process"],
            "restart-tracker" => &["at", "down"],
            "stop-source" => &["at", "for"],
            other => return Err(format!("unknown fault kind `{other}` in `{text}`; {USAGE}")),
        };
        let mut values: Vec<Option<&str>> = vec![None; keys.len()];
        for kv in settings.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').ok_or_else(|| format!("`{kv}` in `{text}` is not key=value; {USAGE}"))?;
            let i = keys
                .iter()
                .position(|&x| x == k.trim())
                .ok_or_else(|| format!("fault `{text}`: {kind} takes {}, not `{}`", keys.join(" and "), k.trim()))?;
            values[i] = Some(v.trim());
        }
        let duration = |i: usize, default: Option<Duration>| -> Result<Duration, String> {
            match values[i] {
                Some(v) => parse_duration(v).map_err(|e| format!("fault `{text}`: {}: {e}", keys[i])),
                None => default.ok_or_else(|| format!("fault `{text}` needs {}=...; {USAGE}", keys[i])),
            }
        };
        let at = duration(0, None)?;
        let kind = match kind.trim() {
            "kill-peers" => {
                let p = values[1].ok_or_else(|| format!("fault `{text}` needs process=K (a peer process, from 0)"))?;
                let process = p.parse().map_err(|_| format!("fault `{text}`: process `{p}` is not a number"))?;
                FaultKind::KillPeers { process }
            }
            "restart-tracker" => FaultKind::RestartTracker { down: duration(1, Some(DEFAULT_OUTAGE))? },
            _ => FaultKind::StopSource { pause: duration(1, Some(DEFAULT_OUTAGE))? },
        };
        Ok(Fault { at, kind })
    }
}

impl Serialize for Fault {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fault {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Fault, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> Fault {
        s.parse().unwrap()
    }

    #[test]
    fn specs_parse_print_back_and_say_what_is_wrong() {
        let s = Duration::from_secs;
        assert_eq!(f("kill-peers:at=75s,process=1"), Fault { at: s(75), kind: FaultKind::KillPeers { process: 1 } });
        assert_eq!(f("restart-tracker: at=20, down=1m").kind, FaultKind::RestartTracker { down: s(60) });
        assert_eq!(f("stop-source:at=40s").kind, FaultKind::StopSource { pause: DEFAULT_OUTAGE });
        for text in ["kill-peers:at=75s,process=1", "restart-tracker:at=20s,down=5s", "stop-source:at=1500ms,for=5s"] {
            assert_eq!(f(text).to_string(), text);
        }
        let bad = |t: &str| t.parse::<Fault>().unwrap_err();
        assert!(bad("kill:at=1s").contains("unknown fault kind `kill`"));
        assert!(bad("kill-peers:at=1s").contains("needs process=K"));
        assert!(bad("stop-source:for=1s").contains("needs at=..."));
        assert!(bad("stop-source:at=1s,down=2s").contains("stop-source takes at and for, not `down`"));
        assert!(bad("stop-source:at=soon").contains("at:"));
        assert!(bad("restart-tracker:at=1s,5s").contains("not key=value"));
        assert!(bad("kill-peers:at=1s,process=x").contains("process `x` is not a number"));
    }

    #[test]
    fn faults_must_fit_the_run_and_not_overlap() {
        let d = Duration::from_secs(100);
        let check =
            |specs: &[&str], processes| Fault::check_all(&specs.iter().map(|s| f(s)).collect::<Vec<_>>(), d, processes);
        let ok = ["restart-tracker:at=20s,down=5s", "stop-source:at=45s,for=5s", "kill-peers:at=75s,process=1"];
        assert_eq!(check(&ok, 2), Ok(()));
        assert!(check(&ok, 1).unwrap_err().contains("peer processes 0 to 0 (--processes 1)"));
        assert!(check(&["stop-source:at=98s,for=2s"], 1).unwrap_err().contains("raise --duration"));
        let e = check(&["stop-source:at=10s,for=5s", "stop-source:at=15s,for=1s"], 1).unwrap_err();
        assert!(e.contains("overlapping"), "{e}");
        assert_eq!(check(&["stop-source:at=10s,for=5s", "restart-tracker:at=12s,down=5s"], 1), Ok(()));
        assert!(check(&["kill-peers:at=10s,process=0", "kill-peers:at=50s,process=0"], 2).is_err());
        assert_eq!(check(&["kill-peers:at=10s,process=0", "kill-peers:at=10s,process=1"], 2), Ok(()));
    }

    #[test]
    fn steps_come_in_order() {
        let r = f("restart-tracker:at=20s,down=5s");
        assert_eq!(
            r.steps(),
            [(Duration::from_secs(20), Step::KillTracker), (Duration::from_secs(25), Step::StartTracker)]
        );
        assert_eq!(f("stop-source:at=1s,for=2s").end(), Duration::from_secs(3));
    }
}
