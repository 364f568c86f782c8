//! The Wing–Gong–Lowe linearizability search over one partition (one key).
//!
//! Calls and returns sit in one doubly-linked list in time order (at equal times, calls before returns, so
//! operations that touch count as concurrent). Walking from the head, a call is tried as the next
//! linearization point: if the model accepts it and the configuration (linearized set, state) is new to the
//! cache, the operation is lifted out of the list and the walk restarts. Reaching a return means an operation
//! that already returned is still unlinearized: backtrack. Crashed (`info`) operations have no return, so they
//! may be linearized at any point after their call, or never. The walk reaching the end means every completed
//! operation is linearized. The linearized set is a bitset with an incremental Zobrist hash; the search checks
//! a cancellation flag, a deadline and a memory budget, and remembers the deepest stack it had to abandon as
//! the counterexample. A [`Searcher`] runs in slices of steps and resumes where it stopped, so a scheduler
//! can interleave partitions.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A sequential specification.
pub trait Model {
    /// A model state.
    type State: Clone + Eq + Hash;
    /// A compiled operation (input and observed output).
    type Op;
    /// The initial state.
    fn init(&self) -> Self::State;
    /// Applies `op` to `state`: the next state, or `None` if `op` cannot happen in `state`.
    fn step(&self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;
    /// The state for humans (counterexamples).
    fn describe(&self, state: &Self::State) -> serde_json::Value;
    /// Heap bytes `state` holds beyond its own size (strings, vectors), for the memory budget.
    fn state_heap_bytes(&self, _state: &Self::State) -> usize {
        0
    }
}

/// One operation to place: its id in the caller's numbering, call and return times, and the compiled op.
#[derive(Debug, Clone)]
pub struct SearchOp<O> {
    /// Caller's id (reported back in counterexamples).
    pub id: usize,
    /// Call time.
    pub call: u64,
    /// Return time; `None` for crashed operations.
    pub ret: Option<u64>,
    /// The compiled operation.
    pub op: O,
}

/// Limits for one search.
#[derive(Clone, Copy)]
pub struct Limits<'a> {
    /// Give up (unknown) after this instant.
    pub deadline: Option<Instant>,
    /// Give up (unknown) when set, e.g. because another partition already failed.
    pub cancel: &'a AtomicBool,
    /// Give up (unknown) when the cache would exceed this many bytes.
    pub memory_bytes: usize,
}

/// Why a search gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// The deadline passed.
    Timeout,
    /// The cache hit the memory budget.
    Memory,
    /// Cancelled from outside.
    Cancelled,
}

/// The outcome of one search. Orders are op ids (the callers' numbering); states are not kept, since
/// replaying the model along an order ([`replay`]) gives them back when a reader asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Linearizable; the witness order of op ids.
    Linearizable(Vec<usize>),
    /// Not linearizable: the op (caller id) that could not be placed, and the deepest prefix tried, in
    /// linearization order.
    Illegal { blocked: usize, prefix: Vec<usize> },
    /// Undecided.
    Unknown(GiveUp),
}

/// Statistics of one search.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    /// Configurations stored in the cache.
    pub configurations: u64,
    /// Backtracks.
    pub backtracks: u64,
}

const NONE: u32 = u32::MAX;
const CHECK_EVERY: u32 = 1024;

#[derive(Clone, Copy)]
struct Node {
    op: u32,
    is_call: bool,
    pair: u32,
    prev: u32,
    next: u32,
}

/// The configurations (linearized set, model state) seen so far, chained by hash. The bitsets of all
/// configurations share one arena (entry `i`'s words at `i * width`), so remembering a configuration
/// allocates nothing but amortised vector growth, and dropping the cache frees a handful of blocks.
struct Cache<S> {
    /// Hash of a configuration to the index of the newest entry with that hash.
    heads: HashMap<u64, usize, BuildHasherDefault<PassThrough>>,
    /// Entries: the state and the index of the next (older) entry with the same hash.
    entries: Vec<(S, usize)>,
    /// The bitsets, `width` words per entry.
    words: Vec<u64>,
    width: usize,
}

/// End of a hash chain.
const CHAIN_END: usize = usize::MAX;

impl<S: Eq> Cache<S> {
    /// A cache for bitsets of `width` words, with room for `expected` configurations from the start.
    fn new(width: usize, expected: usize) -> Cache<S> {
        let mut heads = HashMap::default();
        heads.reserve(expected);
        Cache {
            heads,
            entries: Vec::with_capacity(expected),
            words: Vec::with_capacity(expected * width),
            width,
        }
    }

    /// Adds the configuration unless it is already present; true if it was new. `state` is cloned only
    /// when it is added.
    fn insert(&mut self, hash: u64, bits: &[u64], state: &S) -> bool
    where
        S: Clone,
    {
        let width = self.width;
        let head = self.heads.entry(hash).or_insert(CHAIN_END);
        let mut at = *head;
        while at != CHAIN_END {
            let (seen, next) = &self.entries[at];
            if seen == state && self.words[at * width..(at + 1) * width] == *bits {
                return false;
            }
            at = *next;
        }
        let index = self.entries.len();
        self.entries.push((state.clone(), *head));
        self.words.extend_from_slice(bits);
        *head = index;
        true
    }
}

/// Passes a precomputed `u64` through unchanged.
#[derive(Default)]
struct PassThrough(u64);
impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A fast hasher for model states, and for the checker's other small maps (interned values, keys, ids),
/// where SipHash's resistance to chosen keys buys nothing and costs a measurable share of a small check.
#[derive(Default)]
pub struct StateHasher(u64);

/// Hash maps and sets keyed with [`StateHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<StateHasher>>;
/// See [`FastMap`].
pub type FastSet<K> = std::collections::HashSet<K, BuildHasherDefault<StateHasher>>;
impl Hasher for StateHasher {
    fn finish(&self) -> u64 {
        mix(self.0)
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn state_hash<S: Hash>(state: &S) -> u64 {
    let mut h = StateHasher::default();
    state.hash(&mut h);
    h.finish()
}

/// Builds the time-ordered entry list: node 0 is the head sentinel.
fn build_list<O>(ops: &[SearchOp<O>]) -> Vec<Node> {
    let mut events: Vec<(u64, bool, u32)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        events.push((op.call, false, i as u32));
        if let Some(ret) = op.ret {
            events.push((ret.max(op.call), true, i as u32));
        }
    }
    events.sort_unstable();
    let mut nodes = Vec::with_capacity(events.len() + 1);
    nodes.push(Node {
        op: NONE,
        is_call: false,
        pair: NONE,
        prev: NONE,
        next: NONE,
    });
    let mut call_node = vec![NONE; ops.len()];
    for (pos, &(_, is_return, op)) in events.iter().enumerate() {
        let me = (pos + 1) as u32;
        let next = if pos + 1 < events.len() { me + 1 } else { NONE };
        nodes.push(Node {
            op,
            is_call: !is_return,
            pair: NONE,
            prev: me - 1,
            next,
        });
        if is_return {
            let call = call_node[op as usize];
            nodes[call as usize].pair = me;
        } else {
            call_node[op as usize] = me;
        }
    }
    nodes[0].next = if events.is_empty() { NONE } else { 1 };
    nodes
}

/// A search that can be advanced in slices of steps and resumed, so a scheduler can interleave partitions.
/// The model and the operations are handed to each [`Searcher::advance`] call rather than borrowed, so a
/// caller can keep them next to the searcher.
pub struct Searcher<M: Model> {
    nodes: Vec<Node>,
    bits: Vec<u64>,
    bits_hash: u64,
    zobrist: Vec<u64>,
    cache: Cache<M::State>,
    cache_bytes: usize,
    stack: Vec<(u32, M::State)>,
    /// The deepest abandoned stack: the blocked op's index and the linearized ops' indices (states are
    /// replayed only when the search ends illegal, so backtracking copies no states).
    best: Option<(u32, Vec<u32>)>,
    stats: Stats,
    /// The model state at `entry`; `None` before the first step.
    state: Option<M::State>,
    /// The list entry to try next.
    entry: u32,
    /// Too many operations to number with `u32` nodes.
    too_large: bool,
}

impl<M: Model> Searcher<M> {
    /// A search over `ops`, positioned at its start.
    pub fn new(ops: &[SearchOp<M::Op>]) -> Searcher<M> {
        let too_large = ops.len() >= NONE as usize / 2;
        let count = if too_large { 0 } else { ops.len() };
        let zobrist = (0..count as u64)
            .map(|i| mix(i.wrapping_add(0x9e37_79b9_7f4a_7c15)))
            .collect();
        let nodes = build_list(&ops[..count]);
        let entry = nodes[0].next;
        Searcher {
            nodes,
            bits: vec![0; count.div_ceil(64)],
            bits_hash: 0,
            zobrist,
            // Every operation is linearized once on the way to a verdict, so at least that many configurations.
            cache: Cache::new(count.div_ceil(64), count),
            cache_bytes: 0,
            stack: Vec::new(),
            best: None,
            stats: Stats::default(),
            state: None,
            entry,
            too_large,
        }
    }

    /// Statistics so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Bytes held by the configuration cache (an estimate).
    pub fn cache_bytes(&self) -> usize {
        self.cache_bytes
    }

    fn unlink(&mut self, n: u32) {
        let Node { prev, next, .. } = self.nodes[n as usize];
        self.nodes[prev as usize].next = next;
        if next != NONE {
            self.nodes[next as usize].prev = prev;
        }
    }

    fn relink(&mut self, n: u32) {
        let Node { prev, next, .. } = self.nodes[n as usize];
        self.nodes[prev as usize].next = n;
        if next != NONE {
            self.nodes[next as usize].prev = n;
        }
    }

    fn lift(&mut self, call: u32) {
        self.unlink(call);
        let pair = self.nodes[call as usize].pair;
        if pair != NONE {
            self.unlink(pair);
        }
    }

    fn unlift(&mut self, call: u32) {
        let pair = self.nodes[call as usize].pair;
        if pair != NONE {
            self.relink(pair);
        }
        self.relink(call);
    }

    fn flip(&mut self, op: u32) {
        self.bits[(op / 64) as usize] ^= 1 << (op % 64);
        self.bits_hash ^= self.zobrist[op as usize];
    }

    /// Tries to add the configuration after linearizing `op`; true if it was new.
    fn remember(&mut self, model: &M, state: &M::State) -> bool {
        let hash = self.bits_hash ^ state_hash(state);
        if !self.cache.insert(hash, &self.bits, state) {
            return false;
        }
        let size = self.bits.len() * 8 + std::mem::size_of::<(M::State, usize)>() + 16 + model.state_heap_bytes(state);
        self.cache_bytes += size;
        self.stats.configurations += 1;
        true
    }

    fn record_blocked(&mut self, blocked_op: u32) {
        let depth = self.stack.len();
        if self.best.as_ref().is_some_and(|(_, order)| order.len() >= depth) {
            return;
        }
        let mut order = self.best.take().map(|(_, order)| order).unwrap_or_default();
        order.clear();
        order.extend(self.stack.iter().map(|(node, _)| self.nodes[*node as usize].op));
        self.best = Some((blocked_op, order));
    }

    /// The counterexample: the blocked op's id and the deepest prefix's op ids.
    fn illegal(&mut self, ops: &[SearchOp<M::Op>], fallback: u32) -> Outcome {
        let (blocked, order) = self.best.take().unwrap_or((fallback, Vec::new()));
        Outcome::Illegal {
            blocked: ops[blocked as usize].id,
            prefix: order.into_iter().map(|op| ops[op as usize].id).collect(),
        }
    }

    /// Runs at most about `steps` steps of the search (`u64::MAX` for no limit): the outcome if it is
    /// decided (or given up), `None` if the slice ran out first. `model` and `ops` must be the ones the
    /// searcher was made for, every time.
    pub fn advance(&mut self, model: &M, ops: &[SearchOp<M::Op>], limits: Limits<'_>, steps: u64) -> Option<Outcome> {
        if self.too_large {
            return Some(Outcome::Unknown(GiveUp::Memory));
        }
        let mut state = self.state.take().unwrap_or_else(|| model.init());
        let mut entry = self.entry;
        let mut budget = CHECK_EVERY;
        let mut remaining = steps;
        while entry != NONE {
            budget -= 1;
            if budget == 0 {
                budget = CHECK_EVERY;
                if let Some(give_up) = self.should_stop(limits) {
                    return Some(Outcome::Unknown(give_up));
                }
            }
            if remaining == 0 {
                self.state = Some(state);
                self.entry = entry;
                return None;
            }
            remaining -= 1;
            let node = self.nodes[entry as usize];
            if node.is_call {
                if let Some(next_state) = model.step(&state, &ops[node.op as usize].op) {
                    self.flip(node.op);
                    if self.remember(model, &next_state) {
                        let previous = std::mem::replace(&mut state, next_state);
                        self.stack.push((entry, previous));
                        self.lift(entry);
                        entry = self.nodes[0].next;
                        continue;
                    }
                    self.flip(node.op);
                }
                entry = node.next;
            } else {
                self.record_blocked(node.op);
                let Some((call, previous)) = self.stack.pop() else {
                    return Some(self.illegal(ops, node.op));
                };
                self.stats.backtracks += 1;
                state = previous;
                let op = self.nodes[call as usize].op;
                self.flip(op);
                self.unlift(call);
                entry = self.nodes[call as usize].next;
            }
        }
        let order = self
            .stack
            .iter()
            .map(|(n, _)| ops[self.nodes[*n as usize].op as usize].id)
            .collect();
        Some(Outcome::Linearizable(order))
    }

    fn should_stop(&self, limits: Limits<'_>) -> Option<GiveUp> {
        if limits.cancel.load(Ordering::Relaxed) {
            Some(GiveUp::Cancelled)
        } else if limits.deadline.is_some_and(|d| Instant::now() >= d) {
            Some(GiveUp::Timeout)
        } else if self.cache_bytes > limits.memory_bytes {
            Some(GiveUp::Memory)
        } else {
            None
        }
    }
}

/// Decides whether `ops` are linearizable with respect to `model`, in one go.
pub fn search<M: Model>(model: &M, ops: &[SearchOp<M::Op>], limits: Limits<'_>) -> (Outcome, Stats) {
    let mut searcher = Searcher::new(ops);
    let outcome = searcher
        .advance(model, ops, limits, u64::MAX)
        .unwrap_or(Outcome::Unknown(GiveUp::Cancelled));
    (outcome, searcher.stats())
}

/// Steps the model through `order` (op ids of `ops`, as an [`Outcome`] gives them) and hands each id and the
/// state after it to `visit`. The search accepted the order, so every step succeeds; should one not (an
/// order from elsewhere), the replay stops there. Returns the number of steps taken and the last state.
pub fn replay<M: Model>(
    model: &M,
    ops: &[SearchOp<M::Op>],
    order: &[usize],
    mut visit: impl FnMut(usize, &M::State),
) -> (usize, M::State) {
    // The compiled operations come in id order, so an id is found by bisection; a map is built only for
    // operations in some other order.
    let sorted = ops.windows(2).all(|w| w[0].id < w[1].id);
    let by_id: FastMap<usize, usize> = if sorted {
        FastMap::default()
    } else {
        ops.iter().enumerate().map(|(i, o)| (o.id, i)).collect()
    };
    let position = |id: usize| {
        if sorted {
            ops.binary_search_by_key(&id, |o| o.id).ok()
        } else {
            by_id.get(&id).copied()
        }
    };
    let mut state = model.init();
    let mut taken = 0;
    for &id in order {
        let Some(next) = position(id)
            .and_then(|i| ops.get(i))
            .and_then(|o| model.step(&state, &o.op))
        else {
            break;
        };
        state = next;
        taken += 1;
        visit(id, &state);
    }
    (taken, state)
}
