//! A wire and command fuzzer against a live member: random commands (inserts of random nested documents;
//! updates, upserts and findAndModify with random operators over dotted, numeric, positional and very long
//! paths; finds with random filters, projections and sorts, and their getMores; aggregations with random
//! pipelines; count, distinct, index builds and drops) and random framing (truncated, garbage, lying lengths,
//! bad checksums, document sequences, legacy and unknown opcodes), sent as raw wire messages.
//!
//! After every case the member must still answer `ping`, and no case may go unanswered for long; every
//! [`AUDIT_EVERY`] cases (and at the end) every stored document must be within the storage depth limit
//! (180 levels) and every recent oplog entry within the BSON limit (200). A failure names the seed and the
//! case number, the last cases sent and the member's log; the same seed replays the same cases.
//!
//! By default it runs a few hundred cases from a fixed seed, so CI stays fast and deterministic. To fuzz for
//! longer:
//!
//! ```text
//! FAULTLINE_FUZZ_CASES=1000000 FAULTLINE_FUZZ_SECONDS=1800 FAULTLINE_FUZZ_SEED=$RANDOM$RANDOM \
//!     nice -n 10 cargo test -p faultline --test engine t78 -- --nocapture
//! ```
//!
//! `FAULTLINE_FUZZ_CASES` caps the cases, `FAULTLINE_FUZZ_SECONDS` the time (whichever comes first),
//! `FAULTLINE_FUZZ_SEED` picks the sequence. The summary (cases, time, replies by error code, closed
//! connections) is printed at the end; run with `--nocapture` to see it.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bson::oid::ObjectId;
use bson::spec::BinarySubtype;
use bson::{Binary, Bson, DateTime, Document, Regex, Timestamp, doc};
use faultline_engine::depth::{MAX_BSON_DEPTH, MAX_DOCUMENT_DEPTH, document_depth};
use faultline_tests::{NodeProcess, raw_command};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::primary;

const DEFAULT_CASES: u64 = 300;
const DEFAULT_SEED: u64 = 0x00fa_0171_e5ee_d001;
/// Cases between two depth audits of everything stored.
const AUDIT_EVERY: u64 = 50;
/// How long one case may go unanswered before it is a finding.
const CASE_TIMEOUT: Duration = Duration::from_secs(20);
/// Collections the cases write to; one is dropped when it grows past this many documents.
const COLLECTIONS: [&str; 3] = ["c0", "c1", "c2"];
const MAX_DOCS_PER_COLLECTION: usize = 2_000;
/// A long run starts over with a fresh member (and data directory) this often, so the oplog, which is never
/// truncated, does not fill the disk; the old member's data is audited first.
const FRESH_MEMBER_EVERY: u64 = 25_000;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// SplitMix64: small, fast, and the same sequence for the same seed everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn range(&mut self, low: usize, high: usize) -> usize {
        low + self.below(high - low + 1)
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const NAMES: [&str; 12] = ["a", "b", "c", "_id", "0", "1", "x", "y", "", "é", "$bad", "a.b"];
const PATH_PARTS: [&str; 11] = ["a", "b", "c", "0", "1", "x", "_id", "$", "$[]", "$[e]", ""];
const STRINGS: [&str; 14] = [
    "",
    "a",
    "b",
    "$a",
    "$a.b",
    "$$ROOT",
    "$$CURRENT.a",
    "$$REMOVE",
    "$$NOPE",
    "a.b",
    "é",
    "$",
    "$$",
    "x\u{0}y",
];

/// Random commands and frames.
struct Gen {
    rng: Rng,
}

impl Gen {
    fn name(&mut self) -> String {
        if self.rng.chance(95) {
            (*self.rng.pick(&NAMES[..8])).to_string()
        } else {
            (*self.rng.pick(&NAMES)).to_string()
        }
    }

    /// A dotted path: usually short, sometimes near or past the depth limits, sometimes absurdly long.
    fn path(&mut self) -> String {
        let parts = match self.rng.below(100) {
            0..=69 => self.rng.range(1, 4),
            70..=84 => self.rng.range(5, 30),
            85..=92 => self.rng.range(170, 215),
            93..=97 => self.rng.range(1_000, 3_000),
            _ => self.rng.range(10_000, 25_000),
        };
        let uniform = self.rng.chance(50);
        let first = *self.rng.pick(&PATH_PARTS[..7]);
        (0..parts)
            .map(|i| {
                if uniform || i == 0 {
                    first
                } else if self.rng.chance(97) {
                    *self.rng.pick(&PATH_PARTS[..7])
                } else {
                    *self.rng.pick(&PATH_PARTS)
                }
            })
            .collect::<Vec<_>>()
            .join(".")
    }

    fn scalar(&mut self) -> Bson {
        match self.rng.below(16) {
            0 => Bson::Int32(*self.rng.pick(&[0, 1, -1, 2, 5, i32::MAX, i32::MIN])),
            1 => Bson::Int64(*self.rng.pick(&[0, 3, -7, i64::MAX, i64::MIN, 1 << 53])),
            2 => Bson::Double(*self.rng.pick(&[0.0, -0.0, 1.5, f64::NAN, f64::INFINITY, -1e308])),
            3 => self
                .rng
                .pick(&["1.5", "-0", "NaN", "1E+6000"])
                .parse::<bson::Decimal128>()
                .map(Bson::Decimal128)
                .unwrap_or(Bson::Null),
            4 | 5 => Bson::String((*self.rng.pick(&STRINGS)).to_string()),
            6 => Bson::Boolean(self.rng.chance(50)),
            7 => Bson::Null,
            8 => Bson::ObjectId(ObjectId::from_bytes([self.rng.below(3) as u8; 12])),
            9 => Bson::DateTime(DateTime::from_millis(self.rng.next() as i64 % 1_000_000)),
            10 => Bson::Timestamp(Timestamp {
                time: self.rng.below(3) as u32,
                increment: self.rng.below(3) as u32,
            }),
            11 => {
                let pattern = *self.rng.pick(&["a", "^b", "(", "x*", ""]);
                let options = *self.rng.pick(&["", "i", "m", "q"]);
                match (pattern.to_string().try_into(), options.to_string().try_into()) {
                    (Ok(pattern), Ok(options)) => Bson::RegularExpression(Regex { pattern, options }),
                    _ => Bson::Null,
                }
            }
            12 => self.rng.pick(&[Bson::MinKey, Bson::MaxKey, Bson::Undefined]).clone(),
            13 => Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: vec![self.rng.below(256) as u8; self.rng.below(4)],
            }),
            14 => Bson::Symbol("s".into()),
            _ if self.rng.chance(10) => Bson::String("x".repeat(self.rng.range(100, 20_000))),
            _ => Bson::Int32(self.rng.below(10) as i32),
        }
    }

    /// A random value at most `depth` levels deep; now and then a long chain of nesting.
    fn value(&mut self, depth: usize) -> Bson {
        if depth > 0 && self.rng.chance(2) {
            let levels = self.rng.range(150, 215);
            return self.chain(levels);
        }
        match self.rng.below(if depth == 0 { 4 } else { 6 }) {
            0..=3 => self.scalar(),
            4 => Bson::Document(self.document(depth - 1)),
            _ => Bson::Array((0..self.rng.below(4)).map(|_| self.value(depth - 1)).collect()),
        }
    }

    /// `levels` of documents and arrays around a scalar.
    fn chain(&mut self, levels: usize) -> Bson {
        let mut current = self.scalar();
        for _ in 0..levels {
            current = if self.rng.chance(70) {
                let mut doc = Document::new();
                doc.insert(self.name(), current);
                Bson::Document(doc)
            } else {
                Bson::Array(vec![current])
            };
        }
        current
    }

    fn document(&mut self, depth: usize) -> Document {
        let mut doc = Document::new();
        for _ in 0..self.rng.below(4) {
            let value = self.value(depth);
            doc.insert(self.name(), value);
        }
        doc
    }

    fn stored_document(&mut self) -> Document {
        let mut doc = self.document(3);
        if self.rng.chance(80) {
            doc.insert("_id", self.id());
        }
        if self.rng.chance(30) {
            let path = self.path();
            let value = self.value(2);
            doc.insert(path, value);
        }
        doc
    }

    fn id(&mut self) -> Bson {
        match self.rng.below(6) {
            0..=2 => Bson::Int32(self.rng.below(40) as i32),
            3 => Bson::String(format!("k{}", self.rng.below(40))),
            4 => Bson::Document(doc! {"k": self.rng.below(5) as i32}),
            _ => self.value(1),
        }
    }

    fn filter(&mut self, depth: usize) -> Document {
        let mut filter = Document::new();
        for _ in 0..self.rng.below(3) {
            if depth > 0 && self.rng.chance(15) {
                let op = *self.rng.pick(&["$and", "$or", "$nor"]);
                let clauses: Vec<Bson> = (0..self.rng.range(1, 3))
                    .map(|_| Bson::Document(self.filter(depth - 1)))
                    .collect();
                filter.insert(op, clauses);
                continue;
            }
            if self.rng.chance(5) {
                filter.insert("$expr", self.expression(2));
                continue;
            }
            let path = self.path();
            let test = self.field_test(depth);
            filter.insert(path, test);
        }
        filter
    }

    fn field_test(&mut self, depth: usize) -> Bson {
        let operand = self.value(1);
        match self.rng.below(16) {
            0..=3 => operand,
            4 => Bson::Document(doc! {*self.rng.pick(&["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]): operand}),
            5 => Bson::Document(doc! {*self.rng.pick(&["$in", "$nin", "$all"]): [operand, self.scalar()]}),
            6 => Bson::Document(doc! {"$exists": self.rng.chance(50)}),
            7 => Bson::Document(doc! {"$type": *self.rng.pick(&["string", "number", "array", "object", "bogus"])}),
            8 => Bson::Document(doc! {"$size": self.rng.below(3) as i32}),
            9 if depth > 0 => Bson::Document(doc! {"$elemMatch": self.filter(depth - 1)}),
            10 => Bson::Document(doc! {"$not": {"$gt": operand}}),
            11 => Bson::Document(doc! {"$regex": *self.rng.pick(&["a", "^b", "("]), "$options": "i"}),
            12 => Bson::Document(doc! {"$mod": [2, self.rng.below(2) as i32]}),
            13 => Bson::Document(doc! {"$bogus": 1}),
            _ => {
                let levels = self.rng.range(1, 30);
                self.chain(levels)
            }
        }
    }

    fn expression(&mut self, depth: usize) -> Bson {
        if depth == 0 {
            return match self.rng.below(4) {
                0 => Bson::String(format!("${}", self.path())),
                1 => Bson::String((*self.rng.pick(&["$$ROOT", "$$CURRENT", "$$REMOVE", "$$CURRENT.a"])).into()),
                2 => Bson::Document(doc! {"$literal": self.value(2)}),
                _ => self.scalar(),
            };
        }
        match self.rng.below(6) {
            0 | 1 => self.expression(0),
            2 => {
                let op = *self.rng.pick(&[
                    "$add",
                    "$subtract",
                    "$multiply",
                    "$divide",
                    "$mod",
                    "$eq",
                    "$cmp",
                    "$and",
                    "$or",
                    "$not",
                    "$cond",
                    "$ifNull",
                    "$concat",
                    "$toLower",
                    "$size",
                    "$arrayElemAt",
                    "$in",
                    "$type",
                    "$sum",
                    "$min",
                    "$max",
                    "$bogus",
                ]);
                let args: Vec<Bson> = (0..self.rng.below(4)).map(|_| self.expression(depth - 1)).collect();
                Bson::Document(doc! {op: args})
            }
            3 => {
                let mut object = Document::new();
                for _ in 0..self.rng.range(1, 3) {
                    let value = self.expression(depth - 1);
                    object.insert(*self.rng.pick(&NAMES[..3]), value);
                }
                Bson::Document(object)
            }
            4 => Bson::Array((0..self.rng.below(3)).map(|_| self.expression(depth - 1)).collect()),
            _ => {
                let levels = self.rng.range(1, 50);
                self.chain(levels)
            }
        }
    }

    fn update(&mut self) -> Bson {
        match self.rng.below(10) {
            0 => Bson::Document(self.stored_document()),
            1 => Bson::Array(vec![Bson::Document(doc! {"$set": {"a": 1}})]),
            _ => {
                let mut update = Document::new();
                for _ in 0..self.rng.range(1, 3) {
                    let op = *self.rng.pick(&[
                        "$set",
                        "$set",
                        "$setOnInsert",
                        "$unset",
                        "$inc",
                        "$mul",
                        "$min",
                        "$max",
                        "$currentDate",
                        "$rename",
                        "$push",
                        "$addToSet",
                        "$pop",
                        "$pull",
                        "$pullAll",
                        "$bit",
                        "$bogus",
                    ]);
                    let mut fields = Document::new();
                    for _ in 0..self.rng.range(1, 3) {
                        let argument = match op {
                            "$inc" | "$mul" => Bson::Int32(self.rng.below(5) as i32 - 2),
                            "$rename" => Bson::String(self.path()),
                            "$pop" => Bson::Int32(*self.rng.pick(&[1, -1, 2])),
                            "$currentDate" => Bson::Boolean(true),
                            "$bit" => Bson::Document(doc! {"xor": 3}),
                            "$pullAll" => Bson::Array(vec![self.scalar()]),
                            "$push" | "$addToSet" if self.rng.chance(30) => Bson::Document(doc! {
                                "$each": [self.value(2), self.scalar()],
                                "$slice": self.rng.below(5) as i32 - 2,
                                "$sort": {self.path(): 1},
                            }),
                            "$pull" if self.rng.chance(50) => Bson::Document(self.filter(1)),
                            _ => self.value(3),
                        };
                        fields.insert(self.path(), argument);
                    }
                    update.insert(op, fields);
                }
                Bson::Document(update)
            }
        }
    }

    fn projection(&mut self, context_find: bool) -> Document {
        let mut spec = Document::new();
        for _ in 0..self.rng.range(1, 3) {
            let item = match self.rng.below(8) {
                0 | 1 => Bson::Int32(1),
                2 => Bson::Int32(0),
                3 => Bson::Boolean(self.rng.chance(50)),
                4 if context_find => Bson::Document(doc! {"$slice": self.rng.below(5) as i32 - 2}),
                5 if context_find => Bson::Document(doc! {"$elemMatch": self.filter(1)}),
                6 => Bson::Document(self.projection(context_find)),
                _ => self.expression(2),
            };
            spec.insert(self.path(), item);
        }
        spec
    }

    fn sort(&mut self) -> Document {
        let mut sort = Document::new();
        for _ in 0..self.rng.range(1, 2) {
            let direction = self
                .rng
                .pick(&[
                    Bson::Int32(1),
                    Bson::Int32(-1),
                    Bson::Int32(2),
                    Bson::String("x".into()),
                ])
                .clone();
            sort.insert(self.path(), direction);
        }
        sort
    }

    fn stage(&mut self) -> Document {
        match self.rng.below(15) {
            0 | 1 => doc! {"$match": self.filter(2)},
            2 => doc! {"$project": self.projection(false)},
            3 | 4 => doc! {*self.rng.pick(&["$addFields", "$set"]): {self.path(): self.expression(2)}},
            5 => doc! {"$unset": self.path()},
            6 => doc! {"$group": {"_id": self.expression(1), "n": {"$sum": 1}, "all": {"$push": self.expression(1)}}},
            7 => doc! {"$sort": self.sort()},
            8 => doc! {"$unwind": format!("${}", self.path())},
            9 => doc! {"$limit": self.rng.below(5) as i64 - 1},
            10 => doc! {"$skip": self.rng.below(5) as i64},
            11 => doc! {"$count": *self.rng.pick(&["n", "", "$x", "a.b"])},
            12 => doc! {"$replaceRoot": {"newRoot": self.expression(2)}},
            13 => doc! {"$replaceWith": {"x": "$$ROOT"}},
            _ => doc! {"$bogus": {}},
        }
    }

    fn collection(&mut self) -> &'static str {
        COLLECTIONS[self.rng.below(COLLECTIONS.len())]
    }

    /// One command body (without `$db`).
    fn command(&mut self) -> Document {
        let coll = self.collection();
        match self.rng.below(20) {
            0..=3 => {
                let docs: Vec<Bson> = (0..self.rng.range(1, 3))
                    .map(|_| Bson::Document(self.stored_document()))
                    .collect();
                doc! {"insert": coll, "documents": docs, "ordered": self.rng.chance(70)}
            }
            4..=7 => doc! {"update": coll, "updates": [{
                "q": self.filter(2), "u": self.update(), "upsert": self.rng.chance(30), "multi": self.rng.chance(30),
            }]},
            8 | 9 => {
                let mut body = doc! {"findAndModify": coll, "query": self.filter(1)};
                if self.rng.chance(20) {
                    body.insert("remove", true);
                } else {
                    body.insert("update", self.update());
                    body.insert("upsert", self.rng.chance(30));
                    body.insert("new", self.rng.chance(50));
                }
                if self.rng.chance(40) {
                    body.insert("fields", self.projection(true));
                }
                if self.rng.chance(30) {
                    body.insert("sort", self.sort());
                }
                body
            }
            10 => doc! {"delete": coll, "deletes": [{"q": self.filter(1), "limit": self.rng.below(2) as i32}]},
            11..=14 => {
                let mut body = doc! {"find": coll, "filter": self.filter(2), "batchSize": self.rng.below(4) as i32};
                if self.rng.chance(50) {
                    body.insert("projection", self.projection(true));
                }
                if self.rng.chance(40) {
                    body.insert("sort", self.sort());
                }
                if self.rng.chance(20) {
                    body.insert("limit", self.rng.below(5) as i64);
                    body.insert("skip", self.rng.below(3) as i64);
                }
                body
            }
            15..=17 => {
                let stages: Vec<Bson> = (0..self.rng.range(1, 6))
                    .map(|_| Bson::Document(self.stage()))
                    .collect();
                doc! {"aggregate": coll, "pipeline": stages, "cursor": {"batchSize": self.rng.below(4) as i32}}
            }
            18 => {
                if self.rng.chance(50) {
                    doc! {"count": coll, "query": self.filter(1)}
                } else {
                    doc! {"distinct": coll, "key": self.path(), "query": self.filter(1)}
                }
            }
            _ => {
                if self.rng.chance(70) {
                    let key = self.path();
                    doc! {"createIndexes": coll, "indexes": [{
                        "key": {key.clone(): 1}, "name": format!("i{}", self.rng.below(4)), "unique": self.rng.chance(50),
                    }]}
                } else {
                    doc! {"dropIndexes": coll, "index": "*"}
                }
            }
        }
    }
}

/// A message header.
fn header(len: usize, request_id: i32, op_code: i32) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(16);
    for v in [len as i32, request_id, 0, op_code] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}

/// OP_MSG with one body section and, optionally, a document sequence.
fn op_msg(request_id: i32, flags: u32, body: &[u8], sequence: Option<(&str, &[Vec<u8>])>) -> Vec<u8> {
    let mut payload = flags.to_le_bytes().to_vec();
    payload.push(0);
    payload.extend_from_slice(body);
    if let Some((name, docs)) = sequence {
        let size = 4 + name.len() + 1 + docs.iter().map(Vec::len).sum::<usize>();
        payload.push(1);
        payload.extend_from_slice(&(size as i32).to_le_bytes());
        payload.extend_from_slice(name.as_bytes());
        payload.push(0);
        for doc in docs {
            payload.extend_from_slice(doc);
        }
    }
    let mut msg = header(16 + payload.len(), request_id, 2013);
    msg.extend_from_slice(&payload);
    msg
}

/// How the member answered one case.
enum Outcome {
    Reply(Document),
    Closed,
}

/// One case, as sent.
struct Case {
    kind: &'static str,
    bytes: Vec<u8>,
    /// A short description for failure reports.
    summary: String,
}

fn summarize(body: &Document) -> String {
    let text = body.to_string();
    if text.len() > 400 {
        let cut = (0..=400).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        format!(
            "{}… ({} bytes, {} levels)",
            &text[..cut],
            text.len(),
            document_depth(body)
        )
    } else {
        text
    }
}

impl Gen {
    fn case(&mut self, request_id: i32) -> Option<Case> {
        let mut body = self.command();
        body.insert("$db", "fuzz");
        let summary = summarize(&body);
        let encoded = body.to_vec().ok()?;
        Some(match self.rng.below(100) {
            0..=84 => Case {
                kind: "command",
                bytes: op_msg(request_id, 0, &encoded, None),
                summary,
            },
            85..=87 => {
                // The same command, cut short.
                let msg = op_msg(request_id, 0, &encoded, None);
                let cut = self.rng.range(1, msg.len().saturating_sub(1).max(1));
                Case {
                    kind: "truncated",
                    bytes: msg[..cut].to_vec(),
                    summary: format!("first {cut} bytes of {summary}"),
                }
            }
            88 | 89 => {
                // Garbage after a plausible header.
                let len = self.rng.range(16, 300);
                let mut msg = header(len, request_id, *self.rng.pick(&[2013, 2004, 2012, 2002, 1, 9999]));
                msg.extend((16..len).map(|_| self.rng.below(256) as u8));
                Case {
                    kind: "garbage",
                    bytes: msg,
                    summary: format!("{len} bytes of garbage"),
                }
            }
            90 | 91 => {
                // A body document with random bytes flipped.
                let mut msg = op_msg(request_id, 0, &encoded, None);
                for _ in 0..self.rng.range(1, 4) {
                    let at = self.rng.range(21, msg.len() - 1);
                    msg[at] = self.rng.below(256) as u8;
                }
                Case {
                    kind: "corrupted",
                    bytes: msg,
                    summary: format!("corrupted {summary}"),
                }
            }
            92 => {
                // A checksum flag with a wrong checksum, or unknown required flag bits.
                let flags = *self.rng.pick(&[1u32, 4, 1 << 16]);
                let mut msg = op_msg(request_id, flags, &encoded, None);
                if flags == 1 {
                    msg.extend_from_slice(&[1, 2, 3, 4]);
                    let len = msg.len() as i32;
                    msg[..4].copy_from_slice(&len.to_le_bytes());
                }
                Case {
                    kind: "flags",
                    bytes: msg,
                    summary: format!("flags {flags:#x} on {summary}"),
                }
            }
            93 => {
                // A length that promises more than is sent.
                let mut msg = op_msg(request_id, 0, &encoded, None);
                let lie = msg.len() + self.rng.range(1, 1_000);
                msg[..4].copy_from_slice(&(lie as i32).to_le_bytes());
                Case {
                    kind: "short",
                    bytes: msg,
                    summary: format!("length {lie} on {summary}"),
                }
            }
            _ => {
                // Documents in a kind-1 sequence.
                let coll = self.collection();
                let docs: Vec<Vec<u8>> = (0..self.rng.range(1, 3))
                    .filter_map(|_| self.stored_document().to_vec().ok())
                    .collect();
                let body = doc! {"insert": coll, "$db": "fuzz"}.to_vec().ok()?;
                let name = *self.rng.pick(&["documents", "documents", "updates", "bogus"]);
                Case {
                    kind: "sequence",
                    bytes: op_msg(request_id, 0, &body, Some((name, &docs))),
                    summary: format!("insert {coll} with {} documents in a '{name}' sequence", docs.len()),
                }
            }
        })
    }
}

/// Sends `bytes` on a fresh connection, closes the write side and reads one reply, or sees the connection
/// close. `None` when nothing came back within [`CASE_TIMEOUT`].
async fn send(port: u16, bytes: &[u8]) -> anyhow::Result<Option<Outcome>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    if stream.write_all(bytes).await.is_err() {
        return Ok(Some(Outcome::Closed));
    }
    let _ = stream.shutdown().await;
    let read = async {
        let mut header = [0u8; 16];
        if stream.read_exact(&mut header).await.is_err() {
            return Outcome::Closed;
        }
        let len = i32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let op_code = i32::from_le_bytes([header[12], header[13], header[14], header[15]]);
        if !(21..=48_000_000).contains(&len) {
            return Outcome::Closed;
        }
        let mut body = vec![0u8; len - 16];
        if stream.read_exact(&mut body).await.is_err() {
            return Outcome::Closed;
        }
        let at = if op_code == 2013 { 5 } else { 20 };
        match body.get(at..).map(Document::from_reader) {
            Some(Ok(doc)) => Outcome::Reply(doc),
            _ => Outcome::Closed,
        }
    };
    Ok(tokio::time::timeout(CASE_TIMEOUT, read).await.ok())
}

async fn command(port: u16, body: Document) -> anyhow::Result<Document> {
    tokio::time::timeout(CASE_TIMEOUT, raw_command(port, body))
        .await
        .map_err(|_| anyhow::anyhow!("no reply within {CASE_TIMEOUT:?}"))?
}

/// Every stored document within the storage limit, every recent oplog entry within the BSON limit; drops a
/// collection that has grown too large. Returns the number of documents checked.
async fn audit(port: u16) -> anyhow::Result<usize> {
    let mut checked = 0;
    for coll in COLLECTIONS {
        let mut reply = command(port, doc! {"find": coll, "batchSize": 1_000, "$db": "fuzz"}).await?;
        let mut docs = 0;
        loop {
            anyhow::ensure!(
                reply.get_f64("ok").unwrap_or(0.0) == 1.0,
                "audit find on {coll}: {reply}"
            );
            let cursor = reply.get_document("cursor")?;
            let batch = cursor
                .get_array("firstBatch")
                .or_else(|_| cursor.get_array("nextBatch"))?;
            for doc in batch.iter().filter_map(Bson::as_document) {
                let depth = document_depth(doc);
                anyhow::ensure!(
                    depth <= MAX_DOCUMENT_DEPTH,
                    "a stored document in fuzz.{coll} is {depth} levels deep: {}",
                    summarize(doc)
                );
                docs += 1;
            }
            let id = cursor.get_i64("id")?;
            if id == 0 {
                break;
            }
            reply = command(port, doc! {"getMore": id, "collection": coll, "$db": "fuzz"}).await?;
        }
        checked += docs;
        if docs > MAX_DOCS_PER_COLLECTION {
            command(port, doc! {"drop": coll, "$db": "fuzz"}).await?;
        }
    }
    let oplog = command(
        port,
        doc! {"find": "oplog.rs", "sort": {"$natural": -1}, "limit": 500, "batchSize": 500, "$db": "local"},
    )
    .await?;
    for entry in oplog
        .get_document("cursor")?
        .get_array("firstBatch")?
        .iter()
        .filter_map(Bson::as_document)
    {
        let depth = document_depth(entry);
        anyhow::ensure!(
            depth <= MAX_BSON_DEPTH + 1,
            "an oplog entry is {depth} levels deep: {}",
            summarize(entry)
        );
    }
    Ok(checked)
}

/// What a run saw.
#[derive(Default)]
struct Stats {
    cases: u64,
    by_kind: BTreeMap<&'static str, u64>,
    ok: u64,
    errors: BTreeMap<i32, u64>,
    write_errors: BTreeMap<i32, u64>,
    closed: u64,
    skipped: u64,
    get_mores: u64,
    audits: u64,
    audited_docs: usize,
    members: u64,
}

impl Stats {
    fn record(&mut self, reply: &Document) {
        if reply.get_f64("ok").unwrap_or(0.0) == 1.0 {
            self.ok += 1;
        } else {
            *self.errors.entry(reply.get_i32("code").unwrap_or(-1)).or_default() += 1;
        }
        if let Ok(errors) = reply.get_array("writeErrors") {
            for error in errors.iter().filter_map(Bson::as_document) {
                *self
                    .write_errors
                    .entry(error.get_i32("code").unwrap_or(-1))
                    .or_default() += 1;
            }
        }
    }
}

fn failure(node: &NodeProcess, seed: u64, case: u64, recent: &VecDeque<String>, what: String) -> anyhow::Error {
    let log = node.log();
    let tail: String = log
        .lines()
        .rev()
        .take(60)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    anyhow::anyhow!(
        "fuzz finding at case {case} (seed {seed}; replay with FAULTLINE_FUZZ_SEED={seed}): {what}\n\
         last cases:\n{}\nmember log (tail):\n{tail}",
        recent.iter().cloned().collect::<Vec<_>>().join("\n")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn random_commands_and_frames_never_take_the_member_down() -> anyhow::Result<()> {
    let cases = env_u64("FAULTLINE_FUZZ_CASES").unwrap_or(DEFAULT_CASES);
    let budget = env_u64("FAULTLINE_FUZZ_SECONDS").map(Duration::from_secs);
    let seed = env_u64("FAULTLINE_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let (mut node, _client) = primary().await?;
    let mut port = node.port;
    let mut generator = Gen { rng: Rng(seed) };
    let mut stats = Stats::default();
    let mut recent: VecDeque<String> = VecDeque::new();
    let started = Instant::now();

    for case in 0..cases {
        if budget.is_some_and(|b| started.elapsed() >= b) {
            break;
        }
        if case > 0 && case % FRESH_MEMBER_EVERY == 0 {
            stats.audits += 1;
            stats.audited_docs += audit(port)
                .await
                .map_err(|e| failure(&node, seed, case, &recent, format!("audit: {e:#}")))?;
            node = primary().await?.0;
            port = node.port;
            stats.members += 1;
        }
        let request_id = (case % i32::MAX as u64) as i32 + 1;
        let Some(sent) = generator.case(request_id) else {
            stats.skipped += 1;
            continue;
        };
        if recent.len() == 5 {
            recent.pop_front();
        }
        recent.push_back(format!("#{case} {}: {}", sent.kind, sent.summary));
        stats.cases += 1;
        *stats.by_kind.entry(sent.kind).or_default() += 1;

        match send(port, &sent.bytes).await {
            Ok(Some(Outcome::Reply(reply))) => {
                stats.record(&reply);
                // Drain a cursor the case opened, a small batch at a time.
                let mut cursor = reply.get_document("cursor").ok().and_then(|c| c.get_i64("id").ok());
                let coll = reply
                    .get_document("cursor")
                    .ok()
                    .and_then(|c| c.get_str("ns").ok())
                    .and_then(|ns| ns.split_once('.'))
                    .map(|(_, c)| c.to_string());
                let mut rounds = 0;
                while let (Some(id), Some(coll)) = (cursor.filter(|id| *id != 0), coll.as_ref()) {
                    if rounds == 20 {
                        let _ = command(port, doc! {"killCursors": coll, "cursors": [id], "$db": "fuzz"}).await;
                        break;
                    }
                    rounds += 1;
                    stats.get_mores += 1;
                    let more = command(
                        port,
                        doc! {"getMore": id, "collection": coll, "batchSize": 2, "$db": "fuzz"},
                    )
                    .await
                    .map_err(|e| failure(&node, seed, case, &recent, format!("getMore: {e}")))?;
                    stats.record(&more);
                    cursor = more.get_document("cursor").ok().and_then(|c| c.get_i64("id").ok());
                }
            }
            Ok(Some(Outcome::Closed)) => stats.closed += 1,
            Ok(None) => {
                return Err(failure(
                    &node,
                    seed,
                    case,
                    &recent,
                    format!("no answer within {CASE_TIMEOUT:?}"),
                ));
            }
            Err(e) => return Err(failure(&node, seed, case, &recent, format!("cannot connect: {e}"))),
        }

        let alive = command(port, doc! {"ping": 1, "$db": "admin"}).await;
        if !matches!(&alive, Ok(reply) if reply.get_f64("ok").unwrap_or(0.0) == 1.0) {
            return Err(failure(&node, seed, case, &recent, format!("ping failed: {alive:?}")));
        }
        if (case + 1) % AUDIT_EVERY == 0 {
            stats.audits += 1;
            stats.audited_docs += audit(port)
                .await
                .map_err(|e| failure(&node, seed, case, &recent, format!("audit: {e:#}")))?;
        }
    }
    stats.audits += 1;
    stats.audited_docs += audit(port)
        .await
        .map_err(|e| failure(&node, seed, stats.cases, &recent, format!("final audit: {e:#}")))?;

    eprintln!(
        "fuzz summary: seed {seed}, {} cases in {:.1?} ({} skipped as unencodable), {:?}; replies ok {}, \
         errors by code {:?}, write errors by code {:?}; {} connections closed by the member; {} getMores; \
         {} audits of {} documents; {} members",
        stats.cases,
        started.elapsed(),
        stats.skipped,
        stats.by_kind,
        stats.ok,
        stats.errors,
        stats.write_errors,
        stats.closed,
        stats.get_mores,
        stats.audits,
        stats.audited_docs,
        stats.members + 1,
    );
    Ok(())
}
