//! The sequential models and the compilation of paired operations into their search operations.
//!
//! Every model follows the same rules for outcomes: `ok` operations are placed between call and return;
//! `info` operations (crashed) may be placed any time after their call, or never — crashed reads are dropped
//! since they change nothing; `fail` operations are dropped (they did not happen), except a failed CAS under
//! [`Conventions::failed_cas_observes`], which is a completed observation that the register did not hold
//! `from`.

use std::sync::Arc;

use serde_json::Value;

use super::intern::Interner;
use super::search::{Model, SearchOp};
use crate::history::{Conventions, Operation, Outcome};

/// The models the linearizability checker knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// `read` / `write`.
    Register,
    /// `read` / `write` / `cas [from to]`.
    CasRegister,
    /// `get` / `put` / `append` on strings (Porcupine's kv).
    KvAppend,
    /// `add v` / `read [v ...]` (the whole set).
    Set,
    /// `acquire` / `release`.
    Mutex,
    /// Transactions `[[f k v] ...]` of reads and writes over several registers (not partitioned).
    MultiRegister,
}

impl ModelKind {
    /// Parses a model name as used on the command line.
    pub fn from_name(name: &str) -> Option<ModelKind> {
        match name {
            "register" => Some(ModelKind::Register),
            "cas-register" => Some(ModelKind::CasRegister),
            "kv-append" | "kv" => Some(ModelKind::KvAppend),
            "set" => Some(ModelKind::Set),
            "mutex" => Some(ModelKind::Mutex),
            "multi-register" => Some(ModelKind::MultiRegister),
            _ => None,
        }
    }

    /// The model's name.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::KvAppend => "kv-append",
            ModelKind::Set => "set",
            ModelKind::Mutex => "mutex",
            ModelKind::MultiRegister => "multi-register",
        }
    }
}

/// An operation of one partition: its id, the operation and its (unwrapped) value.
pub type PartOp<'a> = (usize, &'a Operation<'a>, &'a Value);

/// Why an operation cannot be compiled for a model: the op id and the problem.
pub type CompileError = (usize, String);

fn search_op<O>(id: usize, operation: &Operation, op: O) -> SearchOp<O> {
    let ret = if operation.outcome == Outcome::Info {
        None
    } else {
        operation.return_time
    };
    SearchOp {
        id,
        call: operation.call_time,
        ret,
        op,
    }
}

fn unsupported(kind: ModelKind, id: usize, f: &str) -> CompileError {
    (id, format!("model {} does not support f {f:?}", kind.name()))
}

/// A register (with or without CAS) over interned values.
pub struct RegisterModel {
    /// Interned values; id 0 is the initial value.
    pub values: Interner,
}

/// A compiled register operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOp {
    /// Observed this value.
    Read(u32),
    /// Set the value.
    Write(u32),
    /// Set `to` if the value was `from`.
    Cas(u32, u32),
    /// Observed that the value was not `from`.
    CasMismatch(u32),
}

impl Model for RegisterModel {
    type State = u32;
    type Op = RegisterOp;
    fn init(&self) -> u32 {
        0
    }
    fn step(&self, state: &u32, op: &RegisterOp) -> Option<u32> {
        match *op {
            RegisterOp::Read(v) => (*state == v).then_some(v),
            RegisterOp::Write(v) => Some(v),
            RegisterOp::Cas(from, to) => (*state == from).then_some(to),
            RegisterOp::CasMismatch(from) => (*state != from).then_some(*state),
        }
    }
    fn describe(&self, state: &u32) -> Value {
        self.values.value(*state)
    }
}

/// Compiles a register partition; `allow_cas` selects the CAS register.
pub fn compile_register(
    ops: &[PartOp<'_>],
    conventions: &Conventions,
    allow_cas: bool,
) -> Result<(RegisterModel, Vec<SearchOp<RegisterOp>>), CompileError> {
    let kind = if allow_cas {
        ModelKind::CasRegister
    } else {
        ModelKind::Register
    };
    let mut values = Interner::default();
    values.id(&conventions.initial);
    let mut out = Vec::with_capacity(ops.len());
    for &(id, operation, value) in ops {
        let supported = matches!(operation.f, "read" | "write") || (allow_cas && operation.f == "cas");
        if !supported {
            return Err(unsupported(kind, id, operation.f));
        }
        let op = match (operation.f, operation.outcome) {
            (_, Outcome::Fail) if !(conventions.failed_cas_observes && operation.f == "cas") => None,
            ("read", Outcome::Info) => None,
            ("read", _) if value.is_null() && conventions.nil_read_matches_any => None,
            ("read", _) => Some(RegisterOp::Read(values.id(value))),
            ("write", _) => Some(RegisterOp::Write(values.id(value))),
            ("cas", outcome) if allow_cas => {
                let Some([from, to]) = value
                    .as_array()
                    .map(Vec::as_slice)
                    .and_then(|s| <&[Value; 2]>::try_from(s).ok())
                else {
                    return Err((id, format!("cas value must be [from, to], got {value}")));
                };
                let from = values.id(from);
                if outcome == Outcome::Fail {
                    Some(RegisterOp::CasMismatch(from))
                } else {
                    Some(RegisterOp::Cas(from, values.id(to)))
                }
            }
            (f, _) => return Err(unsupported(kind, id, f)),
        };
        if let Some(op) = op {
            out.push(search_op(id, operation, op));
        }
    }
    prune_unobservable_crashes(&mut out);
    Ok((RegisterModel { values }, out))
}

/// Drops crashed writes whose value nothing ever observes: any linearization that places one can drop it,
/// because until the next write no read or CAS can follow it. Not applied when failed CASes observe
/// mismatches (a crashed write could be what makes one legal).
fn prune_unobservable_crashes(ops: &mut Vec<SearchOp<RegisterOp>>) {
    if ops.iter().any(|o| matches!(o.op, RegisterOp::CasMismatch(_))) {
        return;
    }
    let mut observed = super::search::FastSet::default();
    for o in ops.iter() {
        match o.op {
            RegisterOp::Read(v) | RegisterOp::Cas(v, _) => {
                observed.insert(v);
            }
            _ => {}
        }
    }
    ops.retain(|o| match (o.ret, o.op) {
        (None, RegisterOp::Write(v) | RegisterOp::Cas(_, v)) => observed.contains(&v),
        _ => true,
    });
}

/// Porcupine's key-value model for one key: `get` / `put` / `append` on a string.
pub struct KvModel {
    /// The initial value.
    pub initial: Arc<str>,
}

/// A compiled kv operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOp {
    /// Observed this value.
    Get(Arc<str>),
    /// Set the value.
    Put(Arc<str>),
    /// Appended to the value.
    Append(Arc<str>),
}

impl Model for KvModel {
    /// Shared strings: a get or a put hands on the state without copying it.
    type State = Arc<str>;
    type Op = KvOp;
    fn init(&self) -> Arc<str> {
        self.initial.clone()
    }
    fn step(&self, state: &Arc<str>, op: &KvOp) -> Option<Arc<str>> {
        match op {
            KvOp::Get(v) => (state == v).then(|| state.clone()),
            KvOp::Put(v) => Some(v.clone()),
            KvOp::Append(v) => {
                let mut text = String::with_capacity(state.len() + v.len());
                text.push_str(state);
                text.push_str(v);
                Some(text.into())
            }
        }
    }
    fn describe(&self, state: &Arc<str>) -> Value {
        Value::String(state.to_string())
    }
    fn state_heap_bytes(&self, state: &Arc<str>) -> usize {
        state.len()
    }
}

fn as_text(value: &Value) -> Arc<str> {
    match value {
        Value::String(s) => s.as_str().into(),
        Value::Null => "".into(),
        other => other.to_string().into(),
    }
}

/// Drops crashed appends whose text no get ever saw (as a substring). Such an append can be linearized last
/// or never: a get after it would have seen its text (a put in between hides it, but then no get sat between
/// the two), so a linearization with it exists exactly when one without it does. Keeping them makes the
/// search try every place for each of them, which multiplies its cost per crashed append.
fn drop_unobserved_crashed_appends(ops: &mut Vec<SearchOp<KvOp>>) {
    let crashed = |o: &SearchOp<KvOp>| o.ret.is_none() && matches!(o.op, KvOp::Append(_));
    if !ops.iter().any(crashed) {
        return;
    }
    let seen: Vec<Arc<str>> = ops
        .iter()
        .filter_map(|o| match &o.op {
            KvOp::Get(v) => Some(v.clone()),
            _ => None,
        })
        .collect();
    ops.retain(|o| match (&o.op, o.ret) {
        (KvOp::Append(text), None) => seen.iter().any(|v| v.contains(&**text)),
        _ => true,
    });
}

/// Compiles a kv partition.
pub fn compile_kv(
    ops: &[PartOp<'_>],
    conventions: &Conventions,
) -> Result<(KvModel, Vec<SearchOp<KvOp>>), CompileError> {
    let mut out = Vec::with_capacity(ops.len());
    for &(id, operation, value) in ops {
        let op = match (operation.f, operation.outcome) {
            (_, Outcome::Fail) | ("get" | "read", Outcome::Info) => continue,
            ("get" | "read", _) => KvOp::Get(as_text(value)),
            ("put" | "write", _) => KvOp::Put(as_text(value)),
            ("append", _) => KvOp::Append(as_text(value)),
            (f, _) => return Err(unsupported(ModelKind::KvAppend, id, f)),
        };
        out.push(search_op(id, operation, op));
    }
    drop_unobserved_crashed_appends(&mut out);
    Ok((
        KvModel {
            initial: as_text(&conventions.initial),
        },
        out,
    ))
}

/// A set of interned elements; reads observe the whole set.
pub struct SetModel {
    /// Interned elements.
    pub values: Interner,
}

/// A compiled set operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetOp {
    /// Added an element.
    Add(u32),
    /// Observed exactly these elements (sorted).
    Read(Vec<u32>),
}

impl Model for SetModel {
    type State = Vec<u32>;
    type Op = SetOp;
    fn init(&self) -> Vec<u32> {
        Vec::new()
    }
    fn step(&self, state: &Vec<u32>, op: &SetOp) -> Option<Vec<u32>> {
        match op {
            SetOp::Add(v) => match state.binary_search(v) {
                Ok(_) => Some(state.clone()),
                Err(at) => {
                    let mut next = state.clone();
                    next.insert(at, *v);
                    Some(next)
                }
            },
            SetOp::Read(seen) => (state == seen).then(|| state.clone()),
        }
    }
    fn describe(&self, state: &Vec<u32>) -> Value {
        Value::Array(state.iter().map(|&id| self.values.value(id)).collect())
    }
    fn state_heap_bytes(&self, state: &Vec<u32>) -> usize {
        state.capacity() * 4
    }
}

/// Compiles a set partition.
pub fn compile_set(ops: &[PartOp<'_>]) -> Result<(SetModel, Vec<SearchOp<SetOp>>), CompileError> {
    let mut values = Interner::default();
    let mut out = Vec::with_capacity(ops.len());
    for &(id, operation, value) in ops {
        let op = match (operation.f, operation.outcome) {
            (_, Outcome::Fail) | ("read", Outcome::Info) => continue,
            ("add", _) => SetOp::Add(values.id(value)),
            ("read", _) => {
                let Some(items) = value.as_array() else {
                    return Err((id, format!("set read value must be a list, got {value}")));
                };
                let mut seen: Vec<u32> = items.iter().map(|v| values.id(v)).collect();
                seen.sort_unstable();
                seen.dedup();
                SetOp::Read(seen)
            }
            (f, _) => return Err(unsupported(ModelKind::Set, id, f)),
        };
        out.push(search_op(id, operation, op));
    }
    Ok((SetModel { values }, out))
}

/// A mutex: held or free.
pub struct MutexModel;

/// A compiled mutex operation: `true` acquires, `false` releases.
pub type MutexOp = bool;

impl Model for MutexModel {
    type State = bool;
    type Op = MutexOp;
    fn init(&self) -> bool {
        false
    }
    fn step(&self, held: &bool, acquire: &bool) -> Option<bool> {
        (*held != *acquire).then_some(*acquire)
    }
    fn describe(&self, held: &bool) -> Value {
        Value::String(if *held { "held" } else { "free" }.into())
    }
}

/// Compiles a mutex partition.
pub fn compile_mutex(ops: &[PartOp<'_>]) -> Result<(MutexModel, Vec<SearchOp<MutexOp>>), CompileError> {
    let mut out = Vec::with_capacity(ops.len());
    for &(id, operation, _) in ops {
        let acquire = match (operation.f, operation.outcome) {
            (_, Outcome::Fail) => continue,
            ("acquire" | "lock", _) => true,
            ("release" | "unlock", _) => false,
            (f, _) => return Err(unsupported(ModelKind::Mutex, id, f)),
        };
        out.push(search_op(id, operation, acquire));
    }
    Ok((MutexModel, out))
}

/// Several registers changed by transactions of reads and writes.
pub struct MultiRegisterModel {
    /// Interned values; id 0 is the initial value.
    pub values: Interner,
    /// Key names by index.
    pub keys: Vec<Value>,
}

/// One micro-operation: write or read, key index, value (`None`: a read matching anything).
pub type MicroOp = (bool, usize, Option<u32>);

impl Model for MultiRegisterModel {
    type State = Vec<u32>;
    type Op = Vec<MicroOp>;
    fn init(&self) -> Vec<u32> {
        vec![0; self.keys.len()]
    }
    fn step(&self, state: &Vec<u32>, txn: &Vec<MicroOp>) -> Option<Vec<u32>> {
        let mut next = state.clone();
        for &(write, key, value) in txn {
            match (write, value) {
                (true, Some(v)) => next[key] = v,
                (false, Some(v)) if next[key] != v => return None,
                _ => {}
            }
        }
        Some(next)
    }
    fn describe(&self, state: &Vec<u32>) -> Value {
        let map = self
            .keys
            .iter()
            .zip(state)
            .map(|(k, &v)| (as_text(k).to_string(), self.values.value(v)))
            .collect();
        Value::Object(map)
    }
}

/// A compiled partition: its model and operations.
pub type Compiled<M> = (M, Vec<SearchOp<<M as Model>::Op>>);

/// Compiles a multi-register history (transactions `[[f k v] ...]`).
pub fn compile_multi_register(
    ops: &[PartOp<'_>],
    conventions: &Conventions,
) -> Result<Compiled<MultiRegisterModel>, CompileError> {
    let mut model = MultiRegisterModel {
        values: Interner::default(),
        keys: Vec::new(),
    };
    model.values.id(&conventions.initial);
    let mut key_ids = Interner::default();
    let mut out = Vec::with_capacity(ops.len());
    for &(id, operation, value) in ops {
        if operation.outcome == Outcome::Fail {
            continue;
        }
        let Some(micro_ops) = value.as_array() else {
            return Err((
                id,
                format!("multi-register value must be a list of [f k v], got {value}"),
            ));
        };
        let mut txn = Vec::with_capacity(micro_ops.len());
        for micro in micro_ops {
            let parts = micro.as_array().map(Vec::as_slice).unwrap_or_default();
            let [f, k, v] = parts else {
                return Err((id, format!("micro-op must be [f k v], got {micro}")));
            };
            let key = key_ids.id(k) as usize;
            if key == model.keys.len() {
                model.keys.push(k.clone());
            }
            let write = matches!(f.as_str(), Some("write" | "w"));
            let wildcard =
                !write && (operation.outcome == Outcome::Info || (v.is_null() && conventions.nil_read_matches_any));
            txn.push((write, key, (!wildcard).then(|| model.values.id(v))));
        }
        out.push(search_op(id, operation, txn));
    }
    Ok((model, out))
}
