//! The `counter` workload: one document whose `value` is incremented with `$inc` (`add d`) and read
//! (`read`). Its checker is [`faultline_checker::counter`].

use bson::doc;
use serde_json::{Value, json};

use super::register::{failure, with_node};
use crate::client::{Completion, OpKind, Session};
use crate::generator::{BoxGen, Context, Generator, Invocation, Next, each_thread, once};
use crate::rng::Rng;

/// Collection of the counter workload.
pub const COLLECTION: &str = "counter";

struct CounterGen {
    read_fraction: f64,
}

impl Generator for CounterGen {
    fn next(&mut self, _: &Context, rng: &mut Rng) -> Next {
        if rng.chance(self.read_fraction) {
            Next::Op(Invocation::new("read", Value::Null))
        } else {
            Next::Op(Invocation::new("add", json!(1 + rng.below(5) as i64)))
        }
    }
}

/// Increments of 1..=5 and reads.
pub fn generator(read_fraction: f64) -> BoxGen {
    Box::new(CounterGen { read_fraction })
}

/// One final read per worker.
pub fn final_generator() -> BoxGen {
    each_thread(Box::new(|| once(Invocation::new("read", Value::Null))))
}

/// Runs one counter operation.
pub async fn invoke(session: &Session, op: &Invocation) -> Completion {
    let coll = session.collection(COLLECTION);
    match op.f.as_str() {
        "add" => {
            let Some(delta) = op.value.as_i64() else {
                return Completion::fail(op.value.clone(), "add needs an integer");
            };
            let update = coll
                .update_one(doc! {"_id": 0}, doc! {"$inc": {"value": delta}})
                .upsert(true);
            let (result, node) = session.run(update).await;
            let completion = match result {
                Some(Ok(_)) => Completion::ok(op.value.clone()),
                other => failure(other.map(|r| r.map(|_| ())), OpKind::Write, &op.value),
            };
            with_node(completion, node)
        }
        "read" => {
            let (result, node) = session.run(coll.find_one(doc! {"_id": 0})).await;
            let completion = match result {
                Some(Ok(found)) => {
                    let value = found.and_then(|d| d.get("value").and_then(bson_i64)).unwrap_or(0);
                    Completion::ok(json!(value))
                }
                other => failure(other.map(|r| r.map(|_| ())), OpKind::Read, &op.value),
            };
            with_node(completion, node)
        }
        other => Completion::fail(op.value.clone(), &format!("unknown counter operation {other}")),
    }
}

fn bson_i64(value: &bson::Bson) -> Option<i64> {
    match value {
        bson::Bson::Int64(v) => Some(*v),
        bson::Bson::Int32(v) => Some(i64::from(*v)),
        bson::Bson::Double(v) => Some(*v as i64),
        _ => None,
    }
}
