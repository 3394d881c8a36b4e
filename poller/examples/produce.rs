//! Produces one record per line of standard input to a topic, spreading lines over its
//! partitions round-robin; used by `scripts/demo.sh` to feed sample records to the poller.
//!
//! ```text
//! cargo run -p kafka-lambda-poller --example produce -- BOOTSTRAP TOPIC PARTITIONS < lines.jsonl
//! ```

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::io::BufRead;
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, topic, partitions] = args.as_slice() else {
        anyhow::bail!("usage: produce BOOTSTRAP TOPIC PARTITIONS < lines");
    };
    let partitions: i32 = partitions.parse()?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "30000")
        .create()?;
    let mut count = 0;
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let key = format!("sample-{i}");
        let record = FutureRecord::to(topic)
            .partition(i as i32 % partitions)
            .key(&key)
            .payload(&line);
        producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| e)?;
        count += 1;
    }
    println!("produced {count} record(s) to {topic}");
    Ok(())
}
