//! `faultline check` over stored run directories and many inputs at once: one line per input and a total,
//! one JSON record per input with `--json`, the worst verdict as the exit code, 254 for an unreadable input.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::bin;

/// A counter run: two acknowledged adds of 2 and 3, then a read of `read`.
fn counter_run(dir: &Path, read: i64) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("test.toml"),
        "name = \"counter\"\nworkload = \"counter\"\nseed = 1\n",
    )?;
    let history = format!(
        "{{\"time\":1,\"type\":\"invoke\",\"process\":0,\"f\":\"add\",\"value\":2}}\n\
         {{\"time\":2,\"type\":\"ok\",\"process\":0,\"f\":\"add\",\"value\":2}}\n\
         {{\"time\":3,\"type\":\"invoke\",\"process\":1,\"f\":\"add\",\"value\":3}}\n\
         {{\"time\":4,\"type\":\"ok\",\"process\":1,\"f\":\"add\",\"value\":3}}\n\
         {{\"time\":5,\"type\":\"invoke\",\"process\":0,\"f\":\"read\",\"value\":null}}\n\
         {{\"time\":6,\"type\":\"ok\",\"process\":0,\"f\":\"read\",\"value\":{read}}}\n"
    );
    std::fs::write(dir.join("history.jsonl"), history)?;
    Ok(())
}

fn check(args: &[&Path], flags: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new(bin()).arg("check").args(args).args(flags).output()?)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_stored_run_is_rechecked_with_its_workloads_checkers() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let good = root.path().join("good");
    counter_run(&good, 5)?;
    let output = check(&[&good], &[])?;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", text(&output.stderr));
    assert!(
        stdout.contains("workload counter") && stdout.contains("counter: valid"),
        "{stdout}"
    );
    let lost = root.path().join("lost");
    counter_run(&lost, 3)?;
    let output = check(&[&lost], &[])?;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("first bad operation: read 3, expected between 5 and 5"),
        "{stdout}"
    );
    Ok(())
}

#[test]
fn many_inputs_give_a_line_each_a_total_and_the_worst_verdict() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let good = root.path().join("good");
    counter_run(&good, 5)?;
    let lost = root.path().join("lost");
    counter_run(&lost, 3)?;
    let register = root.path().join("register.jsonl");
    std::fs::write(
        &register,
        "{\"time\":1,\"type\":\"invoke\",\"process\":0,\"f\":\"write\",\"value\":1}\n\
         {\"time\":2,\"type\":\"ok\",\"process\":0,\"f\":\"write\",\"value\":1}\n",
    )?;
    let output = check(&[&good, &lost, &register], &[])?;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines[0].starts_with(&format!("{}: valid", good.display())), "{stdout}");
    assert!(
        lines[1].starts_with(&format!("{}: INVALID [counter-out-of-bounds]", lost.display())),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with(&format!("{}: valid", register.display())),
        "{stdout}"
    );
    assert_eq!(
        lines[3],
        "total: 3 inputs: 2 valid, 1 INVALID, 0 unknown, 0 unreadable (exit 1)"
    );

    let json = check(&[&good, &lost, &register], &["--json"])?;
    assert_eq!(json.status.code(), Some(1));
    let records: Vec<Value> = text(&json.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(records.len(), 3, "{records:?}");
    let verdicts: Vec<(&str, &Value)> = records
        .iter()
        .map(|r| (r["file"].as_str().unwrap_or(""), &r["valid"]))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            (good.to_str().unwrap_or(""), &Value::Bool(true)),
            (lost.to_str().unwrap_or(""), &Value::Bool(false)),
            (register.to_str().unwrap_or(""), &Value::Bool(true)),
        ]
    );
    assert_eq!(records[1]["result"]["children"][0]["checker"], "counter");
    Ok(())
}

#[test]
fn an_unreadable_input_is_named_on_one_line_and_exits_254_after_the_others() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let good = root.path().join("good");
    counter_run(&good, 5)?;
    let missing = root.path().join("missing.jsonl");
    let not_a_run = root.path().join("empty");
    std::fs::create_dir(&not_a_run)?;
    let output = check(&[&good, &missing, &not_a_run], &[])?;
    assert_eq!(output.status.code(), Some(254));
    let stderr = text(&output.stderr);
    let refusals: Vec<&str> = stderr.lines().collect();
    assert_eq!(refusals.len(), 2, "{stderr}");
    assert!(refusals[0].contains(&missing.display().to_string()), "{stderr}");
    assert!(refusals[1].contains("not a run directory"), "{stderr}");
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("1 valid, 0 INVALID, 0 unknown, 2 unreadable (exit 254)"),
        "{stdout}"
    );
    Ok(())
}

/// `faultline check … | head -1`: a reader that closes the pipe early ends the process as it ends C tools —
/// SIGPIPE's exit status (141), nothing on stderr — never a panic.
#[test]
fn a_closed_stdout_ends_the_check_quietly() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let run = root.path().join("run");
    counter_run(&run, 5)?;
    // The reader is gone before the first line is written.
    let (reader, writer) = std::io::pipe()?;
    drop(reader);
    let output = Command::new(bin())
        .arg("check")
        .arg(&run)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()?;
    let stderr = text(&output.stderr);
    assert!(
        !stderr.contains("panicked"),
        "a closed stdout made check panic: {stderr}"
    );
    assert_eq!(output.status.code(), Some(141), "stderr: {stderr}");
    Ok(())
}
