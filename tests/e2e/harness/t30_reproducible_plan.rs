//! The same seed makes the same plan: identical `test.toml` and the same nemesis operations in order.

use faultline_tests::cluster::run_faultline_test;

use crate::{bin, nemesis_plan};

#[test]
fn same_seed_same_spec_and_nemesis_plan() -> anyhow::Result<()> {
    let store = tempfile::tempdir()?;
    let args = [
        "--nodes",
        "1",
        "--nemesis",
        "pause,partition",
        "--nemesis-interval",
        "0.4s",
        "--time-limit",
        "3s",
        "--seed",
        "4242",
        "--concurrency",
        "2",
        "--rate",
        "100",
        "--write-concern",
        "1",
        "--read-concern",
        "local",
    ];
    let first = run_faultline_test(bin(), store.path(), &args)?;
    let second = run_faultline_test(bin(), store.path(), &args)?;
    assert_ne!(first.run_dir, second.run_dir, "each run gets its own directory");
    assert_eq!(first.file("test.toml")?, second.file("test.toml")?);
    let (a, b) = (
        nemesis_plan(&first.file("history.jsonl")?),
        nemesis_plan(&second.file("history.jsonl")?),
    );
    assert!(a.len() >= 4, "a plan with several steps: {a:?}\n{}", first.transcript());
    assert_eq!(a, b);
    let other = run_faultline_test(bin(), store.path(), &[&args[..9], &["4243"], &args[10..]].concat())?;
    assert_ne!(
        nemesis_plan(&other.file("history.jsonl")?),
        a,
        "another seed, another plan"
    );
    Ok(())
}
