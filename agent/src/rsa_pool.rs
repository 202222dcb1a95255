//! The threads that run RSA unwraps, at a lower CPU priority than the rest of the node.
//!
//! An unwrap is milliseconds of one core (RSA-3072 with AWS-LC); a new session waits for one, a
//! warm request never does. On a node the agent shares with its gateway, an unwrap running at the
//! same priority as Envoy's workers delays whatever warm request lands behind it by up to a
//! scheduler slice — and anyone can make sessions for the gateway's public key. So the unwraps run
//! on threads of their own whose nice value is [`NICE_INCREMENT`] above the agent's: the
//! scheduler hands the core to a waking Envoy worker first, and under a flood of new sessions it
//! is the new sessions that wait (bounded by the lanes in [`crate::sessions`]), not the warm path.
//! When the core is otherwise idle the unwraps run at full speed; nice only orders contention.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

/// How much less CPU priority the RSA threads have than the agent (nice values: 10 gives a thread
/// about a tenth of the share of a nice-0 one when both want the core).
pub const NICE_INCREMENT: i32 = 10;
/// The largest nice value Linux has.
const MAX_NICE: i32 = 19;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads taking jobs in order, each job's answer sent back to the async caller.
#[derive(Debug)]
pub struct RsaPool {
    jobs: Sender<Job>,
}

impl RsaPool {
    /// `threads` threads (at least one), each lowering its own priority by [`NICE_INCREMENT`] as it
    /// starts. A thread that cannot (a platform without per-thread nice values) runs at the
    /// agent's priority and says so in the log once.
    pub fn start(threads: usize) -> std::io::Result<RsaPool> {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("autoid-rsa-{i}"))
                .spawn(move || {
                    if let Err(e) = lower_priority() {
                        tracing::warn!(error = %e, "RSA thread runs at the agent's priority");
                    }
                    work(&queue);
                })?;
        }
        Ok(RsaPool { jobs })
    }

    /// Runs `job` on one of the pool's threads; `None` if the pool is gone (its threads ended).
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (answer, answered) = oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = answer.send(job());
            }))
            .ok()?;
        answered.await.ok()
    }
}

/// Takes jobs until every sender is gone.
fn work(queue: &Mutex<Receiver<Job>>) {
    loop {
        let next = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        match next {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

/// Raises the calling thread's nice value by [`NICE_INCREMENT`] (Linux: nice is per thread).
/// Raising it needs no privilege; it is never lowered again.
fn lower_priority() -> std::io::Result<()> {
    let me = Some(rustix::thread::gettid());
    let now = rustix::process::getpriority_process(me)?;
    rustix::process::setpriority_process(me, (now + NICE_INCREMENT).min(MAX_NICE))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nice_here() -> i32 {
        rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
    }

    #[tokio::test]
    async fn jobs_run_on_threads_ten_nice_values_below_the_caller_and_the_caller_keeps_its_own() {
        let before = nice_here();
        let pool = RsaPool::start(2).unwrap();
        let on_pool = pool.run(nice_here).await.unwrap();
        assert_eq!(on_pool, (before + NICE_INCREMENT).min(MAX_NICE));
        assert_eq!(
            nice_here(),
            before,
            "the caller's own priority is untouched"
        );
    }

    #[tokio::test]
    async fn every_job_is_answered_with_its_own_result_when_more_run_at_once_than_threads() {
        let pool = Arc::new(RsaPool::start(2).unwrap());
        let mut running = tokio::task::JoinSet::new();
        for i in 0..64u64 {
            let pool = pool.clone();
            running.spawn(async move { (i, pool.run(move || i * i).await) });
        }
        let mut answered = 0;
        while let Some(done) = running.join_next().await {
            let (i, answer) = done.unwrap();
            assert_eq!(answer, Some(i * i));
            answered += 1;
        }
        assert_eq!(answered, 64);
    }
}
