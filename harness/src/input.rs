//! Checking what users type: numbers, durations, concerns and TOML files, with one-line messages that name
//! the bad value and what would have been accepted.
//!
//! Every command validates all of its input with these before it starts anything (a run directory, a
//! member, a child), so a bad value is refused with exit code 254
//! ([`faultline::support::errors::UsageError`]) and nothing to clean up. The same checks serve a flag
//! (through a clap value parser, e.g. [`Whole::parser`]) and its TOML equivalent (through [`Whole::check`]
//! and friends), so both are refused with the same words. Durations live in [`faultline::support::durations`].

use clap::builder::{StringValueParser, TypedValueParser};

pub use faultline::support::durations::{MAX_SECONDS, check_seconds};

/// MongoDB's limit of voting members in a replica set; the harness makes every member (arbiters included)
/// vote, so it is also the largest set the harness starts.
pub const MAX_MEMBERS: u64 = faultline_engine::repl::config::MAX_VOTING_MEMBERS as u64;

/// Data-bearing members of a set the harness starts (`faultline test` and `faultline cluster`).
pub const NODES: Whole = Whole {
    what: "number of nodes",
    min: 1,
    max: MAX_MEMBERS,
    why: " (MongoDB's limit of voting members, arbiters included)",
};
/// Arbiters of a set the harness starts (`faultline test` and `faultline cluster`).
pub const ARBITERS: Whole = Whole {
    what: "number of arbiters",
    min: 0,
    max: MAX_MEMBERS - 1,
    why: " (MongoDB's limit of voting members, data-bearing ones included)",
};

/// MongoDB's limit of `secondaryDelaySecs`: 366 days.
pub const MAX_SECONDARY_DELAY_SECS: u64 = faultline_engine::repl::config::MAX_SECONDARY_DELAY_SECS as u64;

/// The read concern levels MongoDB defines.
pub const READ_CONCERNS: [&str; 5] = ["local", "available", "majority", "linearizable", "snapshot"];

/// The read preference modes MongoDB defines.
pub const READ_PREFERENCES: [&str; 5] = [
    "primary",
    "primaryPreferred",
    "secondary",
    "secondaryPreferred",
    "nearest",
];

/// A whole number within bounds, e.g. a member count.
#[derive(Debug, Clone, Copy)]
pub struct Whole {
    /// What the number is, for messages ("number of nodes").
    pub what: &'static str,
    pub min: u64,
    pub max: u64,
    /// Why the bounds are what they are, appended to messages (may be empty).
    pub why: &'static str,
}

impl Whole {
    /// `value`, or a message naming it and the accepted range.
    pub fn check(self, value: u64) -> Result<u64, String> {
        if (self.min..=self.max).contains(&value) {
            Ok(value)
        } else {
            Err(self.refuse(&value.to_string()))
        }
    }

    /// Parses `text` (a flag's value) and checks it.
    pub fn parse(self, text: &str) -> Result<u64, String> {
        match text.trim().parse::<i128>() {
            // Negative or beyond 64 bits: a number all the same, shown as typed.
            Ok(n) => self.check(u64::try_from(n).map_err(|_| self.refuse(text.trim()))?),
            Err(_) => Err(self.refuse(&format!("{text:?}"))),
        }
    }

    /// A clap value parser for flags of type `T` (`usize`, `u64`, `u16`...).
    pub fn parser<T>(self) -> impl TypedValueParser<Value = T>
    where
        T: TryFrom<u64> + Clone + Send + Sync + 'static,
    {
        StringValueParser::new().try_map(move |text: String| {
            let value = self.parse(&text)?;
            T::try_from(value).map_err(|_| self.refuse(&text))
        })
    }

    fn refuse(self, shown: &str) -> String {
        let range = if self.max == u64::MAX {
            format!("a whole number of {} or more", self.min)
        } else {
            format!("a whole number from {} to {}", self.min, self.max)
        };
        format!("{shown} is not a valid {}: must be {range}{}", self.what, self.why)
    }
}

/// Checks a write concern `w` as the harness's clients send it: `majority` or a number of members from
/// `min` to `data_members`. Tag-set names are refused (the harness's replica-set config defines no
/// `getLastErrorModes`, so every write would fail), and so is anything else.
pub fn check_write_concern(w: &str, min: u64, data_members: u64) -> Result<(), String> {
    if w == "majority" {
        return Ok(());
    }
    let accepted = if min == data_members {
        format!("majority or {min}")
    } else {
        format!("majority or a number of members from {min} to {data_members}")
    };
    match w.parse::<u64>() {
        Ok(n) if (min..=data_members).contains(&n) => Ok(()),
        Ok(n) if n > data_members => Err(format!(
            "{w:?} is not a valid write concern: only {data_members} data-bearing member(s); use {accepted}"
        )),
        Ok(0) => Err(format!(
            "{w:?} is not a valid write concern: w 0 is unacknowledged, so no outcome could be recorded; use {accepted}"
        )),
        _ => Err(format!("{w:?} is not a valid write concern: use {accepted}")),
    }
}

/// A write concern's `w` as a command carries it: the string `majority`, or the number of members (a `w`
/// that [`check_write_concern`] accepted).
pub fn write_concern_w(w: &str) -> bson::Bson {
    match w.parse::<i32>() {
        Ok(n) => bson::Bson::Int32(n),
        Err(_) => bson::Bson::String(w.to_string()),
    }
}

/// Checks a read concern level (one of [`READ_CONCERNS`]).
pub fn check_read_concern(level: &str) -> Result<(), String> {
    one_of("read concern", level, &READ_CONCERNS)
}

/// Checks a read preference mode (one of [`READ_PREFERENCES`]).
pub fn check_read_preference(mode: &str) -> Result<(), String> {
    one_of("read preference", mode, &READ_PREFERENCES)
}

/// `value` if it is one of `accepted`, else a message naming it and them.
pub fn one_of(what: &str, value: &str, accepted: &[&str]) -> Result<(), String> {
    if accepted.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a valid {what}: one of {}",
            accepted.join(", ")
        ))
    }
}

/// A rate of operations per second: 0 (unpaced, where `unpaced` allows it) or from 0.001 to 1000000. The
/// bounds keep `1 / rate` a representable `Duration`.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub unpaced: bool,
}

impl Rate {
    const MIN: f64 = 0.001;
    const MAX: f64 = 1_000_000.0;

    /// `value`, or a message naming it and the accepted range.
    pub fn check(self, value: f64) -> Result<f64, String> {
        let paced = value.is_finite() && (Self::MIN..=Self::MAX).contains(&value);
        if paced || (self.unpaced && value == 0.0) {
            Ok(value)
        } else {
            Err(self.refuse(&format!("{value:?}")))
        }
    }

    /// A clap value parser.
    pub fn parser(self) -> impl TypedValueParser<Value = f64> {
        StringValueParser::new().try_map(move |text: String| {
            let value: f64 = text.trim().parse().map_err(|_| self.refuse(&format!("{text:?}")))?;
            self.check(value).map_err(|_| self.refuse(&text))
        })
    }

    fn refuse(self, shown: &str) -> String {
        let zero = if self.unpaced { "0 (unpaced) or " } else { "" };
        format!("{shown} is not a valid rate: must be {zero}from 0.001 to 1000000 operations per second")
    }
}

/// A TOML error as one line, `line 2, column 9: message` (the `toml` crate's own text spans several lines
/// with a drawing of the spot), with Rust type names replaced by plain words; `text` is the parsed text.
pub fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error
        .message()
        .replace("expected usize", "expected a whole number of 0 or more")
        .replace("expected u64", "expected a whole number of 0 or more")
        .replace("expected u16", "expected a whole number from 0 to 65535")
        .replace("expected f64", "expected a number");
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: Whole = Whole {
        what: "number of nodes",
        min: 1,
        max: 7,
        why: "",
    };

    #[test]
    fn a_write_concerns_w_is_a_number_or_majority() {
        assert_eq!(write_concern_w("2"), bson::Bson::Int32(2));
        assert_eq!(write_concern_w("majority"), bson::Bson::String("majority".into()));
    }

    #[test]
    fn whole_numbers_name_the_value_and_the_range() {
        assert_eq!(NODES.parse("3"), Ok(3));
        assert_eq!(
            NODES.parse("-5").expect_err("negative"),
            "-5 is not a valid number of nodes: must be a whole number from 1 to 7"
        );
        assert!(NODES.parse("three").expect_err("word").starts_with("\"three\" is not"));
        assert!(NODES.parse("8").expect_err("too many").starts_with("8 is not"));
        assert!(NODES.parse("0").is_err() && NODES.parse("2.5").is_err() && NODES.parse("").is_err());
        let huge = Whole { max: u64::MAX, ..NODES };
        assert!(huge.parse("0").expect_err("zero").contains("1 or more"));
    }

    #[test]
    fn whole_number_parsers_refuse_values_their_type_cannot_hold() {
        let port = Whole {
            what: "port",
            min: 1,
            max: u64::MAX,
            why: "",
        };
        let command = clap::Command::new("t").arg(clap::Arg::new("p").long("p").value_parser(port.parser::<u16>()));
        assert!(command.clone().try_get_matches_from(["t", "--p", "70000"]).is_err());
        let matches = command.try_get_matches_from(["t", "--p", "700"]).expect("parses");
        assert_eq!(matches.get_one::<u16>("p"), Some(&700));
    }

    #[test]
    fn write_concerns_are_majority_or_a_member_count() {
        assert!(check_write_concern("majority", 1, 3).is_ok());
        assert!(check_write_concern("2", 1, 3).is_ok());
        let banana = check_write_concern("banana", 1, 3).expect_err("banana");
        assert_eq!(
            banana,
            "\"banana\" is not a valid write concern: use majority or a number of members from 1 to 3"
        );
        assert!(check_write_concern("4", 1, 3).expect_err("4").contains("only 3"));
        assert!(check_write_concern("0", 1, 3).is_err());
        assert!(check_write_concern("0", 0, 3).is_ok());
        assert!(check_write_concern("-1", 0, 3).is_err());
    }

    #[test]
    fn read_concerns_and_preferences_are_mongodbs() {
        for level in READ_CONCERNS {
            assert!(check_read_concern(level).is_ok());
        }
        assert_eq!(
            check_read_concern("x").expect_err("x"),
            "\"x\" is not a valid read concern: one of local, available, majority, linearizable, snapshot"
        );
        assert!(check_read_preference("secondaryPreferred").is_ok());
        assert!(check_read_preference("secondary-preferred").is_err());
    }

    #[test]
    fn rates_keep_their_inverse_representable() {
        let test = Rate { unpaced: true };
        let lag = Rate { unpaced: false };
        assert_eq!(test.check(0.0), Ok(0.0));
        assert!(lag.check(0.0).is_err());
        for bad in [-5.0, 1e-30, f64::NAN, f64::INFINITY, 1e7] {
            assert!(test.check(bad).is_err(), "{bad}");
        }
        let command = clap::Command::new("t").arg(
            clap::Arg::new("rate")
                .long("rate")
                .allow_hyphen_values(true)
                .value_parser(test.parser()),
        );
        let error = command.try_get_matches_from(["t", "--rate", "-5"]).expect_err("-5");
        let source = std::error::Error::source(&error).map(ToString::to_string);
        assert_eq!(
            source.as_deref(),
            Some("-5 is not a valid rate: must be 0 (unpaced) or from 0.001 to 1000000 operations per second")
        );
    }

    #[test]
    fn toml_errors_fit_on_one_line_with_their_place() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Spec {
            nodes: usize,
        }
        let text = "# spec\nnodes = -5\n";
        let error = toml::from_str::<Spec>(text).expect_err("negative");
        let line = toml_error(text, &error);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.starts_with("line 2, column 9: "), "{line}");
        assert!(line.contains("-5") && line.contains("whole number"), "{line}");
    }
}
