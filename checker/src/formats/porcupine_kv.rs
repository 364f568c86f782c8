//! Writer of Porcupine's key-value log layout: one `{:process P, :type :T, :f :F, :key "K", :value V}` map
//! per line, in exactly the field order Porcupine's own test parser expects. Read such logs with
//! [`edn::read`](super::edn::read) ([`Format::PorcupineKv`](super::Format::PorcupineKv)).

use std::io::Write;

use serde_json::Value;

use super::edn_value::write_value;
use crate::history::{History, Process};

/// Writes a keyed history as a Porcupine kv log. Operations without a key get the key `""`; processes
/// without a number (the nemesis) are skipped, as Porcupine's logs have none.
pub fn write(history: &History, mut out: impl Write) -> std::io::Result<()> {
    let mut line = String::new();
    for op in &history.ops {
        let Process::Client(process) = op.process else { continue };
        line.clear();
        line.push_str(&format!(
            "{{:process {process}, :type :{}, :f :{}, :key ",
            op.op_type.name(),
            op.f
        ));
        let key = op
            .key
            .as_ref()
            .map_or(Value::String(String::new()), |k| k.value().clone());
        write_value(&mut line, &key);
        line.push_str(", :value ");
        write_value(&mut line, &op.value);
        line.push_str("}\n");
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::edn;
    use crate::generate::{KvSpec, kv_history};

    #[test]
    fn generated_logs_read_back_as_the_same_keyed_operations() {
        let h = kv_history(&KvSpec {
            operations: 300,
            crash_rate: 0.1,
            ..KvSpec::default()
        })
        .history;
        let mut text = Vec::new();
        write(&h, &mut text).expect("in memory");
        let first = String::from_utf8_lossy(&text).lines().next().map(str::to_string);
        assert!(first.is_some_and(|l| l.starts_with("{:process ") && l.contains(", :key \"")));
        let back = edn::read(text.as_slice()).expect("EDN");
        assert_eq!(back.ops.len(), h.ops.len());
        for (a, b) in back.ops.iter().zip(&h.ops) {
            assert_eq!((&a.key, &a.value, a.op_type, &a.f), (&b.key, &b.value, b.op_type, &b.f));
        }
    }
}
