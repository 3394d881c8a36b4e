//! The one shared helper of kafka-lambda's integration tests (`poller/tests`, `client/tests`,
//! `tests/tests`): the real services they run against, unique names, topics, invocations
//! through the local Lambda emulator, and the processes a test runs on its own: a private
//! emulator ([`Emulator`]), the poller ([`Poller`], [`poller_check`]) and private Apache Kafka
//! clusters ([`KafkaCluster`]). Beside them: records produced and read back with plain clients
//! ([`produce`], [`TopicReader`]), what the `test-recorder` function saw, reconciled against what
//! was produced ([`seen`], [`reconcile`]), the broker's authenticated listeners and test users
//! ([`Listeners`], [`users`]), clients configured by `kafka-lambda-client` that record what
//! librdkafka reports ([`client`]), a mock MSK broker ([`MockMsk`]), and one way to wait
//! ([`wait_until`]), to find a port ([`free_port`]) and to keep scratch files ([`scratch_dir`]).
//!
//! The services are an Apache Kafka broker and `cargo lambda watch`, both managed by
//! `scripts/services.sh`. [`services`] takes their addresses from `KAFKA_BOOTSTRAP_SERVERS` and
//! `LAMBDA_ENDPOINT` (what `scripts/test.sh` exports; the broker's authenticated listeners from
//! the other variables of `scripts/services.sh env`, see [`Listeners`]); when both are unset it runs
//! `scripts/services.sh start` itself, so a plain `cargo test -p kafka-lambda-tests` works too
//! (the services it starts stay up for the next run; `scripts/services.sh stop` ends them).
//! `KAFKA_BOOTSTRAP_SERVERS` alone is enough for the tests that run their own emulator.
//! A test never passes without its services: when they cannot be reached or started, every
//! helper panics with the reason.
//!
//! ```no_run
//! use kafka_lambda_tests::{create_topic, invoke, topic_name};
//!
//! let topic = topic_name("orders_are_cleaned");
//! create_topic(&topic, 3);
//!
//! let response = invoke("log-etl", br#"{"eventSource":"aws:kafka","records":{}}"#);
//! assert_eq!(response.status, 200, "{response}");
//! let output = response.expect_success();
//! assert_eq!(output["dropped"], 0);
//! ```

mod auth;
mod broker;
pub mod client;
mod emulator;
mod function_host;
mod kafka;
mod mock_msk;
mod poller;
mod recorder;
mod records;
mod registry;
mod registry_front;
mod rie;
mod tools;

pub use auth::{Listeners, OwnCa, Relay, capture_tracing, sasl_table, secret_file, users};
pub use broker::KafkaCluster;
pub use emulator::Emulator;
pub use function_host::{FunctionHost, HostKind};
pub use kafka::{
    AclResource, committed_offset, create_topic_on, grant, kafka_tool, partition_leader,
    records_in, watermarks,
};
pub use mock_msk::{MockMsk, MskIamCredentials, SeenRequest, TokenClaims, TokenError};
pub use poller::{
    Poller, RDKAFKA_DEBUG_VARIABLE, http_get, mapping_config, metric, poller_binary, poller_check,
    try_http_get, with_telemetry,
};
pub use recorder::{
    FAST_RETRIES, Seen, attempts, reconcile, recorded_lines, recorder_config,
    recorder_config_of_topics, recorder_file, resume_with_marker, seen, seen_offsets, seen_values,
    wait_for_seen, with_kafka_auth, with_kafka_setting,
};
pub use records::{
    ReadRecord, TopicReader, produce, produce_all, produce_compressed, produce_one, produce_to,
    read_topic, read_topic_from, send_each,
};
pub use registry::{Registries, produce_through_registry};
pub use registry_front::{RegistryAccess, RegistryFront};
pub use rie::{RIE_FUNCTION, Rie};
pub use tools::{
    assert_refuses_to_start, binary, cargo_build, cargo_metadata, command_output, free_port,
    free_stable_ports, output_text, poll_until, scratch_dir, scratch_file, tool_path, unique_dir,
    wait_until, without_cargo_test_variables,
};

use kafka_lambda_events::{EventSource, KafkaEvent, KafkaRecord};
use serde::Deserialize;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long [`invoke`] waits for an answer. The emulator itself never gives up: an invocation
/// whose function process died (the emulator does not restart it) would wait forever.
pub const INVOKE_TIMEOUT: Duration = Duration::from_secs(180);

/// The largest invocation response [`invoke`] reads; AWS caps synchronous responses at 6 MB.
const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// Where the services of a test run answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Services {
    kafka_bootstrap_servers: String,
    /// None when only `KAFKA_BOOTSTRAP_SERVERS` is set.
    lambda_endpoint: Option<String>,
    /// None when the variables of the authenticated listeners are not set.
    listeners: Option<Listeners>,
    /// None when the schema registries' variables are not set.
    registries: Option<Registries>,
}

impl Services {
    /// The broker list for Kafka clients, as in `KAFKA_BOOTSTRAP_SERVERS`: `host:port[,host:port]`.
    pub fn kafka_bootstrap_servers(&self) -> &str {
        &self.kafka_bootstrap_servers
    }

    /// The base URL of the shared emulator's invoke API, as in `LAMBDA_ENDPOINT`, without a
    /// trailing `/`.
    ///
    /// # Panics
    ///
    /// When only `KAFKA_BOOTSTRAP_SERVERS` was set: a test that invokes the shared emulator
    /// needs `LAMBDA_ENDPOINT` too (or neither, to have the services started).
    pub fn lambda_endpoint(&self) -> &str {
        self.lambda_endpoint.as_deref().unwrap_or_else(|| {
            panic!(
                "LAMBDA_ENDPOINT is not set: this test invokes the shared Lambda emulator; set \
                 it (eval \"$(scripts/services.sh env)\"), or unset KAFKA_BOOTSTRAP_SERVERS too \
                 so that the tests start the services"
            )
        })
    }

    /// The broker's authenticated listeners.
    ///
    /// # Panics
    ///
    /// When `KAFKA_BOOTSTRAP_SERVERS` was set without the listeners' variables (an older
    /// `scripts/services.sh env`, or a hand-made environment).
    pub fn listeners(&self) -> &Listeners {
        self.listeners.as_ref().unwrap_or_else(|| {
            panic!(
                "KAFKA_SASL_PLAINTEXT_SERVERS, KAFKA_SSL_SERVERS, KAFKA_MTLS_SERVERS, \
                 KAFKA_SASL_SSL_SERVERS and KAFKA_TLS_DIR are not all set: this test uses the \
                 broker's authenticated listeners; eval \"$(scripts/services.sh env)\", or unset \
                 KAFKA_BOOTSTRAP_SERVERS and LAMBDA_ENDPOINT so that the tests start the services"
            )
        })
    }

    /// The schema registries (`scripts/registry.sh`).
    ///
    /// # Panics
    ///
    /// When `KAFKA_BOOTSTRAP_SERVERS` was set without `KL_SCHEMA_REGISTRY_URL`,
    /// `KL_GLUE_ENDPOINT` and `KL_REGISTRY_PYTHON`.
    pub fn registries(&self) -> &Registries {
        self.registries.as_ref().unwrap_or_else(|| {
            panic!(
                "KL_SCHEMA_REGISTRY_URL, KL_GLUE_ENDPOINT and KL_REGISTRY_PYTHON are not all set: \
                 this test uses the schema registries; eval \"$(scripts/services.sh env)\", or \
                 unset KAFKA_BOOTSTRAP_SERVERS and LAMBDA_ENDPOINT so that the tests start the \
                 services"
            )
        })
    }

    /// The URL that invokes `function` synchronously on the shared emulator.
    ///
    /// # Panics
    ///
    /// As [`Services::lambda_endpoint`].
    pub fn invoke_url(&self, function: &str) -> String {
        invocation_url(self.lambda_endpoint(), function)
    }
}

/// The services every integration test runs against, found or started once per test process.
///
/// # Panics
///
/// When `LAMBDA_ENDPOINT` is set without `KAFKA_BOOTSTRAP_SERVERS`, when the services they
/// name do not accept connections, or when `scripts/services.sh start` fails. The panic
/// message says which, and every later call panics with the same message.
pub fn services() -> &'static Services {
    static SERVICES: OnceLock<Result<Services, String>> = OnceLock::new();
    match SERVICES.get_or_init(find_or_start_services) {
        Ok(services) => services,
        Err(reason) => panic!("the integration test services are not available: {reason}"),
    }
}

fn find_or_start_services() -> Result<Services, String> {
    let kafka = non_empty_var("KAFKA_BOOTSTRAP_SERVERS");
    let lambda = non_empty_var("LAMBDA_ENDPOINT");
    let services = match (kafka, lambda) {
        (Some(kafka), lambda) => Services {
            kafka_bootstrap_servers: kafka,
            lambda_endpoint: lambda.map(|lambda| lambda.trim_end_matches('/').to_owned()),
            listeners: listeners_from(non_empty_var),
            registries: registries_from(non_empty_var),
        },
        (None, None) => start_services()?,
        (None, Some(_)) => {
            return Err(
                "LAMBDA_ENDPOINT is set but KAFKA_BOOTSTRAP_SERVERS is not; set both, or \
                 neither (then scripts/services.sh start runs)"
                    .to_owned(),
            );
        }
    };
    let broker = services
        .kafka_bootstrap_servers
        .split(',')
        .next()
        .unwrap_or_default();
    check_accepts_connections("the Kafka broker (KAFKA_BOOTSTRAP_SERVERS)", broker)?;
    if let Some(endpoint) = &services.lambda_endpoint {
        let emulator = endpoint
            .strip_prefix("http://")
            .ok_or_else(|| format!("LAMBDA_ENDPOINT={endpoint} is not an http:// URL"))?;
        check_accepts_connections("the Lambda emulator (LAMBDA_ENDPOINT)", emulator)?;
    }
    Ok(services)
}

fn non_empty_var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// Runs `scripts/services.sh start`, then reads the addresses from `scripts/services.sh env`.
fn start_services() -> Result<Services, String> {
    let script = repo_root().join("scripts/services.sh");
    eprintln!(
        "KAFKA_BOOTSTRAP_SERVERS and LAMBDA_ENDPOINT are unset: running {} start \
         (the services stay up afterwards; `scripts/services.sh stop` ends them)",
        script.display()
    );
    let mut start = services_command(&script, "start");
    // The script's progress goes straight to the terminal; its stdout carries nothing we need.
    start.stdout(Stdio::inherit()).stderr(Stdio::inherit());
    let status = start
        .status()
        .map_err(|error| format!("could not run {}: {error}", script.display()))?;
    if !status.success() {
        return Err(format!(
            "{} start failed ({status}); its messages are above. \
             `scripts/services.sh install` installs what is missing",
            script.display()
        ));
    }
    let output = services_command(&script, "env")
        .output()
        .map_err(|error| format!("could not run {} env: {error}", script.display()))?;
    let exports = String::from_utf8_lossy(&output.stdout);
    let value = |name: &str| {
        exports
            .split_whitespace()
            .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
            .ok_or_else(|| format!("`{} env` printed no {name}: {exports:?}", script.display()))
    };
    Ok(Services {
        kafka_bootstrap_servers: value("KAFKA_BOOTSTRAP_SERVERS")?,
        lambda_endpoint: Some(value("LAMBDA_ENDPOINT")?),
        listeners: listeners_from(|name| value(name).ok()),
        registries: registries_from(|name| value(name).ok()),
    })
}

/// The listeners, when every one of their variables has a value.
fn listeners_from(value: impl Fn(&str) -> Option<String>) -> Option<Listeners> {
    Some(Listeners {
        sasl_plaintext: value("KAFKA_SASL_PLAINTEXT_SERVERS")?,
        ssl: value("KAFKA_SSL_SERVERS")?,
        mtls: value("KAFKA_MTLS_SERVERS")?,
        sasl_ssl: value("KAFKA_SASL_SSL_SERVERS")?,
        tls_dir: PathBuf::from(value("KAFKA_TLS_DIR")?),
    })
}

/// The registries, when every one of their variables has a value.
fn registries_from(value: impl Fn(&str) -> Option<String>) -> Option<Registries> {
    Some(Registries {
        confluent_url: value("KL_SCHEMA_REGISTRY_URL")?,
        glue_endpoint: value("KL_GLUE_ENDPOINT")?,
        python: PathBuf::from(value("KL_REGISTRY_PYTHON")?),
    })
}

fn services_command(script: &Path, subcommand: &str) -> Command {
    let mut command = Command::new("bash");
    command
        .arg(script)
        .arg(subcommand)
        .current_dir(repo_root())
        .stdin(Stdio::null());
    tools::without_cargo_test_variables(&mut command);
    command
}

fn check_accepts_connections(what: &str, address: &str) -> Result<(), String> {
    let addresses = address
        .to_socket_addrs()
        .map_err(|error| format!("{what}: cannot resolve {address:?}: {error}"))?;
    for socket in addresses {
        if TcpStream::connect_timeout(&socket, Duration::from_secs(2)).is_ok() {
            return Ok(());
        }
    }
    Err(format!(
        "{what} at {address} does not accept connections; start the services with \
         `scripts/services.sh start`, or unset both variables so the tests start them"
    ))
}

/// The root of the repository, where `scripts/` and `examples/` live.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives one level below the repository root")
        .to_path_buf()
}

/// A name no other test, process or run uses: `<prefix>-<random hex>`.
///
/// Kafka allows `[a-zA-Z0-9._-]` in topic names; a prefix made of those keeps the result valid.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    format!("{prefix}-{:016x}", hasher.finish())
}

/// A fresh topic name for the test `test`: `kl-<test>-<random hex>`.
pub fn topic_name(test: &str) -> String {
    unique_name(&format!("kl-{test}"))
}

/// A fresh consumer group name for the test `test`: `kl-<test>-group-<random hex>`.
pub fn group_name(test: &str) -> String {
    unique_name(&format!("kl-{test}-group"))
}

/// Creates `topic` with `partitions` partitions (one replica) on the shared test broker and
/// waits until each has a leader; [`create_topic_on`] for another broker, replicas or configs.
///
/// # Panics
///
/// When the services are not available or the broker refuses the topic; the message carries
/// the broker's reason.
pub fn create_topic(topic: &str, partitions: u32) {
    create_topic_on(
        services().kafka_bootstrap_servers(),
        topic,
        partitions,
        1,
        &[],
    );
}

/// A fresh topic for the test `test` ([`topic_name`]) with `partitions` partitions on the shared
/// test broker ([`create_topic`]).
///
/// # Panics
///
/// As [`create_topic`].
pub fn new_topic(test: &str, partitions: u32) -> String {
    let topic = topic_name(test);
    create_topic(&topic, partitions);
    topic
}

/// The invocation payload an Amazon MSK trigger sends with `records`: an `aws:kafka` event of the
/// cluster `cluster` in `region`, with the ARN and bootstrap servers MSK gives such a cluster.
pub fn msk_event(
    cluster: &str,
    region: &str,
    records: impl IntoIterator<Item = KafkaRecord>,
) -> Vec<u8> {
    KafkaEvent::builder(EventSource::Msk)
        .event_source_arn(format!(
            "arn:aws:kafka:{region}:123456789012:cluster/{cluster}/7f3a2b1c-9d8e-4f6a-b5c4-3d2e1f0a9b8c-2"
        ))
        .bootstrap_servers(format!(
            "b-1.{cluster}.k3x9q2.c2.kafka.{region}.amazonaws.com:9098"
        ))
        .records(records)
        .build()
        .to_vec()
}

/// What the emulator answered to one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The function invoked.
    pub function: String,
    /// HTTP status: 200 for a result, 500 for a function error (the emulator sets no
    /// `X-Amz-Function-Error` header, unlike AWS), 404 for a function the workspace lacks.
    pub status: u16,
    /// Response headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Response body: the function's output on success, its error document otherwise.
    pub body: Vec<u8>,
}

/// The error document the Lambda runtime reports when a function fails.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionError {
    /// The error's type, as the runtime names it.
    pub error_type: String,
    /// The error's message.
    pub error_message: String,
}

impl Invocation {
    /// The first header called `name`, compared without case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as text, invalid UTF-8 replaced.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    ///
    /// # Panics
    ///
    /// When the body is not JSON; the message shows the whole response.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("the response is not JSON ({error}): {self}"))
    }

    /// The function's output, after checking the invocation succeeded.
    ///
    /// # Panics
    ///
    /// When the status is not 200 or the body is not JSON; the message shows the response.
    pub fn expect_success(self) -> serde_json::Value {
        assert_eq!(
            self.status, 200,
            "expected {} to succeed: {self}",
            self.function
        );
        self.json()
    }

    /// The function's error, after checking the invocation failed with a function error.
    ///
    /// # Panics
    ///
    /// When the status is not 500 or the body is not a Lambda error document.
    pub fn expect_function_error(self) -> FunctionError {
        assert_eq!(
            self.status, 500,
            "expected {} to fail with a function error: {self}",
            self.function
        );
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("not a Lambda error document ({error}): {self}"))
    }
}

impl fmt::Display for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} answered HTTP {}: {}",
            self.function,
            self.status,
            self.body_text()
        )
    }
}

/// Invokes `function` synchronously through the emulator's invoke API with `payload` as the
/// event, and returns whatever it answered, errors included.
///
/// # Panics
///
/// When the services are not available, or the emulator cannot be reached or does not answer
/// within [`INVOKE_TIMEOUT`]: the message then says that the function's process probably died.
pub fn invoke(function: &str, payload: impl AsRef<[u8]>) -> Invocation {
    let endpoint = services().lambda_endpoint();
    post_invocation(endpoint, function, payload.as_ref()).unwrap_or_else(|error| match error {
        ureq::Error::Timeout(_) => panic!(
            "{function} gave no answer within {INVOKE_TIMEOUT:?} at {endpoint}: its process \
             probably died (the emulator never restarts a function that exited; see \
             .services/lambda.log, then run scripts/services.sh restart)"
        ),
        error => panic!("invoking {function} at {endpoint} failed: {error}"),
    })
}

fn invocation_url(endpoint: &str, function: &str) -> String {
    format!("{endpoint}/2015-03-31/functions/{function}/invocations")
}

/// Invokes `function` synchronously through the invoke API at `endpoint`; any HTTP status is
/// an answer, only a failure to get one is an error.
pub(crate) fn post_invocation(
    endpoint: &str,
    function: &str,
    payload: &[u8],
) -> Result<Invocation, ureq::Error> {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    let agent = AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .timeout_global(Some(INVOKE_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into()
    });
    let mut response = agent
        .post(invocation_url(endpoint, function))
        .header("content-type", "application/json")
        .send(payload)?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE_BYTES)
        .read_to_vec()?;
    Ok(Invocation {
        function: function.to_owned(),
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_keep_the_prefix() {
        let first = topic_name("a_test");
        let second = topic_name("a_test");
        assert_ne!(first, second);
        assert!(first.starts_with("kl-a_test-"), "{first}");
        assert!(group_name("a_test").starts_with("kl-a_test-group-"));
        assert!(
            first
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        );
    }

    #[test]
    fn invocation_reads_headers_without_case_and_shows_itself() {
        let invocation = Invocation {
            function: "log-etl".to_owned(),
            status: 404,
            headers: vec![("content-length".to_owned(), "2".to_owned())],
            body: b"{}".to_vec(),
        };
        assert_eq!(invocation.header("Content-Length"), Some("2"));
        assert_eq!(invocation.header("x-amz-function-error"), None);
        assert_eq!(invocation.to_string(), "log-etl answered HTTP 404: {}");
    }

    #[test]
    fn function_errors_parse_from_the_runtime_document() {
        let invocation = Invocation {
            function: "log-etl".to_owned(),
            status: 500,
            headers: Vec::new(),
            body: br#"{"errorType":"Bad","errorMessage":"record t-0@1 is malformed"}"#.to_vec(),
        };
        let error = invocation.expect_function_error();
        assert_eq!(error.error_type, "Bad");
        assert_eq!(error.error_message, "record t-0@1 is malformed");
    }
}
