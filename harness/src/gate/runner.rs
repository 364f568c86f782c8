//! Running one seed of a scenario: write its spec, run `faultline test --config` as a child (the very code
//! path users run), wait with a wall-clock limit, and read the verdict and anomalies from `results.json`.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use super::suite::Scenario;
use super::verdict::{RunVerdict, SeedRun};

/// How often the runner looks at a child that is still running.
const POLL: Duration = Duration::from_millis(200);
/// How long a child gets to stop its cluster after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(15);

/// Where and with what the children run.
pub struct RunEnv {
    /// The `faultline` binary.
    pub bin: PathBuf,
    /// Store root of the runs; specs and child logs go to `<store>/gate/`.
    pub store: PathBuf,
}

/// Runs `scenario` with `seed` and reports what it found.
pub fn run_seed(env: &RunEnv, scenario: &Scenario, seed: u64) -> SeedRun {
    let started = Instant::now();
    let (verdict, anomalies, run_dir) = match run_child(env, scenario, seed) {
        Ok(found) => found,
        Err(why) => (RunVerdict::Error(why), Vec::new(), None),
    };
    SeedRun {
        seed,
        verdict,
        anomalies,
        run_dir: run_dir.map(|d| d.display().to_string()),
        seconds: started.elapsed().as_secs_f64(),
    }
}

type Found = (RunVerdict, Vec<String>, Option<PathBuf>);

fn run_child(env: &RunEnv, scenario: &Scenario, seed: u64) -> Result<Found, String> {
    let gate_dir = env.store.join("gate");
    std::fs::create_dir_all(&gate_dir).map_err(|e| format!("cannot create {}: {e}", gate_dir.display()))?;
    let mut spec = scenario.spec.clone();
    spec.seed = seed;
    spec.store = env.store.clone();
    let spec_path = gate_dir.join(format!("{}-seed{seed}.toml", scenario.name));
    std::fs::write(&spec_path, spec.to_toml()).map_err(|e| format!("cannot write {}: {e}", spec_path.display()))?;
    // Checked before the child starts: nothing may fail (let alone panic) once it runs.
    let limit = Duration::try_from_secs_f64(scenario.timeout)
        .map_err(|e| format!("bad timeout {} for {}: {e}", scenario.timeout, scenario.name))?;
    let log_path = gate_dir.join(format!("{}-seed{seed}.log", scenario.name));
    let log = std::fs::File::create(&log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let stderr = log
        .try_clone()
        .map_err(|e| format!("cannot share {}: {e}", log_path.display()))?;
    let mut child = Command::new(&env.bin)
        .arg("test")
        .arg("--config")
        .arg(&spec_path)
        // The run (and through it its members) dies with the gate, however the gate dies.
        .args(["--die-with-parent", &std::process::id().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(stderr))
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", env.bin.display()))?;
    let code = wait_with_limit(&mut child, limit).map_err(|why| format!("{why} (log: {})", log_path.display()))?;
    let mut transcript = String::new();
    let _ = std::fs::File::open(&log_path).and_then(|mut f| f.read_to_string(&mut transcript));
    let run_dir = transcript
        .lines()
        .find_map(|line| line.trim_start().strip_prefix("store: "))
        .map(PathBuf::from);
    match code {
        Some(0..=2) => {}
        other => {
            let last = transcript.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
            return Err(format!(
                "faultline test exited with {other:?}: {last} (log: {})",
                log_path.display()
            ));
        }
    }
    let dir = run_dir.ok_or_else(|| format!("no store directory in {}", log_path.display()))?;
    let (verdict, anomalies) = read_results(&dir.join("results.json"))?;
    Ok((verdict, anomalies, Some(dir)))
}

/// Waits for the child; past `limit` it is asked to stop (SIGTERM: it stops its cluster), then killed.
fn wait_with_limit(child: &mut Child, limit: Duration) -> Result<Option<i32>, String> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("cannot wait for the run: {e}"))? {
            return Ok(status.code());
        }
        if started.elapsed() > limit {
            break;
        }
        std::thread::sleep(POLL);
    }
    let pid = Pid::from_raw(child.id() as i32);
    let _ = kill(pid, Signal::SIGTERM);
    let asked = Instant::now();
    while asked.elapsed() < GRACE {
        if let Ok(Some(_)) = child.try_wait() {
            return Err(format!("timed out after {:.0}s", limit.as_secs_f64()));
        }
        std::thread::sleep(POLL);
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!("timed out after {:.0}s (killed)", limit.as_secs_f64()))
}

/// Reads `valid` and every anomaly kind named in a `results.json` (the top result and its children).
pub fn read_results(path: &Path) -> Result<(RunVerdict, Vec<String>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let json: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let verdict = match &json["valid"] {
        Value::Bool(true) => RunVerdict::Valid,
        Value::Bool(false) => RunVerdict::Invalid,
        Value::String(s) if s == "unknown" => RunVerdict::Unknown,
        other => return Err(format!("{}: bad `valid` {other}", path.display())),
    };
    let mut anomalies = Vec::new();
    collect_anomalies(&json, &mut anomalies);
    anomalies.sort();
    anomalies.dedup();
    Ok((verdict, anomalies))
}

fn collect_anomalies(result: &Value, into: &mut Vec<String>) {
    if let Some(list) = result["anomalies"].as_array() {
        into.extend(list.iter().filter_map(Value::as_str).map(str::to_string));
    }
    if let Some(children) = result["children"].as_array() {
        for child in children {
            collect_anomalies(child, into);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_give_the_verdict_and_every_childs_anomalies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("results.json");
        let json = r#"{"checker":"register","valid":false,"anomalies":["nonlinearizable"],
            "children":[{"checker":"linearizable","valid":false,"anomalies":["nonlinearizable"]},
                        {"checker":"stale-reads","valid":false,"anomalies":["stale-read"]}]}"#;
        std::fs::write(&path, json).expect("write");
        let (verdict, anomalies) = read_results(&path).expect("read");
        assert_eq!(verdict, RunVerdict::Invalid);
        assert_eq!(anomalies, vec!["nonlinearizable".to_string(), "stale-read".to_string()]);
        std::fs::write(&path, r#"{"valid":"unknown"}"#).expect("write");
        assert_eq!(read_results(&path).expect("read").0, RunVerdict::Unknown);
        std::fs::write(&path, r#"{"valid":3}"#).expect("write");
        assert!(read_results(&path).is_err());
        assert!(read_results(&dir.path().join("missing.json")).is_err());
    }
}
