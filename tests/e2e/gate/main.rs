//! End-to-end tests of `faultline gate`: the real binary running small suites against real clusters.
//!
//! - a scenario that expects a fail point's anomaly, with the fail point turned off, fails the gate with a
//!   message that names the missing anomaly;
//! - the JUnit XML parses with a real XML parser and has one test case per scenario;
//! - bad suites are usage errors (exit 254);
//! - fail point `skipRollback` keeps a diverged member's writes ([`skip_rollback`]).

mod skip_rollback;

use std::path::Path;
use std::process::{Command, Output};

use anyhow::Context as _;

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_faultline"))
}

/// Runs `faultline gate <suite> --store <dir>/store --junit <dir>/junit.xml --markdown <dir>/summary.md`.
fn gate(dir: &Path, suite_text: &str, extra: &[&str]) -> anyhow::Result<Output> {
    let suite = dir.join("suite.toml");
    std::fs::write(&suite, suite_text)?;
    Command::new(bin())
        .arg("gate")
        .arg(&suite)
        .arg("--store")
        .arg(dir.join("store"))
        .arg("--junit")
        .arg(dir.join("junit.xml"))
        .arg("--markdown")
        .arg(dir.join("summary.md"))
        .args(extra)
        .output()
        .context("cannot run faultline gate")
}

fn transcript(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `(name, failed)` of every JUnit test case, read with a real XML parser.
fn junit_cases(xml: &str) -> anyhow::Result<Vec<(String, bool)>> {
    let document = roxmltree::Document::parse(xml).context("JUnit output is not XML")?;
    let root = document.root_element();
    anyhow::ensure!(root.has_tag_name("testsuites"), "root is <{}>", root.tag_name().name());
    let suites: Vec<_> = root.children().filter(|n| n.has_tag_name("testsuite")).collect();
    anyhow::ensure!(suites.len() == 1, "one <testsuite> expected");
    Ok(suites[0]
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|case| {
            let failed = case.children().any(|n| n.has_tag_name("failure"));
            (case.attribute("name").unwrap_or_default().to_string(), failed)
        })
        .collect())
}

const SHORT: &str = r#"
name = "e2e"
[defaults]
nodes = 3
time_limit = 6
nemesis_interval = 2
concurrency = 4
rate = 150
op_timeout = 2
recovery_timeout = 30
check_timeout = 20
"#;

#[test]
fn a_fail_point_turned_off_fails_the_gate_with_a_clear_message() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // The bundled scenario for ackMajorityBeforeReplication, with its fail point removed.
    let suite = format!(
        "{SHORT}{}",
        r#"
[[scenario]]
name = "fp-ack-majority-turned-off"
expect = "invalid"
anomalies = ["lost"]
failpoints = []
seeds = [1]
[scenario.test]
workload = "set"
nemesis = ["partition-isolate-primary"]
write_concern = "majority"
read_concern = "majority"
client_mode = "direct"
"#
    );
    let output = gate(dir.path(), &suite, &[])?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{}", transcript(&output));
    assert!(
        stdout.contains("FAIL fp-ack-majority-turned-off: expected anomaly lost, but no seed showed it"),
        "{}",
        transcript(&output)
    );
    assert!(stdout.contains("did not catch"), "{}", transcript(&output));
    let cases = junit_cases(&std::fs::read_to_string(dir.path().join("junit.xml"))?)?;
    assert_eq!(cases, vec![("fp-ack-majority-turned-off".to_string(), true)]);
    let summary = std::fs::read_to_string(dir.path().join("summary.md"))?;
    assert!(summary.contains("FAILED (0/1 scenarios passed)"), "{summary}");
    Ok(())
}

#[test]
fn junit_parses_and_names_every_scenario() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let suite = format!(
        "{SHORT}{}",
        r#"
[[scenario]]
name = "set-without-faults-is-valid"
expect = "valid"
seeds = [1]
[scenario.test]
workload = "set"
nemesis = ["none"]
time_limit = 3

[[scenario]]
name = "delayed-secondary-is-stale"
expect = "invalid"
anomalies = ["stale-read"]
seeds = [3, 4]
[scenario.test]
workload = "secondary-reads"
nemesis = ["none"]
secondary_delay_secs = 2
read_preference = "secondary"
read_concern = "local"
"#
    );
    let output = gate(dir.path(), &suite, &[])?;
    assert_eq!(output.status.code(), Some(0), "{}", transcript(&output));
    let cases = junit_cases(&std::fs::read_to_string(dir.path().join("junit.xml"))?)?;
    assert_eq!(
        cases,
        vec![
            ("set-without-faults-is-valid".to_string(), false),
            ("delayed-secondary-is-stale".to_string(), false)
        ]
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("gate e2e: passed"), "{}", transcript(&output));
    // --only narrows the suite; an unknown name is a usage error.
    let only = gate(dir.path(), &suite, &["--only", "set-without-faults-is-valid", "--list"])?;
    assert_eq!(only.status.code(), Some(0), "{}", transcript(&only));
    assert!(!String::from_utf8_lossy(&only.stdout).contains("delayed-secondary"));
    let unknown = gate(dir.path(), &suite, &["--only", "nope"])?;
    assert_eq!(unknown.status.code(), Some(254), "{}", transcript(&unknown));
    Ok(())
}

#[test]
fn bad_suites_and_the_bundled_names() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let bad = gate(
        dir.path(),
        "name = \"x\"\n[[scenario]]\nname = \"a\"\nexpect = \"valid\"\nseeds = []\n",
        &[],
    )?;
    assert_eq!(bad.status.code(), Some(254), "{}", transcript(&bad));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("seed"),
        "{}",
        transcript(&bad)
    );
    for suite in ["ci", "nightly"] {
        let listed = Command::new(bin()).args(["gate", suite, "--list"]).output()?;
        assert_eq!(listed.status.code(), Some(0), "{}", transcript(&listed));
        let text = String::from_utf8_lossy(&listed.stdout);
        for failpoint in [
            "ackMajorityBeforeReplication",
            "deposedPrimaryServesReads",
            "skipJournalFsync",
        ] {
            assert!(text.contains(failpoint), "{suite} does not cover {failpoint}:\n{text}");
        }
    }
    // Issue 16: the CI gate catches every sharding fail point and tests sharded clusters through mongos.
    let listed = Command::new(bin()).args(["gate", "ci", "--list"]).output()?;
    let text = String::from_utf8_lossy(&listed.stdout);
    for needed in [
        "migrationDonorAcceptsWritesAfterCommit",
        "migrationCommitBeforeCatchUp",
        "routerIgnoresStaleConfig",
        "rangeDeleterDeletesOwned",
        "sharded-safe-register",
        "sharded-safe-set",
        "sharded-w1-loses-acknowledged-writes",
    ] {
        assert!(text.contains(needed), "ci does not cover {needed}:\n{text}");
    }
    Ok(())
}
