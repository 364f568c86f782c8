//! A one-member `register` run with `w:"majority"` + `readConcern: "linearizable"` under pauses is valid,
//! and the store holds every artefact of ARCHITECTURE §7.

use faultline_tests::cluster::run_faultline_test;
use serde_json::Value;

use crate::bin;

#[test]
fn register_on_one_member_is_valid_and_fully_stored() -> anyhow::Result<()> {
    let store = tempfile::tempdir()?;
    let spec = store.path().join("spec.toml");
    std::fs::write(&spec, "op_timeout = 1.0\nrecovery_timeout = 20.0\n")?;
    let spec_path = spec.to_string_lossy().to_string();
    let run = run_faultline_test(
        bin(),
        store.path(),
        &[
            "--config",
            &spec_path,
            "--nodes",
            "1",
            "--workload",
            "register",
            "--nemesis",
            "pause",
            "--nemesis-interval",
            "1s",
            "--time-limit",
            "3s",
            "--concurrency",
            "4",
            "--rate",
            "300",
            "--seed",
            "11",
        ],
    )?;
    assert_eq!(run.code, Some(0), "{}", run.transcript());
    for file in [
        "test.toml",
        "history.jsonl",
        "history.edn",
        "lag.jsonl",
        "results.json",
        "summary.txt",
        "report.html",
        "plots/latency-raw.png",
        "plots/replication-lag.svg",
    ] {
        assert!(
            run.run_dir.join(file).is_file(),
            "{file} missing in {}",
            run.run_dir.display()
        );
    }
    assert!(run.run_dir.join("nodes/n1/node.log").is_file());
    let store = run.run_dir.parent().and_then(|p| p.parent()).expect("store root");
    assert!(
        store.join("index.html").is_file(),
        "the store index is refreshed after a run"
    );
    let results: Value = serde_json::from_str(&run.file("results.json")?)?;
    assert_eq!(results["valid"], Value::Bool(true), "{results:#}");
    let history = run.file("history.jsonl")?;
    let ops = crate::events(&history);
    assert!(
        ops.iter().filter(|e| e["type"] == "ok").count() >= 5,
        "too few operations:\n{}",
        run.transcript()
    );
    assert!(
        ops.iter().any(|e| e["type"] == "ok" && e["node"] == "n1"),
        "the serving member is recorded"
    );
    let plan = crate::nemesis_plan(&history);
    assert!(
        plan.iter().any(|(f, _, _)| f == "pause"),
        "a pause was scheduled: {plan:?}"
    );
    assert_eq!(
        plan.last().map(|p| p.0.as_str()),
        Some("heal"),
        "the final phase heals everything"
    );
    assert!(run.stdout.contains("seed: 11") && run.stdout.contains("reproduce: faultline test --config"));
    let lag = run.file("lag.jsonl")?;
    let samples = crate::events(&lag);
    assert!(
        !samples.is_empty()
            && samples
                .iter()
                .all(|s| s["member"] == "n1" && s.get("primary").is_some()),
        "one typed sample per member per poll, naming the primary: {lag}"
    );
    // The stored run re-checks with its workload's checkers, to the stored verdict.
    let recheck = std::process::Command::new(bin())
        .arg("check")
        .arg(&run.run_dir)
        .output()?;
    let stdout = String::from_utf8_lossy(&recheck.stdout);
    assert_eq!(recheck.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("workload register")
            && stdout.contains("linearizable: valid")
            && stdout.contains("stale-reads: valid"),
        "{stdout}"
    );
    Ok(())
}

#[test]
fn bad_arguments_exit_254() -> anyhow::Result<()> {
    let store = tempfile::tempdir()?;
    let output = std::process::Command::new(bin())
        .args(["test", "--workload", "bank", "--store"])
        .arg(store.path())
        .output()?;
    assert_eq!(output.status.code(), Some(254));
    Ok(())
}

/// `--leave-running` on a one-member run (no fault proxies) leaves the member up after the verdict, prints
/// its URI and how to stop it, and the member still answers.
#[tokio::test(flavor = "multi_thread")]
async fn leave_running_keeps_the_member_up_after_the_run() -> anyhow::Result<()> {
    let store = tempfile::tempdir()?;
    let run = run_faultline_test(
        bin(),
        store.path(),
        &[
            "--nodes",
            "1",
            "--nemesis",
            "none",
            "--time-limit",
            "1s",
            "--concurrency",
            "2",
            "--seed",
            "3",
            "--leave-running",
        ],
    )?;
    let run_dir = run.run_dir.to_string_lossy().to_string();
    let left = faultline_tests::cluster::processes_mentioning(&run_dir);
    let stop = || {
        for pid in &left {
            let _ = std::process::Command::new("kill").arg(pid.to_string()).status();
        }
    };
    let port = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("cluster left running: mongodb://127.0.0.1:"))
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse::<u16>().ok());
    let answered = match port {
        Some(port) => faultline_tests::raw_command(port, bson::doc! {"hello": 1, "$db": "admin"})
            .await
            .ok(),
        None => None,
    };
    stop();
    assert_eq!(run.code, Some(0), "{}", run.transcript());
    assert!(port.is_some(), "no URI printed:\n{}", run.transcript());
    assert!(
        run.stdout.contains("stop it with: kill"),
        "no stop command:\n{}",
        run.transcript()
    );
    assert!(answered.is_some(), "the member left running does not answer");
    assert_eq!(left.len(), 1, "one member process is left: {left:?}");
    Ok(())
}
