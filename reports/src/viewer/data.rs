//! The viewer's embedded data: the client operations as column arrays, one shared string table, and per key
//! the linearization witness (order, states, longest prefix, blocked operation); the fault intervals; the
//! stale reads with the write each saw and the newer writes it missed.
//!
//! Operation ids are positions in the paired history's `operations`; times are nanoseconds on the history's
//! clock. Strings (functions, values, states, members) are indices into `strings`.

use std::collections::HashMap;
use std::time::Duration;

use faultline_checker::history::{History, Key, Operation, Outcome, PairedHistory};
use faultline_checker::linear::witness::{KeyWitness, LinearWitness};
use faultline_checker::linear::{LinearError, LinearOptions, ModelKind};
use faultline_checker::result::Validity;
use faultline_checker::stale::{ReadClass, classify};
use serde::Serialize;
use serde_json::Value;

use crate::faults::fault_intervals;

/// Everything the page's script reads.
#[derive(Debug, Serialize)]
pub struct ViewerData {
    /// The page title (history file or run name).
    pub title: String,
    /// The model checked against.
    pub model: String,
    /// Overall verdict: `valid`, `invalid` or `unknown`.
    pub verdict: String,
    /// First and last event times (ns).
    pub start: u64,
    /// See `start`.
    pub end: u64,
    /// The string table.
    pub strings: Vec<String>,
    /// The client operations.
    pub ops: OpColumns,
    /// One entry per key, in order of first appearance.
    pub keys: Vec<KeyView>,
    /// The key to show first: the non-linearizable key whose blocked operation was invoked first (as the
    /// checker reports), else the first key.
    pub start_key: usize,
    /// Fault intervals from the nemesis events.
    pub faults: Vec<FaultView>,
    /// Stale reads (register models only).
    pub stale: Vec<StaleView>,
}

/// The client operations, one array per field.
#[derive(Debug, Default, Serialize)]
pub struct OpColumns {
    /// Client process.
    pub process: Vec<u64>,
    /// Invocation time (ns).
    pub call: Vec<u64>,
    /// Completion time (ns); `-1` when the operation never completed.
    pub ret: Vec<i64>,
    /// 0 `ok`, 1 `fail`, 2 `info`.
    pub outcome: Vec<u8>,
    /// Function (string index).
    pub f: Vec<u32>,
    /// Value without the key (string index).
    pub value: Vec<u32>,
    /// Serving member (string index), `-1` when unknown.
    pub node: Vec<i64>,
    /// Source line of the invocation (0 when unknown).
    pub line: Vec<usize>,
    /// The invocation's `index` field.
    pub index: Vec<u64>,
}

/// One key's operations and witness.
#[derive(Debug, Serialize)]
pub struct KeyView {
    /// The key as text (`(all)` for un-keyed histories).
    pub key: String,
    /// `valid`, `invalid` or `unknown`.
    pub verdict: String,
    /// Operation ids, in invocation order.
    pub ops: Vec<usize>,
    /// Initial model state (string index).
    pub initial: u32,
    /// Linearization order found (operation ids): the whole order, or the longest prefix.
    pub order: Vec<usize>,
    /// State after each step of `order` (string indices).
    pub states: Vec<u32>,
    /// The first operation that cannot follow `order`, for a non-linearizable key.
    pub blocked: Option<usize>,
}

/// One fault interval.
#[derive(Debug, Serialize)]
pub struct FaultView {
    /// Kind (`partition`, `kill`, ...).
    pub kind: String,
    /// Start (ns).
    pub start: u64,
    /// End (ns); equal to `start` for an instantaneous fault.
    pub end: u64,
    /// The nemesis' description (its start op's value).
    pub description: String,
}

/// One stale read.
#[derive(Debug, Serialize)]
pub struct StaleView {
    /// The read (operation id).
    pub read: usize,
    /// The key index in `keys`.
    pub key: usize,
    /// The write whose value it returned; `None` when it returned the initial value.
    pub source: Option<usize>,
    /// Acknowledged writes of the same key that began after `source` completed and completed before the read
    /// began: the versions it missed.
    pub missed: Vec<usize>,
    /// How long before the read began the first missed write was acknowledged (ns).
    pub behind_ns: u64,
}

/// Interns strings into the table.
#[derive(Default)]
struct Strings {
    table: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Strings {
    fn id(&mut self, text: &str) -> u32 {
        if let Some(&id) = self.ids.get(text) {
            return id;
        }
        let id = self.table.len() as u32;
        self.table.push(text.to_string());
        self.ids.insert(text.to_string(), id);
        id
    }

    fn value(&mut self, value: &Value) -> u32 {
        match value {
            Value::String(s) => self.id(&format!("{s:?}")),
            other => self.id(&other.to_string()),
        }
    }
}

/// Builds the data: every key's witness from the check's (searching within `budget` only the keys the check
/// left undecided), the stale-read classification (register models) and the fault intervals.
pub fn build(
    title: &str,
    history: &History,
    paired: &PairedHistory,
    witness: &LinearWitness,
    budget: Option<Duration>,
) -> Result<ViewerData, LinearError> {
    let options = witness.options();
    let mut strings = Strings::default();
    let ops = columns(history, paired, &mut strings);
    let found = witness.keys(history, paired, budget)?;
    let keys: Vec<KeyView> = found.iter().map(|w| key_view(w, &mut strings)).collect();
    let start_key = first_failing_key(paired, &found).unwrap_or(0);
    let verdict = found.iter().map(|w| w.verdict).fold(Validity::True, Validity::worst);
    let start = history.ops.iter().map(|o| o.time).min().unwrap_or(0);
    let end = history.ops.iter().map(|o| o.time).max().unwrap_or(0);
    let faults = fault_intervals(history)
        .into_iter()
        .map(|f| FaultView {
            kind: f.kind,
            start: f.start_ns,
            end: f.end_ns,
            description: f.description,
        })
        .collect();
    let stale = if matches!(options.model, ModelKind::Register | ModelKind::CasRegister) {
        stale_reads(paired, options, &found)
    } else {
        Vec::new()
    };
    Ok(ViewerData {
        title: title.to_string(),
        model: options.model.name().to_string(),
        verdict: verdict_name(verdict).to_string(),
        start,
        end,
        strings: strings.table,
        ops,
        keys,
        start_key,
        faults,
        stale,
    })
}

/// The non-linearizable key whose blocked operation was invoked first (the one the checker reports).
fn first_failing_key(paired: &PairedHistory, found: &[KeyWitness]) -> Option<usize> {
    found
        .iter()
        .enumerate()
        .filter_map(|(k, w)| w.blocked.map(|b| (paired.operations[b].invoke, k)))
        .min()
        .map(|(_, k)| k)
}

fn verdict_name(verdict: Validity) -> &'static str {
    match verdict {
        Validity::True => "valid",
        Validity::False => "invalid",
        Validity::Unknown => "unknown",
    }
}

fn columns(history: &History, paired: &PairedHistory, strings: &mut Strings) -> OpColumns {
    let mut c = OpColumns::default();
    for o in &paired.operations {
        c.process.push(o.process);
        c.call.push(o.call_time);
        c.ret
            .push(o.return_time.map_or(-1, |t| i64::try_from(t).unwrap_or(i64::MAX)));
        c.outcome.push(match o.outcome {
            Outcome::Ok => 0,
            Outcome::Fail => 1,
            Outcome::Info => 2,
        });
        c.f.push(strings.id(o.f));
        c.value.push(strings.value(o.value));
        c.node.push(o.node.map_or(-1, |n| i64::from(strings.id(n))));
        c.line.push(history.line_of(o.invoke));
        c.index
            .push(history.ops.get(o.invoke).map_or(o.invoke as u64, |e| e.index));
    }
    c
}

fn key_view(w: &KeyWitness, strings: &mut Strings) -> KeyView {
    KeyView {
        key: w.key.as_ref().map_or_else(|| "(all)".to_string(), Value::to_string),
        verdict: verdict_name(w.verdict).to_string(),
        ops: w.ops.clone(),
        initial: strings.value(&w.initial),
        order: w.order.iter().map(|(id, _)| *id).collect(),
        states: w.order.iter().map(|(_, s)| strings.value(s)).collect(),
        blocked: w.blocked,
    }
}

/// The key text of an operation, as the stale-read classification groups them.
fn key_text(o: &Operation) -> String {
    o.key.map_or_else(String::new, Key::to_string)
}

/// The value a write or CAS leaves in the register.
fn written(o: &Operation) -> Option<Value> {
    match o.f {
        "write" => Some(o.value.clone()),
        "cas" => o.value.as_array().and_then(|a| a.get(1)).cloned(),
        _ => None,
    }
}

/// The stale reads of the non-linearizable keys, in invocation order (a stale read makes its key non-linearizable, so no other
/// key has one; classifying only these keys keeps large valid histories cheap).
fn stale_reads(paired: &PairedHistory, options: &LinearOptions, found: &[KeyWitness]) -> Vec<StaleView> {
    let invalid: Vec<(usize, usize)> = found
        .iter()
        .enumerate()
        .filter(|(_, w)| w.verdict == Validity::False)
        .flat_map(|(k, w)| w.ops.iter().map(move |&id| (id, k)))
        .collect();
    if invalid.is_empty() {
        return Vec::new();
    }
    let subset = PairedHistory {
        operations: invalid.iter().map(|&(id, _)| paired.operations[id].clone()).collect(),
        nemesis: Vec::new(),
    };
    let mut views = stale_reads_of(&subset, options);
    for view in &mut views {
        let original = |sub: usize| invalid[sub].0;
        view.key = invalid[view.read].1;
        view.read = original(view.read);
        view.source = view.source.map(original);
        view.missed = view.missed.iter().map(|&m| original(m)).collect();
    }
    views.sort_by_key(|v| paired.operations[v.read].call_time);
    views
}

/// Stale reads with ids in `paired` (the key index is filled in by the caller).
fn stale_reads_of(paired: &PairedHistory, options: &LinearOptions) -> Vec<StaleView> {
    let ops = &paired.operations;
    let writes: Vec<(usize, Value)> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| o.outcome != Outcome::Fail)
        .filter_map(|(id, o)| written(o).map(|v| (id, v)))
        .collect();
    let mut out = Vec::new();
    for (read, class) in classify(paired, &options.conventions) {
        let ReadClass::Stale { behind_ns, .. } = class else {
            continue;
        };
        let r = &ops[read];
        let key = key_text(r);
        let same_key = || writes.iter().filter(|(id, _)| key_text(&ops[*id]) == key);
        let source = same_key().find(|(_, v)| v == r.value).map(|(id, _)| *id);
        let source_done = source.and_then(|s| ops[s].return_time);
        let missed = same_key()
            .filter(|(id, _)| Some(*id) != source)
            .filter(|(id, _)| {
                let w = &ops[*id];
                w.outcome == Outcome::Ok
                    && source_done.is_none_or(|done| w.call_time > done)
                    && w.return_time.is_some_and(|done| done < r.call_time)
            })
            .map(|(id, _)| *id)
            .collect();
        out.push(StaleView {
            read,
            key: 0,
            source,
            missed,
            behind_ns,
        });
    }
    out
}
