//! Humane numbers for the daemons' command lines: durations (`900`, `90s`, `15m`, `1h30m`,
//! `500ms`), bit rates (`500k`, `1M`, `1.5Mbps`) and shares (`0.05`, `5%`).
//!
//! Each parser fits clap's `value_parser` (`#[arg(value_parser = parse_duration)]`) and fails
//! with a [`ParseError`] that says what to write instead.

use std::fmt;
use std::time::Duration;

/// A value that is not a duration or a rate; the message says what to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

fn err(msg: impl Into<String>) -> ParseError {
    ParseError(msg.into())
}

/// Parses `900`, `2.5`, `90s`, `15m`, `1h30m`, `1.5h`, `500ms`, `2d`: a bare number is seconds;
/// units are `ms`, `s` (`sec`, `secs`), `m` (`min`, `mins`), `h` (`hr`, `hrs`) and `d`, and may
/// be chained (`1h30m`). Zero is allowed; see [`parse_positive_duration`].
pub fn parse_duration(text: &str) -> Result<Duration, ParseError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(err("empty duration; write seconds (900) or use units (15m, 1h30m, 500ms)"));
    }
    if let Ok(secs) = s.parse::<f64>() {
        return seconds(secs, text);
    }
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let unit_len = rest[num_len..].find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len() - num_len);
        let (num, unit) = (&rest[..num_len], rest[num_len..num_len + unit_len].trim());
        let value: f64 = num
            .parse()
            .map_err(|_| err(format!("`{text}` is not a duration; write seconds (900) or use units (15m, 1h30m)")))?;
        let scale = match unit {
            "ms" => 0.001,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" | "mins" => 60.0,
            "h" | "hr" | "hrs" => 3600.0,
            "d" => 86400.0,
            other => return Err(err(format!("unknown unit `{other}` in `{text}`; use ms, s, m, h or d"))),
        };
        total += value * scale;
        rest = &rest[num_len + unit_len..];
    }
    seconds(total, text)
}

/// [`parse_duration`], refusing zero.
pub fn parse_positive_duration(text: &str) -> Result<Duration, ParseError> {
    let d = parse_duration(text)?;
    if d.is_zero() {
        return Err(err("the duration must be more than zero"));
    }
    Ok(d)
}

/// Alias of [`parse_duration`].
pub fn parse(text: &str) -> Result<Duration, ParseError> {
    parse_duration(text)
}

/// The longest duration taken: 100 years. Durations become microseconds added to clocks
/// (the Unix epoch's, virtual time's 10^15 µs), which this keeps far from overflowing.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

fn seconds(secs: f64, text: &str) -> Result<Duration, ParseError> {
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(err(format!("`{text}` is longer than 100 years, the longest duration soplab takes")));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| err(format!("`{text}` is not a usable duration")))
}

/// Parses a bit rate in bits per second: `500000`, `500k`, `1M`, `1.5M`, `2G`, optionally
/// followed by `bps`, `b/s` or `bit/s` (`500kbps`, `1 Mbit/s`). `k` is 1,000, `M` 1,000,000
/// and `G` 1,000,000,000 (either case: `1m` is one megabit, never a millibit). Zero is
/// refused.
pub fn parse_rate(text: &str) -> Result<u64, ParseError> {
    let s: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let hint = "write bits per second, e.g. 500000, 500k, 1M or 1.5Mbps";
    if s.is_empty() {
        return Err(err(format!("empty rate; {hint}")));
    }
    let num_len = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(num_len);
    let value: f64 = num.parse().map_err(|_| err(format!("`{text}` is not a rate; {hint}")))?;
    let lower = unit.to_ascii_lowercase();
    let prefix = ["bps", "bit/s", "bits/s", "b/s"].iter().find_map(|suf| lower.strip_suffix(suf)).unwrap_or(&lower);
    let scale = match prefix {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        _ => return Err(err(format!("unknown unit `{unit}` in `{text}`; {hint}"))),
    };
    let bps = (value * scale).round();
    if !bps.is_finite() || bps > u64::MAX as f64 {
        return Err(err(format!("`{text}` is too large a rate; {hint}")));
    }
    if bps < 1.0 {
        return Err(err(format!("the rate `{text}` must be at least 1 bit/s")));
    }
    Ok(bps as u64)
}

/// Parses a share from 0 to 1, as a fraction (`0.05`) or a percentage (`5%`, `0.5 %`).
pub fn parse_share(text: &str) -> Result<f64, ParseError> {
    let s = text.trim();
    let (num, scale) = match s.strip_suffix('%') {
        Some(pct) => (pct.trim(), 0.01),
        None => (s, 1.0),
    };
    match num.parse::<f64>().map(|v| v * scale) {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(err(format!("`{text}` is not a share from 0 to 1; write e.g. 0.05 or 5%"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("900").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("2.5").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("0ms").unwrap(), Duration::ZERO);
        assert_eq!(parse("2d").unwrap(), Duration::from_secs(2 * 86400));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("15x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("-5").is_err());
        assert!(parse_positive_duration("0s").is_err());
        assert_eq!(parse_positive_duration("5s").unwrap(), Duration::from_secs(5));
        let e = parse_duration("15x").unwrap_err().to_string();
        assert!(e.contains("use ms, s, m, h or d"), "{e}");
    }

    #[test]
    fn durations_past_a_century_are_refused_so_no_clock_overflows() {
        assert_eq!(parse_duration("36500d").unwrap(), Duration::from_secs(36_500 * 86_400));
        for text in ["200000000000", "18446744073709551615", "5000000000000d", "1e30", "1e300"] {
            let e = parse_duration(text).unwrap_err().to_string();
            assert!(e.contains("longer than 100 years"), "{text}: {e}");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("500000").unwrap(), 500_000);
        assert_eq!(parse_rate("500k").unwrap(), 500_000);
        assert_eq!(parse_rate("500K").unwrap(), 500_000);
        assert_eq!(parse_rate("1M").unwrap(), 1_000_000);
        assert_eq!(parse_rate("1m").unwrap(), 1_000_000);
        assert_eq!(parse_rate("1.5M").unwrap(), 1_500_000);
        assert_eq!(parse_rate("2G").unwrap(), 2_000_000_000);
        assert_eq!(parse_rate("500kbps").unwrap(), 500_000);
        assert_eq!(parse_rate("1 Mbit/s").unwrap(), 1_000_000);
        assert_eq!(parse_rate("800bps").unwrap(), 800);
        assert!(parse_rate("").is_err());
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("0k").is_err());
        assert!(parse_rate("-5k").is_err());
        assert!(parse_rate("5x").is_err());
        assert!(parse_rate("k").is_err());
        assert!(parse_rate("1e30G").is_err());
    }

    #[test]
    fn shares() {
        assert_eq!(parse_share("0.05").unwrap(), 0.05);
        assert_eq!(parse_share("5%").unwrap(), 0.05);
        assert_eq!(parse_share(" 0.5 % ").unwrap(), 0.005);
        assert_eq!((parse_share("0").unwrap(), parse_share("100%").unwrap()), (0.0, 1.0));
        for bad in ["", "%", "1.5", "150%", "-1%", "five", "NaN"] {
            let e = parse_share(bad).unwrap_err().to_string();
            assert!(e.contains("e.g. 0.05 or 5%"), "{bad}: {e}");
        }
    }
}
