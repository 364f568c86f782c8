//! The store (ARCHITECTURE §7): `store/<test>/<timestamp>/` per run, `store/latest` pointing at the newest run.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

/// Creates a fresh run directory under `<root>/<name>/` and points `<root>/latest` at it.
pub fn create_run_dir(root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let parent = root.join(name);
    std::fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let stamp = timestamp(SystemTime::now());
    let mut dir = parent.join(&stamp);
    let mut attempt = 1;
    while dir.exists() {
        dir = parent.join(format!("{stamp}-{attempt}"));
        attempt += 1;
    }
    std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    point_latest(root, &dir)?;
    Ok(dir)
}

fn point_latest(root: &Path, run: &Path) -> anyhow::Result<()> {
    let link = root.join("latest");
    let relative = run.strip_prefix(std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf()));
    let target = relative.map(Path::to_path_buf).unwrap_or_else(|_| run.to_path_buf());
    let staging = root.join(format!(".latest-{}", std::process::id()));
    let _ = std::fs::remove_file(&staging);
    std::os::unix::fs::symlink(&target, &staging).with_context(|| format!("cannot link {}", staging.display()))?;
    std::fs::rename(&staging, &link).with_context(|| format!("cannot update {}", link.display()))?;
    Ok(())
}

/// `YYYYMMDDTHHMMSS.mmmZ` (UTC), sortable.
pub fn timestamp(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(timestamp(UNIX_EPOCH), "19700101T000000.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789); // 2024-02-29 12:34:56.789
        assert_eq!(timestamp(t), "20240229T123456.789Z");
    }

    #[test]
    fn runs_get_their_own_directory_and_latest_follows() {
        let root = tempfile::tempdir().expect("tempdir");
        let a = create_run_dir(root.path(), "register").expect("a");
        let b = create_run_dir(root.path(), "register").expect("b");
        assert_ne!(a, b);
        let latest = std::fs::canonicalize(root.path().join("latest")).expect("latest");
        assert_eq!(latest, std::fs::canonicalize(&b).expect("b"));
    }
}
