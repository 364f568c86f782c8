//! The progress line of a benchmark on stderr: rewritten in place every 0.5 s on a terminal, a plain line
//! every 5 s otherwise.

use std::io::IsTerminal as _;
use std::time::Duration;

use tokio::sync::watch;

/// Prints `line()` until `stop` turns true.
pub async fn show(mut line: impl FnMut() -> String, mut stop: watch::Receiver<bool>) {
    let terminal = std::io::stderr().is_terminal();
    let period = if terminal {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(5)
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        if terminal {
            eprint!("\r\x1b[2K{}", line());
        } else {
            eprintln!("{}", line());
        }
    }
    if terminal {
        eprint!("\r\x1b[2K");
    }
}

/// A text bar of `width` cells, `fraction` full (clamped to 0..=1).
pub fn bar(fraction: f64, width: usize) -> String {
    let fraction = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let full = (fraction * width as f64).round() as usize;
    format!("[{}{}]", "#".repeat(full), "-".repeat(width - full))
}

#[cfg(test)]
mod tests {
    use super::bar;

    #[test]
    fn bars_fill_in_proportion_and_clamp() {
        assert_eq!(bar(0.5, 4), "[##--]");
        assert_eq!(bar(2.0, 3), "[###]");
        assert_eq!(bar(f64::NAN, 2), "[--]");
    }
}
