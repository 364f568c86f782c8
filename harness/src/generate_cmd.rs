//! `faultline generate`: writes generated histories to JSONL files, for trying and benchmarking the checker
//! on histories of any size.
//!
//! `generate register` runs the checker's register generator (`faultline_checker::generate`, the one its
//! property tests and benchmarks use): a real register per key, random concurrency, crashed (`info`)
//! operations, so the history is linearizable; `--planted-stale` adds one stale read of a random key at the
//! end, so that key (and only it) is not. Events are written as they are made: memory does not grow with
//! `--ops`. Every flag is checked before the file is created.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::builder::{StringValueParser, TypedValueParser};
use faultline_checker::formats::jsonl;
use faultline_checker::generate::{GenSpec, StaleReadPlanter, register_events};
use faultline_checker::history::Op;

/// `--ops`.
const OPERATIONS: crate::input::Whole = crate::input::Whole {
    what: "number of operations",
    min: 1,
    max: u64::MAX,
    why: "",
};

/// `--keys`.
const KEYS: crate::input::Whole = crate::input::Whole {
    what: "number of keys",
    min: 1,
    max: 1 << 32,
    why: " (1: one un-keyed register)",
};

/// `--processes`.
const PROCESSES: crate::input::Whole = crate::input::Whole {
    what: "number of processes",
    min: 1,
    max: 1 << 20,
    why: "",
};

/// `faultline generate <kind>`.
#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub kind: GenerateKind,
}

/// Which history to generate.
#[derive(clap::Subcommand, Debug)]
pub enum GenerateKind {
    /// Reads and writes of registers, one per key (check with the default model, cas-register).
    Register(RegisterArgs),
}

/// Flags of `faultline generate register`.
#[derive(clap::Args, Debug)]
pub struct RegisterArgs {
    /// The JSONL file to write (replaced if it exists).
    #[arg(value_name = "OUT.jsonl")]
    pub out: PathBuf,
    /// Operations (invocations); the file has about twice as many events.
    #[arg(long, default_value_t = 1000, value_parser = OPERATIONS.parser::<u64>())]
    pub ops: u64,
    /// Keys (independent registers); 1 writes un-keyed operations.
    #[arg(long, default_value_t = 1, value_parser = KEYS.parser::<u64>())]
    pub keys: u64,
    /// Concurrent client processes.
    #[arg(long, default_value_t = 5, value_parser = PROCESSES.parser::<u64>())]
    pub processes: u64,
    /// Probability that an operation crashes (`info`), from 0 to 1.
    #[arg(long, default_value_t = 0.01, value_parser = fraction("crash rate"))]
    pub crash_rate: f64,
    /// Fraction of operations that are reads, from 0 to 1.
    #[arg(long, default_value_t = 0.5, value_parser = fraction("read fraction"))]
    pub read_fraction: f64,
    /// Seed: the same flags and seed write the same file.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Add one stale read of a random key at the end, so that key is not linearizable.
    #[arg(long)]
    pub planted_stale: bool,
}

/// A clap value parser for a probability.
fn fraction(what: &'static str) -> impl TypedValueParser<Value = f64> {
    StringValueParser::new().try_map(move |text: String| {
        let refuse = || format!("{text} is not a valid {what}: must be a number from 0 to 1");
        let value: f64 = text.trim().parse().map_err(|_| refuse())?;
        if (0.0..=1.0).contains(&value) {
            Ok(value)
        } else {
            Err(refuse())
        }
    })
}

/// Runs `faultline generate`; returns the exit code (0, or 255 through an error).
pub fn run(args: &GenerateArgs) -> anyhow::Result<i32> {
    match &args.kind {
        GenerateKind::Register(register) => generate_register(register),
    }
}

fn generate_register(args: &RegisterArgs) -> anyhow::Result<i32> {
    let spec = GenSpec {
        keys: args.keys,
        processes: args.processes,
        operations: args.ops,
        crash_rate: args.crash_rate,
        read_fraction: args.read_fraction,
        seed: args.seed,
    };
    let file = File::create(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let events = register_events(&spec);
    let written = if args.planted_stale {
        let fresh = events.fresh_process();
        let mut planter = StaleReadPlanter::new(events, fresh, spec.seed);
        let written = write_all(planter.by_ref(), &mut out)?;
        let planted = match planter.planted_key() {
            Some(Some(key)) => format!("; stale read planted on key {key}"),
            Some(None) => "; stale read planted".to_string(),
            None => "; no stale read planted (no key had an overwritten write)".to_string(),
        };
        format!("{written}{planted}")
    } else {
        write_all(events, &mut out)?
    };
    out.flush()
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!("{}: {written}", args.out.display());
    Ok(0)
}

/// Writes the events; returns what was written, as the summary's first words.
fn write_all(events: impl Iterator<Item = Op>, out: &mut impl Write) -> anyhow::Result<String> {
    let mut count = 0u64;
    for op in events {
        jsonl::write_op(&op, &mut *out).context("cannot write the history")?;
        count += 1;
    }
    Ok(format!("{count} events"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(out: PathBuf, planted_stale: bool) -> RegisterArgs {
        RegisterArgs {
            out,
            ops: 400,
            keys: 4,
            processes: 6,
            crash_rate: 0.05,
            read_fraction: 0.5,
            seed: 3,
            planted_stale,
        }
    }

    #[test]
    fn writes_the_generators_history_and_plants_on_request() {
        let dir = tempfile::tempdir().expect("temp dir");
        let plain = dir.path().join("plain.jsonl");
        assert_eq!(generate_register(&args(plain.clone(), false)).expect("written"), 0);
        let text = std::fs::read(&plain).expect("read back");
        let history = jsonl::read(text.as_slice()).expect("a history");
        let spec = GenSpec {
            keys: 4,
            processes: 6,
            operations: 400,
            crash_rate: 0.05,
            read_fraction: 0.5,
            seed: 3,
        };
        assert_eq!(history.ops, faultline_checker::generate::register_history(&spec).ops);
        let planted = dir.path().join("planted.jsonl");
        generate_register(&args(planted.clone(), true)).expect("written");
        let with_read = jsonl::read(std::fs::read(&planted).expect("read back").as_slice()).expect("a history");
        assert_eq!(with_read.len(), history.len() + 2);
        assert_eq!(with_read.ops[..history.len()], history.ops[..]);
    }

    #[test]
    fn fractions_outside_zero_to_one_are_refused() {
        let parse = |text: &str| {
            let command = clap::Command::new("t").arg(clap::Arg::new("x").value_parser(fraction("crash rate")));
            command
                .try_get_matches_from(["t", text])
                .map(|m| m.get_one::<f64>("x").copied())
                .map_err(|e| e.to_string())
        };
        assert_eq!(parse("0.25").expect("accepted"), Some(0.25));
        assert!(
            parse("1.5")
                .expect_err("refused")
                .contains("must be a number from 0 to 1")
        );
        assert!(parse("x").is_err());
    }
}
