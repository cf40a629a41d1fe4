//! Resource tags with AWS's rules: at most 50 per resource; keys 1–128 and values up to
//! 256 characters of letters, digits, white space and `_ . : / = + - @`; the `aws:`
//! prefix is reserved for AWS.

use std::collections::BTreeMap;

use crate::error::Error;

/// Per-resource quota of tags.
pub const MAX_TAGS: usize = 50;

/// A validated set of tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(BTreeMap<String, String>);

/// AWS's tag character class: `[\p{L}\p{Z}\p{N}_.:/=+\-@]`.
fn allowed(c: char) -> bool {
    c.is_alphanumeric()
        || c == ' '
        || (c.is_whitespace() && !c.is_control())
        || "_.:/=+-@".contains(c)
}

fn bad(message: impl Into<String>) -> Error {
    Error::bad_request("tags", message)
}

/// Checks one key (not its count).
fn check_key(k: &str) -> Result<(), Error> {
    if k.is_empty() || k.chars().count() > 128 {
        return Err(bad("Tag keys must be between 1 and 128 characters long."));
    }
    if k.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
        return Err(bad(format!(
            "Tag key {k} uses the prefix aws:, which is reserved for AWS use."
        )));
    }
    if !k.chars().all(allowed) {
        return Err(bad(format!(
            "Tag key {k:?} may contain only letters, digits, spaces and _ . : / = + - @."
        )));
    }
    Ok(())
}

impl Tags {
    pub fn parse(tags: BTreeMap<String, String>) -> Result<Self, Error> {
        if tags.len() > MAX_TAGS {
            return Err(bad(format!("A resource can have at most {MAX_TAGS} tags.")));
        }
        for (k, v) in &tags {
            check_key(k)?;
            if v.chars().count() > 256 {
                return Err(bad("Tag values must be at most 256 characters long."));
            }
            if !v.chars().all(allowed) {
                return Err(bad(format!(
                    "The value of tag {k} may contain only letters, digits, spaces and _ . : / = + - @."
                )));
            }
        }
        Ok(Self(tags))
    }

    /// Adds `more` (overwriting equal keys); the result must still be within the quota.
    pub fn merge(self, more: Tags) -> Result<Self, Error> {
        let mut all = self.0;
        all.extend(more.0);
        Self::parse(all)
    }

    pub fn remove(&mut self, key: &str) {
        self.0.remove(key);
    }

    pub fn into_inner(self) -> BTreeMap<String, String> {
        self.0
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(k: &str, v: &str) -> Result<Tags, Error> {
        Tags::parse(BTreeMap::from([(k.to_owned(), v.to_owned())]))
    }

    #[test]
    fn tag_rules() {
        assert!(one("team", "payments").is_ok());
        assert!(one("cost-center/eu:1 = x+y@z_", "Zürich 42").is_ok());
        assert!(one("k", "").is_ok());
        for (k, v) in [
            ("aws:created-by", "x"),
            ("AWS:x", "x"),
            ("", "x"),
            ("bell\u{7}", "x"),
            ("k", "line\nbreak"),
            ("k", "tab\there"),
            ("semi;colon", "x"),
        ] {
            assert_eq!(
                one(k, v).unwrap_err().attribute(),
                Some("tags"),
                "{k:?}={v:?}"
            );
        }
        assert!(one(&"k".repeat(129), "v").is_err());
        assert!(one("k", &"v".repeat(257)).is_err());
        let many: BTreeMap<_, _> = (0..51).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(Tags::parse(many).is_err());
    }
}
