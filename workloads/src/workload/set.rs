//! The `set` workload: unique inserts (`add v` → `insert {_id: v}`) and reads of the whole set
//! (`read` → `find` of every `_id`, sorted). The final phase reads once per worker after healing; the set
//! checker reports acknowledged adds missing from the final read as lost.

use bson::{Bson, doc};
use serde_json::{Value, json};

use super::register::{failure, with_node};
use crate::client::{Completion, OpKind, Session};
use crate::generator::{BoxGen, Context, Generator, Invocation, Next, each_thread, once};
use crate::rng::Rng;

/// Collection of the set workload.
pub const COLLECTION: &str = "set";

/// Adds of fresh elements (1, 2, 3, ...), with reads of the whole set interleaved at `read_fraction`.
pub fn generator(read_fraction: f64) -> BoxGen {
    Box::new(SetGen { next: 0, read_fraction })
}

struct SetGen {
    next: i64,
    read_fraction: f64,
}

impl Generator for SetGen {
    fn next(&mut self, _: &Context, rng: &mut Rng) -> Next {
        if rng.chance(self.read_fraction) {
            return Next::Op(Invocation::new("read", Value::Null));
        }
        self.next += 1;
        Next::Op(Invocation::new("add", json!(self.next)))
    }
}

/// One final read per worker thread.
pub fn final_generator() -> BoxGen {
    each_thread(Box::new(|| once(Invocation::new("read", Value::Null))))
}

/// Runs one set operation.
pub async fn invoke(session: &Session, op: &Invocation) -> Completion {
    let coll = session.collection(COLLECTION);
    match op.f.as_str() {
        "add" => {
            let Some(element) = op.value.as_i64() else {
                return Completion::fail(op.value.clone(), "add needs an integer");
            };
            let (result, node) = session.run(coll.insert_one(doc! {"_id": element})).await;
            let completion = match result {
                Some(Ok(_)) => Completion::ok(op.value.clone()),
                other => failure(other.map(|r| r.map(|_| ())), OpKind::Write, &op.value),
            };
            with_node(completion, node)
        }
        "read" => {
            let (result, node) = session.run(read_all(session)).await;
            let completion = match result {
                Some(Ok(elements)) => Completion::ok(json!(elements)),
                other => failure(other.map(|r| r.map(|_| ())), OpKind::Read, &op.value),
            };
            with_node(completion, node)
        }
        other => Completion::fail(op.value.clone(), &format!("unknown set operation {other}")),
    }
}

async fn read_all(session: &Session) -> mongodb::error::Result<Vec<i64>> {
    let mut cursor = session
        .collection(COLLECTION)
        .find(doc! {})
        .projection(doc! {"_id": 1})
        .await?;
    let mut elements = Vec::new();
    while cursor.advance().await? {
        let document = cursor.deserialize_current()?;
        match document.get("_id") {
            Some(Bson::Int64(v)) => elements.push(*v),
            Some(Bson::Int32(v)) => elements.push(i64::from(*v)),
            _ => {}
        }
    }
    elements.sort_unstable();
    Ok(elements)
}
