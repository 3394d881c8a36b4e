//! `bench-noop`: the function the throughput benchmark runs under `cargo lambda watch`. It
//! answers every invocation with `{}` and does no work of its own, so what is measured is the
//! poller, the emulator and `lambda_runtime` reading the payload.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::value::RawValue;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_: LambdaEvent<Box<RawValue>>| async {
        Ok::<_, Error>(serde_json::json!({}))
    }))
    .await
}
