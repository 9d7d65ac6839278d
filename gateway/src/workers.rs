//! The proxy's worker threads: one single-threaded tokio runtime per core, as nginx runs one worker
//! process per core. An accepted connection is handed to the worker with the fewest open
//! connections and lives there to its end, together with the upstream connections its requests
//! use (the upstream pool keeps idle connections per worker) and the router and plugin instances
//! it calls (each worker takes its own). So a request's work stays on one core: no task is woken
//! across threads on the request path, and no cache line is shared between cores per request.
//!
//! Why not tokio's multi-threaded runtime: its idle workers are woken whenever work appears
//! (`futex` calls and scheduler work in the kernel on every request, see docs/benchmarks.md), and a
//! client connection and its upstream connection's driver land on different threads. Why not one
//! `reuseport` socket per worker: the kernel spreads connections by hash, unevenly for a few
//! long-lived keep-alive connections (tried: one core starved while the other queued).

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

thread_local! {
    static CURRENT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The index of the proxy worker running on this thread, if this thread is one.
pub fn current() -> Option<usize> {
    CURRENT.with(Cell::get)
}

/// One `T` per proxy worker, and one more for every other thread, each behind its own lock on
/// cache lines of its own: a worker locks only its own (never contended), so state kept this way
/// (idle upstream connections, route decisions) stays on the worker's core.
pub struct PerWorker<T> {
    shards: Box<[Padded<std::sync::Mutex<T>>]>,
}

#[repr(align(128))]
struct Padded<T>(T);

impl<T: Default> PerWorker<T> {
    /// For `workers` proxy workers.
    pub fn new(workers: usize) -> PerWorker<T> {
        PerWorker { shards: (0..=workers).map(|_| Padded(std::sync::Mutex::default())).collect() }
    }
}

impl<T> PerWorker<T> {
    /// This thread's `T`: its worker's own, or the one other threads share.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        let i = current().map_or(0, |worker| worker + 1) % self.shards.len();
        self.shards[i].0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every `T` in turn, each under its lock: for a thread that gathers what the workers keep
    /// (the access log's writer).
    pub fn each(&self, mut f: impl FnMut(&mut T)) {
        for shard in &self.shards {
            f(&mut shard.0.lock().unwrap_or_else(|p| p.into_inner()));
        }
    }
}

/// A worker's count of open connections, on a cache line of its own: each connection's end
/// writes it from that worker.
#[repr(align(128))]
#[derive(Default)]
struct Open(AtomicUsize);

struct Worker {
    handle: Handle,
    open: Arc<Open>,
    stop: Option<oneshot::Sender<()>>,
}

/// The running workers. Dropping them stops their threads; what is still on them is dropped.
pub struct Workers {
    workers: Vec<Worker>,
    /// Where the search for the least busy worker starts, in turn, so ties spread evenly.
    next: AtomicUsize,
    /// Connections assigned since the start.
    accepted: AtomicU64,
    /// Room for client connections: `nginx_events_worker_connections` per worker. The listeners
    /// wait for room before they accept, so connections beyond it wait in the listen backlog.
    room: Arc<Semaphore>,
    per_worker: usize,
}

/// Room for one client connection, held until the connection ends (dropping it gives the room
/// back).
pub struct Admission(#[allow(dead_code)] OwnedSemaphorePermit);

/// A worker chosen for a connection: spawn the connection's task on `handle` and keep `open` in it
/// until the connection ends.
pub struct Assigned {
    pub handle: Handle,
    pub open: OpenConnection,
}

/// Counts as one open connection on its worker, and holds its room, while it lives.
pub struct OpenConnection(Arc<Open>, #[allow(dead_code)] Admission);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Workers {
    /// Starts `count` workers (at least one), threads named `{name}-{i}`, each serving at most
    /// `per_worker` client connections at once.
    pub fn start(count: usize, name: &str, per_worker: usize) -> std::io::Result<Workers> {
        let mut workers = Vec::with_capacity(count.max(1));
        for i in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let handle = runtime.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            std::thread::Builder::new().name(format!("{name}-{i}")).spawn(move || {
                CURRENT.set(Some(i));
                // Runs the connections spawned onto this runtime until the workers are dropped
                // (the sender goes away); then the runtime drops whatever is left on it.
                runtime.block_on(async move {
                    let _ = stopped.await;
                });
            })?;
            workers.push(Worker { handle, open: Arc::default(), stop: Some(stop) });
        }
        let per_worker = per_worker.max(1);
        let room = per_worker.saturating_mul(workers.len()).min(Semaphore::MAX_PERMITS);
        Ok(Workers {
            workers,
            next: AtomicUsize::new(0),
            accepted: AtomicU64::new(0),
            room: Arc::new(Semaphore::new(room)),
            per_worker,
        })
    }

    /// Waits until the workers have room for one more client connection.
    pub async fn admit(&self) -> Admission {
        Admission(self.room.clone().acquire_owned().await.expect("the semaphore is never closed"))
    }

    /// Room for one more client connection, if there is some now.
    pub fn try_admit(&self) -> Option<Admission> {
        self.room.clone().try_acquire_owned().ok().map(Admission)
    }

    /// The client connections each worker serves at once (`nginx_events_worker_connections`).
    pub fn per_worker(&self) -> usize {
        self.per_worker
    }

    pub fn len(&self) -> usize {
        self.workers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// The worker with the fewest open connections (ties taken in turn), counted as holding one
    /// more from now on.
    pub fn assign(&self, admission: Admission) -> Assigned {
        let n = self.workers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let chosen = (0..n)
            .map(|k| (start + k) % n)
            .min_by_key(|&i| self.workers[i].open.0.load(Ordering::Relaxed))
            .expect("at least one worker");
        let worker = &self.workers[chosen];
        worker.open.0.fetch_add(1, Ordering::Relaxed);
        self.accepted.fetch_add(1, Ordering::Relaxed);
        Assigned { handle: worker.handle.clone(), open: OpenConnection(worker.open.clone(), admission) }
    }

    /// Connections assigned to the workers since they started.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Open connections per worker, in worker order.
    pub fn open_connections(&self) -> Vec<usize> {
        self.workers.iter().map(|w| w.open.0.load(Ordering::Relaxed)).collect()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            if let Some(stop) = worker.stop.take() {
                let _ = stop.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_go_to_the_least_busy_worker_and_tasks_run_on_it() {
        let workers = Workers::start(3, "test-worker", 16).unwrap();
        let mut held: Vec<Assigned> = (0..6).map(|_| workers.assign(workers.try_admit().unwrap())).collect();
        assert_eq!(workers.open_connections(), vec![2, 2, 2], "six connections spread evenly");
        held.truncate(4);
        let counts = workers.open_connections();
        assert_eq!(counts.iter().sum::<usize>(), 4, "a connection's end counts: {counts:?}");
        let next = workers.assign(workers.try_admit().unwrap());
        let emptiest = counts.iter().copied().min().unwrap();
        let after = workers.open_connections();
        let grew: Vec<usize> = (0..3).filter(|&i| after[i] == counts[i] + 1).collect();
        assert_eq!(grew.len(), 1);
        assert_eq!(counts[grew[0]], emptiest, "the new connection went to a least busy worker");

        let (tx, rx) = std::sync::mpsc::channel();
        next.handle.spawn(async move {
            tx.send((current(), std::thread::current().name().map(str::to_string))).unwrap();
        });
        let (index, name) = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        assert_eq!(index, Some(grew[0]), "the task ran on the worker it was assigned to");
        assert_eq!(name, Some(format!("test-worker-{}", grew[0])));
        assert_eq!(current(), None, "the test thread is no worker");
    }

    #[test]
    fn workers_admit_per_worker_connections_and_a_closed_one_makes_room() {
        let workers = Workers::start(2, "test-room", 2).unwrap();
        let mut held: Vec<Assigned> =
            (0..4).map(|_| workers.assign(workers.try_admit().expect("room for 4"))).collect();
        assert!(workers.try_admit().is_none(), "2 workers × 2 connections are full");
        held.pop();
        let room = workers.try_admit();
        assert!(room.is_some(), "a connection's end makes room");
        assert!(workers.try_admit().is_none(), "for one connection");
    }

    #[test]
    fn each_worker_has_its_own_state_and_other_threads_share_one() {
        let workers = Workers::start(2, "test-state", 16).unwrap();
        let state: Arc<PerWorker<Vec<Option<usize>>>> = Arc::new(PerWorker::new(workers.len()));
        state.lock().push(current());
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..workers.len() {
            let assigned = workers.assign(workers.try_admit().unwrap());
            let (state, tx) = (state.clone(), tx.clone());
            assigned.handle.spawn(async move {
                let mut mine = state.lock();
                mine.push(current());
                tx.send(mine.clone()).unwrap();
            });
        }
        let mut seen: Vec<Vec<Option<usize>>> =
            (0..workers.len()).map(|_| rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap()).collect();
        seen.sort();
        assert_eq!(seen, vec![vec![Some(0)], vec![Some(1)]], "each worker saw only its own pushes");
        assert_eq!(*state.lock(), vec![None], "the test thread's own");
    }
}
