//! Election metrics (`serverStatus.electionMetrics`): elections called and won per reason, step-downs caused
//! by a higher term, and how each new primary's catch-up ended. Counted where the machine makes the decision;
//! they start at zero with the machine, as mongod's reset at restart.

use super::ReplMachine;

/// Why this member stood for election (mongod's `StartElectionReason`, grouped as `electionMetrics` reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionReason {
    /// `replSetStepUp` (the old primary's hand-over, or a user's).
    StepUpCmd,
    /// A higher-priority member taking over from a healthy primary.
    PriorityTakeover,
    /// A fresher member taking over from a primary stuck catching up (the engine does not do this yet).
    CatchUpTakeover,
    /// No primary heard from within electionTimeoutMillis.
    ElectionTimeout,
    /// A one-voter set standing again as soon as its freeze (or step-down period) ended.
    FreezeTimeout,
}

/// `{called, successful}` for one reason. Only real elections count, not dry runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReasonCounter {
    pub called: u64,
    pub successful: u64,
}

/// How a new primary's catch-up phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUpConclusion {
    Succeeded,
    AlreadyCaughtUp,
    Skipped,
    TimedOut,
    FailedWithError,
    FailedWithNewTerm,
}

/// The counters, with mongod's meaning for each field of `electionMetrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ElectionMetrics {
    pub step_up_cmd: ReasonCounter,
    pub priority_takeover: ReasonCounter,
    pub catch_up_takeover: ReasonCounter,
    pub election_timeout: ReasonCounter,
    pub freeze_timeout: ReasonCounter,
    pub step_downs_caused_by_higher_term: u64,
    /// Elections after which the new primary had to catch up (it was behind a member it knew of).
    pub catch_ups: u64,
    pub catch_ups_succeeded: u64,
    pub catch_ups_already_caught_up: u64,
    pub catch_ups_skipped: u64,
    pub catch_ups_timed_out: u64,
    pub catch_ups_failed_with_error: u64,
    pub catch_ups_failed_with_new_term: u64,
}

impl ElectionMetrics {
    fn counter(&mut self, reason: ElectionReason) -> &mut ReasonCounter {
        match reason {
            ElectionReason::StepUpCmd => &mut self.step_up_cmd,
            ElectionReason::PriorityTakeover => &mut self.priority_takeover,
            ElectionReason::CatchUpTakeover => &mut self.catch_up_takeover,
            ElectionReason::ElectionTimeout => &mut self.election_timeout,
            ElectionReason::FreezeTimeout => &mut self.freeze_timeout,
        }
    }

    pub(super) fn called(&mut self, reason: ElectionReason) {
        self.counter(reason).called += 1;
    }

    pub(super) fn won(&mut self, reason: ElectionReason) {
        self.counter(reason).successful += 1;
    }

    pub(super) fn concluded(&mut self, conclusion: CatchUpConclusion) {
        let slot = match conclusion {
            CatchUpConclusion::Succeeded => &mut self.catch_ups_succeeded,
            CatchUpConclusion::AlreadyCaughtUp => &mut self.catch_ups_already_caught_up,
            CatchUpConclusion::Skipped => &mut self.catch_ups_skipped,
            CatchUpConclusion::TimedOut => &mut self.catch_ups_timed_out,
            CatchUpConclusion::FailedWithError => &mut self.catch_ups_failed_with_error,
            CatchUpConclusion::FailedWithNewTerm => &mut self.catch_ups_failed_with_new_term,
        };
        *slot += 1;
    }
}

impl ReplMachine {
    /// The election metrics so far.
    pub fn election_metrics(&self) -> &ElectionMetrics {
        &self.metrics
    }

    /// Ends the pending catch-up with `conclusion`; every conclusion but "already caught up" counts as a
    /// catch-up (`numCatchUps`).
    pub(super) fn conclude_catch_up(&mut self, conclusion: CatchUpConclusion) {
        if std::mem::take(&mut self.catch_up_pending) {
            if conclusion != CatchUpConclusion::AlreadyCaughtUp {
                self.metrics.catch_ups += 1;
            }
            self.metrics.concluded(conclusion);
        }
    }
}
