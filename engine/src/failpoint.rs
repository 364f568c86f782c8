//! Fail points: named switches that make the engine misbehave on purpose, as MongoDB's own tests do.
//!
//! Set at start-up (`--setParameter failpoint.NAME={mode: ...}` or `failpoint.NAME=alwaysOn`) or at run time
//! with `configureFailPoint`. A fail point is off unless named. Modes: `alwaysOn`, `off`, `{times: n}`, with
//! optional `data`. Every hit is logged.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use bson::{Bson, Document, doc};

use crate::error::{Error, Result};

/// The fail points this engine knows, with what each does when on.
pub const KNOWN: &[(&str, &str)] = &[(
    "skipJournalFsync",
    "acknowledge j:true writes without waiting for the fsync'd commit",
)];

#[derive(Debug, Clone, PartialEq)]
enum Mode {
    Off,
    AlwaysOn,
    Times(u64),
}

#[derive(Debug, Clone)]
struct State {
    mode: Mode,
    data: Document,
    hits: u64,
}

/// The member's fail points.
#[derive(Default)]
pub struct FailPoints {
    points: Mutex<HashMap<String, State>>,
}

impl FailPoints {
    /// Reads `failpoint.NAME` entries of `--setParameter`.
    pub fn from_parameters(params: &BTreeMap<String, String>) -> Result<FailPoints> {
        let points = FailPoints::default();
        for (key, value) in params {
            let Some(name) = key.strip_prefix("failpoint.") else {
                continue;
            };
            let spec = match value.trim() {
                "alwaysOn" | "off" => doc! {"mode": value.trim()},
                text => {
                    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| {
                        Error::bad_value(format!(
                            "failpoint.{name}: expected alwaysOn, off or a JSON document: {e}"
                        ))
                    })?;
                    match Bson::try_from(json) {
                        Ok(Bson::Document(d)) => d,
                        _ => return Err(Error::bad_value(format!("failpoint.{name}: expected a document"))),
                    }
                }
            };
            points.configure(name, &spec)?;
        }
        Ok(points)
    }

    /// `configureFailPoint`: returns the previous `{mode, data}`.
    pub fn configure(&self, name: &str, spec: &Document) -> Result<Document> {
        if !KNOWN.iter().any(|(n, _)| *n == name) {
            return Err(Error::bad_value(format!("unknown fail point: {name}")));
        }
        let mode = match spec.get("mode") {
            Some(Bson::String(s)) if s == "alwaysOn" => Mode::AlwaysOn,
            Some(Bson::String(s)) if s == "off" => Mode::Off,
            Some(Bson::Document(d)) => match d.get("times").and_then(crate::command::args::as_i64) {
                Some(n) if n >= 0 => Mode::Times(n as u64),
                _ => return Err(Error::bad_value("fail point mode document must be {times: n}")),
            },
            _ => return Err(Error::bad_value("fail point mode must be alwaysOn, off or {times: n}")),
        };
        let data = spec.get_document("data").cloned().unwrap_or_default();
        let mut points = self
            .points
            .lock()
            .map_err(|_| Error::internal("fail point registry poisoned"))?;
        let previous = points.insert(
            name.to_string(),
            State {
                mode: mode.clone(),
                data,
                hits: 0,
            },
        );
        tracing::warn!(failpoint = name, mode = ?mode, "fail point configured");
        Ok(match previous {
            Some(s) => doc! {"mode": mode_code(&s.mode), "data": s.data},
            None => doc! {"mode": 0, "data": {}},
        })
    }

    /// Whether the fail point fires now (counts down `times`). Logged when it does.
    pub fn hit(&self, name: &str) -> Option<Document> {
        let mut points = self.points.lock().ok()?;
        let state = points.get_mut(name)?;
        let fires = match &mut state.mode {
            Mode::Off => false,
            Mode::AlwaysOn => true,
            Mode::Times(0) => false,
            Mode::Times(n) => {
                *n -= 1;
                true
            }
        };
        if fires {
            state.hits += 1;
            tracing::warn!(failpoint = name, hits = state.hits, "fail point hit");
            Some(state.data.clone())
        } else {
            None
        }
    }

    /// Every known fail point with its mode and hit count (for `listFailPoints`... and getParameter).
    pub fn list(&self) -> Vec<Document> {
        let points = self.points.lock().map(|p| p.clone()).unwrap_or_default();
        KNOWN
            .iter()
            .map(|(name, what)| {
                let state = points.get(*name);
                doc! {
                    "name": *name, "description": *what,
                    "mode": state.map(|s| mode_code(&s.mode)).unwrap_or(0),
                    "timesEntered": state.map(|s| s.hits as i64).unwrap_or(0),
                }
            })
            .collect()
    }
}

fn mode_code(mode: &Mode) -> i32 {
    match mode {
        Mode::Off => 0,
        Mode::AlwaysOn => 1,
        Mode::Times(_) => 2,
    }
}
