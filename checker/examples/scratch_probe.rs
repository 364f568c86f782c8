//! Scratch: per-partition search cost of one porcupine-kv history (not committed).
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use faultline_checker::formats::Format;
use faultline_checker::linear::search::{Limits, search};
use faultline_checker::linear::{models, partition};

fn main() {
    let path = std::env::args().nth(1).expect("path");
    let format = Format::PorcupineKv;
    let history = format.read(std::io::BufReader::new(std::fs::File::open(&path).expect("open"))).expect("read");
    let paired = faultline_checker::history::pair(&history).expect("pair");
    let parts = partition::partition(&paired.operations, true);
    let cancel = AtomicBool::new(false);
    let conventions = format.conventions();
    for p in &parts {
        let (model, ops) = models::compile_kv(&p.ops, &conventions).expect("compile");
        let limits = Limits { deadline: None, cancel: &cancel, memory_bytes: 1 << 32 };
        let t = Instant::now();
        let (outcome, stats) = search(&model, &ops, limits);
        let verdict = match outcome { faultline_checker::linear::search::Outcome::Linearizable(_) => "ok", faultline_checker::linear::search::Outcome::Illegal{..} => "BAD", _ => "?" };
        println!("{:?}\tops {}\tcompiled {}\t{verdict}\tconfigs {}\tbacktracks {}\t{:.3} ms", p.key, p.ops.len(), ops.len(), stats.configurations, stats.backtracks, t.elapsed().as_secs_f64()*1e3);
    }
}
