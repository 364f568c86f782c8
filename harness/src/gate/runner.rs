//! Running one seed of a scenario: write its spec, run `faultline test --config` as a child (the very code
//! path users run) in a run directory the gate chose, wait with a wall-clock limit, and read the verdict and
//! anomalies from the run's `results.json` ([`faultline_reports::RunDir`]).

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use faultline_checker::result::{CheckResult, Validity};
use faultline_reports::RunDir;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

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
    let run_dir = faultline::support::store::create_run_dir(&env.store, &spec.name)
        .map_err(|e| format!("cannot create the run directory: {e:#}"))?;
    let log_path = gate_dir.join(format!("{}-seed{seed}.log", scenario.name));
    let log = std::fs::File::create(&log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let stderr = log
        .try_clone()
        .map_err(|e| format!("cannot share {}: {e}", log_path.display()))?;
    let mut child = Command::new(&env.bin)
        .arg("test")
        .arg("--config")
        .arg(&spec_path)
        .arg("--run-dir")
        .arg(&run_dir)
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
    let (verdict, anomalies) = read_results(&RunDir::new(&run_dir))?;
    Ok((verdict, anomalies, Some(run_dir)))
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

/// Reads the verdict and every anomaly kind named in a run's `results.json` (the top result and its
/// children).
pub fn read_results(run: &RunDir) -> Result<(RunVerdict, Vec<String>), String> {
    let result = run.read_results().map_err(|e| e.to_string())?;
    let verdict = match result.valid {
        Validity::True => RunVerdict::Valid,
        Validity::False => RunVerdict::Invalid,
        Validity::Unknown => RunVerdict::Unknown,
    };
    let mut anomalies = Vec::new();
    collect_anomalies(&result, &mut anomalies);
    anomalies.sort();
    anomalies.dedup();
    Ok((verdict, anomalies))
}

fn collect_anomalies(result: &CheckResult, into: &mut Vec<String>) {
    into.extend(result.anomalies.iter().cloned());
    for child in &result.children {
        collect_anomalies(child, into);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_give_the_verdict_and_every_childs_anomalies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunDir::new(dir.path());
        let path = run.results();
        let json = r#"{"checker":"register","valid":false,"anomalies":["nonlinearizable"],
            "children":[{"checker":"linearizable","valid":false,"anomalies":["nonlinearizable"]},
                        {"checker":"stale-reads","valid":false,"anomalies":["stale-read"]}]}"#;
        std::fs::write(&path, json).expect("write");
        let (verdict, anomalies) = read_results(&run).expect("read");
        assert_eq!(verdict, RunVerdict::Invalid);
        assert_eq!(anomalies, vec!["nonlinearizable".to_string(), "stale-read".to_string()]);
        std::fs::write(&path, r#"{"valid":"unknown"}"#).expect("write");
        assert_eq!(read_results(&run).expect("read").0, RunVerdict::Unknown);
        std::fs::write(&path, r#"{"valid":3}"#).expect("write");
        assert!(read_results(&run).is_err());
        assert!(read_results(&RunDir::new(dir.path().join("missing"))).is_err());
    }
}
