//! The workloads: each is a generator, the client operations it invokes and the checkers that apply.
//!
//! | workload          | operations                     | checkers                                 |
//! |-------------------|--------------------------------|------------------------------------------|
//! | `register`        | read / write / cas per key     | linearizable (cas-register), stale-reads |
//! | `secondary-reads` | write on the primary, read wherever the read preference sends it | stale-reads |
//! | `set`             | add unique elements, read all  | set (lost writes)                        |
//! | `counter`         | `$inc` by 1..=5, read          | counter bounds                           |

pub mod counter;
pub mod register;
pub mod set;

use std::time::Duration;

use faultline_checker::history::{History, pair};
use faultline_checker::linear::{LinearOptions, ModelKind};
use faultline_checker::registry::Checker;
use faultline_checker::result::{CheckResult, Validity, compose};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub use register::RegisterShape;

use crate::client::{Completion, Session};
use crate::generator::{BoxGen, Invocation};

/// A workload by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    Register,
    Set,
    SecondaryReads,
    Counter,
}

/// Knobs shared by the workloads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkloadOptions {
    /// Keys in use at once (register workloads).
    pub keys: usize,
    /// Operations per key before it is retired.
    pub ops_per_key: u64,
}

impl Default for WorkloadOptions {
    fn default() -> WorkloadOptions {
        WorkloadOptions {
            keys: 8,
            ops_per_key: 200,
        }
    }
}

impl Workload {
    /// Every workload, for help texts.
    pub const ALL: [Workload; 4] = [
        Workload::Register,
        Workload::Set,
        Workload::SecondaryReads,
        Workload::Counter,
    ];

    /// Parses a workload name.
    pub fn from_name(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }

    /// The workload's name.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Register => "register",
            Workload::Set => "set",
            Workload::SecondaryReads => "secondary-reads",
            Workload::Counter => "counter",
        }
    }

    /// The collection (of the run's database) the workload's operations use.
    pub fn collection(self) -> &'static str {
        match self {
            Workload::Register | Workload::SecondaryReads => register::COLLECTION,
            Workload::Set => set::COLLECTION,
            Workload::Counter => counter::COLLECTION,
        }
    }

    /// The read preference a run uses unless the spec says otherwise.
    pub fn default_read_preference(self) -> &'static str {
        match self {
            Workload::SecondaryReads => "secondary",
            _ => "primary",
        }
    }

    /// The endless generator of the main phase (the runner adds pacing and the time limit).
    pub fn generator(self, options: WorkloadOptions) -> BoxGen {
        match self {
            Workload::Register => register::generator(RegisterShape {
                active_keys: options.keys,
                ops_per_key: options.ops_per_key,
                read_fraction: 0.5,
                cas: true,
            }),
            Workload::SecondaryReads => register::generator(RegisterShape {
                active_keys: options.keys.min(2),
                ops_per_key: u64::MAX,
                read_fraction: 0.7,
                cas: false,
            }),
            Workload::Set => set::generator(0.05),
            Workload::Counter => counter::generator(0.3),
        }
    }

    /// The reads of the final phase, after healing, if the workload has any.
    pub fn final_generator(self) -> Option<BoxGen> {
        match self {
            Workload::Set => Some(set::final_generator()),
            Workload::Counter => Some(counter::final_generator()),
            Workload::Register | Workload::SecondaryReads => None,
        }
    }

    /// Runs one operation.
    pub async fn invoke(self, session: &Session, op: &Invocation) -> Completion {
        match self {
            Workload::Register | Workload::SecondaryReads => register::invoke(session, op).await,
            Workload::Set => set::invoke(session, op).await,
            Workload::Counter => counter::invoke(session, op).await,
        }
    }

    /// The checkers that apply.
    pub fn checkers(self) -> &'static [Checker] {
        match self {
            Workload::Register => &[Checker::Linearizable, Checker::StaleReads],
            Workload::SecondaryReads => &[Checker::StaleReads],
            Workload::Set => &[Checker::Set],
            Workload::Counter => &[Checker::Counter],
        }
    }

    /// Runs the workload's checkers on a history; the linearizability search (a cas register per key) gets
    /// `budget`. A history the checkers cannot interpret is an `unknown` verdict saying why.
    pub fn check(self, history: &History, budget: Option<Duration>) -> CheckResult {
        let paired = match pair(history) {
            Ok(paired) => paired,
            Err(e) => return undecided(self.name(), &e.to_string()),
        };
        let mut options = LinearOptions::new(ModelKind::CasRegister);
        options.timeout = budget;
        let results = self
            .checkers()
            .iter()
            .map(|checker| {
                checker
                    .run(history, &paired, &options)
                    .unwrap_or_else(|e| undecided(checker.name(), &e.to_string()))
            })
            .collect();
        let mut result = compose(self.name(), results);
        // The result is printed and written to `results.json`: the counterexample in full.
        result.expand(history, &paired);
        result
    }
}

fn undecided(checker: &str, reason: &str) -> CheckResult {
    let mut result = CheckResult::new(checker);
    result.valid = Validity::Unknown;
    result.details = json!({"unknown-reason": reason});
    result
}
