use super::*;

#[test]
fn the_default_group_comes_from_the_function_name_without_alias_or_version() {
    for function in [
        "test-recorder",
        "test-recorder:live",
        "test-recorder:7",
        "123456789012:function:test-recorder",
        "arn:aws:lambda:eu-west-1:123456789012:function:test-recorder",
        "arn:aws:lambda:eu-west-1:123456789012:function:test-recorder:live",
    ] {
        assert_eq!(function_name(function), "test-recorder", "{function}");
    }
}

/// A test's config file: `[kafka]` with two brokers and the `kafka` lines, the `rest` tables,
/// and one mapping (function `f`, topic `t`) with the `mapping` lines.
#[derive(Debug, Clone, Copy, Default)]
struct TestFile<'a> {
    kafka: &'a str,
    mapping: &'a str,
    rest: &'a str,
}

/// A [`TestFile`] with `lines` in its mapping and nothing else beyond the required lines.
fn mapping(lines: &str) -> TestFile<'_> {
    TestFile {
        mapping: lines,
        ..TestFile::default()
    }
}

/// A [`TestFile`] with `lines` in `[kafka]` and nothing else beyond the required lines.
fn kafka(lines: &str) -> TestFile<'_> {
    TestFile {
        kafka: lines,
        ..TestFile::default()
    }
}

impl TestFile<'_> {
    fn validate(self) -> Result<ValidatedConfig, ConfigError> {
        let TestFile {
            kafka,
            mapping,
            rest,
        } = self;
        validate_text(&format!(
            "[kafka]\nbootstrap_servers = \"k1:9092,k2:9092\"\n{kafka}\n{rest}\n\
             [[mapping]]\nfunction = \"f\"\ntopics = [\"t\"]\n{mapping}\n"
        ))
    }

    /// Checks that the file is refused for `field`, with a problem that contains `problem`.
    fn assert_refused(self, field: &str, problem: &str) {
        match self.validate() {
            Err(ConfigError::Invalid {
                field: f,
                problem: p,
            }) => {
                assert_eq!(f, field, "{self:?}: {p}");
                assert!(
                    p.contains(problem),
                    "{self:?}: expected `{problem}`, got `{p}`"
                );
            }
            other => panic!("{self:?}: expected a refusal, got {other:?}"),
        }
    }
}

/// Validates a whole file's text.
fn validate_text(text: &str) -> Result<ValidatedConfig, ConfigError> {
    toml::from_str::<Config>(text)
        .expect("the test's TOML parses")
        .validate()
}

#[test]
fn defaults_resolve_into_the_runtime_model() {
    let c = TestFile::default().validate().unwrap();
    assert_eq!(c.kafka.bootstrap_servers, "k1:9092,k2:9092");
    assert_eq!(c.kafka.commit_interval_ms, 5_000);
    assert_eq!(c.kafka.fetch_wait_max_ms, 10);
    assert_eq!(c.drain_timeout, Duration::from_secs(30));
    assert_eq!(c.telemetry.listen, None);
    assert_eq!(c.lambda.invoke_timeout, None);
    let m = &c.mappings[0];
    assert_eq!(m.consumer_group, "kafka-lambda-f");
    assert_eq!(m.batch_size, 100);
    assert_eq!(m.batching_window, Duration::from_millis(500));
    assert_eq!(m.max_payload_bytes, SYNC_INVOKE_PAYLOAD_LIMIT);
    assert_eq!(m.max_retry_attempts, None, "-1 is infinite");
    assert_eq!(m.max_record_age, None);
    assert_eq!(m.event_source, EventSource::SelfManagedKafka);
}

#[test]
fn infinite_retries_are_capped_at_ten_with_a_dead_letter_topic() {
    let c = mapping("on_failure = \"kafka://dlq\"").validate().unwrap();
    assert_eq!(c.mappings[0].max_retry_attempts, Some(10));
    assert_eq!(c.mappings[0].on_failure.as_deref(), Some("dlq"));
}

#[test]
fn values_out_of_range_name_the_field_and_the_range() {
    for (lines, field, problem) in [
        (
            "batch_size = 0",
            "mapping[0].batch_size",
            "is 0; allowed: 1..=10000",
        ),
        (
            "batch_size = 10001",
            "mapping[0].batch_size",
            "allowed: 1..=10000",
        ),
        (
            "max_concurrency = 1001",
            "mapping[0].max_concurrency",
            "allowed: 1..=1000",
        ),
        (
            "max_payload_bytes = 100",
            "mapping[0].max_payload_bytes",
            "allowed: 1024..=6291456",
        ),
        (
            "retry_backoff_base_ms = 500\nretry_backoff_max_ms = 100",
            "mapping[0].retry_backoff_max_ms",
            "allowed: 500..=600000",
        ),
        (
            "max_retry_attempts = -2",
            "mapping[0].max_retry_attempts",
            "-1 (infinite) or 0..=10000",
        ),
        (
            "max_record_age_s = 59",
            "mapping[0].max_record_age_s",
            "-1 (no limit) or 60..=604800",
        ),
    ] {
        mapping(lines).assert_refused(field, problem);
    }
    kafka("commit_interval_ms = 50")
        .assert_refused("kafka.commit_interval_ms", "is 50; allowed: 100..=3600000");
}

#[test]
fn bootstrap_servers_must_each_be_host_and_port() {
    let text = "[kafka]\nbootstrap_servers = \"k1:9092, k2\"\n[[mapping]]\nfunction = \"f\"\ntopics = [\"t\"]\n";
    let error = validate_text(text).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid config: `kafka.bootstrap_servers` has `k2`, which is not host:port"
    );
}

#[test]
fn options_the_poller_owns_are_refused() {
    for key in ["enable.auto.offset.store", "group.id", "enable.auto.commit"] {
        kafka(&format!("[kafka.options]\n\"{key}\" = \"x\""))
            .assert_refused(&format!("kafka.options.\"{key}\""), "managed by the poller");
    }
    kafka("[kafka.options]\n\"group.protocol\" = \"consumer\"")
        .assert_refused("kafka.options.\"group.protocol\"", "kafka.group_protocol");
}

#[test]
fn a_drain_timeout_must_stay_below_the_poll_interval_it_blocks() {
    TestFile {
        kafka: "[kafka.options]\n\"max.poll.interval.ms\" = \"20000\"",
        rest: "[shutdown]\ndrain_timeout_ms = 20000",
        ..TestFile::default()
    }
    .assert_refused("shutdown.drain_timeout_ms", "max.poll.interval.ms (20000)");
    assert!(
        TestFile {
            kafka: "[kafka.options]\n\"max.poll.interval.ms\" = \"20001\"",
            rest: "[shutdown]\ndrain_timeout_ms = 20000",
            ..TestFile::default()
        }
        .validate()
        .is_ok()
    );
}

#[test]
fn starting_position_and_its_timestamp_go_together() {
    mapping("starting_position = \"AT_TIMESTAMP\"")
        .assert_refused("mapping[0].starting_position_timestamp", "is required");
    mapping("starting_position_timestamp = 1700000000").assert_refused(
        "mapping[0].starting_position_timestamp",
        "only allowed with",
    );
    let c =
        mapping("starting_position = \"AT_TIMESTAMP\"\nstarting_position_timestamp = 1700000000")
            .validate()
            .unwrap();
    assert_eq!(
        c.mappings[0].starting_position_timestamp_ms,
        Some(1_700_000_000_000)
    );
}

#[test]
fn an_msk_mapping_needs_the_cluster_arn_and_only_msk_sends_one() {
    mapping("event_source = \"aws:kafka\"").assert_refused("mapping[0].event_source_arn", "");
    mapping("event_source = \"aws:kafka\"\nevent_source_arn = \"cluster\"")
        .assert_refused("mapping[0].event_source_arn", "is `cluster`, not an ARN");
    mapping("event_source_arn = \"arn:aws:kafka:x\"").assert_refused(
        "mapping[0].event_source_arn",
        "only sent for event_source = \"aws:kafka\"",
    );
    mapping("event_source = \"kafka\"").assert_refused("mapping[0].event_source", "");
}

#[test]
fn the_dead_letter_topic_is_a_topic_and_never_the_source_on_the_same_cluster() {
    mapping("on_failure = \"dlq\"").assert_refused("mapping[0].on_failure", "kafka://TOPIC");
    mapping("on_failure = \"kafka://t\"")
        .assert_refused("mapping[0].on_failure", "read again forever");
    // The same brokers in another order and case are the same cluster.
    mapping("on_failure = \"kafka://t\"\non_failure_bootstrap_servers = \"K2:9092, k1:9092\"")
        .assert_refused("mapping[0].on_failure", "read again forever");
    assert!(
        mapping("on_failure = \"kafka://t\"\non_failure_bootstrap_servers = \"other:9092\"")
            .validate()
            .is_ok(),
        "the same name on another cluster is another topic"
    );
    mapping("on_failure_bootstrap_servers = \"other:9092\"")
        .assert_refused("mapping[0].on_failure_bootstrap_servers", "");
}

#[test]
fn topic_names_follow_kafkas_rule() {
    for topic in ["", "a b", "..", &"x".repeat(250)] {
        let text = format!(
            "[kafka]\nbootstrap_servers = \"k:9092\"\n[[mapping]]\nfunction = \"f\"\ntopics = [\"{topic}\"]\n"
        );
        let error = validate_text(&text).unwrap_err();
        assert!(
            error.to_string().contains("mapping[0].topics"),
            "{topic}: {error}"
        );
    }
}

#[test]
fn two_mappings_may_not_share_a_consumer_group() {
    let text = "[kafka]\nbootstrap_servers = \"k:9092\"\n\
                [[mapping]]\nfunction = \"f:live\"\ntopics = [\"a\"]\n\
                [[mapping]]\nfunction = \"f:test\"\ntopics = [\"b\"]\n";
    let error = validate_text(text).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid config: `mapping[1].consumer_group` `kafka-lambda-f` is used by another mapping; each mapping needs its own group"
    );
}

#[test]
fn check_output_shows_the_derived_group_and_redacts_secret_options() {
    let text = "[kafka]\nbootstrap_servers = \"k:9092\"\n[kafka.options]\n\"ssl.key.password\" = \"hunter2\"\n\
                [[mapping]]\nfunction = \"f\"\ntopics = [\"t\"]\n";
    let file: Config = toml::from_str(text).unwrap();
    let valid = file.clone().validate().unwrap();
    let shown = file.to_redacted_toml(&valid.mappings);
    assert!(
        shown.contains("consumer_group = \"kafka-lambda-f\""),
        "{shown}"
    );
    assert!(
        shown.contains("<redacted>") && !shown.contains("hunter2"),
        "{shown}"
    );
}

#[test]
fn ordering_defaults_to_partition_and_key_gets_a_bounded_look_ahead() {
    let c = TestFile::default().validate().unwrap();
    assert_eq!(c.mappings[0].ordering, Ordering::Partition);
    let c = mapping("ordering = \"key\"\nbatch_size = 500")
        .validate()
        .unwrap();
    assert_eq!(c.mappings[0].ordering, Ordering::Key);
    assert_eq!(
        c.mappings[0].max_records_in_flight_per_partition, 5_000,
        "10 × batch_size"
    );
    for (batch_size, window) in [(10, 1_000), (10_000, 10_000)] {
        let c = mapping(&format!("ordering = \"key\"\nbatch_size = {batch_size}"))
            .validate()
            .unwrap();
        assert_eq!(
            c.mappings[0].max_records_in_flight_per_partition, window,
            "{batch_size}"
        );
    }
    let c = mapping("ordering = \"none\"\nmax_records_in_flight_per_partition = 7")
        .validate()
        .unwrap();
    assert_eq!(c.mappings[0].max_records_in_flight_per_partition, 7);
}

#[test]
fn the_look_ahead_is_refused_out_of_range_or_without_an_ordering_that_uses_it() {
    mapping("ordering = \"key\"\nmax_records_in_flight_per_partition = 0").assert_refused(
        "mapping[0].max_records_in_flight_per_partition",
        "allowed: 1..=100000",
    );
    mapping("max_records_in_flight_per_partition = 10").assert_refused(
        "mapping[0].max_records_in_flight_per_partition",
        "only used with ordering",
    );
    let text = "[kafka]\nbootstrap_servers = \"k:9092\"\n[[mapping]]\nfunction = \"f\"\ntopics = [\"t\"]\nordering = \"offset\"\n";
    let error = toml::from_str::<Config>(text).unwrap_err().to_string();
    assert!(
        error.contains("partition") && error.contains("key") && error.contains("none"),
        "{error}"
    );
}

/// `[mapping.schema_registry]` with `lines`.
fn registry(lines: &str) -> String {
    format!("[mapping.schema_registry]\n{lines}")
}

#[test]
fn a_schema_registry_resolves_to_its_target_and_defaults() {
    let c = mapping(&registry("uri = \"https://sr.example.com:8081/\""))
        .validate()
        .unwrap();
    let r = c.mappings[0].schema_registry.as_ref().unwrap();
    assert!(
        matches!(&r.target, crate::config::RegistryTarget::Confluent { url, .. } if url == "https://sr.example.com:8081")
    );
    assert_eq!(
        r.event_record_format,
        crate::config::EventRecordFormat::Json
    );
    assert!(r.value && !r.key, "VALUE by default");
    assert_eq!(r.max_cached_schemas, 1000);
    let c = mapping(&registry(
            "uri = \"arn:aws:glue:eu-west-1:123456789012:registry/orders\"\nevent_record_format = \"SOURCE\"\nschema_validation = [\"KEY\", \"VALUE\"]",
        )).validate()
    .unwrap();
    let r = c.mappings[0].schema_registry.as_ref().unwrap();
    assert!(matches!(
        &r.target,
        crate::config::RegistryTarget::Glue { endpoint: None, .. }
    ));
    assert!(r.key && r.value);
    assert_eq!(
        r.event_record_format,
        crate::config::EventRecordFormat::Source
    );
}

#[test]
fn a_schema_registry_uri_must_be_a_url_or_a_glue_registry_arn() {
    for uri in [
        "sr.example.com:8081",
        "arn:aws:glue:eu-west-1:123456789012:schema/orders/x",
        "arn:aws:kafka:eu-west-1:123456789012:registry/orders",
        "arn:aws:glue::123456789012:registry/orders",
    ] {
        mapping(&registry(&format!("uri = \"{uri}\"")))
            .assert_refused("mapping[0].schema_registry.uri", uri);
    }
}

#[test]
fn schema_registry_access_settings_must_fit_the_registry() {
    let glue = "uri = \"arn:aws:glue:eu-west-1:123456789012:registry/orders\"";
    mapping(&registry(&format!("{glue}\nusername = \"u\""))).assert_refused(
        "mapping[0].schema_registry.username",
        "glue:GetSchemaVersion",
    );
    let url = "uri = \"https://sr:8081\"";
    for (lines, field, problem) in [
        ("username = \"u\"", "password", "username needs it"),
        (
            "client_certificate = \"/nonexistent/cert.pem\"",
            "client_key",
            "client_certificate needs it",
        ),
        (
            "server_root_ca = \"/nonexistent/ca.pem\"",
            "server_root_ca",
            "cannot be read",
        ),
        (
            "glue_endpoint = \"http://localhost:5000\"",
            "glue_endpoint",
            "only used with an AWS Glue",
        ),
        ("schema_validation = []", "schema_validation", "is empty"),
        (
            "request_timeout_ms = 10",
            "request_timeout_ms",
            "100..=120000",
        ),
        ("max_cached_schemas = 0", "max_cached_schemas", "1..=100000"),
        (
            "password = { env = \"KL_TEST_UNSET_REGISTRY_PASSWORD\" }\nusername = \"u\"",
            "password",
            "not set",
        ),
    ] {
        mapping(&registry(&format!("{url}\n{lines}")))
            .assert_refused(&format!("mapping[0].schema_registry.{field}"), problem);
    }
    let text = format!(
        "[kafka]\nbootstrap_servers = \"k:9092\"\n[[mapping]]\nfunction = \"f\"\ntopics = [\"t\"]\n{}",
        registry("uri = \"https://sr:8081\"\nevent_record_format = \"AVRO\"")
    );
    let error = toml::from_str::<Config>(&text).unwrap_err().to_string();
    assert!(
        error.contains("JSON") && error.contains("SOURCE"),
        "{error}"
    );
}

#[test]
fn a_schema_registry_password_is_read_and_never_printed() {
    let file = std::env::temp_dir().join(format!("kl-registry-password-{}", std::process::id()));
    std::fs::write(&file, "s3cret\n").unwrap();
    let c = mapping(&registry(&format!(
        "uri = \"https://sr:8081\"\nusername = \"svc\"\npassword = {{ file = \"{}\" }}",
        file.display()
    )))
    .validate()
    .unwrap();
    let _ = std::fs::remove_file(&file);
    let r = c.mappings[0].schema_registry.as_ref().unwrap();
    let crate::config::RegistryTarget::Confluent { auth, .. } = &r.target else {
        panic!("a Confluent registry");
    };
    assert_eq!(auth.basic, Some(("svc".to_owned(), "s3cret".to_owned())));
    assert!(!format!("{r:?}").contains("s3cret"));
}
