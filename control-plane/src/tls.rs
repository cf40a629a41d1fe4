//! The installation certificate authority and the per-broker TLS certificates it issues.
//!
//! Amazon MQ only lists TLS endpoints (`amqps://`, `ssl://`, `stomp+ssl://`,
//! `mqtt+ssl://`, `wss://`, the HTTPS console), so every Berth broker needs a server
//! certificate for the host it advertises. Public CAs cannot issue for `localhost`, private
//! IPs or lab DNS names, so each installation runs its own small CA instead:
//!
//! * [`CertificateAuthority::generate`] creates it once per installation: an ECDSA P-256
//!   key and a self-signed certificate "Berth installation <id> CA", valid ten years,
//!   `basicConstraints CA:TRUE, pathlen:0` (it signs leaves only) and `keyUsage
//!   keyCertSign, cRLSign`.
//! * The database keeps a [`StoredCa`]: the certificate in PEM and the private key sealed
//!   with the master key ([`SecretBox`]). The key is never written anywhere in the clear;
//!   [`CertificateAuthority::to_stored`] seals it and [`CertificateAuthority::from_stored`]
//!   opens it again on start.
//! * Users download the CA certificate ([`CertificateAuthority::cert_pem`], or the file
//!   [`write_ca_file`] puts next to the credentials) and trust it in their clients (pika,
//!   JMS, paho, ...). It changes only when the installation's CA is replaced.
//! * [`CertificateAuthority::issue`] signs a fresh leaf for a broker: a new P-256 key, one
//!   subjectAltName per host (IP literals become IP SANs, everything else DNS names),
//!   `extendedKeyUsage serverAuth`, `keyUsage digitalSignature`, a random serial and a
//!   short life ([`DEFAULT_LEAF_VALIDITY_DAYS`]), back-dated by [`CLOCK_SKEW`] so clients
//!   with a slightly slow clock accept it at once.
//!
//! # Renewal
//!
//! Leaves are short-lived on purpose; nothing revokes them, they just expire. The
//! reconciler renews them by comparing what a broker has with what it should have: on
//! every pass over a broker it calls [`CertificateAuthority::needs_reissue`] with the
//! stored leaf, the broker's current host list, the current time and a renewal window
//! ([`DEFAULT_RENEW_BEFORE`]). `Some(reason)` (or an error: an unreadable certificate)
//! means "issue a new one, store it and push it to the broker"; `None` means leave it
//! alone. The check is cheap (a PEM parse, no I/O), so it can run on every pass. It fires
//! when the leaf is inside the window or already expired, is not yet valid (clock moved),
//! covers a different set of hosts than wanted (advertised host changed, host added or
//! removed), or was not signed by this CA (CA replaced, database restored elsewhere).
//! Issuing again is idempotent from the client's view: any leaf from the same CA verifies.
//!
//! Leaves never outlive the CA: [`CertificateAuthority::issue`] clips `notAfter` to the
//! CA's own. Replacing the CA itself (before [`CertificateAuthority::not_after`]) means
//! distributing a new CA file to every client and is an operator action, not a
//! reconciler one.

use std::collections::BTreeSet;
use std::fmt;
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::crypto::SecretBox;

/// How long the installation CA certificate is valid: ten years.
pub const CA_VALIDITY_DAYS: u32 = 3652;

/// Default life of a broker certificate, in days (like ACME certificates: short, renewed
/// automatically).
pub const DEFAULT_LEAF_VALIDITY_DAYS: u32 = 90;

/// Default renewal window: reissue a broker certificate this long before it expires.
pub const DEFAULT_RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);

/// How far `notBefore` is back-dated, so that clients whose clock lags a little behind
/// Berth's accept a certificate straight after it was issued.
pub const CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// File name [`write_ca_file`] writes the CA certificate to.
pub const CA_FILE_NAME: &str = "ca.pem";

const SECONDS_PER_DAY: u64 = 86_400;
/// `ub-common-name` (RFC 5280): longer host names go into the SANs only.
const MAX_COMMON_NAME_LEN: usize = 64;

/// The installation CA: its certificate and the private key it signs broker certificates
/// with.
///
/// Load it once (at start) with [`CertificateAuthority::from_stored`] and share it (it is
/// `Send + Sync`; wrap it in an `Arc`). `Debug` never shows the key.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: Vec<u8>,
    subject: String,
    not_after: SystemTime,
}

/// What the database keeps of the CA: the certificate in PEM and the private key (PKCS#8
/// PEM) sealed with the installation master key.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCa {
    /// The CA certificate, PEM (public; this is what clients trust).
    pub cert_pem: String,
    /// The CA private key as PKCS#8 PEM, sealed with [`SecretBox::seal`].
    pub key_sealed: Vec<u8>,
}

/// A broker certificate fresh from [`CertificateAuthority::issue`].
#[derive(Clone)]
pub struct IssuedCert {
    /// The chain in PEM: the leaf first, then the CA certificate. Servers send all of it.
    pub cert_pem: String,
    /// The leaf's private key, PKCS#8 PEM ("PRIVATE KEY"). Seal it before storing it.
    pub key_pem: String,
    /// The leaf's `notAfter` (whole seconds, as encoded in the certificate).
    pub not_after: SystemTime,
    /// The leaf's serial number, colon-separated hex (for logs and events).
    pub serial: String,
}

/// Why a broker certificate must be issued again; see [`needs_reissue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReissueReason {
    /// `notAfter` has passed.
    Expired,
    /// `notAfter` falls inside the renewal window.
    ExpiresSoon {
        /// When the current certificate expires.
        not_after: SystemTime,
    },
    /// `notBefore` is still in the future (the clock went backwards, or the certificate
    /// came from elsewhere).
    NotYetValid,
    /// The certificate's SANs are not exactly the wanted hosts.
    HostsChanged,
    /// The certificate was not signed by this installation's CA.
    OtherIssuer,
}

impl fmt::Display for ReissueReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Expired => f.write_str("the certificate has expired"),
            Self::ExpiresSoon { not_after } => write!(
                f,
                "the certificate expires soon ({})",
                OffsetDateTime::from(*not_after)
            ),
            Self::NotYetValid => f.write_str("the certificate is not valid yet"),
            Self::HostsChanged => f.write_str("the broker's host names changed"),
            Self::OtherIssuer => f.write_str("the certificate was signed by another CA"),
        }
    }
}

impl CertificateAuthority {
    /// Creates a new installation CA: an ECDSA P-256 key and a self-signed certificate with
    /// the common name "Berth installation `installation_id` CA", valid from
    /// `now - CLOCK_SKEW` for [`CA_VALIDITY_DAYS`].
    ///
    /// Persist it with [`Self::to_stored`].
    pub fn generate(installation_id: &str, now: SystemTime) -> anyhow::Result<Self> {
        let installation_id = installation_id.trim();
        anyhow::ensure!(
            !installation_id.is_empty(),
            "installation id must not be empty"
        );
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .context("generating the CA key")?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Berth");
        dn.push(
            DnType::CommonName,
            format!("Berth installation {installation_id} CA"),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(random_serial());
        let (not_before, not_after) = validity(now, CA_VALIDITY_DAYS, None)?;
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params
            .self_signed(&key)
            .context("self-signing the CA certificate")?;
        // Load through the same path as a stored CA, so both behave identically.
        Self::from_pem(&cert.pem(), &key.serialize_pem())
    }

    /// Loads a CA from its certificate and its private key, both PEM (the key PKCS#8).
    ///
    /// Fails unless the certificate is a CA certificate and the key is its key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> anyhow::Result<Self> {
        let key = KeyPair::from_pem(key_pem).context("CA private key is not a PKCS#8 PEM key")?;
        let der = first_certificate_der(cert_pem).context("reading the CA certificate")?;
        let (subject, not_after) = {
            let x509 = parse_der(&der).context("reading the CA certificate")?;
            anyhow::ensure!(x509.is_ca(), "the certificate is not a CA certificate");
            anyhow::ensure!(
                x509.public_key().subject_public_key.data.as_ref() == key.public_key_raw(),
                "the CA private key does not belong to the CA certificate"
            );
            (
                x509.subject().to_string(),
                asn1_to_system_time(x509.validity().not_after.timestamp()),
            )
        };
        let issuer = Issuer::from_ca_cert_der(&der.as_slice().into(), key)
            .context("loading the CA certificate as issuer")?;
        Ok(Self {
            issuer,
            cert_pem: pem_block("CERTIFICATE", &der),
            cert_der: der,
            subject,
            not_after,
        })
    }

    /// Loads the CA the database keeps, opening its key with the master key.
    pub fn from_stored(stored: &StoredCa, secrets: &SecretBox) -> anyhow::Result<Self> {
        let key_pem = secrets
            .open(&stored.key_sealed)
            .context("opening the sealed CA private key")?;
        Self::from_pem(&stored.cert_pem, &key_pem)
    }

    /// What to store in the database: the certificate and the key sealed with `secrets`.
    pub fn to_stored(&self, secrets: &SecretBox) -> StoredCa {
        StoredCa {
            cert_pem: self.cert_pem.clone(),
            key_sealed: secrets.seal(&self.issuer.key().serialize_pem()),
        }
    }

    /// The CA certificate in PEM: what users download and trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate's subject, e.g. `O=Berth, CN=Berth installation abc CA`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// When the CA certificate expires; no leaf it issues lives longer.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// SHA-256 fingerprint of the CA certificate, upper-case colon-separated hex (the form
    /// `openssl x509 -fingerprint -sha256` prints), for users to check what they trust.
    pub fn fingerprint_sha256(&self) -> String {
        colon_hex(&Sha256::digest(&self.cert_der))
    }

    /// Issues a server certificate for `hosts` (DNS names or IP literals; IPv6 may be in
    /// brackets), valid from `now - CLOCK_SKEW` for `not_after_days` days (clipped to the
    /// CA's own expiry), with a new ECDSA P-256 key.
    ///
    /// Fails on an empty host list, a host that is neither an IP address nor a valid DNS
    /// name, zero days, or a CA that has already expired.
    pub fn issue(
        &self,
        hosts: &[String],
        not_after_days: u32,
        now: SystemTime,
    ) -> anyhow::Result<IssuedCert> {
        let names = parse_hosts(hosts)?;
        anyhow::ensure!(
            now < self.not_after,
            "the installation CA expired; replace it before issuing certificates"
        );
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .context("generating the certificate key")?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        // An empty subject makes rcgen mark the SAN extension critical, as RFC 5280 asks.
        if let Some(cn) = names
            .iter()
            .map(HostName::to_string)
            .find(|n| n.len() <= MAX_COMMON_NAME_LEN)
        {
            dn.push(DnType::CommonName, cn);
        }
        params.distinguished_name = dn;
        params.subject_alt_names = names
            .iter()
            .map(HostName::to_san)
            .collect::<anyhow::Result<_>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let serial = random_serial();
        params.serial_number = Some(serial.clone());
        let (not_before, not_after) = validity(now, not_after_days, Some(self.not_after))?;
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params
            .signed_by(&key, &self.issuer)
            .context("signing the broker certificate")?;
        Ok(IssuedCert {
            cert_pem: format!("{}{}", pem_block("CERTIFICATE", cert.der()), self.cert_pem),
            key_pem: key.serialize_pem(),
            not_after: SystemTime::from(not_after),
            serial: serial.to_string(),
        })
    }

    /// Whether the broker certificate `cert_pem` must be issued again: [`needs_reissue`]
    /// plus a check that this CA signed it. `Err` means the PEM is unreadable; treat it as
    /// "reissue" too.
    pub fn needs_reissue(
        &self,
        cert_pem: &str,
        hosts: &[String],
        now: SystemTime,
        renew_before: Duration,
    ) -> anyhow::Result<Option<ReissueReason>> {
        let der = first_certificate_der(cert_pem)?;
        let leaf = parse_der(&der)?;
        let ca = parse_der(&self.cert_der)?;
        if leaf.issuer().as_raw() != ca.subject().as_raw()
            || leaf.verify_signature(Some(ca.public_key())).is_err()
        {
            return Ok(Some(ReissueReason::OtherIssuer));
        }
        check_leaf(&leaf, hosts, now, renew_before)
    }
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("subject", &self.subject)
            .field("not_after", &OffsetDateTime::from(self.not_after))
            .field("fingerprint_sha256", &self.fingerprint_sha256())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl fmt::Debug for StoredCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredCa")
            .field("cert_pem", &self.cert_pem)
            .field(
                "key_sealed",
                &format_args!("<{} sealed bytes>", self.key_sealed.len()),
            )
            .finish()
    }
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("serial", &self.serial)
            .field("not_after", &OffsetDateTime::from(self.not_after))
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Whether the broker certificate `cert_pem` (its first certificate, the leaf) must be
/// issued again for `hosts` at `now`: expired, expiring within `renew_before`, not yet
/// valid, or with SANs other than exactly `hosts` (order, case and duplicates do not
/// matter). `None` means keep it.
///
/// `Err` means `cert_pem` holds no readable certificate (or `hosts` is invalid); callers
/// should reissue then as well. This does not check who signed the certificate; use
/// [`CertificateAuthority::needs_reissue`] for that.
pub fn needs_reissue(
    cert_pem: &str,
    hosts: &[String],
    now: SystemTime,
    renew_before: Duration,
) -> anyhow::Result<Option<ReissueReason>> {
    let der = first_certificate_der(cert_pem)?;
    check_leaf(&parse_der(&der)?, hosts, now, renew_before)
}

/// Writes the CA certificate to `dir/ca.pem` (mode 0644: it is public) atomically: a
/// temporary file in `dir`, synced, then renamed over the old one. `dir` must exist.
pub fn write_ca_file(dir: &Path, pem: &str) -> io::Result<PathBuf> {
    let path = dir.join(CA_FILE_NAME);
    let mut tmp = tempfile::Builder::new()
        .prefix(".ca.pem.")
        .tempfile_in(dir)?;
    tmp.write_all(pem.as_bytes())?;
    if !pem.ends_with('\n') {
        tmp.write_all(b"\n")?;
    }
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    tmp.as_file().sync_all()?;
    tmp.persist(&path).map_err(|e| e.error)?;
    // Make the rename itself durable.
    std::fs::File::open(dir)?.sync_all()?;
    Ok(path)
}

/// A host a certificate is for, normalised for comparison.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum HostName {
    Ip(IpAddr),
    /// Lower-case, validated DNS name.
    Dns(String),
}

impl HostName {
    fn parse(host: &str) -> anyhow::Result<Self> {
        let host = host.trim();
        let unbracketed = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Ok(Self::Ip(ip));
        }
        let name = host.to_ascii_lowercase();
        rustls_pki_types::DnsName::try_from(name.as_str())
            .map_err(|_| anyhow::anyhow!("{host:?} is neither an IP address nor a DNS name"))?;
        Ok(Self::Dns(name))
    }

    fn to_san(&self) -> anyhow::Result<SanType> {
        Ok(match self {
            Self::Ip(ip) => SanType::IpAddress(*ip),
            Self::Dns(name) => SanType::DnsName(
                name.clone()
                    .try_into()
                    .with_context(|| format!("{name:?} is not an IA5 string"))?,
            ),
        })
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(ip) => ip.fmt(f),
            Self::Dns(name) => f.write_str(name),
        }
    }
}

/// Parses and de-duplicates `hosts`, keeping their order.
fn parse_hosts(hosts: &[String]) -> anyhow::Result<Vec<HostName>> {
    let mut seen = BTreeSet::new();
    let mut names = Vec::with_capacity(hosts.len());
    for host in hosts {
        let name = HostName::parse(host)?;
        if seen.insert(name.clone()) {
            names.push(name);
        }
    }
    anyhow::ensure!(!names.is_empty(), "a certificate needs at least one host");
    Ok(names)
}

fn check_leaf(
    leaf: &X509Certificate<'_>,
    hosts: &[String],
    now: SystemTime,
    renew_before: Duration,
) -> anyhow::Result<Option<ReissueReason>> {
    let wanted: BTreeSet<HostName> = parse_hosts(hosts)?.into_iter().collect();
    let validity = leaf.validity();
    let not_before = asn1_to_system_time(validity.not_before.timestamp());
    let not_after = asn1_to_system_time(validity.not_after.timestamp());
    if now >= not_after {
        return Ok(Some(ReissueReason::Expired));
    }
    if now < not_before {
        return Ok(Some(ReissueReason::NotYetValid));
    }
    if now
        .checked_add(renew_before)
        .is_none_or(|deadline| deadline >= not_after)
    {
        return Ok(Some(ReissueReason::ExpiresSoon { not_after }));
    }
    if certificate_hosts(leaf)? != wanted {
        return Ok(Some(ReissueReason::HostsChanged));
    }
    Ok(None)
}

/// The DNS and IP SANs of a certificate (other name types are ignored).
fn certificate_hosts(cert: &X509Certificate<'_>) -> anyhow::Result<BTreeSet<HostName>> {
    let mut hosts = BTreeSet::new();
    let Some(san) = cert
        .subject_alternative_name()
        .map_err(|e| anyhow::anyhow!("reading the subjectAltName extension: {e}"))?
    else {
        return Ok(hosts);
    };
    for name in &san.value.general_names {
        match name {
            GeneralName::DNSName(dns) => {
                hosts.insert(HostName::Dns(dns.to_ascii_lowercase()));
            }
            GeneralName::IPAddress(raw) => {
                let ip = match raw.len() {
                    4 => IpAddr::from(<[u8; 4]>::try_from(*raw)?),
                    16 => IpAddr::from(<[u8; 16]>::try_from(*raw)?),
                    n => anyhow::bail!("IP address SAN of {n} bytes"),
                };
                hosts.insert(HostName::Ip(ip));
            }
            _ => {}
        }
    }
    Ok(hosts)
}

/// The DER of the first `CERTIFICATE` block in `pem`.
fn first_certificate_der(pem: &str) -> anyhow::Result<Vec<u8>> {
    for block in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| anyhow::anyhow!("invalid PEM: {e}"))?;
        if block.label == "CERTIFICATE" {
            return Ok(block.contents);
        }
    }
    anyhow::bail!("no CERTIFICATE block in the PEM text")
}

fn parse_der(der: &[u8]) -> anyhow::Result<X509Certificate<'_>> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| anyhow::anyhow!("invalid X.509 certificate: {e}"))?;
    anyhow::ensure!(rest.is_empty(), "trailing bytes after the certificate");
    Ok(cert)
}

fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// `notBefore`/`notAfter` for a certificate issued at `now` for `days`, clipped to
/// `cap`, in whole seconds.
fn validity(
    now: SystemTime,
    days: u32,
    cap: Option<SystemTime>,
) -> anyhow::Result<(OffsetDateTime, OffsetDateTime)> {
    anyhow::ensure!(days > 0, "a certificate must be valid for at least one day");
    let not_before = now.checked_sub(CLOCK_SKEW).unwrap_or(UNIX_EPOCH);
    let mut not_after = now
        .checked_add(Duration::from_secs(u64::from(days) * SECONDS_PER_DAY))
        .context("certificate validity overflows")?;
    if let Some(cap) = cap {
        not_after = not_after.min(cap);
    }
    let whole = |t: SystemTime| -> anyhow::Result<OffsetDateTime> {
        OffsetDateTime::from(t)
            .replace_nanosecond(0)
            .context("invalid certificate time")
    };
    Ok((whole(not_before)?, whole(not_after)?))
}

fn asn1_to_system_time(timestamp: i64) -> SystemTime {
    match u64::try_from(timestamp) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => UNIX_EPOCH - Duration::from_secs(timestamp.unsigned_abs()),
    }
}

/// 16 random bytes (RFC 5280 asks for at most 20 and CA/B for at least 64 random bits),
/// positive and with a fixed length.
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use rustls::client::danger::ServerCertVerifier;
    use rustls::client::WebPkiServerVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const DAY: Duration = Duration::from_secs(86_400);

    fn hosts(list: &[&str]) -> Vec<String> {
        list.iter().map(|h| h.to_string()).collect()
    }

    fn broker_hosts() -> Vec<String> {
        hosts(&["127.0.0.1", "localhost", "broker.example"])
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn roots(ca_pem: &str) -> Arc<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs(ca_pem) {
            roots.add(cert).unwrap();
        }
        Arc::new(roots)
    }

    /// Verifies `chain_pem` for `name` at `now` the way a rustls client would.
    fn verify(ca_pem: &str, chain_pem: &str, name: &str, now: SystemTime) -> Result<(), String> {
        let verifier = WebPkiServerVerifier::builder_with_provider(roots(ca_pem), provider())
            .build()
            .unwrap();
        let chain = certs(chain_pem);
        let server_name = ServerName::try_from(name.to_string()).unwrap();
        let now = UnixTime::since_unix_epoch(now.duration_since(UNIX_EPOCH).unwrap());
        verifier
            .verify_server_cert(&chain[0], &chain[1..], &server_name, &[], now)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn ca() -> CertificateAuthority {
        CertificateAuthority::generate("test-installation", SystemTime::now()).unwrap()
    }

    #[test]
    fn generated_ca_has_the_expected_shape() {
        let now = SystemTime::now();
        let ca = CertificateAuthority::generate("abc123", now).unwrap();
        let der = first_certificate_der(ca.cert_pem()).unwrap();
        let x509 = parse_der(&der).unwrap();
        assert!(x509.is_ca());
        let bc = x509.basic_constraints().unwrap().unwrap();
        assert!(bc.critical);
        assert_eq!(bc.value.path_len_constraint, Some(0));
        let ku = x509.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign());
        assert!(!ku.digital_signature());
        assert_eq!(
            x509.subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            "Berth installation abc123 CA"
        );
        assert_eq!(x509.subject(), x509.issuer());
        assert_eq!(
            x509.public_key().algorithm.algorithm,
            x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
        );
        let life = ca.not_after().duration_since(now).unwrap();
        assert!(life > 3651 * DAY && life <= 3652 * DAY, "{life:?}");
        assert!(ca.subject().contains("Berth installation abc123 CA"));
        assert_eq!(ca.fingerprint_sha256().len(), 32 * 3 - 1);
        assert!(CertificateAuthority::generate("  ", now).is_err());
    }

    #[test]
    fn issued_leaf_verifies_for_each_host_and_only_for_them() {
        let ca = ca();
        let now = SystemTime::now();
        let leaf = ca.issue(&broker_hosts(), 90, now).unwrap();
        assert_eq!(certs(&leaf.cert_pem).len(), 2, "leaf then CA");
        for name in ["localhost", "127.0.0.1", "broker.example", "BROKER.example"] {
            verify(ca.cert_pem(), &leaf.cert_pem, name, now)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for name in ["other.example", "127.0.0.2", "::1"] {
            assert!(
                verify(ca.cert_pem(), &leaf.cert_pem, name, now).is_err(),
                "{name} must not verify"
            );
        }
        // Validity window as seen by a verifier.
        assert!(verify(
            ca.cert_pem(),
            &leaf.cert_pem,
            "localhost",
            now - CLOCK_SKEW / 2
        )
        .is_ok());
        assert!(verify(ca.cert_pem(), &leaf.cert_pem, "localhost", now + 91 * DAY).is_err());
        // Another installation's CA does not vouch for it.
        let other = ca_other();
        assert!(verify(other.cert_pem(), &leaf.cert_pem, "localhost", now).is_err());
    }

    fn ca_other() -> CertificateAuthority {
        CertificateAuthority::generate("other-installation", SystemTime::now()).unwrap()
    }

    #[test]
    fn leaf_has_the_expected_extensions() {
        let ca = ca();
        let now = SystemTime::now();
        let leaf = ca.issue(&broker_hosts(), 90, now).unwrap();
        let der = first_certificate_der(&leaf.cert_pem).unwrap();
        let x509 = parse_der(&der).unwrap();
        assert!(!x509.is_ca());
        let san = x509.subject_alternative_name().unwrap().unwrap().value;
        assert!(san
            .general_names
            .contains(&GeneralName::IPAddress(&[127, 0, 0, 1])));
        assert!(san
            .general_names
            .contains(&GeneralName::DNSName("localhost")));
        assert!(san
            .general_names
            .contains(&GeneralName::DNSName("broker.example")));
        assert!(!san
            .general_names
            .contains(&GeneralName::DNSName("127.0.0.1")));
        let eku = x509.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
        let ku = x509.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_cert_sign());
        let not_before = asn1_to_system_time(x509.validity().not_before.timestamp());
        let skew = now.duration_since(not_before).unwrap();
        assert!(skew >= CLOCK_SKEW && skew < CLOCK_SKEW + Duration::from_secs(2));
        assert_eq!(
            leaf.not_after,
            asn1_to_system_time(x509.validity().not_after.timestamp())
        );
        let life = leaf.not_after.duration_since(now).unwrap();
        assert!(life > 90 * DAY - Duration::from_secs(1) && life <= 90 * DAY);
        assert_eq!(
            x509.raw_serial_as_string(),
            leaf.serial.to_ascii_lowercase()
        );
        assert!(leaf.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        // Serials are random.
        let again = ca.issue(&broker_hosts(), 90, now).unwrap();
        assert_ne!(leaf.serial, again.serial);
        // Configurable life.
        let short = ca.issue(&hosts(&["localhost"]), 7, now).unwrap();
        assert_eq!(
            short.not_after.duration_since(now).unwrap().as_secs() / 86_400,
            6
        );
    }

    #[test]
    fn leaf_never_outlives_the_ca() {
        let ca = ca();
        let leaf = ca
            .issue(&hosts(&["localhost"]), 20_000, SystemTime::now())
            .unwrap();
        assert_eq!(leaf.not_after, ca.not_after());
        assert!(ca
            .issue(&hosts(&["localhost"]), 1, ca.not_after() + DAY)
            .is_err());
    }

    #[test]
    fn issue_rejects_bad_input() {
        let ca = ca();
        let now = SystemTime::now();
        assert!(ca.issue(&[], 90, now).is_err());
        assert!(ca.issue(&hosts(&["  "]), 90, now).is_err());
        assert!(ca.issue(&hosts(&["bad host!"]), 90, now).is_err());
        assert!(ca.issue(&hosts(&["*.example"]), 90, now).is_err());
        assert!(ca.issue(&hosts(&["localhost"]), 0, now).is_err());
        // Bracketed IPv6 and duplicates are fine.
        let leaf = ca
            .issue(&hosts(&["[::1]", "::1", "Localhost", "localhost"]), 90, now)
            .unwrap();
        verify(ca.cert_pem(), &leaf.cert_pem, "::1", now).unwrap();
        verify(ca.cert_pem(), &leaf.cert_pem, "localhost", now).unwrap();
    }

    #[test]
    fn stored_ca_round_trip_keeps_issuing_for_the_same_trust_anchor() {
        let secrets = SecretBox::from_key(&[7; 32]);
        let original = ca();
        let stored = original.to_stored(&secrets);
        assert_eq!(stored.cert_pem, original.cert_pem());
        let key_pem = original.issuer.key().serialize_pem();
        let body = key_pem.lines().nth(1).unwrap();
        assert!(!stored
            .key_sealed
            .windows(body.len())
            .any(|w| w == body.as_bytes()));
        assert!(!stored.key_sealed.windows(11).any(|w| w == b"PRIVATE KEY"));

        let loaded = CertificateAuthority::from_stored(&stored, &secrets).unwrap();
        assert_eq!(loaded.cert_pem(), original.cert_pem());
        assert_eq!(loaded.fingerprint_sha256(), original.fingerprint_sha256());
        assert_eq!(loaded.not_after(), original.not_after());
        let now = SystemTime::now();
        let leaf = loaded.issue(&broker_hosts(), 90, now).unwrap();
        verify(original.cert_pem(), &leaf.cert_pem, "broker.example", now).unwrap();
        assert_eq!(
            original
                .needs_reissue(&leaf.cert_pem, &broker_hosts(), now, DEFAULT_RENEW_BEFORE)
                .unwrap(),
            None
        );

        // The wrong master key, or a key of another CA, is refused.
        assert!(
            CertificateAuthority::from_stored(&stored, &SecretBox::from_key(&[8; 32])).is_err()
        );
        let other = ca_other();
        let other_key = other.issuer.key().serialize_pem();
        let err = CertificateAuthority::from_pem(original.cert_pem(), &other_key).unwrap_err();
        assert!(err.to_string().contains("does not belong"), "{err:#}");
        // A leaf is not a CA.
        let leaf_only = leaf
            .cert_pem
            .split_inclusive("-----END CERTIFICATE-----\n")
            .next()
            .unwrap();
        assert!(CertificateAuthority::from_pem(leaf_only, &leaf.key_pem).is_err());
    }

    #[test]
    fn renewal_is_due_inside_the_window_or_when_hosts_change() {
        let ca = ca();
        let now = SystemTime::now();
        let wanted = broker_hosts();
        let leaf = ca.issue(&wanted, 90, now).unwrap();
        let window = DEFAULT_RENEW_BEFORE;
        let check = |hosts: &[String], at: SystemTime| {
            ca.needs_reissue(&leaf.cert_pem, hosts, at, window).unwrap()
        };
        assert_eq!(check(&wanted, now), None);
        assert_eq!(check(&wanted, now + 59 * DAY), None);
        assert_eq!(
            check(&wanted, now + 61 * DAY),
            Some(ReissueReason::ExpiresSoon {
                not_after: leaf.not_after
            })
        );
        assert_eq!(check(&wanted, now + 91 * DAY), Some(ReissueReason::Expired));
        assert_eq!(check(&wanted, leaf.not_after), Some(ReissueReason::Expired));
        assert_eq!(
            check(&wanted, now - 2 * CLOCK_SKEW),
            Some(ReissueReason::NotYetValid)
        );
        // Order, case and duplicates do not matter; additions and removals do.
        let shuffled = hosts(&["Broker.Example", "localhost", "127.0.0.1", "localhost"]);
        assert_eq!(check(&shuffled, now), None);
        let added = hosts(&["127.0.0.1", "localhost", "broker.example", "new.example"]);
        assert_eq!(check(&added, now), Some(ReissueReason::HostsChanged));
        let removed = hosts(&["localhost", "broker.example"]);
        assert_eq!(check(&removed, now), Some(ReissueReason::HostsChanged));
        let ip_changed = hosts(&["10.0.0.1", "localhost", "broker.example"]);
        assert_eq!(check(&ip_changed, now), Some(ReissueReason::HostsChanged));

        // The free function skips the issuer check; the method does not.
        let foreign = ca_other().issue(&wanted, 90, now).unwrap();
        assert_eq!(
            needs_reissue(&foreign.cert_pem, &wanted, now, window).unwrap(),
            None
        );
        assert_eq!(
            ca.needs_reissue(&foreign.cert_pem, &wanted, now, window)
                .unwrap(),
            Some(ReissueReason::OtherIssuer)
        );
        // Garbage is an error (the caller reissues).
        assert!(needs_reissue("not a certificate", &wanted, now, window).is_err());
        assert!(ca.needs_reissue("", &wanted, now, window).is_err());
        assert!(ReissueReason::ExpiresSoon { not_after: now }
            .to_string()
            .contains("expires soon"));
    }

    #[test]
    fn debug_output_never_shows_keys() {
        let secrets = SecretBox::from_key(&[9; 32]);
        let ca = ca();
        let key_pem = ca.issuer.key().serialize_pem();
        let key_body = key_pem.lines().nth(1).unwrap().to_string();
        let leaf = ca.issue(&broker_hosts(), 90, SystemTime::now()).unwrap();
        let leaf_body = leaf.key_pem.lines().nth(1).unwrap().to_string();
        for text in [
            format!("{ca:?}"),
            format!("{ca:#?}"),
            format!("{:?}", ca.to_stored(&secrets)),
            format!("{leaf:?}"),
            format!("{leaf:#?}"),
        ] {
            assert!(!text.contains("PRIVATE KEY"), "{text}");
            assert!(!text.contains(&key_body), "{text}");
            assert!(!text.contains(&leaf_body), "{text}");
            assert!(
                text.contains("redacted") || text.contains("sealed bytes"),
                "{text}"
            );
        }
    }

    #[test]
    fn ca_is_shareable_across_tasks() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<CertificateAuthority>();
        assert_send_sync::<IssuedCert>();
    }

    #[test]
    fn ca_file_is_written_atomically_and_world_readable() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca();
        let path = write_ca_file(dir.path(), ca.cert_pem()).unwrap();
        assert_eq!(path, dir.path().join("ca.pem"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), ca.cert_pem());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        // Overwrites, and leaves no temporary files behind.
        let other = ca_other();
        write_ca_file(dir.path(), other.cert_pem()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), other.cert_pem());
        let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(entries.len(), 1);
        assert!(write_ca_file(&dir.path().join("missing"), ca.cert_pem()).is_err());
    }

    fn server_config(leaf: &IssuedCert) -> Arc<rustls::ServerConfig> {
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
        Arc::new(
            rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs(&leaf.cert_pem), key)
                .unwrap(),
        )
    }

    fn client_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots(ca_pem))
                .with_no_client_auth(),
        )
    }

    /// One TLS connection over loopback TCP: the server presents `leaf` and echoes what
    /// it reads; the client trusts `ca_pem` and connects as `name`.
    async fn handshake(leaf: &IssuedCert, ca_pem: &str, name: &str) -> std::io::Result<Vec<u8>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config(leaf));
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            let mut tls = acceptor.accept(tcp).await?;
            let mut buf = [0u8; 5];
            tls.read_exact(&mut buf).await?;
            tls.write_all(&buf).await?;
            tls.shutdown().await?;
            std::io::Result::Ok(())
        });
        let connector = tokio_rustls::TlsConnector::from(client_config(ca_pem));
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let server_name = ServerName::try_from(name.to_string()).unwrap();
        let result = async {
            let mut tls = connector.connect(server_name, tcp).await?;
            tls.write_all(b"hello").await?;
            let mut echoed = Vec::new();
            tls.read_to_end(&mut echoed).await?;
            std::io::Result::Ok(echoed)
        }
        .await;
        let server = server.await.expect("server task panicked");
        if result.is_ok() {
            server?;
        }
        result
    }

    #[tokio::test]
    async fn tls_handshake_with_an_issued_certificate() {
        let ca = ca();
        let leaf = ca.issue(&broker_hosts(), 90, SystemTime::now()).unwrap();
        for name in ["localhost", "127.0.0.1", "broker.example"] {
            let echoed = handshake(&leaf, ca.cert_pem(), name)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(echoed, b"hello");
        }
        // The name must match ...
        assert!(handshake(&leaf, ca.cert_pem(), "other.example")
            .await
            .is_err());
        // ... and a client that trusts another CA refuses the server.
        let err = handshake(&leaf, ca_other().cert_pem(), "localhost")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("certificate"), "{err}");
        // A CA reloaded from the database serves the same clients.
        let secrets = SecretBox::from_key(&[3; 32]);
        let reloaded =
            CertificateAuthority::from_stored(&ca.to_stored(&secrets), &secrets).unwrap();
        let renewed = reloaded
            .issue(&broker_hosts(), 90, SystemTime::now())
            .unwrap();
        assert_eq!(
            handshake(&renewed, ca.cert_pem(), "localhost")
                .await
                .unwrap(),
            b"hello"
        );
    }
}
