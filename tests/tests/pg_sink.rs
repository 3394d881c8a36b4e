//! `examples/pg-sink` end to end against a real PostgreSQL server: the private cluster of
//! `scripts/postgres.sh` (started by `scripts/services.sh start`, or here when it is not
//! running), and for the outage test a second cluster of its own that the test stops and
//! starts again.
//!
//! Each test writes its own table (`PG_SINK_TABLE`) and runs its own `cargo lambda watch` on a
//! free port with its own environment, since the function is configured by environment
//! variables. Invoked directly with AWS-shaped events, and through the real
//! `kafka-lambda-poller` binary reading a topic of the shared broker, behind
//! `cargo lambda watch` and behind AWS's Runtime Interface Emulator alike
//! (`kafka_lambda_tests::FunctionHost`).

use kafka_lambda_events::KafkaRecord;
use kafka_lambda_tests::{
    Emulator, HostKind, Poller, free_port, new_topic, poll_until, produce_all, repo_root,
    topic_name, unique_name, wait_until,
};
use rdkafka::producer::BaseRecord;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const FUNCTION: &str = "pg-sink";

/// 2023-11-14T22:13:20Z, the moment every sample view happened.
const VIEWED_AT: i64 = 1_700_000_000;

/// One sample of each producer's shape, all describing a view of `ad` by `user` at
/// [`VIEWED_AT`] for 0.25 (USD unless said otherwise).
fn web(ad: &str, user: &str) -> Value {
    json!({"adId": ad, "userId": user, "ts": VIEWED_AT * 1000, "price": "0.25", "page": "/home"})
}
fn mobile(ad: &str, user: &str) -> Value {
    json!({"ad_id": ad, "user": {"id": user, "os": "ios"}, "viewed_at": "2023-11-14T22:13:20Z",
           "price_micros": 250_000})
}
fn exchange(ad: &str, user: &str) -> Value {
    json!({"creative_id": ad, "viewer_id": user, "timestamp_s": VIEWED_AT,
           "price": {"amount": "0.25", "currency": "EUR"}, "bid_id": "b-1"})
}

/// A row as the test reads it back: topic, partition, offset, ad, user, epoch seconds,
/// price in micros, currency, shape.
type Row = (
    String,
    i32,
    i64,
    String,
    Option<String>,
    i64,
    i64,
    String,
    String,
);

fn row(
    topic: &str,
    partition: i32,
    offset: i64,
    ad: &str,
    user: &str,
    currency: &str,
    shape: &str,
) -> Row {
    (
        topic.to_owned(),
        partition,
        offset,
        ad.to_owned(),
        Some(user.to_owned()),
        VIEWED_AT,
        250_000,
        currency.to_owned(),
        shape.to_owned(),
    )
}

#[test]
fn mixed_shapes_become_exactly_the_normalized_rows_and_a_retry_adds_none() {
    let table = table_name("mixed");
    let emulator = function_emulator(&[
        ("PG_URL", pg_url()),
        ("PG_SINK_TABLE", table.clone()),
        ("PG_SINK_REPORT_BATCH_ITEM_FAILURES", "true".into()),
    ]);
    let topic = topic_name("pg_mixed");
    let json = |partition, offset, value: Value| {
        KafkaRecord::new(&topic, partition, offset).with_value(value.to_string())
    };
    let event = msk_event([
        json(0, 10, web("a1", "u1")),
        json(0, 11, mobile("a2", "u2")),
        json(0, 12, exchange("a3", "u3")),
        json(1, 20, mobile("a4", "u4")),
        // Not an ad view of any known shape: fails, and stops partition 1 there.
        json(1, 21, json!({"campaign": "c1", "clicks": 3})),
        json(1, 22, web("a6", "u6")),
    ]);
    let expected = vec![
        row(&topic, 0, 10, "a1", "u1", "USD", "web"),
        row(&topic, 0, 11, "a2", "u2", "USD", "mobile"),
        row(&topic, 0, 12, "a3", "u3", "EUR", "exchange"),
        row(&topic, 1, 20, "a4", "u4", "USD", "mobile"),
    ];
    let failure = json!({"batchItemFailures": [
        {"itemIdentifier": {"partition": format!("{topic}-1"), "offset": 21}},
    ]});

    let first = emulator.invoke(FUNCTION, &event).expect_success();
    assert_eq!(first, failure, "the unrecognized record is reported");
    assert_eq!(rows(&pg_url(), &table), expected);
    let unrecognized = format!("{topic}-1@21");
    wait_until(
        Duration::from_secs(10),
        "the function logs the unrecognized record with its id",
        || {
            emulator.log_text().lines().any(|line| {
                line.contains(&unrecognized) && line.contains("unrecognized ad-view shape")
            })
        },
    );

    // The same batch again, as a retry would send it: the same rows, none added.
    let second = emulator.invoke(FUNCTION, &event).expect_success();
    assert_eq!(second, failure);
    assert_eq!(rows(&pg_url(), &table), expected);
}

#[test]
fn a_database_outage_fails_the_batch_until_the_database_is_back() {
    let cluster = Cluster::start();
    let table = table_name("outage");
    let emulator = function_emulator(&[
        ("PG_URL", cluster.url.clone()),
        ("PG_SINK_TABLE", table.clone()),
        ("PGCONNECT_TIMEOUT", "2".into()),
    ]);
    let topic = topic_name("pg_outage");
    let event = |offset: i64| {
        msk_event([KafkaRecord::new(&topic, 0, offset).with_value(web("a1", "u1").to_string())])
    };

    emulator.invoke(FUNCTION, event(1)).expect_success();
    cluster.stop();
    for offset in [2, 3] {
        let error = emulator
            .invoke(FUNCTION, event(offset))
            .expect_function_error();
        assert_eq!(error.error_type, "KafkaBatchFailed", "{error:?}");
        assert!(error.error_message.contains("PostgreSQL"), "{error:?}");
    }
    cluster.start_again();
    emulator.invoke(FUNCTION, event(2)).expect_success();
    let offsets: Vec<i64> = rows(&cluster.url, &table).iter().map(|r| r.2).collect();
    assert_eq!(
        offsets,
        [1, 2],
        "the failed batch was not written, its retry was"
    );
}

#[test]
fn a_user_without_the_create_privilege_writes_to_an_existing_table() {
    // The table as README.md documents it, created ahead by an administrator; the function's
    // user may only read and write it (PostgreSQL 15 gives PUBLIC no CREATE on `public`).
    let table = table_name("grants");
    let user = unique_name("sink_writer").replace('-', "_");
    query(&pg_url(), async |client| {
        let readme = std::fs::read_to_string(repo_root().join("examples/pg-sink/README.md"))
            .expect("examples/pg-sink/README.md");
        let ddl = readme
            .split("```sql\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("README.md shows the table's DDL")
            .replace("ad_views", &table);
        client
            .batch_execute(&format!(
                "{ddl}
                 CREATE ROLE {user} LOGIN;
                 GRANT SELECT, INSERT, UPDATE ON {table} TO {user};"
            ))
            .await
            .unwrap_or_else(|e| panic!("preparing {table} for {user}: {e}"));
    });
    let url = pg_url().replacen("postgres://postgres@", &format!("postgres://{user}@"), 1);
    let emulator = function_emulator(&[("PG_URL", url), ("PG_SINK_TABLE", table.clone())]);
    let topic = topic_name("pg_grants");
    let event = msk_event([
        KafkaRecord::new(&topic, 0, 1).with_value(web("a1", "u1").to_string()),
        KafkaRecord::new(&topic, 0, 2).with_value(exchange("a2", "u2").to_string()),
    ]);
    for _ in 0..2 {
        emulator.invoke(FUNCTION, &event).expect_success();
    }
    assert_eq!(
        rows(&pg_url(), &table),
        [
            row(&topic, 0, 1, "a1", "u1", "USD", "web"),
            row(&topic, 0, 2, "a2", "u2", "EUR", "exchange"),
        ]
    );
}

#[test]
fn the_poller_delivers_a_topic_of_mixed_shapes_into_the_table() {
    delivers_through_the_poller(HostKind::CargoLambdaWatch);
}

#[test]
fn the_poller_delivers_a_topic_of_mixed_shapes_into_the_table_behind_the_runtime_interface_emulator()
 {
    delivers_through_the_poller(HostKind::RuntimeInterfaceEmulator);
}

/// The poller reads a two-partition topic and invokes pg-sink behind `kind` of host.
fn delivers_through_the_poller(kind: HostKind) {
    let table = table_name("poller");
    let host = kind.start(
        FUNCTION,
        FUNCTION,
        &[
            ("PG_URL", &pg_url()),
            ("PG_SINK_TABLE", &table),
            ("PG_SINK_INVALID_RECORDS", "skip"),
            ("PG_SINK_REPORT_BATCH_ITEM_FAILURES", "true"),
        ],
    );
    let topic = new_topic("pg_poller", 2);
    let mut values = Vec::new();
    let mut expected = Vec::new();
    for partition in 0..2 {
        for i in 0..12_i64 {
            let ad = format!("ad-{partition}-{i}");
            let user = format!("user-{i}");
            let (value, currency, shape) = match i % 4 {
                0 => (web(&ad, &user).to_string(), "USD", "web"),
                1 => (mobile(&ad, &user).to_string(), "USD", "mobile"),
                2 => (exchange(&ad, &user).to_string(), "EUR", "exchange"),
                // Skipped by the `skip` policy: logged, not written, not failed.
                _ => ("not an ad view".to_owned(), "", ""),
            };
            values.push((partition, value));
            if !shape.is_empty() {
                expected.push(row(&topic, partition, i, &ad, &user, currency, shape));
            }
        }
    }
    produce_all(
        &[],
        values.iter().map(|(partition, value)| {
            BaseRecord::<(), _>::to(&topic)
                .partition(*partition)
                .payload(value)
        }),
    );

    let config = host.mapping_config(
        FUNCTION,
        &topic,
        "starting_position = \"TRIM_HORIZON\"\n\
             batch_size = 5\n\
             batching_window_ms = 20\n\
             report_batch_item_failures = true",
    );
    let mut poller = Poller::start("pg-sink", &config);
    let mut found = Vec::new();
    poll_until(Duration::from_secs(90), || {
        found = rows_if_any(&pg_url(), &table);
        found.len() >= expected.len()
    });
    poller.stop();
    assert_eq!(
        found,
        expected,
        "poller log:\n{}\n{kind:?} log:\n{}",
        poller.log(),
        host.log_text()
    );
}

// -------------------------------------------------------------------------------------------
// The database

/// The URL of the shared private cluster: `scripts/postgres.sh start` (quick when it already
/// runs, as after `scripts/services.sh start`), then its `env`.
fn pg_url() -> String {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        postgres_script(&[], "start");
        let output = postgres_script(&[], "env");
        output
            .trim()
            .strip_prefix("export KL_PG_URL=")
            .unwrap_or_else(|| panic!("scripts/postgres.sh env printed {output:?}"))
            .to_owned()
    })
    .clone()
}

/// Runs `scripts/postgres.sh <command>` with `env`; its stdout.
fn postgres_script(env: &[(&str, &str)], command: &str) -> String {
    let output = Command::new("bash")
        .arg(repo_root().join("scripts/postgres.sh"))
        .arg(command)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("scripts/postgres.sh runs");
    assert!(
        output.status.success(),
        "scripts/postgres.sh {command} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn table_name(test: &str) -> String {
    unique_name(&format!("ad_views_{test}")).replace('-', "_")
}

fn query<T>(url: &str, f: impl AsyncFnOnce(&tokio_postgres::Client) -> T) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
        tokio::spawn(connection);
        f(&client).await
    })
}

/// Every row of `table`, in key order; the table must exist.
fn rows(url: &str, table: &str) -> Vec<Row> {
    query(url, async |client| {
        client
            .query(
                &format!(
                    "SELECT kafka_topic, kafka_partition, kafka_offset, ad_id, user_id,
                            extract(epoch FROM viewed_at)::bigint, price_micros, currency,
                            source_shape
                     FROM {table} ORDER BY kafka_topic, kafka_partition, kafka_offset"
                ),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("reading {table}: {e}"))
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    r.get(6),
                    r.get(7),
                    r.get(8),
                )
            })
            .collect()
    })
}

/// [`rows`], or none while the function has not created the table yet.
fn rows_if_any(url: &str, table: &str) -> Vec<Row> {
    let exists = query(url, async |client| {
        client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
            .await
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(false)
    });
    if exists { rows(url, table) } else { Vec::new() }
}

/// A PostgreSQL cluster of this test alone (`scripts/postgres.sh` with its own port and
/// directory), removed when dropped.
struct Cluster {
    port: String,
    dir: PathBuf,
    url: String,
}

impl Cluster {
    fn start() -> Cluster {
        let port = free_port().to_string();
        let dir = repo_root()
            .join(".services")
            .join(unique_name("postgres-outage"));
        let cluster = Cluster {
            url: format!("postgres://postgres@127.0.0.1:{port}/kafka_lambda"),
            port,
            dir,
        };
        cluster.start_again();
        cluster
    }

    fn env(&self) -> [(&str, &str); 2] {
        [
            ("KL_PG_PORT", self.port.as_str()),
            ("KL_PG_DIR", self.dir.to_str().expect("a UTF-8 path")),
        ]
    }

    fn start_again(&self) {
        postgres_script(&self.env(), "start");
    }

    fn stop(&self) {
        postgres_script(&self.env(), "stop");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("scripts/postgres.sh"))
            .arg("stop")
            .envs(self.env())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(self.dir.with_extension("lock"));
    }
}

// -------------------------------------------------------------------------------------------
// Events, the private emulator, the poller

fn msk_event(records: impl IntoIterator<Item = KafkaRecord>) -> Vec<u8> {
    kafka_lambda_tests::msk_event("ads", "eu-west-1", records)
}

/// This test's own emulator serving pg-sink, configured by `env`.
fn function_emulator(env: &[(&str, String)]) -> Emulator {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Emulator::start(FUNCTION, &[FUNCTION], &env)
}
