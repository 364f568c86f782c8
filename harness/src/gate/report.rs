//! What a gate run writes: the table on stdout, JUnit XML (one test case per scenario) and a Markdown
//! summary. Everything here is a pure function of the outcomes.

use std::fmt::Write as _;

use super::suite::{Expect, Scenario};
use super::verdict::{Judgement, SeedRun};

/// One scenario's runs and judgement.
#[derive(Debug, Clone)]
pub struct ScenarioOutcome {
    pub name: String,
    pub description: String,
    pub expect: Expect,
    pub anomalies: Vec<String>,
    pub failpoints: Vec<String>,
    pub runs: Vec<SeedRun>,
    pub judgement: Judgement,
    pub seconds: f64,
}

impl ScenarioOutcome {
    pub fn new(scenario: &Scenario, runs: Vec<SeedRun>, judgement: Judgement) -> ScenarioOutcome {
        ScenarioOutcome {
            name: scenario.name.clone(),
            description: scenario.description.clone(),
            expect: scenario.expect,
            anomalies: scenario.anomalies.clone(),
            failpoints: scenario.failpoints.clone(),
            seconds: runs.iter().map(|r| r.seconds).sum(),
            runs,
            judgement,
        }
    }

    fn expected_text(&self) -> String {
        match self.expect {
            Expect::Valid => "valid".into(),
            Expect::Invalid if self.anomalies.is_empty() => "invalid".into(),
            Expect::Invalid => format!("invalid: {}", self.anomalies.join("+")),
        }
    }

    fn got_text(&self) -> String {
        let verdicts: Vec<String> = self.runs.iter().map(|r| r.verdict.to_string()).collect();
        verdicts.join(",")
    }
}

/// The table printed on stdout.
pub fn table(outcomes: &[ScenarioOutcome]) -> String {
    let rows: Vec<[String; 6]> = outcomes
        .iter()
        .map(|o| {
            [
                o.name.clone(),
                o.expected_text(),
                o.got_text(),
                o.runs.len().to_string(),
                format!("{:.0}s", o.seconds),
                if o.judgement.passed { "PASS" } else { "FAIL" }.to_string(),
            ]
        })
        .collect();
    let header = ["SCENARIO", "EXPECTED", "GOT (per seed)", "SEEDS", "TIME", "RESULT"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    for o in outcomes.iter().filter(|o| !o.judgement.passed) {
        let _ = writeln!(out, "FAIL {}: {}", o.name, o.judgement.message);
    }
    out
}

/// JUnit XML: one `<testsuite>` for the suite, one `<testcase>` per scenario, `<failure>` on a mismatch.
pub fn junit(suite: &str, outcomes: &[ScenarioOutcome]) -> String {
    let failures = outcomes.iter().filter(|o| !o.judgement.passed).count();
    let total: f64 = outcomes.iter().map(|o| o.seconds).sum();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"faultline gate\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{total:.3}\">",
        outcomes.len()
    );
    let _ = writeln!(
        xml,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{total:.3}\">",
        escape(suite),
        outcomes.len()
    );
    for o in outcomes {
        let _ = writeln!(
            xml,
            "    <testcase name=\"{}\" classname=\"faultline.gate.{}\" time=\"{:.3}\">",
            escape(&o.name),
            escape(suite),
            o.seconds
        );
        if !o.judgement.passed {
            let _ = writeln!(
                xml,
                "      <failure message=\"{}\" type=\"verdict-mismatch\">{}</failure>",
                escape(&o.judgement.message),
                escape(&run_lines(o))
            );
        }
        let _ = writeln!(xml, "      <system-out>{}</system-out>", escape(&run_lines(o)));
        xml.push_str("    </testcase>\n");
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

/// The Markdown summary (for a CI job summary or a pull-request comment).
pub fn markdown(suite: &str, outcomes: &[ScenarioOutcome]) -> String {
    let passed = outcomes.iter().filter(|o| o.judgement.passed).count();
    let mut md = format!(
        "## faultline gate `{suite}`: {} ({passed}/{} scenarios passed)\n\n",
        if passed == outcomes.len() { "passed" } else { "FAILED" },
        outcomes.len()
    );
    md.push_str("| scenario | fail points | expected | got (per seed) | time | result |\n");
    md.push_str("|---|---|---|---|---|---|\n");
    for o in outcomes {
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | {:.0}s | {} |",
            o.name,
            if o.failpoints.is_empty() {
                "—".to_string()
            } else {
                o.failpoints.join(", ")
            },
            o.expected_text(),
            o.got_text(),
            o.seconds,
            if o.judgement.passed { "✅ pass" } else { "❌ FAIL" }
        );
    }
    md.push('\n');
    for o in outcomes {
        let _ = writeln!(md, "- **{}**: {}", o.name, o.judgement.message.replace('|', "\\|"));
    }
    md
}

fn run_lines(o: &ScenarioOutcome) -> String {
    let mut text = format!("{}\n", o.description);
    for run in &o.runs {
        let _ = writeln!(
            text,
            "seed {}: {} [{}] in {:.1}s{}",
            run.seed,
            run.verdict,
            run.anomalies.join(", "),
            run.seconds,
            run.run_dir
                .as_deref()
                .map(|d| format!(", store {d}"))
                .unwrap_or_default()
        );
        if let super::verdict::RunVerdict::Error(why) = &run.verdict {
            let _ = writeln!(text, "  error: {why}");
        }
    }
    text
}

/// Escapes text for XML attributes and content (and drops characters XML 1.0 cannot hold).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::verdict::RunVerdict;
    use super::*;

    fn outcome(name: &str, passed: bool) -> ScenarioOutcome {
        ScenarioOutcome {
            name: name.into(),
            description: "a <scenario> & more".into(),
            expect: Expect::Invalid,
            anomalies: vec!["lost".into()],
            failpoints: vec!["ackMajorityBeforeReplication".into()],
            runs: vec![SeedRun {
                seed: 7,
                verdict: RunVerdict::Valid,
                anomalies: vec![],
                run_dir: Some("store/x/1".into()),
                seconds: 2.5,
            }],
            judgement: Judgement {
                passed,
                message: "expected anomaly \"lost\" <none>".into(),
            },
            seconds: 2.5,
        }
    }

    #[test]
    fn the_table_has_a_row_per_scenario_and_explains_failures() {
        let text = table(&[outcome("good", true), outcome("bad", false)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "header, two rows, one explanation: {text}");
        assert!(lines[1].starts_with("good") && lines[1].ends_with("PASS"), "{text}");
        assert!(lines[2].starts_with("bad") && lines[2].ends_with("FAIL"), "{text}");
        assert!(text.contains("FAIL bad: expected anomaly"), "{text}");
    }

    #[test]
    fn junit_escapes_and_marks_failures() {
        let xml = junit("ci", &[outcome("a&b", false)]);
        assert!(xml.contains("name=\"a&amp;b\""));
        assert!(xml.contains("<failure message=\"expected anomaly &quot;lost&quot; &lt;none&gt;\""));
        assert!(xml.contains("failures=\"1\""));
        assert_eq!(escape("x\u{1}y"), "xy");
    }

    #[test]
    fn markdown_summarises() {
        let md = markdown("ci", &[outcome("good", true), outcome("bad", false)]);
        assert!(md.contains("FAILED (1/2 scenarios passed)"));
        assert!(md.contains("| `bad` | ackMajorityBeforeReplication | invalid: lost |"));
    }
}
