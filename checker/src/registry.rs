//! The one list of history checkers: each by name, with what it needs and how it runs.
//!
//! Workloads name the checkers that apply to them, `faultline check --checker` parses the names the user
//! gives, and both run them here, so a checker added to [`Checker`] is available everywhere at once.
//! (Convergence is not here: it judges the members' data, not a history; see [`crate::convergence`].)

use crate::history::{History, PairedHistory};
use crate::linear::{self, LinearError, LinearOptions};
use crate::result::CheckResult;
use crate::{counter, session, set, stale};

/// A history checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Checker {
    /// Linearizability against the options' model ([`crate::linear`]).
    Linearizable,
    /// Stale reads of registers with unique written values ([`crate::stale`]).
    StaleReads,
    /// Per-process session guarantees ([`crate::session`]).
    Sessions,
    /// Lost and never-read adds of a set ([`crate::set`]).
    Set,
    /// Reads of a counter within the bounds of the increments ([`crate::counter`]).
    Counter,
}

impl Checker {
    /// Every checker, in the order help texts list them.
    pub const ALL: [Checker; 5] = [
        Checker::Linearizable,
        Checker::StaleReads,
        Checker::Sessions,
        Checker::Set,
        Checker::Counter,
    ];

    /// The checker's name, as on the command line and in `results.json`.
    pub fn name(self) -> &'static str {
        match self {
            Checker::Linearizable => "linearizable",
            Checker::StaleReads => "stale-reads",
            Checker::Sessions => "sessions",
            Checker::Set => "set",
            Checker::Counter => "counter",
        }
    }

    /// Parses a checker name.
    pub fn from_name(name: &str) -> Option<Checker> {
        Checker::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Every name, comma-separated, for messages.
    pub fn names() -> String {
        Checker::ALL.map(Checker::name).join(", ")
    }

    /// Runs the checker on a paired history. `options` gives the model, conventions, budget and threads of
    /// the linearizability search; the other checkers use only its conventions. Only the linearizability
    /// checker can refuse a history (an operation its model cannot interpret).
    pub fn run(
        self,
        history: &History,
        paired: &PairedHistory,
        options: &LinearOptions,
    ) -> Result<CheckResult, LinearError> {
        Ok(match self {
            Checker::Linearizable => linear::check_paired(history, paired, options)?,
            Checker::StaleReads => stale::check(history, paired, &options.conventions),
            Checker::Sessions => session::check(history, paired),
            Checker::Set => set::check(history, paired),
            Checker::Counter => counter::check(history, paired),
        })
    }
}

impl std::fmt::Display for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::jsonl;
    use crate::history::pair;
    use crate::linear::ModelKind;
    use crate::result::Validity;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for checker in Checker::ALL {
            assert_eq!(Checker::from_name(checker.name()), Some(checker));
        }
        assert_eq!(Checker::from_name("convergence"), None);
        assert_eq!(Checker::names(), "linearizable, stale-reads, sessions, set, counter");
    }

    #[test]
    fn every_checker_runs_and_names_its_result() {
        let text = r#"{"time":1,"type":"invoke","process":0,"f":"write","value":1}
{"time":2,"type":"ok","process":0,"f":"write","value":1}
{"time":3,"type":"invoke","process":0,"f":"read","value":null}
{"time":4,"type":"ok","process":0,"f":"read","value":1}
"#;
        let history = jsonl::read(text.as_bytes()).expect("history");
        let paired = pair(&history).expect("pairs");
        let options = LinearOptions::new(ModelKind::CasRegister);
        for checker in Checker::ALL {
            let result = checker.run(&history, &paired, &options).expect("runs");
            assert_eq!(result.checker, checker.name());
        }
        let linear = Checker::Linearizable.run(&history, &paired, &options).expect("runs");
        assert_eq!(linear.valid, Validity::True);
    }
}
