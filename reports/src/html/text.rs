//! Escaping and small formatting helpers for the HTML pages.

use faultline_checker::result::Validity;

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Shortens `text` to at most `max` characters, with an ellipsis.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let kept: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{kept}…")
    }
}

/// A verdict badge: `<span class="verdict valid">valid</span>`; `None` is "not checked".
pub fn verdict_badge(verdict: Option<Validity>) -> String {
    let (class, text) = match verdict {
        Some(Validity::True) => ("valid", "VALID"),
        Some(Validity::False) => ("invalid", "INVALID"),
        Some(Validity::Unknown) => ("unknown", "UNKNOWN"),
        None => ("none", "NOT CHECKED"),
    };
    format!("<span class=\"verdict {class}\">{text}</span>")
}

/// A duration for humans: `850 ms`, `12.3 s`, `4 min 5 s`.
pub fn duration(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.0} ms", seconds * 1e3)
    } else if seconds < 120.0 {
        format!("{seconds:.1} s")
    } else {
        format!("{} min {:.0} s", (seconds / 60.0).floor(), seconds % 60.0)
    }
}

/// A relative path as a URL path: `/` separators, each segment percent-encoded where needed.
pub fn href(path: &std::path::Path) -> String {
    let segments: Vec<String> = path
        .components()
        .map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .chars()
                .map(|ch| match ch {
                    'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' | '~' => ch.to_string(),
                    other => {
                        let mut buf = [0u8; 4];
                        other
                            .encode_utf8(&mut buf)
                            .bytes()
                            .map(|b| format!("%{b:02X}"))
                            .collect()
                    }
                })
                .collect()
        })
        .collect();
    escape(&segments.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn truncates_on_characters() {
        assert_eq!(truncate("héllo world", 5), "héll…");
        assert_eq!(truncate("abc", 5), "abc");
    }

    #[test]
    fn hrefs_encode_spaces() {
        assert_eq!(href(std::path::Path::new("nodes/n 1/node.log")), "nodes/n%201/node.log");
    }
}
