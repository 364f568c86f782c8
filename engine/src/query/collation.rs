//! Collations without ICU: the case- and accent-insensitive comparisons most applications ask for, done by
//! turning every string into a *collation key* whose binary order and equality stand for the collation's.
//!
//! ```text
//! strength 1  primary:   accents stripped (canonical decomposition, combining marks dropped), case folded
//! strength 2  secondary: primary, then accents (case still folded)
//! strength 3  tertiary:  secondary, then case (lowercase first, as ICU's default)   [MongoDB's default]
//! strength 4, 5          tertiary, then the string itself (no ignorable characters here, so these add only
//!                        the identical level)
//! numericOrdering        runs of digits compare as numbers
//! ```
//!
//! Supported for the locales whose ICU rules are the root collation's for letters (`en`, `de`, `fr`, `it`,
//! `nl`, `pt` and their regions): equality (filters, `distinct`) is exact for them; order is the key's,
//! which follows ICU for letters, accents and case but not for punctuation, symbols or other scripts.
//! Options that change ICU's rules further (`caseLevel`, `caseFirst`, `alternate: "shifted"`, `backwards`,
//! `normalization`) are refused with NotImplemented (238).
use bson::{Bson, Document};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use super::QueryError;

const NOT_IMPLEMENTED: (i32, &str) = (238, "NotImplemented");

/// Locales (language part) whose letters sort by the root collation.
const ROOT_LANGUAGES: &[&str] = &["en", "de", "fr", "it", "nl", "pt"];

/// A non-simple collation the engine implements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collation {
    strength: u8,
    numeric_ordering: bool,
}

impl Collation {
    /// Parses a `collation` document: `Ok(None)` for the simple collation (binary comparison), an error with
    /// MongoDB's code for a malformed one, NotImplemented (238) for what the engine cannot do.
    pub fn parse(spec: &Document) -> Result<Option<Collation>, QueryError> {
        let locale = match spec.get("locale") {
            Some(Bson::String(locale)) => locale.as_str(),
            Some(_) => {
                return Err(QueryError::new(
                    14,
                    "TypeMismatch",
                    "BSON field 'locale' is the wrong type, expected type 'string'",
                ));
            }
            None => {
                return Err(QueryError::new(
                    40414,
                    "Location40414",
                    "BSON field 'locale' is missing but a required field",
                ));
            }
        };
        if locale == "simple" {
            return Ok(None);
        }
        let language = locale.split(['_', '-', '@']).next().unwrap_or("");
        if !ROOT_LANGUAGES.contains(&language) || locale.contains('@') {
            return Err(not_implemented(format!(
                "collation locale '{locale}' is not supported by the Faultline engine (no ICU); supported: simple, and {} with their regions",
                ROOT_LANGUAGES.join(", ")
            )));
        }
        let mut collation = Collation {
            strength: 3,
            numeric_ordering: false,
        };
        for (name, value) in spec {
            match (name.as_str(), value) {
                ("locale", _) | ("version", _) | ("maxVariable", _) => {}
                ("strength", value) => {
                    collation.strength = match number(value) {
                        Some(n @ 1..=5) => n as u8,
                        Some(n) => {
                            return Err(QueryError::bad_value(format!(
                                "Enumeration value '{n}' for field 'strength' is not a valid value."
                            )));
                        }
                        None => return Err(wrong_type(name, "int")),
                    }
                }
                ("numericOrdering", Bson::Boolean(b)) => collation.numeric_ordering = *b,
                ("caseLevel" | "backwards" | "normalization", Bson::Boolean(false)) => {}
                ("caseFirst", Bson::String(s)) if s == "off" => {}
                ("alternate", Bson::String(s)) if s == "non-ignorable" => {}
                (
                    "caseLevel" | "backwards" | "normalization" | "caseFirst" | "alternate",
                    Bson::Boolean(_) | Bson::String(_),
                ) => {
                    return Err(not_implemented(format!(
                        "collation option {name}: {value} is not supported by the Faultline engine"
                    )));
                }
                ("numericOrdering" | "caseLevel" | "backwards" | "normalization", _) => {
                    return Err(wrong_type(name, "bool"));
                }
                ("caseFirst" | "alternate", _) => return Err(wrong_type(name, "string")),
                _ => {
                    return Err(QueryError::new(
                        40415,
                        "Location40415",
                        format!("BSON field 'Collation.{name}' is an unknown field."),
                    ));
                }
            }
        }
        Ok(Some(collation))
    }

    /// The collation key of a string: equal keys for strings the collation deems equal, ordered as it
    /// orders them (within the limits in the module header).
    pub fn key(&self, text: &str) -> String {
        let text = if self.numeric_ordering {
            numeric_runs(text)
        } else {
            text.to_string()
        };
        let decomposed: String = text.nfd().collect();
        let primary: String = decomposed
            .chars()
            .filter(|c| !is_combining_mark(*c))
            .flat_map(char::to_lowercase)
            .collect();
        if self.strength == 1 {
            return primary;
        }
        let mut key = primary;
        key.push('\0');
        key.extend(decomposed.chars().flat_map(char::to_lowercase));
        if self.strength == 2 {
            return key;
        }
        key.push('\0');
        key.extend(decomposed.chars().map(swap_case));
        if self.strength >= 4 {
            key.push('\0');
            key.push_str(&text);
        }
        key
    }

    /// A value with every string in it (nested ones included) replaced by its key.
    pub fn key_value(&self, value: &Bson) -> Bson {
        match value {
            Bson::String(s) => Bson::String(self.key(s)),
            Bson::Document(doc) => Bson::Document(self.key_document(doc)),
            Bson::Array(items) => Bson::Array(items.iter().map(|v| self.key_value(v)).collect()),
            other => other.clone(),
        }
    }

    /// A document with every string value replaced by its key (field names stay).
    pub fn key_document(&self, doc: &Document) -> Document {
        doc.iter().map(|(k, v)| (k.clone(), self.key_value(v))).collect()
    }

    /// The collation as mongod reports it (every option spelled out).
    pub fn to_document(&self, locale: &str) -> Document {
        bson::doc! {
            "locale": locale, "caseLevel": false, "caseFirst": "off", "strength": i32::from(self.strength),
            "numericOrdering": self.numeric_ordering, "alternate": "non-ignorable", "maxVariable": "punct",
            "normalization": false, "backwards": false,
        }
    }
}

fn number(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        Bson::Double(d) if d.fract() == 0.0 => Some(*d as i64),
        _ => None,
    }
}

fn wrong_type(name: &str, expected: &str) -> QueryError {
    QueryError::new(
        14,
        "TypeMismatch",
        format!("BSON field 'Collation.{name}' is the wrong type, expected type '{expected}'"),
    )
}

fn not_implemented(message: String) -> QueryError {
    QueryError::new(NOT_IMPLEMENTED.0, NOT_IMPLEMENTED.1, message)
}

/// Lowercase before uppercase at the tertiary level, in binary order.
fn swap_case(c: char) -> char {
    if c.is_uppercase() {
        c.to_lowercase().next().unwrap_or(c)
    } else if c.is_lowercase() {
        c.to_uppercase().next().unwrap_or(c)
    } else {
        c
    }
}

/// Each run of ASCII digits rewritten so binary order is numeric order: leading zeros dropped, then the
/// run's length as one character (longer numbers are larger), then the digits.
fn numeric_runs(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if !c.is_ascii_digit() {
            out.push(c);
            continue;
        }
        let mut digits = String::from(c);
        while let Some(d) = chars.next_if(char::is_ascii_digit) {
            digits.push(d);
        }
        let significant = digits.trim_start_matches('0');
        let significant = if significant.is_empty() { "0" } else { significant };
        let length = u32::try_from(significant.len()).unwrap_or(u32::MAX).min(0xD000);
        out.push(char::from_u32(0x30 + length).unwrap_or('\u{D000}'));
        out.push_str(significant);
    }
    out
}

#[cfg(test)]
mod tests {
    use bson::doc;

    use super::*;

    fn collation(spec: Document) -> Collation {
        Collation::parse(&spec).expect("valid").expect("not simple")
    }

    #[test]
    fn strengths_ignore_accents_then_case() {
        let primary = collation(doc! {"locale": "en_US", "strength": 1});
        let secondary = collation(doc! {"locale": "en_US", "strength": 2});
        let tertiary = collation(doc! {"locale": "en"});
        assert_eq!(primary.key("Résumé"), primary.key("resume"));
        assert_ne!(secondary.key("Résumé"), secondary.key("resume"));
        assert_eq!(secondary.key("PING"), secondary.key("ping"));
        assert_ne!(tertiary.key("PING"), tertiary.key("ping"));
        // ICU's order: a < A < b < B; accents after the base letter, before the next letter.
        let mut words = vec!["B", "b", "A", "a", "é", "f", "e"];
        words.sort_by_key(|w| tertiary.key(w));
        assert_eq!(words, ["a", "A", "b", "B", "e", "é", "f"]);
    }

    #[test]
    fn numeric_ordering_compares_digit_runs_as_numbers() {
        let numeric = collation(doc! {"locale": "en", "numericOrdering": true});
        let mut words = vec!["item10", "item9", "item010", "item1"];
        words.sort_by_key(|w| numeric.key(w));
        assert_eq!(words, ["item1", "item9", "item10", "item010"]);
    }

    #[test]
    fn options_it_cannot_honour_are_refused() {
        let code = |spec: Document| Collation::parse(&spec).err().map(|e| e.code);
        assert_eq!(Collation::parse(&doc! {"locale": "simple"}).ok(), Some(None));
        assert_eq!(code(doc! {"locale": "sv"}), Some(238));
        assert_eq!(code(doc! {"locale": "en", "caseFirst": "upper"}), Some(238));
        assert_eq!(code(doc! {"locale": "en", "alternate": "shifted"}), Some(238));
        assert_eq!(code(doc! {"locale": "en", "strength": 6}), Some(2));
        assert_eq!(code(doc! {"locale": "en", "bogus": 1}), Some(40415));
        assert_eq!(code(doc! {"strength": 1}), Some(40414));
        assert_eq!(code(doc! {"locale": 1}), Some(14));
    }
}
