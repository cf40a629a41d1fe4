//! Verification of AWS Signature Version 4 (`AWS4-HMAC-SHA256`) on incoming requests.
//!
//! The aws CLI, boto3 and every other AWS SDK sign each Amazon MQ API call with SigV4
//! (scope `<date>/<region>/mq/aws4_request`). Berth answers those calls itself, so when
//! signed access is enabled it has to check the signature the way AWS would: rebuild the
//! request's canonical form, sign it with the caller's secret key and compare. This module
//! does that for one request, on plain `http` 1.x types, so it fits in an axum middleware
//! or anywhere else.
//!
//! # How
//!
//! [`parse_authorization`] splits the `Authorization` header into the credential scope,
//! the signed-header list and the signature; the caller looks up the secret key of
//! `credential.access_key_id` (answering [`SigV4Error::UnknownAccessKey`] if there is
//! none) and calls [`verify`]. [`verify`] checks the scope and the clock (15 minutes either
//! way, like AWS), then signs the request again with the official `aws-sigv4` crate. No
//! cryptography is written here: `aws-sigv4` does the hashing and HMACs, `subtle` the
//! constant-time comparison. What `aws-sigv4` is given is chosen so that its canonical
//! request is byte-for-byte the one botocore signs (the tests replay requests captured
//! from botocore, boto3's `mq` client and the aws CLI):
//!
//! - only the headers named in `SignedHeaders`, with their values as received (runs of
//!   whitespace collapsed to one space, as botocore does); a named header that is not in
//!   the request fails with [`SigV4Error::SignedHeaderAbsent`], unsigned headers are
//!   ignored;
//! - the client's own `X-Amz-Date` (or `Date`) as signing time, region and service from
//!   the credential scope;
//! - the path as received, still percent-encoded, with empty and dot segments removed as
//!   botocore removes them (done here, since `aws-sigv4`'s RFC 3986 variant keeps the
//!   trailing slash of `/a/.`), which `aws-sigv4` then encodes once more (the non-S3 rule:
//!   `/v1/tags/arn%3Aaws…` is signed as `/v1/tags/arn%253Aaws…`);
//! - the query as received: `aws-sigv4` decodes each key and value (`+` as a space, as
//!   botocore itself sends a space when the query comes from a params dict), re-encodes
//!   them (`A-Za-z0-9-._~` bare, everything else `%XX`) and sorts by key, then value;
//! - the body bytes, whose SHA-256 is part of the canonical request. A signed
//!   `x-amz-content-sha256` header is just another signed header here: its value is not
//!   used as the payload hash, so `UNSIGNED-PAYLOAD` or a wrong hash fails to verify.
//!
//! A session token (`X-Amz-Security-Token`) only takes part as a signed header: whether
//! the token is valid is for the caller to decide. Presigned URLs (signature in the query
//! string) are not supported: no mq client uses them. The `Host` header must be signed;
//! for an HTTP/2 request copy the `:authority` into a `host` header before calling
//! [`verify`].
//!
//! # Errors as AWS reports them
//!
//! Amazon MQ is a REST-JSON service. AWS's REST-JSON front ends (API Gateway, Lambda and
//! the like) reject authentication failures with HTTP 403 and one of four codes in
//! `x-amzn-ErrorType`: `MissingAuthenticationTokenException` (no signature at all),
//! `IncompleteSignatureException` (the `Authorization` header or the date is malformed or
//! incomplete), `InvalidSignatureException` (well-formed but wrong: signature, scope or
//! clock) and `UnrecognizedClientException` (unknown access key or token).
//! `SignatureDoesNotMatch` is the S3 and query-protocol (STS, EC2) spelling and is not used.
//! [`SigV4Error::aws_code`], [`SigV4Error::message`] and [`SigV4Error::status`] give the
//! parts of such a reply; the messages follow the wording AWS is seen to send.

use std::borrow::Cow;
use std::time::SystemTime;

use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SessionTokenMode, SignableBody,
    SignableRequest, SignatureLocation, SigningSettings, UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use http::header::{AUTHORIZATION, DATE};
use http::{HeaderMap, Method, StatusCode};
use subtle::ConstantTimeEq;

/// The only algorithm accepted in the `Authorization` header.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The service name every credential scope must carry.
pub const SERVICE: &str = "mq";
/// How far `X-Amz-Date` may be from the server clock, either way.
pub const MAX_CLOCK_SKEW: TimeDelta = TimeDelta::minutes(15);

const SCOPE_TERMINATOR: &str = "aws4_request";
const X_AMZ_DATE: &str = "x-amz-date";
const ISO8601_BASIC: &str = "%Y%m%dT%H%M%SZ";

/// The `Credential=` part of the `Authorization` header:
/// `<access_key_id>/<date>/<region>/<service>/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub access_key_id: String,
    /// `YYYYMMDD`, as written by the client.
    pub date: String,
    pub region: String,
    pub service: String,
}

/// A parsed `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuth {
    pub credential: Credential,
    /// Lower-cased header names, in the order the client listed them.
    pub signed_headers: Vec<String>,
    pub signature: String,
}

impl ParsedAuth {
    /// Whether `name` (lower case) is among the signed headers.
    pub fn signs(&self, name: &str) -> bool {
        self.signed_headers.iter().any(|h| h == name)
    }
}

/// Why a request is not accepted as signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// No `Authorization` header.
    #[error("no Authorization header")]
    Missing,
    /// The `Authorization` header cannot be parsed; carries the message for the client.
    #[error("malformed Authorization header: {0}")]
    Malformed(String),
    /// The credential scope names another service than `mq`.
    #[error("credential scoped to service {0:?} instead of {SERVICE:?}")]
    WrongService(String),
    /// The credential scope names a region this installation does not serve.
    #[error("credential scoped to region {0:?}, which is not served here")]
    WrongRegion(String),
    /// The scope date differs from the date of `X-Amz-Date` (or `Date`).
    #[error("credential scope date {scope_date} differs from request date {request_time}")]
    ScopeDateMismatch {
        scope_date: String,
        /// The request time, `YYYYMMDDTHHMMSSZ`.
        request_time: String,
    },
    /// Neither `X-Amz-Date` nor `Date` is present.
    #[error("no X-Amz-Date or Date header")]
    MissingDate,
    /// The `X-Amz-Date` (or `Date`) value cannot be parsed.
    #[error("unparsable request date {0:?}")]
    InvalidDate(String),
    /// The date header used for signing is not among the signed headers.
    #[error("the {0} header is not signed")]
    DateNotSigned(&'static str),
    /// The request time is more than [`MAX_CLOCK_SKEW`] away from the server clock.
    #[error("request time {request_time} is more than 15 minutes from server time {now}")]
    RequestExpired {
        request_time: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    /// `host` is not among the signed headers.
    #[error("the host header is not signed")]
    HostNotSigned,
    /// A header named in `SignedHeaders` is not in the request.
    #[error("signed header {0:?} is not in the request")]
    SignedHeaderAbsent(String),
    /// The signature does not match the request and the secret key.
    #[error("signature mismatch")]
    SignatureMismatch,
    /// The access key id (or session token) is not known. Never returned by this module:
    /// for the caller's key lookup, so that its reply is worded like AWS's.
    #[error("unknown access key id or security token")]
    UnknownAccessKey,
}

impl SigV4Error {
    /// The error code AWS's REST-JSON front end answers with (`x-amzn-ErrorType`).
    pub fn aws_code(&self) -> &'static str {
        match self {
            Self::Missing => "MissingAuthenticationTokenException",
            Self::Malformed(_)
            | Self::MissingDate
            | Self::InvalidDate(_)
            | Self::DateNotSigned(_)
            | Self::HostNotSigned
            | Self::SignedHeaderAbsent(_) => "IncompleteSignatureException",
            Self::WrongService(_)
            | Self::WrongRegion(_)
            | Self::ScopeDateMismatch { .. }
            | Self::RequestExpired { .. }
            | Self::SignatureMismatch => "InvalidSignatureException",
            Self::UnknownAccessKey => "UnrecognizedClientException",
        }
    }

    /// The HTTP status that goes with [`Self::aws_code`]: 403 for every one of them.
    pub fn status(&self) -> StatusCode {
        StatusCode::FORBIDDEN
    }

    /// The client-facing message, worded as AWS words it.
    pub fn message(&self) -> String {
        match self {
            Self::Missing => "Missing Authentication Token".to_owned(),
            Self::Malformed(message) => message.clone(),
            Self::WrongService(_) => {
                format!("Credential should be scoped to correct service: '{SERVICE}'.")
            }
            Self::WrongRegion(region) => {
                format!("Credential should be scoped to a valid region, not '{region}'.")
            }
            Self::ScopeDateMismatch {
                scope_date,
                request_time,
            } => format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of \
                 date from HTTP: '{scope_date}' != '{}', from '{request_time}'.",
                request_time.get(..8).unwrap_or(request_time)
            ),
            Self::MissingDate => "Authorization header requires existence of either a \
                                  'X-Amz-Date' or a 'Date' header."
                .to_owned(),
            Self::InvalidDate(value) => format!(
                "Date must be in ISO-8601 'basic format'. Got '{value}'. See \
                 http://en.wikipedia.org/wiki/ISO_8601"
            ),
            Self::DateNotSigned(header) => {
                format!("'{header}' must be a 'SignedHeader' in the AWS Authorization.")
            }
            Self::RequestExpired { request_time, now } => {
                let fmt = |t: &DateTime<Utc>| t.format(ISO8601_BASIC).to_string();
                if request_time < now {
                    format!(
                        "Signature expired: {} is now earlier than {} ({} - 15 min.)",
                        fmt(request_time),
                        fmt(&(*now - MAX_CLOCK_SKEW)),
                        fmt(now)
                    )
                } else {
                    format!(
                        "Signature not yet current: {} is still later than {} ({} + 15 min.)",
                        fmt(request_time),
                        fmt(&(*now + MAX_CLOCK_SKEW)),
                        fmt(now)
                    )
                }
            }
            Self::HostNotSigned => {
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
                    .to_owned()
            }
            Self::SignedHeaderAbsent(name) => format!(
                "'{name}' is named as a SignedHeader, but it does not exist in the HTTP request."
            ),
            Self::SignatureMismatch => "The request signature we calculated does not match \
                                        the signature you provided. Check your AWS Secret \
                                        Access Key and signing method. Consult the service \
                                        documentation for details."
                .to_owned(),
            Self::UnknownAccessKey => {
                "The security token included in the request is invalid.".to_owned()
            }
        }
    }
}

/// Parse the `Authorization` header of a SigV4-signed request.
///
/// Accepts the `Credential=…, SignedHeaders=…, Signature=…` list in any order, with or
/// without spaces after the commas. Checks the shape only, not the values.
pub fn parse_authorization(headers: &HeaderMap) -> Result<ParsedAuth, SigV4Error> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(SigV4Error::Missing)?;
    if values.next().is_some() {
        return Err(malformed("Found multiple Authorization headers."));
    }
    let header = value
        .to_str()
        .map_err(|_| malformed("The Authorization header contains non-ASCII characters."))?
        .trim();
    if header.is_empty() {
        return Err(SigV4Error::Missing);
    }
    let (algorithm, params) = header
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((header, ""));
    if algorithm != ALGORITHM {
        return Err(malformed(format!(
            "Unsupported Authorization algorithm '{algorithm}': only {ALGORITHM} is accepted."
        )));
    }

    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once('=').ok_or_else(|| {
            malformed(format!(
                "'{part}' not a valid key=value pair (missing equal-sign) in Authorization \
                 header: '{header}'."
            ))
        })?;
        let slot = match key.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot.is_some() {
            return Err(malformed(format!(
                "Authorization header has more than one '{}' parameter.",
                key.trim()
            )));
        }
        *slot = Some(value.trim()).filter(|v| !v.is_empty());
    }

    let mut missing = String::new();
    for (name, slot) in [
        ("Credential", &credential),
        ("Signature", &signature),
        ("SignedHeaders", &signed_headers),
    ] {
        if slot.is_none() {
            missing.push_str(&format!(
                "Authorization header requires '{name}' parameter. "
            ));
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(malformed(format!("{missing}Authorization={header}")));
    };

    Ok(ParsedAuth {
        credential: parse_credential(credential)?,
        signed_headers: parse_signed_headers(signed_headers)?,
        signature: signature.to_owned(),
    })
}

fn parse_credential(value: &str) -> Result<Credential, SigV4Error> {
    let parts: Vec<&str> = value.split('/').collect();
    let [access_key_id, date, region, service, terminator] = parts[..] else {
        return Err(malformed(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. \
             keyid/date/region/service/term, got '{value}'"
        )));
    };
    if [access_key_id, date, region, service].contains(&"") {
        return Err(malformed(format!(
            "Credential has an empty element, expected keyid/date/region/service/term, got \
             '{value}'"
        )));
    }
    if terminator != SCOPE_TERMINATOR {
        return Err(malformed(format!(
            "Credential should be scoped with a valid terminator: '{SCOPE_TERMINATOR}', not \
             '{terminator}'."
        )));
    }
    Ok(Credential {
        access_key_id: access_key_id.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
    })
}

fn parse_signed_headers(value: &str) -> Result<Vec<String>, SigV4Error> {
    let names: Vec<String> = value.split(';').map(str::to_ascii_lowercase).collect();
    if names.iter().any(|n| n.is_empty() || n.trim() != n) {
        return Err(malformed(format!(
            "SignedHeaders must be a semicolon-separated list of header names, got '{value}'."
        )));
    }
    Ok(names)
}

fn malformed(message: impl Into<String>) -> SigV4Error {
    SigV4Error::Malformed(message.into())
}

/// Check that `auth` is a valid SigV4 signature of this request under `secret_access_key`.
///
/// `path_and_query` is the request target exactly as received on the wire (still
/// percent-encoded); `now` is the server clock.
pub fn verify(
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &[u8],
    auth: &ParsedAuth,
    secret_access_key: &str,
    now: DateTime<Utc>,
) -> Result<(), SigV4Error> {
    if auth.credential.service != SERVICE {
        return Err(SigV4Error::WrongService(auth.credential.service.clone()));
    }
    if !auth.signs("host") {
        return Err(SigV4Error::HostNotSigned);
    }

    // X-Amz-Date wins over Date, and whichever is used must be signed.
    let (date_header, date_name, date_value) = match headers.get(X_AMZ_DATE) {
        Some(value) => (X_AMZ_DATE, "X-Amz-Date", value),
        None => match headers.get(DATE) {
            Some(value) => ("date", "Date", value),
            None => return Err(SigV4Error::MissingDate),
        },
    };
    let request_time = parse_request_time(date_header, date_value)?;
    if !auth.signs(date_header) {
        return Err(SigV4Error::DateNotSigned(date_name));
    }
    let request_time_basic = request_time.format(ISO8601_BASIC).to_string();
    if auth.credential.date != request_time_basic[..8] {
        return Err(SigV4Error::ScopeDateMismatch {
            scope_date: auth.credential.date.clone(),
            request_time: request_time_basic,
        });
    }
    if (request_time - now).abs() > MAX_CLOCK_SKEW {
        return Err(SigV4Error::RequestExpired { request_time, now });
    }

    // Exactly the signed headers, values whitespace-normalized the way botocore does.
    let mut signed = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        let mut found = false;
        for value in headers.get_all(name.as_str()) {
            found = true;
            let value =
                std::str::from_utf8(value.as_bytes()).map_err(|_| SigV4Error::SignatureMismatch)?;
            signed.push((
                name.as_str(),
                value.split_whitespace().collect::<Vec<_>>().join(" "),
            ));
        }
        if !found {
            return Err(SigV4Error::SignedHeaderAbsent(name.clone()));
        }
    }

    let expected = compute_signature(
        method,
        path_and_query,
        &signed,
        body,
        auth,
        secret_access_key,
        request_time.into(),
    )
    .ok_or(SigV4Error::SignatureMismatch)?;
    if bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes())) {
        Ok(())
    } else {
        Err(SigV4Error::SignatureMismatch)
    }
}

/// `X-Amz-Date` is ISO-8601 basic (`20261124T173918Z`); `Date` is an RFC 2822 date.
fn parse_request_time(
    header: &str,
    value: &http::HeaderValue,
) -> Result<DateTime<Utc>, SigV4Error> {
    let text = String::from_utf8_lossy(value.as_bytes());
    let parsed = if header == X_AMZ_DATE {
        NaiveDateTime::parse_from_str(&text, ISO8601_BASIC)
            .ok()
            .filter(|_| text.len() == 16)
            .map(|t| t.and_utc())
    } else {
        DateTime::parse_from_rfc2822(&text)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    parsed.ok_or_else(|| SigV4Error::InvalidDate(text.into_owned()))
}

/// Sign the request again with `aws-sigv4`; `None` if it cannot be represented at all.
fn compute_signature(
    method: &Method,
    path_and_query: &str,
    signed_headers: &[(&str, String)],
    body: &[u8],
    auth: &ParsedAuth,
    secret_access_key: &str,
    time: SystemTime,
) -> Option<String> {
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Double;
    // Done by `remove_dot_segments` instead: aws-sigv4's RFC 3986 version keeps the
    // trailing slash of `/a/.`, botocore's does not.
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
    settings.signature_location = SignatureLocation::Headers;
    // `Exclude` would also drop an `x-amz-security-token` header we pass in; with no token
    // in the identity, `Include` signs exactly the header the client signed.
    settings.session_token_mode = SessionTokenMode::Include;
    // aws-sigv4 always adds `x-amz-date` (and `host`); drop the former when the client
    // signed `Date` instead. Nothing else is excluded: only signed headers are passed.
    settings.excluded_headers = Some(if auth.signs(X_AMZ_DATE) {
        Vec::new()
    } else {
        vec![Cow::Borrowed(X_AMZ_DATE)]
    });

    let identity = aws_credential_types::Credentials::new(
        auth.credential.access_key_id.clone(),
        secret_access_key,
        None,
        None,
        "berth-sigv4-verifier",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&auth.credential.region)
        .name(&auth.credential.service)
        .time(time)
        .settings(settings)
        .build()
        .ok()?
        .into();
    let target = match path_and_query.split_once('?') {
        Some((path, query)) => format!("{}?{query}", remove_dot_segments(path)),
        None => remove_dot_segments(path_and_query),
    };
    let request = SignableRequest::new(
        method.as_str(),
        target,
        signed_headers.iter().map(|(n, v)| (*n, v.as_str())),
        SignableBody::Bytes(body),
    )
    .ok()?;
    let (_, signature) = sign(request, &params).ok()?.into_parts();
    Some(signature)
}

/// botocore's path normalization (`botocore.utils.remove_dot_segments`): drops empty and
/// `.` segments, resolves `..`, and keeps a trailing slash only if the path ends with one
/// and something is left (`/a/.` becomes `/a`, `//` becomes `/`).
fn remove_dot_segments(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let first = if path.starts_with('/') { "/" } else { "" };
    let last = if path.ends_with('/') && !segments.is_empty() {
        "/"
    } else {
        ""
    };
    format!("{first}{}{last}", segments.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use http::{HeaderName, HeaderValue};
    use serde_json::Value;

    /// Real requests signed by botocore, boto3's `mq` client and the aws CLI; regenerate
    /// with `scripts/gen_sigv4_fixtures.py`.
    const FIXTURES: &str = include_str!("sigv4_fixtures.json");

    #[derive(Clone)]
    struct Fixture {
        name: String,
        /// `None` if the request must verify, else the `Debug` name of the expected error.
        expected_error: Option<String>,
        source: String,
        method: Method,
        path_and_query: String,
        headers: HeaderMap,
        body: Vec<u8>,
        secret: String,
        time: DateTime<Utc>,
    }

    impl Fixture {
        fn auth(&self) -> Result<ParsedAuth, SigV4Error> {
            parse_authorization(&self.headers)
        }

        fn verify_at(&self, now: DateTime<Utc>) -> Result<(), SigV4Error> {
            let auth = self.auth()?;
            verify(
                &self.method,
                &self.path_and_query,
                &self.headers,
                &self.body,
                &auth,
                &self.secret,
                now,
            )
        }

        fn verify(&self) -> Result<(), SigV4Error> {
            self.verify_at(self.time)
        }

        fn with(&self, change: impl FnOnce(&mut Fixture)) -> Fixture {
            let mut copy = self.clone();
            change(&mut copy);
            copy
        }

        fn set_header(&mut self, name: &str, value: &str) {
            self.headers.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }

        fn authorization(&self) -> String {
            self.headers[AUTHORIZATION].to_str().unwrap().to_owned()
        }

        fn has_query(&self) -> bool {
            self.path_and_query.contains('?')
        }

        /// A copy with `from` replaced by `to` in the request target (which must contain it).
        fn rewrite_target(&self, from: &str, to: &str) -> Fixture {
            assert!(
                self.path_and_query.contains(from),
                "{from:?} not in {}",
                self.name
            );
            self.with(|f| f.path_and_query = f.path_and_query.replace(from, to))
        }
    }

    /// The fixtures that must verify.
    fn fixtures() -> Vec<Fixture> {
        all_fixtures()
            .into_iter()
            .filter(|f| f.expected_error.is_none())
            .collect()
    }

    fn all_fixtures() -> Vec<Fixture> {
        let doc: Value = serde_json::from_str(FIXTURES).expect("fixture JSON");
        doc["fixtures"]
            .as_array()
            .expect("fixtures array")
            .iter()
            .map(|f| {
                let mut headers = HeaderMap::new();
                for pair in f["headers"].as_array().unwrap() {
                    headers.append(
                        HeaderName::from_bytes(pair[0].as_str().unwrap().as_bytes()).unwrap(),
                        HeaderValue::from_str(pair[1].as_str().unwrap()).unwrap(),
                    );
                }
                Fixture {
                    name: f["name"].as_str().unwrap().to_owned(),
                    expected_error: f["expected_error"].as_str().map(str::to_owned),
                    source: f["source"].as_str().unwrap().to_owned(),
                    method: f["method"].as_str().unwrap().parse().unwrap(),
                    path_and_query: f["path_and_query"].as_str().unwrap().to_owned(),
                    headers,
                    body: f["body"].as_str().unwrap().as_bytes().to_vec(),
                    secret: f["secret_access_key"].as_str().unwrap().to_owned(),
                    time: f["signing_time"].as_str().unwrap().parse().unwrap(),
                }
            })
            .collect()
    }

    fn fixture(name_part: &str) -> Fixture {
        all_fixtures()
            .into_iter()
            .find(|f| f.name.contains(name_part))
            .unwrap_or_else(|| panic!("no fixture named like {name_part:?}"))
    }

    fn expect_err(f: &Fixture, expected: &SigV4Error, what: &str) {
        assert_eq!(f.verify().as_ref(), Err(expected), "{what}: {}", f.name);
    }

    #[test]
    fn fixtures_cover_every_client_and_shape() {
        let all = fixtures();
        for source in ["botocore", "boto3", "aws-cli"] {
            assert!(
                all.iter().any(|f| f.source.starts_with(source)),
                "no fixture from {source}"
            );
        }
        for method in ["GET", "POST", "PUT", "DELETE"] {
            assert!(
                all.iter().any(|f| f.method == method),
                "no {method} fixture"
            );
        }
        assert!(all.iter().any(|f| f.path_and_query.contains("arn%3Aaws")));
        assert!(all
            .iter()
            .any(|f| f.headers.contains_key("x-amz-security-token")));
        assert!(all.iter().any(|f| !f.headers.contains_key(X_AMZ_DATE)));
        assert!(all.iter().any(|f| f.path_and_query.contains('+')));
        assert!(all.iter().any(|f| !f.body.is_ascii()), "no non-ASCII body");
    }

    #[test]
    fn every_fixture_verifies_at_its_signing_time() {
        for f in fixtures() {
            let auth = f.auth().unwrap_or_else(|e| panic!("{}: {e}", f.name));
            assert_eq!(auth.credential.access_key_id, "AKIDEXAMPLE");
            assert_eq!(auth.credential.date, "20261124");
            assert_eq!(auth.credential.region, "us-east-1");
            assert_eq!(auth.credential.service, "mq");
            assert!(auth.signs("host"));
            assert_eq!(f.verify(), Ok(()), "{} ({})", f.name, f.source);
        }
    }

    #[test]
    fn fixtures_signed_differently_fail_as_expected() {
        let rejected: Vec<Fixture> = all_fixtures()
            .into_iter()
            .filter(|f| f.expected_error.is_some())
            .collect();
        assert!(!rejected.is_empty());
        for f in rejected {
            let err = f.verify().unwrap_err();
            assert_eq!(Some(format!("{err:?}")), f.expected_error, "{}", f.name);
        }
    }

    #[test]
    fn payload_hash_header_is_only_a_signed_header() {
        // botocore signed the body hash it was given: the real one verifies like any
        // request, a changed body does not; UNSIGNED-PAYLOAD is covered just above.
        let f = fixture("x-amz-content-sha256 = body hash");
        assert_eq!(f.verify(), Ok(()));
        let g = f.with(|f| f.body.push(b' '));
        assert_eq!(g.verify(), Err(SigV4Error::SignatureMismatch));
    }

    #[test]
    fn clock_skew_of_up_to_15_minutes_is_accepted() {
        for f in fixtures() {
            for minutes in [-15, -14, 1, 14, 15] {
                let now = f.time + TimeDelta::minutes(minutes);
                assert_eq!(f.verify_at(now), Ok(()), "{} at {minutes:+} min", f.name);
            }
        }
    }

    #[test]
    fn request_16_minutes_old_or_ahead_is_expired() {
        for f in fixtures() {
            for minutes in [-16, 16] {
                let now = f.time + TimeDelta::minutes(minutes);
                let err = f.verify_at(now).unwrap_err();
                assert_eq!(
                    err,
                    SigV4Error::RequestExpired {
                        request_time: f.time,
                        now
                    },
                    "{}",
                    f.name
                );
                assert_eq!(err.aws_code(), "InvalidSignatureException");
            }
        }
        let f = fixture("raw GET /v1/brokers");
        let late = f.verify_at(f.time + TimeDelta::minutes(16)).unwrap_err();
        assert_eq!(
            late.message(),
            "Signature expired: 20261124T173918Z is now earlier than 20261124T174018Z \
             (20261124T175518Z - 15 min.)"
        );
        let early = f.verify_at(f.time - TimeDelta::minutes(16)).unwrap_err();
        assert_eq!(
            early.message(),
            "Signature not yet current: 20261124T173918Z is still later than \
             20261124T173818Z (20261124T172318Z + 15 min.)"
        );
    }

    #[test]
    fn changed_body_is_rejected() {
        for f in fixtures() {
            let appended = f.with(|f| f.body.push(b' '));
            expect_err(&appended, &SigV4Error::SignatureMismatch, "body + space");
            if !f.body.is_empty() {
                let emptied = f.with(|f| f.body.clear());
                expect_err(&emptied, &SigV4Error::SignatureMismatch, "body emptied");
                let flipped = f.with(|f| f.body[1] ^= 0x20);
                expect_err(
                    &flipped,
                    &SigV4Error::SignatureMismatch,
                    "body byte flipped",
                );
            }
        }
    }

    #[test]
    fn changed_signed_header_is_rejected() {
        for f in fixtures() {
            let auth = f.auth().unwrap();
            for name in &auth.signed_headers {
                let changed = match name.as_str() {
                    // Another valid time on the same day, well within the skew window.
                    X_AMZ_DATE => f.with(|f| f.set_header(name, "20261124T173919Z")),
                    "date" => f.with(|f| f.set_header(name, "Tue, 24 Nov 2026 17:39:19 GMT")),
                    "host" => f.with(|f| f.set_header(name, "mq.example.net")),
                    _ => {
                        let old = f.headers[name.as_str()].to_str().unwrap().to_owned();
                        f.with(|f| f.set_header(name, &format!("{old}x")))
                    }
                };
                expect_err(&changed, &SigV4Error::SignatureMismatch, name);
            }
        }
    }

    #[test]
    fn removed_signed_header_is_rejected() {
        for f in fixtures() {
            let auth = f.auth().unwrap();
            for name in &auth.signed_headers {
                let removed = f.with(|f| {
                    f.headers.remove(name.as_str());
                });
                let expected = match name.as_str() {
                    X_AMZ_DATE | "date" => SigV4Error::MissingDate,
                    _ => SigV4Error::SignedHeaderAbsent(name.clone()),
                };
                expect_err(&removed, &expected, name);
            }
        }
    }

    #[test]
    fn signed_header_listed_but_never_sent_is_rejected() {
        let f = fixture("raw GET /v1/brokers");
        let auth = f.authorization().replace(
            "SignedHeaders=host;x-amz-date",
            "SignedHeaders=content-type;host;x-amz-date",
        );
        let f = f.with(|f| f.set_header("authorization", &auth));
        let err = f.verify().unwrap_err();
        assert_eq!(err, SigV4Error::SignedHeaderAbsent("content-type".into()));
        assert_eq!(err.aws_code(), "IncompleteSignatureException");
        assert_eq!(
            err.message(),
            "'content-type' is named as a SignedHeader, but it does not exist in the HTTP \
             request."
        );
    }

    #[test]
    fn unsigned_extra_or_changed_headers_are_ignored() {
        for f in fixtures() {
            let extra = f.with(|f| {
                f.set_header("x-forwarded-for", "203.0.113.9");
                f.set_header("user-agent", "curl/8.0");
                f.set_header("amz-sdk-request", "attempt=2; max=3");
                f.set_header("content-length", &f.body.len().to_string());
            });
            assert_eq!(extra.verify(), Ok(()), "{}", f.name);
        }
    }

    #[test]
    fn changed_path_is_rejected() {
        for f in fixtures() {
            let (path, query) = match f.path_and_query.split_once('?') {
                Some((p, q)) => (p.to_owned(), format!("?{q}")),
                None => (f.path_and_query.clone(), String::new()),
            };
            for other in [
                format!("{path}x"),
                format!("{path}/x"),
                path.replace("/v1/", "/v2/"),
            ] {
                let changed = f.with(|f| f.path_and_query = format!("{other}{query}"));
                expect_err(&changed, &SigV4Error::SignatureMismatch, &other);
            }
        }
    }

    #[test]
    fn path_is_encoded_once_more_not_decoded() {
        // `%3A` on the wire is signed as `%253A`; a client that sent a bare `:` signed
        // `%3A`, so the two spellings are different requests.
        let f = fixture("boto3 delete_tags");
        let decoded = f.rewrite_target("%3A", ":");
        expect_err(&decoded, &SigV4Error::SignatureMismatch, "decoded ARN");
        let lower = f.rewrite_target("%3A", "%3a");
        expect_err(&lower, &SigV4Error::SignatureMismatch, "lower-case escapes");
    }

    #[test]
    fn path_dot_and_empty_segments_are_normalized_like_botocore() {
        let f = fixture("boto3 describe_broker with session token");
        for path in [
            "/v1//brokers/b-1",
            "/v1/./brokers/b-1",
            "/v1/x/../brokers/b-1",
            "/v1/brokers/b-1/.",
            "/v1/brokers/b-1/c/..",
        ] {
            let same = f.with(|f| f.path_and_query = path.to_owned());
            assert_eq!(same.verify(), Ok(()), "{path}");
        }
    }

    #[test]
    fn dot_segments_are_removed_like_botocore() {
        for (path, expected) in [
            ("", "/"),
            ("/", "/"),
            ("/v1/brokers", "/v1/brokers"),
            ("/v1/brokers/", "/v1/brokers/"),
            ("/v1//brokers", "/v1/brokers"),
            ("/v1/./brokers/.", "/v1/brokers"),
            ("/v1/x/../brokers/..", "/v1"),
            ("/..", "/"),
            ("/../a/", "/a/"),
            ("/a.b/..c/.d", "/a.b/..c/.d"),
        ] {
            assert_eq!(remove_dot_segments(path), expected, "{path:?}");
        }
    }

    #[test]
    fn changed_query_is_rejected() {
        for f in fixtures() {
            let sep = if f.has_query() { '&' } else { '?' };
            let added = f.with(|f| f.path_and_query.push_str(&format!("{sep}extra=1")));
            expect_err(&added, &SigV4Error::SignatureMismatch, "added parameter");
            if let Some((path, _)) = f.path_and_query.split_once('?') {
                let path = path.to_owned();
                let removed = f.with(|f| f.path_and_query = path);
                expect_err(&removed, &SigV4Error::SignatureMismatch, "query removed");
                let changed = f.with(|f| f.path_and_query.push('0'));
                expect_err(&changed, &SigV4Error::SignatureMismatch, "value changed");
            }
        }
        let f = fixture("boto3 delete_tags");
        let one_key = f.rewrite_target("tagKeys=a&", "");
        expect_err(
            &one_key,
            &SigV4Error::SignatureMismatch,
            "repeated key dropped",
        );
    }

    #[test]
    fn query_is_canonicalized_not_compared_raw() {
        let f = fixture("boto3 delete_tags");
        let reordered = f.rewrite_target("tagKeys=a&tagKeys=b%20c", "tagKeys=b%20c&tagKeys=a");
        assert_eq!(
            reordered.verify(),
            Ok(()),
            "pairs sorted by key, then value"
        );
        let plus = f.rewrite_target("b%20c", "b+c");
        assert_eq!(plus.verify(), Ok(()), "'+' is a space");
        let list = fixture("boto3 list_brokers page 2");
        let lower = list.rewrite_target("%3D", "%3d");
        assert_eq!(lower.verify(), Ok(()), "escapes re-encoded upper case");
        let bare = list.rewrite_target("%3D", "=");
        assert_eq!(bare.verify(), Ok(()), "'=' inside a value is re-encoded");
    }

    #[test]
    fn wrong_secret_is_rejected() {
        for f in fixtures() {
            let wrong = f.with(|f| f.secret.push('x'));
            let err = wrong.verify().unwrap_err();
            assert_eq!(err, SigV4Error::SignatureMismatch, "{}", f.name);
            assert_eq!(err.aws_code(), "InvalidSignatureException");
            assert!(err.message().starts_with(
                "The request signature we calculated does not match the signature you provided."
            ));
        }
    }

    #[test]
    fn tampered_signature_is_rejected() {
        for f in fixtures() {
            let auth = f.authorization();
            let (head, sig) = auth.rsplit_once("Signature=").unwrap();
            for other in [
                sig.to_ascii_uppercase(),
                sig[..63].to_owned(),
                format!("{sig}0"),
                format!(
                    "{}{}",
                    &sig[..63],
                    if sig.ends_with('0') { '1' } else { '0' }
                ),
            ] {
                let changed =
                    f.with(|f| f.set_header("authorization", &format!("{head}Signature={other}")));
                expect_err(&changed, &SigV4Error::SignatureMismatch, &other);
            }
        }
    }

    #[test]
    fn other_service_in_scope_is_rejected() {
        for f in fixtures() {
            let auth = f
                .authorization()
                .replace("/mq/aws4_request", "/s3/aws4_request");
            let other = f.with(|f| f.set_header("authorization", &auth));
            let err = other.verify().unwrap_err();
            assert_eq!(err, SigV4Error::WrongService("s3".into()), "{}", f.name);
            assert_eq!(err.aws_code(), "InvalidSignatureException");
            assert_eq!(
                err.message(),
                "Credential should be scoped to correct service: 'mq'."
            );
        }
    }

    #[test]
    fn scope_date_must_match_request_date() {
        let f = fixture("raw GET /v1/brokers");
        let auth = f.authorization().replace("/20261124/", "/20261123/");
        let err = f
            .with(|f| f.set_header("authorization", &auth))
            .verify()
            .unwrap_err();
        assert_eq!(
            err,
            SigV4Error::ScopeDateMismatch {
                scope_date: "20261123".into(),
                request_time: "20261124T173918Z".into()
            }
        );
        assert_eq!(err.aws_code(), "InvalidSignatureException");
        assert_eq!(
            err.message(),
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '20261123' != '20261124', from '20261124T173918Z'."
        );
    }

    #[test]
    fn other_region_in_scope_changes_the_signature() {
        let f = fixture("raw GET /v1/brokers");
        let auth = f.authorization().replace("/us-east-1/", "/eu-west-1/");
        let other = f.with(|f| f.set_header("authorization", &auth));
        expect_err(&other, &SigV4Error::SignatureMismatch, "region");
    }

    #[test]
    fn host_must_be_signed() {
        let f = fixture("raw GET /v1/brokers");
        let auth = f
            .authorization()
            .replace("SignedHeaders=host;x-amz-date", "SignedHeaders=x-amz-date");
        let err = f
            .with(|f| f.set_header("authorization", &auth))
            .verify()
            .unwrap_err();
        assert_eq!(err, SigV4Error::HostNotSigned);
        assert_eq!(err.aws_code(), "IncompleteSignatureException");
    }

    #[test]
    fn date_must_be_present_parsable_and_signed() {
        let f = fixture("raw GET /v1/brokers");
        let no_date = f.with(|f| {
            f.headers.remove(X_AMZ_DATE);
        });
        expect_err(&no_date, &SigV4Error::MissingDate, "no date");
        assert_eq!(
            SigV4Error::MissingDate.aws_code(),
            "IncompleteSignatureException"
        );

        for bad in [
            "2026-11-24T17:39:18Z",
            "20261124T173918",
            "20261124T173918Z0",
        ] {
            let garbled = f.with(|f| f.set_header(X_AMZ_DATE, bad));
            expect_err(&garbled, &SigV4Error::InvalidDate(bad.into()), bad);
        }

        let auth = f
            .authorization()
            .replace("SignedHeaders=host;x-amz-date", "SignedHeaders=host");
        let unsigned = f.with(|f| f.set_header("authorization", &auth));
        expect_err(
            &unsigned,
            &SigV4Error::DateNotSigned("X-Amz-Date"),
            "unsigned",
        );

        // X-Amz-Date takes precedence over Date, so it must be the signed one.
        let d = fixture("Date header instead of X-Amz-Date");
        let both = d.with(|f| f.set_header(X_AMZ_DATE, "20261124T173918Z"));
        expect_err(
            &both,
            &SigV4Error::DateNotSigned("X-Amz-Date"),
            "x-amz-date unsigned",
        );
    }

    #[test]
    fn session_token_is_covered_when_signed() {
        let f = fixture("boto3 describe_broker with session token");
        let token = f.headers["x-amz-security-token"]
            .to_str()
            .unwrap()
            .to_owned();
        let other = f.with(|f| f.set_header("x-amz-security-token", &format!("{token}A")));
        expect_err(&other, &SigV4Error::SignatureMismatch, "token changed");
        // An unsigned token on a request signed without one does not matter here.
        let g = fixture("raw GET /v1/brokers");
        let extra = g.with(|f| f.set_header("x-amz-security-token", &token));
        assert_eq!(extra.verify(), Ok(()));
    }

    #[test]
    fn missing_authorization() {
        let f = fixture("raw GET /v1/brokers");
        let none = f.with(|f| {
            f.headers.remove(AUTHORIZATION);
        });
        let err = none.verify().unwrap_err();
        assert_eq!(err, SigV4Error::Missing);
        assert_eq!(err.aws_code(), "MissingAuthenticationTokenException");
        assert_eq!(err.message(), "Missing Authentication Token");
        assert_eq!(err.status(), StatusCode::FORBIDDEN);
        let blank = f.with(|f| f.set_header("authorization", "  "));
        assert_eq!(blank.auth(), Err(SigV4Error::Missing));
    }

    #[test]
    fn malformed_authorization() {
        let ok_cred = "Credential=AKIDEXAMPLE/20261124/us-east-1/mq/aws4_request";
        let sig = "Signature=35e34a99a9e8ebd1d1fc74d178c31c57600d99318b0b123486ec8039c4a3ec73";
        let cases = [
            ("Bearer abc.def", "Unsupported Authorization algorithm 'Bearer'"),
            (
                "AWS AKIDEXAMPLE:qL0Zk2xJ+oRgo0WvcTx0I0gE4kE=",
                "Unsupported Authorization algorithm 'AWS'",
            ),
            (
                "AWS4-HMAC-SHA256",
                "Authorization header requires 'Credential' parameter. Authorization header \
                 requires 'Signature' parameter. Authorization header requires \
                 'SignedHeaders' parameter. Authorization=AWS4-HMAC-SHA256",
            ),
            (
                &format!("AWS4-HMAC-SHA256 {ok_cred}, SignedHeaders=host;x-amz-date"),
                "Authorization header requires 'Signature' parameter. Authorization=",
            ),
            (
                &format!("AWS4-HMAC-SHA256 {ok_cred}, SignedHeaders=, {sig}"),
                "Authorization header requires 'SignedHeaders' parameter.",
            ),
            (
                &format!("AWS4-HMAC-SHA256 Credential AKID/x, SignedHeaders=host, {sig}"),
                "'Credential AKID/x' not a valid key=value pair (missing equal-sign)",
            ),
            (
                &format!("AWS4-HMAC-SHA256 Credential=AKID/20261124/mq/aws4_request, SignedHeaders=host, {sig}"),
                "Credential must have exactly 5 slash-delimited elements",
            ),
            (
                &format!("AWS4-HMAC-SHA256 Credential=AKID/20261124/us-east-1/mq/aws5, SignedHeaders=host, {sig}"),
                "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5'.",
            ),
            (
                &format!("AWS4-HMAC-SHA256 {ok_cred}, SignedHeaders=host;;x-amz-date, {sig}"),
                "SignedHeaders must be a semicolon-separated list",
            ),
            (
                &format!("AWS4-HMAC-SHA256 {ok_cred}, {ok_cred}, SignedHeaders=host, {sig}"),
                "more than one 'Credential' parameter",
            ),
        ];
        for (header, message) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, HeaderValue::from_str(header).unwrap());
            let err = parse_authorization(&headers).unwrap_err();
            assert!(matches!(err, SigV4Error::Malformed(_)), "{header}: {err:?}");
            assert_eq!(err.aws_code(), "IncompleteSignatureException");
            assert!(
                err.message().contains(message),
                "{header}: {}",
                err.message()
            );
        }

        let mut two = HeaderMap::new();
        two.append(
            AUTHORIZATION,
            HeaderValue::from_static("AWS4-HMAC-SHA256 a=b"),
        );
        two.append(
            AUTHORIZATION,
            HeaderValue::from_static("AWS4-HMAC-SHA256 a=b"),
        );
        assert!(matches!(
            parse_authorization(&two),
            Err(SigV4Error::Malformed(_))
        ));
    }

    #[test]
    fn authorization_layout_variants_are_accepted() {
        // No spaces after commas, parameters reordered, unknown extras, mixed-case names.
        let f = fixture("raw GET /v1/brokers");
        let auth = f.auth().unwrap();
        let compact = format!(
            "AWS4-HMAC-SHA256  Signature={},SignedHeaders=Host;X-Amz-Date,\
             Credential=AKIDEXAMPLE/20261124/us-east-1/mq/aws4_request,Foo=bar",
            auth.signature
        );
        let g = f.with(|f| f.set_header("authorization", &compact));
        assert_eq!(g.auth().unwrap(), auth);
        assert_eq!(g.verify(), Ok(()));
    }

    #[test]
    fn parse_authorization_reads_the_scope() {
        let f = fixture("boto3 create_broker");
        let auth = f.auth().unwrap();
        assert_eq!(
            auth,
            ParsedAuth {
                credential: Credential {
                    access_key_id: "AKIDEXAMPLE".into(),
                    date: "20261124".into(),
                    region: "us-east-1".into(),
                    service: "mq".into(),
                },
                signed_headers: vec!["content-type".into(), "host".into(), "x-amz-date".into()],
                signature: "e4cb01b292cec884a4b0d8b753346822d242bc6e205034a432e5f1ad272a4c03"
                    .into(),
            }
        );
    }

    #[test]
    fn error_codes_and_statuses() {
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 0, 0, 0).unwrap();
        let cases = [
            (SigV4Error::Missing, "MissingAuthenticationTokenException"),
            (
                SigV4Error::Malformed("x".into()),
                "IncompleteSignatureException",
            ),
            (SigV4Error::MissingDate, "IncompleteSignatureException"),
            (
                SigV4Error::InvalidDate("x".into()),
                "IncompleteSignatureException",
            ),
            (
                SigV4Error::DateNotSigned("Date"),
                "IncompleteSignatureException",
            ),
            (SigV4Error::HostNotSigned, "IncompleteSignatureException"),
            (
                SigV4Error::SignedHeaderAbsent("a".into()),
                "IncompleteSignatureException",
            ),
            (
                SigV4Error::WrongService("s3".into()),
                "InvalidSignatureException",
            ),
            (
                SigV4Error::ScopeDateMismatch {
                    scope_date: "20261123".into(),
                    request_time: "20261124T000000Z".into(),
                },
                "InvalidSignatureException",
            ),
            (
                SigV4Error::RequestExpired {
                    request_time: now,
                    now,
                },
                "InvalidSignatureException",
            ),
            (SigV4Error::SignatureMismatch, "InvalidSignatureException"),
            (SigV4Error::UnknownAccessKey, "UnrecognizedClientException"),
        ];
        for (err, code) in cases {
            assert_eq!(err.aws_code(), code, "{err:?}");
            assert_eq!(err.status(), StatusCode::FORBIDDEN);
            assert!(!err.message().is_empty());
        }
        assert_eq!(
            SigV4Error::UnknownAccessKey.message(),
            "The security token included in the request is invalid."
        );
    }
}
