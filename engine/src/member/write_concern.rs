//! Write concern: how many members must have a write, and whether it must be durable.

use std::time::Duration;

use bson::{Bson, Document, doc};

use crate::error::{Error, Result};

/// How many members must acknowledge a write.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteMode {
    Nodes(i32),
    Majority,
    Tag(String),
}

/// A parsed `writeConcern` document.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteConcern {
    pub w: WriteMode,
    pub j: bool,
    pub wtimeout: Option<Duration>,
}

impl Default for WriteConcern {
    /// MongoDB's implicit default since 5.0: majority.
    fn default() -> WriteConcern {
        WriteConcern {
            w: WriteMode::Majority,
            j: false,
            wtimeout: None,
        }
    }
}

impl WriteConcern {
    /// The same number of members, counted by what they applied rather than what they made durable: what the
    /// `skipJournalFsync` fail point waits for (`write_majority` is the set's `writeMajorityCount`).
    pub fn applied_only(&self, write_majority: usize) -> WriteConcern {
        let w = match &self.w {
            WriteMode::Majority => WriteMode::Nodes(i32::try_from(write_majority).unwrap_or(i32::MAX)),
            other => other.clone(),
        };
        WriteConcern {
            w,
            j: false,
            wtimeout: self.wtimeout,
        }
    }

    pub fn parse(doc: Option<&Document>) -> Result<WriteConcern> {
        let mut wc = WriteConcern::default();
        let Some(doc) = doc else { return Ok(wc) };
        match doc.get("w") {
            None => {}
            Some(Bson::String(s)) if s == "majority" => wc.w = WriteMode::Majority,
            Some(Bson::String(s)) => wc.w = WriteMode::Tag(s.clone()),
            Some(v) => {
                let n =
                    crate::bsonx::as_i64(v).ok_or_else(|| Error::failed_to_parse("w has to be a number or string"))?;
                if n < 0 {
                    return Err(Error::failed_to_parse("w has to be a non-negative number"));
                }
                wc.w = WriteMode::Nodes(n as i32);
            }
        }
        match doc.get("j") {
            None | Some(Bson::Null) => {}
            Some(Bson::Boolean(b)) => wc.j = *b,
            Some(v) => {
                wc.j = crate::bsonx::as_i64(v)
                    .map(|n| n != 0)
                    .ok_or_else(|| Error::type_mismatch("j must be a boolean"))?
            }
        }
        if let Some(v) = doc.get("wtimeout").or_else(|| doc.get("wtimeoutMS")) {
            let ms = crate::bsonx::as_i64(v).ok_or_else(|| Error::failed_to_parse("wtimeout must be a number"))?;
            wc.wtimeout = (ms > 0).then(|| Duration::from_millis(ms as u64));
        }
        Ok(wc)
    }

    pub fn is_unacknowledged(&self) -> bool {
        self.w == WriteMode::Nodes(0) && !self.j
    }

    pub fn to_document(&self) -> Document {
        let w = match &self.w {
            WriteMode::Nodes(n) => Bson::Int32(*n),
            WriteMode::Majority => Bson::String("majority".into()),
            WriteMode::Tag(t) => Bson::String(t.clone()),
        };
        let mut doc = doc! {"w": w};
        if self.j {
            doc.insert("j", true);
        }
        if let Some(t) = self.wtimeout {
            doc.insert("wtimeout", t.as_millis() as i64);
        }
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_concern_parses_mongodb_forms() {
        let wc = WriteConcern::parse(Some(&doc! {"w": "majority", "j": true, "wtimeout": 500})).expect("valid");
        assert_eq!(
            wc,
            WriteConcern {
                w: WriteMode::Majority,
                j: true,
                wtimeout: Some(Duration::from_millis(500))
            }
        );
        let wc = WriteConcern::parse(Some(&doc! {"w": 0})).expect("valid");
        assert!(wc.is_unacknowledged());
        assert!(WriteConcern::parse(Some(&doc! {"w": -1})).is_err());
        assert!(WriteConcern::parse(Some(&doc! {"w": true})).is_err());
    }
}
