//! Why did the engine stop? Turning the last lines of its console output
//! ([`crate::enginelog`]) into a short reason for `HealthReport.last_error`, and telling
//! a configuration error (the same at every start: no point restarting) from anything
//! else. The engine-specific readers are in each driver (`diagnose` functions); this
//! module has the common pieces.

/// What the engine's output says about why it stopped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnosis {
    /// A short excerpt of the engine's own words (a line or a few), not yet scrubbed of
    /// secrets; None when the engine printed nothing useful.
    pub excerpt: Option<String>,
    /// The output shows an error that will recur at every start with this spec (a
    /// configuration the engine refuses, a JVM that cannot start).
    pub deterministic: bool,
}

/// Longest excerpt, in bytes.
pub const MAX_EXCERPT: usize = 600;

/// `text` on one line (runs of blanks and line breaks become one space), cut to `max`
/// bytes at a character boundary with an ellipsis.
pub fn shorten(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.len() <= max {
        return one_line;
    }
    let mut end = max;
    while !one_line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &one_line[..end])
}

/// Whether `line` is part of a stack trace (Java frames, `... N more`).
pub fn is_stack_frame(line: &str) -> bool {
    let t = line.trim_start();
    (t.starts_with("at ") && line.starts_with(char::is_whitespace))
        || (t.starts_with("... ") && t.ends_with(" more"))
}

/// The generic excerpt: the last `n` non-blank lines that are not stack frames, joined
/// with ` | `.
pub fn last_lines(lines: &[String], n: usize) -> Option<String> {
    let mut picked: Vec<&str> = lines
        .iter()
        .rev()
        .filter(|l| !is_stack_frame(l))
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .take(n)
        .collect();
    if picked.is_empty() {
        return None;
    }
    picked.reverse();
    Some(shorten(&picked.join(" | "), MAX_EXCERPT))
}

/// [`last_lines`] among the lines `keep` accepts (e.g. no INFO log lines: the last
/// words of a broker that was killed are routine messages, not a reason).
pub fn last_lines_where(lines: &[String], n: usize, keep: impl Fn(&str) -> bool) -> Option<String> {
    let kept: Vec<String> = lines.iter().filter(|l| keep(l)).cloned().collect();
    last_lines(&kept, n)
}

/// The diagnosis when nothing engine-specific is recognised.
pub fn generic(lines: &[String]) -> Diagnosis {
    Diagnosis {
        excerpt: last_lines(lines, 3),
        deterministic: false,
    }
}

/// Replace every occurrence of a (non-empty) secret with `<redacted>`, longest first.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    let mut sorted: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in sorted {
        out = out.replace(s.as_str(), "<redacted>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    #[test]
    fn shortening() {
        assert_eq!(shorten("a\n  b\tc", 100), "a b c");
        assert_eq!(shorten("abcdef", 3), "abc…");
        assert_eq!(shorten("ééé", 3), "é…");
    }

    #[test]
    fn last_lines_skip_stack_frames_and_blanks() {
        let out = lines(
            "starting\njava.lang.RuntimeException: boom\n\tat a.b.C(C.java:1)\n\t... 3 more\n\nexit now\n",
        );
        assert_eq!(
            last_lines(&out, 2).unwrap(),
            "java.lang.RuntimeException: boom | exit now"
        );
        assert_eq!(last_lines(&[], 3), None);
        assert_eq!(last_lines(&lines("\n  \n"), 3), None);
        let d = generic(&out);
        assert!(!d.deterministic);
        assert!(d.excerpt.unwrap().starts_with("starting |"));
        // a line starting with "at " that is not indented is not a frame
        assert!(!is_stack_frame("at least one error"));
    }

    #[test]
    fn redaction() {
        let secrets = vec!["hunter22".to_string(), "hunter2222".to_string(), "".into()];
        assert_eq!(
            redact("pw=hunter2222 or hunter22", &secrets),
            "pw=<redacted> or <redacted>"
        );
        // even a short one (safety first, whatever it does to the text)
        assert_eq!(redact("abc", &["b".to_string()]), "a<redacted>c");
    }
}
