//! Durations as users type them (`30`, `30s`, `500ms`, `2m`) and as spec files give them (seconds), bounded
//! so that `Duration` and `Instant` arithmetic never panics.

/// The longest duration any flag or spec accepts: 30 days. (Longer ones are mistakes, and `Duration` and
/// `Instant` arithmetic panics on absurd ones such as `1e300` seconds.)
pub const MAX_SECONDS: f64 = 30.0 * 24.0 * 3600.0;

/// How the longest duration is described in messages.
pub const MAX_SECONDS_TEXT: &str = "at most 2592000 seconds (30 days)";

/// Checks a number of seconds from a spec file (`time_limit = 30`): positive, finite, at most [`MAX_SECONDS`].
pub fn check_seconds(key: &str, value: f64) -> Result<f64, String> {
    if value.is_finite() && value > 0.0 && value <= MAX_SECONDS {
        Ok(value)
    } else {
        Err(format!(
            "{value:?} is not a valid {key}: must be a positive number of seconds, {MAX_SECONDS_TEXT}"
        ))
    }
}

/// Parses a duration flag: `30`, `30s`, `500ms`, `2m`, `1.5m` into seconds (positive, at most
/// [`MAX_SECONDS`]).
pub fn parse_seconds(text: &str) -> Result<f64, String> {
    let bad = |why: &str| format!("{text:?} is not a valid duration: {why}");
    let accepted = "use a positive number with an optional unit ms, s or m (e.g. 30, 30s, 500ms, 2m)";
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().map_err(|_| bad(accepted))?;
    let seconds = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        _ => return Err(bad(accepted)),
    };
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(bad(accepted));
    }
    if seconds > MAX_SECONDS {
        return Err(bad(MAX_SECONDS_TEXT));
    }
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_positive_finite_and_bounded() {
        assert_eq!(parse_seconds("30"), Ok(30.0));
        assert_eq!(parse_seconds("500ms"), Ok(0.5));
        assert_eq!(parse_seconds("2m"), Ok(120.0));
        for bad in ["-5s", "0", "soon", "1e300", "", "5h", "nan"] {
            let message = parse_seconds(bad).expect_err(bad);
            assert!(message.contains(&format!("{bad:?}")), "{message}");
        }
        let huge = "9".repeat(40);
        assert!(parse_seconds(&huge).expect_err("huge").contains("30 days"));
        assert!(check_seconds("timeout", 1e300).is_err() && check_seconds("timeout", f64::NAN).is_err());
        assert_eq!(check_seconds("timeout", 180.0), Ok(180.0));
    }
}
