//! The journal writer: one thread that owns the write connection and commits whatever
//! batches are waiting as one durable transaction (group commit).
//!
//! A caller submits a batch with a completion callback; the callback runs on the writer
//! thread once the batch is durable (or has failed). If a group fails (a duplicate key
//! in one batch, say), each batch of the group is retried on its own, so one bad batch
//! never takes the others down with it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::{Backend, StoreError};
use records::Write;

/// What a submitter learns: the batch is durable, or why not.
pub type Persisted = Result<(), Arc<StoreError>>;

type Callback = Box<dyn FnOnce(Persisted) + Send>;

struct Job {
    writes: Vec<Write>,
    done: Callback,
}

/// Limits of the journal writer.
#[derive(Debug, Clone, Copy)]
pub struct JournalConfig {
    /// Batches that may wait for the writer; submitters block beyond it (back-pressure).
    pub queue_depth: usize,
    /// Writes gathered into one commit at most.
    pub max_group_writes: usize,
}

impl Default for JournalConfig {
    fn default() -> JournalConfig {
        JournalConfig {
            queue_depth: 4096,
            max_group_writes: 8192,
        }
    }
}

/// Counters of the writer's work, for benchmarks and metrics.
#[derive(Debug, Default)]
pub struct JournalStats {
    /// Durable commits made.
    pub commits: AtomicU64,
    /// Writes committed.
    pub writes: AtomicU64,
    /// Batches committed.
    pub batches: AtomicU64,
}

/// Handle to the journal writer thread. Dropping it lets the thread finish the queue
/// and stop.
pub struct Journal {
    tx: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<JournalStats>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("stats", &self.stats)
            .finish()
    }
}

impl Journal {
    /// Starts the writer thread on `backend`.
    pub fn start(backend: Box<dyn Backend>, config: JournalConfig) -> Journal {
        let (tx, rx) = sync_channel::<Job>(config.queue_depth.max(1));
        let stats = Arc::new(JournalStats::default());
        let s = stats.clone();
        let thread = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer(backend, rx, config, &s))
            .ok();
        Journal {
            tx: Some(tx),
            thread,
            stats,
        }
    }

    /// Queues a batch; `done` runs once it is durable or has failed. Blocks while the
    /// queue is full.
    pub fn submit(&self, writes: Vec<Write>, done: impl FnOnce(Persisted) + Send + 'static) {
        let job = Job {
            writes,
            done: Box::new(done),
        };
        let Some(tx) = &self.tx else {
            (job.done)(Err(Arc::new(StoreError::WriterStopped)));
            return;
        };
        if let Err(e) = tx.send(job) {
            (e.0.done)(Err(Arc::new(StoreError::WriterStopped)));
        }
    }

    /// Queues a batch without blocking; gives it back if the queue is full.
    pub fn try_submit(
        &self,
        writes: Vec<Write>,
        done: impl FnOnce(Persisted) + Send + 'static,
    ) -> Result<(), Vec<Write>> {
        let job = Job {
            writes,
            done: Box::new(done),
        };
        let Some(tx) = &self.tx else {
            (job.done)(Err(Arc::new(StoreError::WriterStopped)));
            return Ok(());
        };
        match tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job)) => Err(job.writes),
            Err(TrySendError::Disconnected(job)) => {
                (job.done)(Err(Arc::new(StoreError::WriterStopped)));
                Ok(())
            }
        }
    }

    /// Submits and waits until durable (for tools and tests; not for async code).
    pub fn write_sync(&self, writes: Vec<Write>) -> Persisted {
        let (tx, rx) = std::sync::mpsc::channel();
        self.submit(writes, move |r| {
            let _ = tx.send(r);
        });
        rx.recv()
            .unwrap_or(Err(Arc::new(StoreError::WriterStopped)))
    }

    /// The writer's counters.
    pub fn stats(&self) -> &JournalStats {
        &self.stats
    }

    /// Finishes the queue and stops the writer.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Seconds one group commit took (the `metrics` facade: exported where the process
/// installs a recorder).
pub const COMMIT_SECONDS: &str = "posguard_journal_commit_seconds";
/// Writes in one group commit.
pub const GROUP_WRITES: &str = "posguard_journal_group_writes";

/// Describes the journal's metrics on the process's recorder.
pub fn describe_metrics() {
    metrics::describe_histogram!(
        COMMIT_SECONDS,
        metrics::Unit::Seconds,
        "One journal group commit, until durable"
    );
    metrics::describe_histogram!(GROUP_WRITES, "Writes gathered into one journal commit");
}

#[allow(clippy::disallowed_methods)] // the edge: how long a commit takes, for metrics
fn writer(
    mut backend: Box<dyn Backend>,
    rx: Receiver<Job>,
    config: JournalConfig,
    stats: &JournalStats,
) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let mut count = jobs[0].writes.len();
        while count < config.max_group_writes {
            match rx.try_recv() {
                Ok(j) => {
                    count += j.writes.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let mut all = Vec::with_capacity(count);
        let mut bounds = Vec::with_capacity(jobs.len());
        let mut callbacks = Vec::with_capacity(jobs.len());
        for j in jobs {
            let start = all.len();
            all.extend(j.writes);
            bounds.push(start..all.len());
            callbacks.push(j.done);
        }
        let started = std::time::Instant::now();
        let applied = backend.apply(&all);
        metrics::histogram!(COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::histogram!(GROUP_WRITES).record(all.len() as f64);
        match applied {
            Ok(()) => {
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats.writes.fetch_add(all.len() as u64, Ordering::Relaxed);
                stats
                    .batches
                    .fetch_add(callbacks.len() as u64, Ordering::Relaxed);
                for done in callbacks {
                    done(Ok(()));
                }
            }
            Err(group_error) if callbacks.len() == 1 => {
                tracing::warn!(error = %group_error, "journal batch failed");
                if let Some(done) = callbacks.into_iter().next() {
                    done(Err(Arc::new(group_error)));
                }
            }
            Err(group_error) => {
                tracing::warn!(error = %group_error, batches = callbacks.len(), "journal group failed; retrying batch by batch");
                for (range, done) in bounds.into_iter().zip(callbacks) {
                    let r = backend.apply(&all[range.clone()]);
                    if r.is_ok() {
                        stats.commits.fetch_add(1, Ordering::Relaxed);
                        stats
                            .writes
                            .fetch_add(range.len() as u64, Ordering::Relaxed);
                        stats.batches.fetch_add(1, Ordering::Relaxed);
                    }
                    done(r.map_err(Arc::new));
                }
            }
        }
    }
}
