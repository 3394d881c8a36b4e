//! The partition workers of one mapping: started when a partition is assigned, drained before
//! it is revoked or at shutdown, and supervised — a worker that panics stops the mapping.

use crate::consumer::{Assignments, PartitionQueue};
use crate::invoke::Invoker;
use crate::telemetry::Health;
use crate::worker::{self, DoneGuard, Shared, WorkerControl};
use futures::FutureExt;
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

struct WorkerHandle {
    stop: CancellationToken,
    abort: CancellationToken,
    done: Receiver<()>,
    join: JoinHandle<()>,
}

/// The running workers of one mapping, by topic-partition.
pub(crate) struct PartitionWorkers<I> {
    shared: Arc<Shared<I>>,
    runtime: tokio::runtime::Handle,
    workers: Mutex<HashMap<(String, i32), WorkerHandle>>,
    /// Cancelled at shutdown: workers spawned afterwards stop at once.
    shutdown: CancellationToken,
    /// How long a revoked partition's worker may take to finish its batch in flight.
    drain_timeout: Duration,
    supervisor: Arc<Supervisor>,
}

impl<I: Invoker> PartitionWorkers<I> {
    /// An empty set spawning workers of `shared` on the current runtime, each stopped when
    /// `shutdown` is cancelled and drained within `drain_timeout` when its partition is revoked.
    pub(crate) fn new(
        shared: Arc<Shared<I>>,
        shutdown: CancellationToken,
        drain_timeout: Duration,
        supervisor: Arc<Supervisor>,
    ) -> Self {
        PartitionWorkers {
            shared,
            runtime: tokio::runtime::Handle::current(),
            workers: Mutex::new(HashMap::new()),
            shutdown,
            drain_timeout,
            supervisor,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, i32), WorkerHandle>> {
        self.workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts the worker of a newly assigned partition.
    fn start(&self, topic: String, partition: i32, queue: PartitionQueue) {
        let stop = self.shutdown.child_token();
        let abort = CancellationToken::new();
        let (tx, done) = sync_channel(1);
        let control = WorkerControl {
            stop: stop.clone(),
            abort: abort.clone(),
            done: DoneGuard(tx),
        };
        let (shared, supervisor) = (self.shared.clone(), self.supervisor.clone());
        let function = shared.deliverer.invoker.function().to_owned();
        let key = (topic.clone(), partition);
        let join = self.runtime.spawn(async move {
            let span = tracing::info_span!("partition", %function, %topic, partition);
            let assigned = worker::Assigned {
                shared,
                topic: topic.clone(),
                partition,
                control,
            };
            let worker = worker::run(assigned, queue);
            supervisor
                .supervise(&function, &topic, partition, worker.instrument(span))
                .await;
        });
        if let Some(old) = self.lock().insert(
            key,
            WorkerHandle {
                stop,
                abort,
                done,
                join,
            },
        ) {
            old.abort.cancel();
        }
    }

    /// Stops the workers of `partitions` and waits (blocking the calling thread, which is the
    /// consumer's poll thread during a rebalance) until they finish their batch in flight or
    /// `timeout` passes; stragglers are aborted and their batch will be delivered again.
    fn drain(&self, partitions: &[(String, i32)], timeout: Duration) -> Vec<JoinHandle<()>> {
        let handles: Vec<_> = {
            let mut map = self.lock();
            partitions
                .iter()
                .filter_map(|key| map.remove(key).map(|h| (key.clone(), h)))
                .collect()
        };
        Self::stop_and_wait(handles, timeout)
    }

    /// Stops and drains every worker (shutdown).
    pub(crate) fn drain_all(&self, timeout: Duration) -> Vec<JoinHandle<()>> {
        let handles: Vec<_> = self.lock().drain().collect();
        Self::stop_and_wait(handles, timeout)
    }

    fn stop_and_wait(
        handles: Vec<((String, i32), WorkerHandle)>,
        timeout: Duration,
    ) -> Vec<JoinHandle<()>> {
        for (_, h) in &handles {
            h.stop.cancel();
        }
        let deadline = Instant::now() + timeout;
        let mut joins = Vec::with_capacity(handles.len());
        for ((topic, partition), h) in handles {
            let left = deadline.saturating_duration_since(Instant::now());
            if h.done.recv_timeout(left).is_err() && !h.join.is_finished() {
                tracing::warn!(%topic, partition, timeout_ms = timeout.as_millis() as u64,
                    "drain timeout passed with a batch in flight; it will be delivered again by the next owner");
                h.abort.cancel();
            }
            joins.push(h.join);
        }
        joins
    }

    /// Number of partitions with a running worker.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

impl<I: Invoker> Assignments for PartitionWorkers<I> {
    fn assigned(&self, topic: String, partition: i32, queue: PartitionQueue) {
        self.start(topic, partition, queue);
    }

    fn revoking(&self, partitions: &[(String, i32)]) {
        self.drain(partitions, self.drain_timeout);
    }
}

/// Watches a mapping's workers: the first that dies stops the mapping.
#[derive(Debug)]
pub(crate) struct Supervisor {
    /// Readiness, turned off when a worker dies.
    health: Arc<Health>,
    /// The mapping's shutdown.
    stop: CancellationToken,
    /// Why the first worker that died did.
    died: OnceLock<String>,
}

impl Supervisor {
    /// A supervisor that cancels `stop` and reports to `health` when a worker dies.
    pub(crate) fn new(health: Arc<Health>, stop: CancellationToken) -> Self {
        Supervisor {
            health,
            stop,
            died: OnceLock::new(),
        }
    }

    /// Why the first worker that died did, if one did.
    pub(crate) fn died(&self) -> Option<&str> {
        self.died.get().map(String::as_str)
    }

    /// Runs a partition's `worker`. A worker that dies (panics) leaves its partition unconsumed
    /// while the group thinks it is owned: the mapping is stopped (what was done is committed,
    /// the process exits non-zero and its supervisor restarts it) and `/readyz` turns 503.
    pub(crate) async fn supervise(
        &self,
        function: &str,
        topic: &str,
        partition: i32,
        worker: impl std::future::Future<Output = ()>,
    ) {
        let Err(panic) = std::panic::AssertUnwindSafe(worker).catch_unwind().await else {
            return;
        };
        let reason = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        tracing::error!(function, %topic, partition, %reason,
            "the partition worker panicked; stopping the mapping (what was delivered is committed) so that the process exits 1 and is restarted");
        self.health.set_worker_died();
        let _ = self.died.set(format!(
            "the worker of partition {topic}-{partition} panicked: {reason}"
        ));
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn supervisor() -> Supervisor {
        Supervisor::new(Arc::new(Health::new(1)), CancellationToken::new())
    }

    #[tokio::test]
    async fn a_partition_worker_that_panics_stops_the_mapping_and_turns_readiness_off() {
        let s = supervisor();
        s.health.set_joined(0, true);
        assert!(s.health.is_ready());
        s.supervise("f", "t", 4, async { panic!("boom at offset 7") })
            .await;
        assert!(s.stop.is_cancelled(), "the mapping is stopped");
        assert_eq!(
            s.died(),
            Some("the worker of partition t-4 panicked: boom at offset 7")
        );
        assert!(
            s.health
                .not_ready()
                .is_some_and(|why| why.contains("partition worker stopped"))
        );
    }

    #[tokio::test]
    async fn a_partition_worker_that_ends_normally_stops_nothing() {
        let s = supervisor();
        s.supervise("f", "t", 4, async {}).await;
        assert!(!s.stop.is_cancelled());
        assert!(s.died().is_none());
    }
}
