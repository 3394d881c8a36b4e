//! A **mock MSK broker** for tests, since Amazon MSK cannot be reached from here. It terminates
//! TLS itself (OpenSSL, with a server certificate for 127.0.0.1 from a CA it makes with rcgen)
//! and speaks just enough of the Kafka protocol (ApiVersions, SaslHandshake for OAUTHBEARER,
//! SaslAuthenticate) to capture the bearer token a real client sends; it serves nothing else.
//! The client's tests and the poller's use it.
//!
//! An MSK IAM token is checked as MSK checks it, by [`MskIamCredentials::verify_token`]: the one
//! SigV4 verifier of the tests, written here from the SigV4 specification (HMAC-SHA256 and
//! SHA-256 from OpenSSL), independent of the `aws-sigv4` signer the client uses. The client's
//! tests call it on the tokens they make; a mock started with [`MockMsk::expecting`] calls it on
//! every token it receives and refuses those that do not verify.
//!
//! Every request it receives is recorded, per connection and in order ([`MockMsk::requests`]),
//! so that a test can tell what a client sent before and after it authenticated.

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use openssl::ssl::{SslAcceptor, SslAcceptorBuilder, SslMethod};
use openssl::x509::X509;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A mock MSK broker behind its own TLS: answers ApiVersions, SaslHandshake (OAUTHBEARER only)
/// and SaslAuthenticate, and reports every bearer token it receives. A client that does not
/// complete a TLS handshake trusting [`MockMsk::ca_file`] gets nothing from it.
///
/// Started with [`MockMsk::start`] it accepts any token; with [`MockMsk::expecting`] it accepts
/// only tokens that verify against the credentials and region it was given, and answers any
/// other with SASL_AUTHENTICATION_FAILED (error code 58) and the reason, as MSK does.
///
/// Anything else it receives (Metadata...) it reads, records and leaves unanswered: a client's
/// request for it never completes.
#[derive(Debug)]
pub struct MockMsk {
    /// Where it accepts TLS connections, on 127.0.0.1.
    pub port: u16,
    /// The PEM file of the CA that signed its certificate (for `127.0.0.1` and `localhost`).
    pub ca_file: PathBuf,
    /// Every bearer token received, in order, whether accepted or refused.
    pub tokens: mpsc::Receiver<String>,
    /// The error message of every SaslAuthenticate refused, in order.
    pub refusals: mpsc::Receiver<String>,
    /// Every request received, in the order received.
    seen: Arc<Mutex<Vec<SeenRequest>>>,
}

/// A Kafka request the mock received, from its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    /// Which TLS connection it came on: 0 for the first accepted, 1 for the next...
    pub connection: usize,
    /// Its API key ([`SeenRequest::METADATA`]...).
    pub api_key: i16,
    /// Its API version.
    pub api_version: i16,
    /// When the mock had read it whole.
    pub at: Instant,
    /// For a SaslAuthenticate, whether the mock accepted it (`Some(false)`: refused with error
    /// 58, and the connection closed); `None` for any other request.
    pub accepted: Option<bool>,
}

impl SeenRequest {
    /// ListOffsets.
    pub const LIST_OFFSETS: i16 = 2;
    /// Metadata.
    pub const METADATA: i16 = 3;
    /// OffsetFetch (committed offsets).
    pub const OFFSET_FETCH: i16 = 9;
    /// FindCoordinator.
    pub const FIND_COORDINATOR: i16 = 10;
    /// SaslHandshake.
    pub const SASL_HANDSHAKE: i16 = 17;
    /// ApiVersions.
    pub const API_VERSIONS: i16 = 18;
    /// SaslAuthenticate.
    pub const SASL_AUTHENTICATE: i16 = 36;

    /// The name of its API (`Metadata`...), or `ApiKey(<n>)` for one not listed above.
    pub fn api(&self) -> String {
        match self.api_key {
            Self::LIST_OFFSETS => "ListOffsets".to_owned(),
            Self::METADATA => "Metadata".to_owned(),
            Self::OFFSET_FETCH => "OffsetFetch".to_owned(),
            Self::FIND_COORDINATOR => "FindCoordinator".to_owned(),
            Self::SASL_HANDSHAKE => "SaslHandshake".to_owned(),
            Self::API_VERSIONS => "ApiVersions".to_owned(),
            Self::SASL_AUTHENTICATE => "SaslAuthenticate".to_owned(),
            other => format!("ApiKey({other})"),
        }
    }

    /// Whether it is a SaslAuthenticate the mock accepted.
    pub fn is_accepted_authentication(&self) -> bool {
        self.api_key == Self::SASL_AUTHENTICATE && self.accepted == Some(true)
    }
}

/// What a mock started with [`MockMsk::expecting`] checks tokens against.
#[derive(Debug, Clone)]
struct Expected {
    credentials: MskIamCredentials,
    region: String,
    /// How far its clock runs ahead of the real one.
    clock_ahead: Duration,
}

impl MockMsk {
    /// Makes a CA and a server certificate (the CA's PEM written into `dir`), then listens on a
    /// free port; runs until the test process ends. Accepts any bearer token.
    pub fn start(dir: &Path) -> MockMsk {
        Self::launch(dir, None)
    }

    /// Like [`start`](Self::start), but accepts only MSK IAM tokens that
    /// [verify](MskIamCredentials::verify_token) against `credentials` and `region` and have
    /// not expired; any other is refused with SASL_AUTHENTICATION_FAILED (error code 58) and the
    /// reason, and the connection closed.
    pub fn expecting(dir: &Path, credentials: &MskIamCredentials, region: &str) -> MockMsk {
        Self::expecting_later(dir, credentials, region, Duration::ZERO)
    }

    /// Like [`expecting`](Self::expecting), with a clock running `ahead` of the real one: a
    /// token reaches it older than it is, and expires there `ahead` earlier.
    pub fn expecting_later(
        dir: &Path,
        credentials: &MskIamCredentials,
        region: &str,
        ahead: Duration,
    ) -> MockMsk {
        Self::launch(
            dir,
            Some(Expected {
                credentials: credentials.clone(),
                region: region.to_owned(),
                clock_ahead: ahead,
            }),
        )
    }

    /// The credentials of an AWS identity (see [`MskIamCredentials::new`]), for
    /// [`expecting`](Self::expecting) and [`MskIamCredentials::verify_token`].
    pub fn credentials(
        access_key: &str,
        secret_key: &str,
        session_token: Option<&str>,
    ) -> MskIamCredentials {
        MskIamCredentials::new(access_key, secret_key, session_token)
    }

    fn launch(dir: &Path, expected: Option<Expected>) -> MockMsk {
        let (acceptor, ca_file) = tls_acceptor(dir, "mock-msk");
        let acceptor = Arc::new(acceptor.build());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind mock MSK");
        let port = listener.local_addr().expect("address").port();
        let (sender, tokens) = mpsc::channel();
        let (refused, refusals) = mpsc::channel();
        let expected = expected.map(Arc::new);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let connections = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sender = sender.clone();
                let refused = refused.clone();
                let acceptor = acceptor.clone();
                let expected = expected.clone();
                let record = record.clone();
                let connections = connections.clone();
                std::thread::spawn(move || {
                    // A client that fails the handshake just goes away; it sent no token.
                    if let Ok(tls) = acceptor.accept(stream) {
                        let connection = Connection {
                            number: connections.fetch_add(1, Ordering::SeqCst),
                            seen: &record,
                        };
                        let _ = serve(tls, &connection, &sender, &refused, expected.as_deref());
                    }
                });
            }
        });
        MockMsk {
            port,
            ca_file,
            tokens,
            refusals,
            seen,
        }
    }

    /// Every request received so far (on connections that completed the TLS handshake), in the
    /// order received; those of one connection in the order it sent them.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().expect("the mock's request log").clone()
    }

    /// The next bearer token received, waiting at most `timeout`.
    ///
    /// # Panics
    ///
    /// When none comes within `timeout`; the message ends with `what_the_client_said()` (its
    /// log).
    pub fn expect_token(
        &self,
        timeout: Duration,
        what_the_client_said: impl FnOnce() -> String,
    ) -> String {
        self.tokens.recv_timeout(timeout).unwrap_or_else(|_| {
            panic!(
                "the mock MSK broker received no token in {timeout:?}; {}",
                what_the_client_said()
            )
        })
    }

    /// The error message of the next SaslAuthenticate refused, waiting at most `timeout`.
    ///
    /// # Panics
    ///
    /// When none is refused within `timeout`; the message ends with `what_the_client_said()`.
    pub fn expect_refusal(
        &self,
        timeout: Duration,
        what_the_client_said: impl FnOnce() -> String,
    ) -> String {
        self.refusals.recv_timeout(timeout).unwrap_or_else(|_| {
            panic!(
                "the mock MSK broker refused no token in {timeout:?}; {}",
                what_the_client_said()
            )
        })
    }
}

/// The service MSK IAM tokens are signed for.
const SERVICE: &str = "kafka-cluster";
/// The only action a token may carry.
const ACTION: &str = "kafka-cluster:Connect";
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The longest a SigV4 presigned request may be valid (`X-Amz-Expires`): 7 days.
const MAX_EXPIRES_SECONDS: u64 = 7 * 24 * 3600;
/// How far in the future a token's `X-Amz-Date` may be (clock skew), as AWS allows.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// The credentials of an AWS identity that MSK IAM tokens are expected to be signed with.
/// `Debug` shows the access key only.
#[derive(Clone, PartialEq, Eq)]
pub struct MskIamCredentials {
    /// The access key id (`AKIA...`, `ASIA...`).
    pub access_key: String,
    /// The secret access key.
    pub secret_key: String,
    /// The session token of temporary credentials.
    pub session_token: Option<String>,
}

impl fmt::Debug for MskIamCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MskIamCredentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// What a token that verifies says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// The access key id it was signed with.
    pub access_key: String,
    /// The region it was signed for.
    pub region: String,
    /// When it was signed (`X-Amz-Date`).
    pub signed_at: SystemTime,
    /// When it stops being valid (`X-Amz-Date` + `X-Amz-Expires`).
    pub expires_at: SystemTime,
    /// The `User-Agent` parameter, added after signing (not covered by the signature).
    pub user_agent: Option<String>,
}

/// Why a token does not verify. The messages never show a secret key or a session token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not the base64url of a presigned `https://kafka.<region>.amazonaws.com/?...` URL.
    Malformed(String),
    /// A parameter (or the host) other than expected.
    Mismatch {
        /// Which.
        parameter: &'static str,
        /// What it should be.
        expected: String,
        /// What the token has.
        found: String,
    },
    /// `X-Amz-Security-Token` is not the expected session token (or is there when none is
    /// expected, or missing when one is).
    SessionToken,
    /// `X-Amz-Signature` is not the signature of the request with the expected secret key.
    BadSignature,
    /// `X-Amz-Date` + `X-Amz-Expires` has passed, by this much.
    Expired(Duration),
    /// `X-Amz-Date` is more than the allowed clock skew in the future, by this much.
    NotYetValid(Duration),
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Malformed(why) => write!(f, "malformed token: {why}"),
            TokenError::Mismatch {
                parameter,
                expected,
                found,
            } => write!(f, "{parameter} is `{found}`, expected `{expected}`"),
            TokenError::SessionToken => {
                write!(f, "X-Amz-Security-Token is not the expected session token")
            }
            TokenError::BadSignature => write!(
                f,
                "the signature does not match: not signed with the expected secret key"
            ),
            TokenError::Expired(by) => write!(
                f,
                "the token expired {} s ago (X-Amz-Date + X-Amz-Expires has passed)",
                by.as_secs()
            ),
            TokenError::NotYetValid(by) => write!(
                f,
                "the token is signed {} s in the future (X-Amz-Date)",
                by.as_secs()
            ),
        }
    }
}

impl std::error::Error for TokenError {}

impl MskIamCredentials {
    /// Credentials; `session_token` for temporary ones.
    pub fn new(access_key: &str, secret_key: &str, session_token: Option<&str>) -> Self {
        MskIamCredentials {
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
            session_token: session_token.map(str::to_owned),
        }
    }

    /// Verifies an MSK IAM token as MSK would at `now`: the unpadded base64url of a SigV4
    /// presigned `GET https://kafka.<region>.amazonaws.com/?Action=kafka-cluster%3AConnect&...`
    /// (as `aws-msk-iam-sasl-signer` makes it), signed for service `kafka-cluster` and `region`
    /// with these credentials (the session token, if any, in `X-Amz-Security-Token`), header
    /// `host` signed, the payload hash that of the empty body, and valid from `X-Amz-Date` for
    /// `X-Amz-Expires` seconds. The signature is recomputed from the canonical request (every
    /// query parameter but `X-Amz-Signature` and `User-Agent`, which the signer adds after
    /// signing) and compared in constant time.
    ///
    /// # Errors
    ///
    /// The first check that fails; a wrong secret key is [`TokenError::BadSignature`].
    pub fn verify_token(
        &self,
        token: &str,
        region: &str,
        now: SystemTime,
    ) -> Result<TokenClaims, TokenError> {
        let url = decode_token(token)?;
        let query = &url.query;
        let param = |name: &str| {
            query
                .get(name)
                .map(String::as_str)
                .ok_or_else(|| TokenError::Malformed(format!("no {name} parameter")))
        };
        let same = |parameter: &'static str, expected: &str, found: &str| {
            if expected == found {
                Ok(())
            } else {
                Err(TokenError::Mismatch {
                    parameter,
                    expected: expected.to_owned(),
                    found: found.to_owned(),
                })
            }
        };
        same("Action", ACTION, param("Action")?)?;
        same("X-Amz-Algorithm", ALGORITHM, param("X-Amz-Algorithm")?)?;
        same("host", &format!("kafka.{region}.amazonaws.com"), &url.host)?;
        let amz_date = param("X-Amz-Date")?;
        let signed_at = parse_amz_date(amz_date)?;
        let date = &amz_date[..8];
        let credential = param("X-Amz-Credential")?;
        let (access_key, scope) = credential.split_once('/').ok_or_else(|| {
            TokenError::Malformed(format!("X-Amz-Credential `{credential}` has no scope"))
        })?;
        same("the access key", &self.access_key, access_key)?;
        let expected_scope = format!("{date}/{region}/{SERVICE}/aws4_request");
        same("the credential scope", &expected_scope, scope)?;
        same("X-Amz-SignedHeaders", "host", param("X-Amz-SignedHeaders")?)?;
        let session_token = query.get("X-Amz-Security-Token");
        if session_token != self.session_token.as_ref() {
            return Err(TokenError::SessionToken);
        }
        let expires = param("X-Amz-Expires")?;
        let expires = expires
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=MAX_EXPIRES_SECONDS).contains(s))
            .ok_or_else(|| {
                TokenError::Malformed(format!(
                    "X-Amz-Expires `{expires}` is not 1 to {MAX_EXPIRES_SECONDS} seconds"
                ))
            })?;

        let signature = param("X-Amz-Signature")?;
        let expected = self.signature(&url, region, amz_date, &expected_scope);
        if signature.len() != expected.len()
            || !openssl::memcmp::eq(signature.as_bytes(), expected.as_bytes())
        {
            return Err(TokenError::BadSignature);
        }

        let expires_at = signed_at + Duration::from_secs(expires);
        if let Ok(by) = now.duration_since(expires_at) {
            return Err(TokenError::Expired(by));
        }
        if let Ok(by) = signed_at.duration_since(now + CLOCK_SKEW) {
            return Err(TokenError::NotYetValid(by));
        }
        Ok(TokenClaims {
            access_key: access_key.to_owned(),
            region: region.to_owned(),
            signed_at,
            expires_at,
            user_agent: query.get("User-Agent").cloned(),
        })
    }

    /// The SigV4 signature (lowercase hex) of `GET url` with these credentials.
    fn signature(&self, url: &PresignedUrl, region: &str, amz_date: &str, scope: &str) -> String {
        let mut pairs: Vec<(String, String)> = url
            .query
            .iter()
            .filter(|(name, _)| *name != "X-Amz-Signature" && *name != "User-Agent")
            .map(|(name, value)| (uri_encode(name), uri_encode(value)))
            .collect();
        // Sorted by encoded name (then value: names are unique here).
        pairs.sort();
        let canonical_query = pairs
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("&");
        let empty_payload = hex(&openssl::sha::sha256(b""));
        let canonical_request = format!(
            "GET\n/\n{canonical_query}\nhost:{}\n\nhost\n{empty_payload}",
            url.host
        );
        let string_to_sign = format!(
            "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
            hex(&openssl::sha::sha256(canonical_request.as_bytes()))
        );
        let date = &amz_date[..8];
        let k_date = hmac(
            format!("AWS4{}", self.secret_key).as_bytes(),
            date.as_bytes(),
        );
        let k_region = hmac(&k_date, region.as_bytes());
        let k_service = hmac(&k_region, SERVICE.as_bytes());
        let k_signing = hmac(&k_service, b"aws4_request");
        hex(&hmac(&k_signing, string_to_sign.as_bytes()))
    }
}

/// The presigned URL inside a token.
struct PresignedUrl {
    host: String,
    /// Decoded names and values; each name once.
    query: BTreeMap<String, String>,
}

fn decode_token(token: &str) -> Result<PresignedUrl, TokenError> {
    use base64::Engine;
    let malformed = |why: &str| TokenError::Malformed(why.to_owned());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|e| TokenError::Malformed(format!("not unpadded base64url: {e}")))?;
    let url = String::from_utf8(bytes).map_err(|_| malformed("not UTF-8"))?;
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| malformed("not an https:// URL"))?;
    let (host, query) = rest
        .split_once("/?")
        .ok_or_else(|| malformed("not a URL of path `/` with a query"))?;
    if host.is_empty() || host.contains(['@', ':', '/']) || query.contains('#') {
        return Err(malformed("not a URL of a host, path `/` and a query"));
    }
    let mut pairs = BTreeMap::new();
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = form_decode(name)?;
        if pairs.insert(name.clone(), form_decode(value)?).is_some() {
            return Err(TokenError::Malformed(format!("{name} is given twice")));
        }
    }
    Ok(PresignedUrl {
        host: host.to_owned(),
        query: pairs,
    })
}

/// Decodes an `application/x-www-form-urlencoded` name or value (`+` is a space).
fn form_decode(text: &str) -> Result<String, TokenError> {
    let malformed = || TokenError::Malformed(format!("bad percent-encoding in `{text}`"));
    let mut bytes = Vec::with_capacity(text.len());
    let mut input = text.bytes();
    while let Some(byte) = input.next() {
        bytes.push(match byte {
            b'+' => b' ',
            b'%' => {
                let high = input.next().and_then(|b| (b as char).to_digit(16));
                let low = input.next().and_then(|b| (b as char).to_digit(16));
                match (high, low) {
                    (Some(high), Some(low)) => (high * 16 + low) as u8,
                    _ => return Err(malformed()),
                }
            }
            other => other,
        });
    }
    String::from_utf8(bytes).map_err(|_| malformed())
}

/// SigV4's URI encoding: every byte but the unreserved `A-Z a-z 0-9 - _ . ~` as `%XX`.
fn uri_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// `YYYYMMDD'T'HHMMSS'Z'` (UTC) as a time.
fn parse_amz_date(text: &str) -> Result<SystemTime, TokenError> {
    let malformed =
        || TokenError::Malformed(format!("X-Amz-Date `{text}` is not YYYYMMDDTHHMMSSZ"));
    let b = text.as_bytes();
    if !text.is_ascii() || b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return Err(malformed());
    }
    let number = |from: usize, to: usize| -> Result<u64, TokenError> {
        let digits = &text[from..to];
        if digits.bytes().all(|d| d.is_ascii_digit()) {
            digits.parse().map_err(|_| malformed())
        } else {
            Err(malformed())
        }
    };
    let (year, month, day) = (number(0, 4)?, number(4, 6)?, number(6, 8)?);
    let (hour, minute, second) = (number(9, 11)?, number(11, 13)?, number(13, 15)?);
    if year < 1970
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(malformed());
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    let year = if month <= 2 { year - 1 } else { year };
    let (era, year_of_era) = (year / 400, year % 400);
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Ok(UNIX_EPOCH + Duration::from_secs(days * 86_400 + hour * 3600 + minute * 60 + second))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = PKey::hmac(key).expect("an HMAC key");
    let mut signer = Signer::new(MessageDigest::sha256(), &key).expect("HMAC-SHA256");
    signer.update(data).expect("HMAC-SHA256");
    signer.sign_to_vec().expect("HMAC-SHA256")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A TLS acceptor for a server called `name` on `127.0.0.1` and `localhost`, with a certificate
/// from a CA made for it, and that CA's PEM file (`dir/<name>-ca.pem`), which clients must trust.
/// The builder is returned so that a server can ask more of its clients (a certificate).
pub(crate) fn tls_acceptor(dir: &Path, name: &str) -> (SslAcceptorBuilder, PathBuf) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct subjects: a leaf named like its issuer looks self-signed to OpenSSL.
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("kafka-lambda {name} CA"));
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
        .expect("CA certificate");
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{name}.localhost"));
    let cert = params.signed_by(&key, &ca).expect("server certificate");
    let ca_file = dir.join(format!("{name}-ca.pem"));
    std::fs::write(&ca_file, ca.pem()).expect("write the server's CA");

    let mut acceptor =
        SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).expect("TLS acceptor");
    acceptor
        .set_certificate(&X509::from_pem(cert.pem().as_bytes()).expect("parse certificate"))
        .expect("set certificate");
    acceptor
        .set_private_key(
            &PKey::private_key_from_pem(key.serialize_pem().as_bytes()).expect("parse key"),
        )
        .expect("set key");
    acceptor
        .check_private_key()
        .expect("key matches certificate");
    (acceptor, ca_file)
}

/// A connection [`serve`] records the requests of.
struct Connection<'a> {
    number: usize,
    seen: &'a Mutex<Vec<SeenRequest>>,
}

impl Connection<'_> {
    fn record(&self, api_key: i16, api_version: i16, at: Instant, accepted: Option<bool>) {
        self.seen
            .lock()
            .expect("the mock's request log")
            .push(SeenRequest {
                connection: self.number,
                api_key,
                api_version,
                at,
                accepted,
            });
    }
}

fn serve(
    mut stream: impl Read + Write,
    connection: &Connection<'_>,
    tokens: &mpsc::Sender<String>,
    refusals: &mpsc::Sender<String>,
    expected: Option<&Expected>,
) -> std::io::Result<()> {
    loop {
        let mut size = [0u8; 4];
        stream.read_exact(&mut size)?;
        let mut request = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
        stream.read_exact(&mut request)?;
        let at = Instant::now();
        // The request header (v1, v2): api_key, api_version, correlation_id, client_id...
        if request.len() < 10 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "a request shorter than its header",
            ));
        }
        let field = |from: usize| i16::from_be_bytes([request[from], request[from + 1]]);
        let (api_key, version) = (field(0), field(2));
        let correlation = &request[4..8];
        let client_id = field(8).max(0) as usize;
        let body_at = 10 + client_id;
        let mut response = correlation.to_vec();
        match api_key {
            18 => {
                connection.record(api_key, version, at, None);
                api_versions(&mut response, version);
            }
            17 => {
                connection.record(api_key, version, at, None);
                // SaslHandshake v0/v1: accept OAUTHBEARER only.
                let length = field(body_at) as usize;
                let mechanism =
                    String::from_utf8_lossy(&request[body_at + 2..body_at + 2 + length]);
                let error: i16 = if mechanism == "OAUTHBEARER" { 0 } else { 33 };
                response.extend(error.to_be_bytes());
                response.extend(1i32.to_be_bytes());
                response.extend(11i16.to_be_bytes());
                response.extend(b"OAUTHBEARER");
            }
            36 => {
                // SaslAuthenticate v0/v1: `n,,\x01auth=Bearer <token>\x01\x01` (RFC 7628).
                let length =
                    i32::from_be_bytes(request[body_at..body_at + 4].try_into().expect("4 bytes"))
                        as usize;
                let message = String::from_utf8_lossy(&request[body_at + 4..body_at + 4 + length]);
                let token = message
                    .split('\u{1}')
                    .find_map(|part| part.strip_prefix("auth=Bearer "));
                if let Some(token) = token {
                    let _ = tokens.send(token.to_owned());
                }
                let refusal = expected.and_then(|expected| {
                    let Some(token) = token else {
                        return Some("Access denied: no OAUTHBEARER token".to_owned());
                    };
                    let now = SystemTime::now() + expected.clock_ahead;
                    expected
                        .credentials
                        .verify_token(token, &expected.region, now)
                        .err()
                        .map(|error| format!("Access denied: {error}"))
                });
                connection.record(api_key, version, at, Some(refusal.is_none()));
                match &refusal {
                    None => {
                        response.extend(0i16.to_be_bytes()); // error code
                        response.extend((-1i16).to_be_bytes()); // no error message
                    }
                    Some(message) => {
                        // SASL_AUTHENTICATION_FAILED, with the reason.
                        response.extend(58i16.to_be_bytes());
                        response.extend((message.len() as i16).to_be_bytes());
                        response.extend(message.as_bytes());
                    }
                }
                response.extend(0i32.to_be_bytes()); // no auth bytes
                if version >= 1 {
                    response.extend(0i64.to_be_bytes()); // session lifetime: unlimited
                }
                if let Some(message) = refusal {
                    // Answer, then close the connection, as a broker does after a failed login.
                    stream.write_all(&(response.len() as i32).to_be_bytes())?;
                    stream.write_all(&response)?;
                    stream.flush()?;
                    let _ = refusals.send(message);
                    return Ok(());
                }
            }
            // Anything after authentication (metadata...) is recorded and left unanswered.
            _ => {
                connection.record(api_key, version, at, None);
                continue;
            }
        }
        stream.write_all(&(response.len() as i32).to_be_bytes())?;
        stream.write_all(&response)?;
        stream.flush()?;
    }
}

/// An ApiVersions response (header v0 at every version) offering only what the mock serves.
fn api_versions(response: &mut Vec<u8>, version: i16) {
    let apis: [(i16, i16, i16); 4] = [(18, 0, 3), (17, 0, 1), (36, 0, 1), (3, 0, 4)];
    response.extend(0i16.to_be_bytes());
    if version >= 3 {
        response.push(apis.len() as u8 + 1); // compact array length (unsigned varint, n + 1)
        for (key, min, max) in apis {
            response.extend(key.to_be_bytes());
            response.extend(min.to_be_bytes());
            response.extend(max.to_be_bytes());
            response.push(0); // no tagged fields
        }
        response.extend(0i32.to_be_bytes()); // throttle time
        response.push(0); // no tagged fields
    } else {
        response.extend((apis.len() as i32).to_be_bytes());
        for (key, min, max) in apis {
            response.extend(key.to_be_bytes());
            response.extend(min.to_be_bytes());
            response.extend(max.to_be_bytes());
        }
        if version >= 1 {
            response.extend(0i32.to_be_bytes());
        }
    }
}
