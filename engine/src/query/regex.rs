//! `$regex` support: MongoDB regex patterns and options compiled with the `regex` crate.
//!
//! Options `i`, `m`, `s`, `x` map to inline flags; `u` and `l` are accepted and ignored. PCRE-only syntax
//! (look-around, backreferences) is rejected with code 51091 as mongod does for invalid patterns.
use bson::Bson;

use super::QueryError;

/// A compiled regular expression plus its source, kept for equality against stored BSON regexes.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    pub(crate) source: String,
    pub(crate) options: String,
    compiled: regex::Regex,
}

impl Pattern {
    pub(crate) fn new(source: &str, options: &str) -> Result<Pattern, QueryError> {
        let mut flags = String::new();
        for option in options.chars() {
            match option {
                'i' | 'm' | 's' | 'x' => flags.push(option),
                'u' | 'l' => {}
                other => {
                    return Err(QueryError::location(
                        51108,
                        format!("invalid flag in regex options: {other}"),
                    ));
                }
            }
        }
        let full = if flags.is_empty() {
            source.to_string()
        } else {
            format!("(?{flags}){source}")
        };
        let compiled = regex::Regex::new(&full).map_err(|e| {
            QueryError::location(
                51091,
                format!("Regular expression is invalid: {}", first_line(&e.to_string())),
            )
        })?;
        Ok(Pattern {
            source: source.to_string(),
            options: options.to_string(),
            compiled,
        })
    }

    pub(crate) fn from_bson_regex(regex: &bson::Regex) -> Result<Pattern, QueryError> {
        Pattern::new(regex.pattern.as_str(), regex.options.as_str())
    }

    /// Strings and symbols matching the pattern, or a BSON regex identical to it.
    pub(crate) fn matches(&self, value: &Bson) -> bool {
        match value {
            Bson::String(s) | Bson::Symbol(s) => self.compiled.is_match(s),
            Bson::RegularExpression(r) => r.pattern.as_str() == self.source && r.options.as_str() == self.options,
            _ => false,
        }
    }
}

fn first_line(text: &str) -> &str {
    text.lines().last().unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_become_flags() {
        let p = Pattern::new("^ab", "i").expect("valid");
        assert!(p.matches(&Bson::String("ABc".into())));
        assert!(!p.matches(&Bson::String("xab".into())));
        assert!(!p.matches(&Bson::Int32(1)));
    }

    #[test]
    fn invalid_patterns_are_errors() {
        assert_eq!(Pattern::new("(", "").map(|_| ()).map_err(|e| e.code), Err(51091));
        assert_eq!(Pattern::new("a", "q").map(|_| ()).map_err(|e| e.code), Err(51108));
    }
}
