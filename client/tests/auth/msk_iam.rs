//! MSK IAM. Amazon MSK and STS cannot run here, so:
//! - the tokens are checked by decoding them (presigned URL, region, SigV4 parameters), signed
//!   with fixed test keys from an injected credentials provider (no network), and by verifying
//!   their SigV4 signature as MSK would: recomputed from the keys the test gave by the tests'
//!   own verifier (`verify_token`, in `kafka_lambda_tests`' mock MSK), which refuses a token
//!   signed with another secret key, for another region or past its expiry;
//! - librdkafka's use of them is observed on the wire by a **mock MSK broker**: it terminates
//!   TLS itself (OpenSSL, a certificate from its own rcgen CA) and speaks just enough of the
//!   Kafka protocol (ApiVersions, SaslHandshake, SaslAuthenticate) to capture the OAUTHBEARER
//!   token a real client sends over TLS, and never serves data. It verifies each token against
//!   the keys it expects and refuses one that does not verify, or has expired, with
//!   SASL_AUTHENTICATION_FAILED, as MSK does;
//! - `role_arn` is exercised against a **mock STS** endpoint that answers AssumeRole.

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, future};
use base64::Engine;
use kafka_lambda_client::{KafkaClientConfig, KafkaClientContext, MskIamTokenProvider};
use kafka_lambda_tests::MockMsk;
use kafka_lambda_tests::client::{Recording, RecordingContext, client_config};
use kafka_lambda_tests::{poll_until, unique_dir};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const ACCESS_KEY: &str = "AKIATESTKEY000000001";
const SECRET_KEY: &str = "test-secret-key-never-shown-0000000000001";
const SESSION_TOKEN: &str = "test-session-token-0001";
/// The secret key a mock MSK broker expects when the client must be refused.
const OTHER_SECRET_KEY: &str = "other-secret-key-the-broker-expects-000001";

/// Fixed test keys, counting how often they are asked for. The first `fail_first` calls fail
/// as an unreachable credential source would.
#[derive(Debug, Default)]
struct TestCredentials {
    calls: AtomicUsize,
    fail_first: usize,
    expires_in: Option<Duration>,
}

impl TestCredentials {
    /// Temporary keys that expire `expires_in` after each call.
    fn expiring_in(expires_in: Duration) -> Self {
        TestCredentials {
            expires_in: Some(expires_in),
            ..TestCredentials::default()
        }
    }
}

impl ProvideCredentials for TestCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        if call < self.fail_first {
            return future::ProvideCredentials::ready(Err(CredentialsError::provider_error(
                "mock credential source: STS is unreachable",
            )));
        }
        future::ProvideCredentials::ready(Ok(Credentials::new(
            ACCESS_KEY,
            SECRET_KEY,
            Some(SESSION_TOKEN.to_owned()),
            self.expires_in.map(|d| SystemTime::now() + d),
            "test",
        )))
    }
}

fn provider(
    region: &str,
    credentials: TestCredentials,
) -> (MskIamTokenProvider, Arc<TestCredentials>) {
    let credentials = Arc::new(credentials);
    let provider =
        MskIamTokenProvider::with_credentials_provider(region, SharedCounting(credentials.clone()));
    (provider, credentials)
}

/// Lets the test keep a handle on the credentials it injected.
#[derive(Debug)]
struct SharedCounting(Arc<TestCredentials>);

impl ProvideCredentials for SharedCounting {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        self.0.provide_credentials()
    }
}

/// The presigned URL inside a token, with its query decoded.
struct Presigned {
    host: String,
    query: BTreeMap<String, String>,
}

fn decode(token: &str) -> Presigned {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .expect("the token is unpadded base64url");
    let text = String::from_utf8(bytes).expect("the token is a URL");
    let url = url::Url::parse(&text).expect("the token is a URL");
    assert_eq!(url.scheme(), "https", "{text}");
    assert_eq!(url.path(), "/", "{text}");
    Presigned {
        host: url.host_str().unwrap_or_default().to_owned(),
        query: url.query_pairs().into_owned().collect(),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn epoch_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `token` with `from` replaced by `to` in its presigned URL (re-encoded as a token).
fn tampered(token: &str, from: &str, to: &str) -> String {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let url = String::from_utf8(engine.decode(token).expect("base64url")).expect("a URL");
    assert!(url.contains(from), "`{from}` is not in {url}");
    engine.encode(url.replace(from, to))
}

#[test]
fn the_token_is_a_presigned_kafka_cluster_connect_url_for_the_configured_region() {
    let (provider, _) = provider("eu-central-1", TestCredentials::default());
    let before = now_ms();
    let token = provider.token().expect("token");
    let url = decode(&token.token);
    assert_eq!(url.host, "kafka.eu-central-1.amazonaws.com");
    let q = &url.query;
    assert_eq!(q["Action"], "kafka-cluster:Connect");
    assert_eq!(q["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
    let date = &q["X-Amz-Date"];
    assert!(
        date.len() == 16 && date.ends_with('Z') && date.as_bytes()[8] == b'T',
        "X-Amz-Date {date}"
    );
    assert_eq!(
        q["X-Amz-Credential"],
        format!(
            "{ACCESS_KEY}/{}/eu-central-1/kafka-cluster/aws4_request",
            &date[..8]
        )
    );
    assert_eq!(q["X-Amz-Expires"], "900");
    assert_eq!(q["X-Amz-SignedHeaders"], "host");
    assert_eq!(q["X-Amz-Security-Token"], SESSION_TOKEN);
    // The signature is SigV4's over this request with these keys, for this region.
    let keys = MockMsk::credentials(ACCESS_KEY, SECRET_KEY, Some(SESSION_TOKEN));
    let claims = keys
        .verify_token(&token.token, "eu-central-1", SystemTime::now())
        .unwrap_or_else(|error| panic!("the token does not verify: {error}"));
    assert_eq!(claims.access_key, ACCESS_KEY);
    assert_eq!(claims.region, "eu-central-1");
    assert_eq!(
        claims.expires_at,
        claims.signed_at + Duration::from_secs(900)
    );
    // The expiry the client hands librdkafka is the one MSK enforces.
    assert_eq!(token.expires_at_ms, epoch_ms(claims.expires_at));
    assert_eq!(claims.user_agent.as_deref(), Some(q["User-Agent"].as_str()));
    assert!(
        q["User-Agent"].starts_with("aws-msk-iam-sasl-signer"),
        "{q:?}"
    );
    assert!(
        !q.values().any(|v| v.contains(SECRET_KEY)),
        "the secret key is in the token"
    );
    // 15 minutes from signing.
    let lifetime = token.expires_at_ms - before;
    assert!(
        (899_000..=901_000).contains(&lifetime),
        "lifetime {lifetime} ms"
    );
    assert!(
        !format!("{token:?}").contains(&token.token),
        "Debug shows the token"
    );
}

#[test]
fn a_token_verifies_only_with_the_keys_and_region_that_signed_it() {
    let (provider, _) = provider("eu-central-1", TestCredentials::default());
    let token = provider.token().expect("token").token;
    let now = SystemTime::now();
    MockMsk::credentials(ACCESS_KEY, SECRET_KEY, Some(SESSION_TOKEN))
        .verify_token(&token, "eu-central-1", now)
        .unwrap_or_else(|error| panic!("the token does not verify with its own keys: {error}"));

    let error = MockMsk::credentials(ACCESS_KEY, OTHER_SECRET_KEY, Some(SESSION_TOKEN))
        .verify_token(&token, "eu-central-1", now)
        .expect_err("the token verifies with another secret key");
    assert!(
        error
            .to_string()
            .starts_with("the signature does not match"),
        "{error}"
    );
    assert!(!error.to_string().contains(SECRET_KEY), "{error}");

    let refused = [
        (
            MockMsk::credentials("AKIAOTHERKEY00000001", SECRET_KEY, Some(SESSION_TOKEN)),
            "eu-central-1",
            "the access key is `AKIATESTKEY000000001`",
        ),
        (
            MockMsk::credentials(ACCESS_KEY, SECRET_KEY, Some("another-session-token")),
            "eu-central-1",
            "X-Amz-Security-Token is not the expected session token",
        ),
        (
            MockMsk::credentials(ACCESS_KEY, SECRET_KEY, None),
            "eu-central-1",
            "X-Amz-Security-Token is not the expected session token",
        ),
        (
            MockMsk::credentials(ACCESS_KEY, SECRET_KEY, Some(SESSION_TOKEN)),
            "eu-west-1",
            "host is `kafka.eu-central-1.amazonaws.com`",
        ),
    ];
    for (keys, region, reason) in refused {
        let error = keys
            .verify_token(&token, region, now)
            .expect_err("the token verifies for other keys or another region");
        assert!(
            error.to_string().starts_with(reason),
            "{keys:?} {region}: {error}"
        );
    }
}

#[test]
fn the_signature_covers_every_parameter_but_the_user_agent() {
    let (provider, _) = provider("us-east-1", TestCredentials::default());
    let token = provider.token().expect("token").token;
    let keys = MockMsk::credentials(ACCESS_KEY, SECRET_KEY, Some(SESSION_TOKEN));
    let now = SystemTime::now();
    // A second earlier or later, the same day: the credential scope still matches.
    let date = decode(&token).query["X-Amz-Date"].clone();
    let second = if date.as_bytes()[14] == b'0' {
        '1'
    } else {
        '0'
    };
    let other_date = format!("{}{second}Z", &date[..14]);
    for (from, to) in [
        ("X-Amz-Expires=900", "X-Amz-Expires=3600".to_owned()),
        (
            "Action=kafka-cluster%3AConnect",
            "Action=kafka-cluster%3AConnect&Extra=1".to_owned(),
        ),
        (
            &format!("X-Amz-Date={date}"),
            format!("X-Amz-Date={other_date}"),
        ),
    ] {
        let error = keys
            .verify_token(&tampered(&token, from, &to), "us-east-1", now)
            .expect_err("a tampered token verifies");
        assert!(
            error
                .to_string()
                .starts_with("the signature does not match"),
            "{from} -> {to}: {error}"
        );
    }
    // The signer adds User-Agent after signing: MSK does not check it, neither does the verifier.
    keys.verify_token(
        &tampered(
            &token,
            "User-Agent=aws-msk-iam-sasl-signer",
            "User-Agent=other",
        ),
        "us-east-1",
        now,
    )
    .unwrap_or_else(|error| panic!("the User-Agent is signed: {error}"));
}

#[test]
fn a_token_is_expired_once_x_amz_date_plus_x_amz_expires_has_passed() {
    let (provider, _) = provider("us-east-1", TestCredentials::default());
    let token = provider.token().expect("token").token;
    let keys = MockMsk::credentials(ACCESS_KEY, SECRET_KEY, Some(SESSION_TOKEN));
    let claims = keys
        .verify_token(&token, "us-east-1", SystemTime::now())
        .unwrap_or_else(|error| panic!("the token does not verify: {error}"));
    let at = |time: SystemTime| keys.verify_token(&token, "us-east-1", time);
    at(claims.expires_at - Duration::from_secs(1))
        .unwrap_or_else(|error| panic!("not valid until its last second: {error}"));
    let error = at(claims.expires_at).expect_err("valid at its expiry");
    assert!(
        error.to_string().starts_with("the token expired 0 s ago"),
        "{error}"
    );
    let error = at(claims.expires_at + Duration::from_secs(60)).expect_err("valid after expiry");
    assert!(
        error.to_string().starts_with("the token expired 60 s ago"),
        "{error}"
    );
    let error = at(claims.signed_at - Duration::from_secs(600)).expect_err("valid before signing");
    assert!(error.to_string().contains("in the future"), "{error}");
}

#[test]
fn a_token_expires_no_later_than_the_credentials_that_signed_it() {
    let (provider, _) = provider(
        "us-east-1",
        TestCredentials::expiring_in(Duration::from_secs(120)),
    );
    let token = provider.token().expect("token");
    let lifetime = token.expires_at_ms - now_ms();
    assert!(
        (100_000..=121_000).contains(&lifetime),
        "lifetime {lifetime} ms, credentials expire in 120 s"
    );
}

#[test]
fn temporary_credentials_are_reused_and_long_lived_ones_are_read_each_time() {
    let (temporary, calls) = provider(
        "us-east-1",
        TestCredentials::expiring_in(Duration::from_secs(3600)),
    );
    for _ in 0..3 {
        temporary.token().expect("token");
    }
    assert_eq!(calls.calls.load(Ordering::SeqCst), 1);

    let (static_keys, calls) = provider("us-east-1", TestCredentials::default());
    for _ in 0..3 {
        static_keys.token().expect("token");
    }
    assert_eq!(calls.calls.load(Ordering::SeqCst), 3);
}

#[test]
fn tokens_can_be_made_from_inside_a_single_threaded_runtime_without_deadlock() {
    let (provider, _) = provider("us-east-1", TestCredentials::default());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // As when librdkafka calls the refresh callback from a task polling a StreamConsumer.
    let token = runtime.block_on(async { provider.token() });
    assert!(token.is_ok(), "{token:?}");
}

#[test]
fn msk_iam_requires_a_valid_region_and_tls() {
    let parse = |text: &str| KafkaClientConfig::from_toml_str(text);
    let invalid = |text: &str| parse(text).expect("parses").validate().unwrap_err();
    let missing = parse(
        "bootstrap_servers = \"b:9098\"\n[auth.tls]\n[auth.sasl]\nmechanism = \"AWS_MSK_IAM\"\n",
    )
    .unwrap_err();
    assert!(
        missing.to_string().contains("missing field `region`"),
        "{missing}"
    );

    let error = invalid(
        "bootstrap_servers = \"b:9098\"\n[auth.tls]\n[auth.sasl]\nmechanism = \"AWS_MSK_IAM\"\nregion = \"kafka.us-east-1\"\n",
    );
    assert_eq!(error.field(), Some("auth.sasl.region"), "{error}");

    let error = invalid(
        "bootstrap_servers = \"b:9098\"\n[auth.sasl]\nmechanism = \"AWS_MSK_IAM\"\nregion = \"us-east-1\"\n",
    );
    assert_eq!(error.field(), Some("auth.tls"), "{error}");
    assert!(error.to_string().contains("only runs over TLS"), "{error}");

    let error = invalid(
        "bootstrap_servers = \"b:9098\"\n[auth.tls]\n[auth.sasl]\nmechanism = \"AWS_MSK_IAM\"\nregion = \"us-east-1\"\nrole_arn = \"kafka-reader\"\n",
    );
    assert_eq!(error.field(), Some("auth.sasl.role_arn"), "{error}");
}

/// A producer to `mock` over TLS (trusting the mock's CA through `ca_file`), answering token
/// refreshes with `provider`.
fn producer_to_mock(
    mock: &MockMsk,
    provider: MskIamTokenProvider,
) -> (FutureProducer<RecordingContext>, Arc<Recording>) {
    let config = KafkaClientConfig::from_toml_str(&format!(
        "bootstrap_servers = \"127.0.0.1:{}\"\n[auth.tls]\nca_file = \"{}\"\n\
         [auth.sasl]\nmechanism = \"AWS_MSK_IAM\"\nregion = \"{}\"\n",
        mock.port,
        mock.ca_file.display(),
        provider.region()
    ))
    .expect("config parses");
    let (cc, _) = client_config(&config, &[]);
    assert_eq!(cc.get("sasl.mechanism"), Some("OAUTHBEARER"));
    assert_eq!(cc.get("security.protocol"), Some("SASL_SSL"));
    // The configured provider would use the real credential chain; inject the test keys.
    let recording = Recording::new(KafkaClientContext::new(Some(Arc::new(provider))));
    let producer: FutureProducer<RecordingContext> = cc
        .create_with_context(RecordingContext(recording.clone()))
        .expect("create producer");
    // Something to send makes the client connect.
    let _ = producer.send_result(FutureRecord::to("any").key("k").payload("v"));
    (producer, recording)
}

/// A mock MSK broker that accepts only tokens signed for `region` with `secret_key` (and the
/// test's access key and session token).
fn mock_expecting(test: &str, secret_key: &str, region: &str) -> MockMsk {
    let keys = MockMsk::credentials(ACCESS_KEY, secret_key, Some(SESSION_TOKEN));
    MockMsk::expecting(&unique_dir(test), &keys, region)
}

/// Waits for librdkafka to report the mock's refusal `refusal` as an authentication failure.
fn assert_authentication_failure_reported(recording: &Recording, refusal: &str) {
    let reported = |errors: &[String]| {
        errors.iter().any(|error| {
            error.contains("Authentication")
                && error.contains(&format!("SASL authentication error: {refusal}"))
        })
    };
    assert!(
        poll_until(Duration::from_secs(10), || reported(&recording.errors())),
        "librdkafka reported no authentication failure `{refusal}`; client reported:\n{}",
        recording.transcript()
    );
}

#[test]
fn rdkafka_asks_for_a_token_through_the_refresh_callback_and_authenticates_with_it() {
    let (provider, _) = provider("ap-southeast-2", TestCredentials::default());
    let mock = mock_expecting("msk-iam-callback", SECRET_KEY, "ap-southeast-2");
    let (_producer, recording) = producer_to_mock(&mock, provider);
    let token = mock.expect_token(Duration::from_secs(20), || {
        format!("client reported:\n{}", recording.transcript())
    });
    // The mock verified the token and let the client in.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        mock.refusals.try_recv().ok(),
        None,
        "client reported:\n{}",
        recording.transcript()
    );
    assert!(
        !recording
            .errors()
            .iter()
            .any(|e| e.contains("SASL authentication error")),
        "client reported:\n{}",
        recording.transcript()
    );
    assert!(recording.token_requests.load(Ordering::SeqCst) >= 1);
    let transcript = recording.transcript();
    assert!(
        !transcript.contains(&token) && !transcript.contains(SECRET_KEY),
        "a credential leaked into the client's reports:\n{transcript}"
    );
    let url = decode(&token);
    assert_eq!(url.host, "kafka.ap-southeast-2.amazonaws.com");
    assert_eq!(url.query["Action"], "kafka-cluster:Connect");
    assert!(
        url.query["X-Amz-Credential"].contains("/ap-southeast-2/kafka-cluster/aws4_request"),
        "{:?}",
        url.query
    );
}

#[test]
fn a_failing_credential_source_is_reported_clearly_and_the_client_asks_again() {
    let (provider, calls) = provider(
        "us-east-1",
        TestCredentials {
            fail_first: 1,
            ..TestCredentials::default()
        },
    );
    let mock = mock_expecting("msk-iam-retry", SECRET_KEY, "us-east-1");
    let (_producer, recording) = producer_to_mock(&mock, provider);
    // librdkafka retries a failed refresh after 10 s.
    let token = mock.expect_token(Duration::from_secs(30), || {
        format!(
            "no token after a failed refresh; client reported:\n{}",
            recording.transcript()
        )
    });
    assert_eq!(decode(&token).host, "kafka.us-east-1.amazonaws.com");
    assert!(
        poll_until(Duration::from_secs(5), || {
            recording.token_requests.load(Ordering::SeqCst) >= 2
        }),
        "two refreshes were not asked for within 5 s; client reported:\n{}",
        recording.transcript()
    );
    assert_eq!(calls.calls.load(Ordering::SeqCst), 2);
    let errors = recording.errors().join("\n");
    assert!(
        errors.contains("MSK IAM: cannot obtain AWS credentials")
            && errors.contains("mock credential source: STS is unreachable"),
        "the failure was not reported clearly:\n{}",
        recording.transcript()
    );
}

#[test]
fn a_client_signing_with_other_keys_than_msk_expects_is_refused_and_librdkafka_reports_it() {
    let (provider, _) = provider("us-east-1", TestCredentials::default());
    let mock = mock_expecting("msk-iam-refused", OTHER_SECRET_KEY, "us-east-1");
    let (_producer, recording) = producer_to_mock(&mock, provider);
    let refusal = mock.expect_refusal(Duration::from_secs(20), || {
        format!("client reported:\n{}", recording.transcript())
    });
    assert!(
        refusal.starts_with("Access denied: the signature does not match"),
        "{refusal}"
    );
    assert_authentication_failure_reported(&recording, &refusal);
    let transcript = recording.transcript();
    assert!(
        !transcript.contains(SECRET_KEY) && !transcript.contains(OTHER_SECRET_KEY),
        "a secret key leaked into the client's reports:\n{transcript}"
    );
}

#[test]
fn the_mock_msk_broker_refuses_a_token_for_another_region() {
    let (provider, _) = provider("us-east-1", TestCredentials::default());
    let mock = mock_expecting("msk-iam-region", SECRET_KEY, "eu-west-1");
    let (_producer, recording) = producer_to_mock(&mock, provider);
    let refusal = mock.expect_refusal(Duration::from_secs(20), || {
        format!("client reported:\n{}", recording.transcript())
    });
    assert!(
        refusal.starts_with("Access denied: host is `kafka.us-east-1.amazonaws.com`"),
        "{refusal}"
    );
    assert_authentication_failure_reported(&recording, &refusal);
}

#[test]
fn the_mock_msk_broker_refuses_an_expired_token() {
    let (provider, _) = provider("us-east-1", TestCredentials::default());
    let keys = MockMsk::credentials(ACCESS_KEY, SECRET_KEY, Some(SESSION_TOKEN));
    // Its clock 16 minutes ahead: a fresh 15-minute token has expired there.
    let mock = MockMsk::expecting_later(
        &unique_dir("msk-iam-expired"),
        &keys,
        "us-east-1",
        Duration::from_secs(16 * 60),
    );
    let (_producer, recording) = producer_to_mock(&mock, provider);
    let refusal = mock.expect_refusal(Duration::from_secs(20), || {
        format!("client reported:\n{}", recording.transcript())
    });
    assert!(
        refusal.starts_with("Access denied: the token expired"),
        "{refusal}"
    );
    assert_authentication_failure_reported(&recording, &refusal);
}

/// A **mock STS** endpoint: answers every request with an AssumeRole result for fixed temporary
/// credentials and reports each request body (the form-encoded AssumeRole call).
fn mock_sts() -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind mock STS");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let (sender, requests) = mpsc::channel();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let Ok(body) = read_http_body(&mut stream) else {
                continue;
            };
            let _ = sender.send(body);
            let xml = format!(
                "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                 <AssumeRoleResult><Credentials><AccessKeyId>{ASSUMED_KEY}</AccessKeyId>\
                 <SecretAccessKey>{ASSUMED_SECRET}</SecretAccessKey>\
                 <SessionToken>{ASSUMED_SESSION}</SessionToken>\
                 <Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>\
                 <AssumedRoleUser><AssumedRoleId>AROATEST:kl-test</AssumedRoleId>\
                 <Arn>arn:aws:sts::123456789012:assumed-role/kafka-writer/kl-test</Arn>\
                 </AssumedRoleUser></AssumeRoleResult>\
                 <ResponseMetadata><RequestId>mock</RequestId></ResponseMetadata>\
                 </AssumeRoleResponse>"
            );
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{xml}",
                xml.len()
            );
        }
    });
    (url, requests)
}

const ASSUMED_KEY: &str = "ASIAASSUMEDROLE00001";
const ASSUMED_SECRET: &str = "assumed-secret-key";
const ASSUMED_SESSION: &str = "assumed-session-token-0001";

fn read_http_body(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            break;
        }
        data.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&data);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return Ok(String::from_utf8_lossy(&data[end + 4..end + 4 + length]).into_owned());
            }
        }
    }
    Ok(String::new())
}

#[test]
fn role_arn_signs_with_the_assumed_roles_credentials_from_sts() {
    let (sts, requests) = mock_sts();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Base credentials and the STS endpoint come from this SdkConfig instead of the environment.
    let sdk_config = runtime.block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .endpoint_url(&sts)
            .credentials_provider(Credentials::from_keys(ACCESS_KEY, SECRET_KEY, None))
            .load(),
    );
    let config = kafka_lambda_client::MskIamConfig {
        region: "eu-west-1".to_owned(),
        profile: None,
        role_arn: Some("arn:aws:iam::123456789012:role/kafka-writer".to_owned()),
        role_session_name: Some("kl-test".to_owned()),
    };
    let provider = MskIamTokenProvider::with_sdk_config(&config, sdk_config);
    let token = provider.token().expect("token");
    let url = decode(&token.token);
    assert!(
        url.query["X-Amz-Credential"].starts_with(&format!("{ASSUMED_KEY}/")),
        "{:?}",
        url.query
    );
    assert_eq!(url.query["X-Amz-Security-Token"], ASSUMED_SESSION);
    MockMsk::credentials(ASSUMED_KEY, ASSUMED_SECRET, Some(ASSUMED_SESSION))
        .verify_token(&token.token, "eu-west-1", SystemTime::now())
        .unwrap_or_else(|error| panic!("not signed with the assumed role's keys: {error}"));
    let call = requests
        .recv_timeout(Duration::from_secs(5))
        .expect("an STS call");
    assert!(call.contains("Action=AssumeRole"), "{call}");
    assert!(
        call.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fkafka-writer"),
        "{call}"
    );
    assert!(call.contains("RoleSessionName=kl-test"), "{call}");
    // The assumed credentials last until 2099: the next token reuses them.
    provider.token().expect("second token");
    assert!(requests.try_recv().is_err(), "STS was called again");
}
