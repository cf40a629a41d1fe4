//! Pagination shared by every list operation: `maxResults` (1–100) and an opaque
//! `nextToken` that carries the last key of the previous page.

use base64::Engine as _;

use crate::error::Error;

const TOKEN: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Page size from `maxResults`: 1–100, `default` when absent.
pub fn max_results(v: Option<&str>, default: i64) -> Result<i64, Error> {
    max_results_up_to(v, default, 100)
}

/// Page size from `maxResults`: 1–`most`, `default` when absent.
pub fn max_results_up_to(v: Option<&str>, default: i64, most: i64) -> Result<i64, Error> {
    match v {
        None => Ok(default),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (1..=most).contains(&n) => Ok(n),
            _ => Err(Error::bad_request(
                "maxResults",
                format!("maxResults must be an integer between 1 and {most}."),
            )),
        },
    }
}

/// The token for a page that ends at `last_key`.
pub fn encode_token(last_key: &str) -> String {
    TOKEN.encode(last_key)
}

/// The key a `nextToken` carries; absent or empty means the first page.
pub fn decode_token(t: Option<&str>) -> Result<Option<String>, Error> {
    match t {
        None | Some("") => Ok(None),
        Some(t) => TOKEN
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .map(Some)
            .ok_or_else(invalid_token),
    }
}

pub fn invalid_token() -> Error {
    Error::bad_request("nextToken", "The nextToken is not valid.")
}

/// Cuts a page fetched with `limit + 1` rows back to `limit` and returns the token of the
/// next page, if there is one.
pub fn finish_page<T>(rows: &mut Vec<T>, limit: i64, key: impl Fn(&T) -> String) -> Option<String> {
    if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| encode_token(&key(r)))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_results_bounds() {
        assert_eq!(max_results(None, 20).unwrap(), 20);
        assert_eq!(max_results(Some("100"), 20).unwrap(), 100);
        for bad in ["0", "101", "x", "-1"] {
            assert_eq!(
                max_results(Some(bad), 20).unwrap_err().attribute(),
                Some("maxResults")
            );
        }
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_a_400() {
        assert_eq!(
            decode_token(Some(&encode_token("b-1"))).unwrap().as_deref(),
            Some("b-1")
        );
        assert_eq!(decode_token(None).unwrap(), None);
        assert_eq!(
            decode_token(Some("!!")).unwrap_err().attribute(),
            Some("nextToken")
        );
    }

    #[test]
    fn pages_are_cut_with_a_token() {
        let mut rows = vec![1, 2, 3];
        assert_eq!(
            finish_page(&mut rows, 2, |r| r.to_string()),
            Some(encode_token("2"))
        );
        assert_eq!(rows, vec![1, 2]);
        let mut rows = vec![1, 2];
        assert_eq!(finish_page(&mut rows, 2, |r| r.to_string()), None);
    }
}
