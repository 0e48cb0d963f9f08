//! The daemon's stop signals (SIGINT, SIGTERM), caught from start-up on.

use std::time::Duration;

/// SIGINT and SIGTERM, caught from the moment [`StopSignals::install`]
/// runs (the binary installs them before it loads the policy), so that a
/// stop during start-up is a clean stop too: before the datapath is
/// attached the daemon just exits; after, it releases every flow and
/// detaches as on any other stop. Without this, the default action killed
/// the process between attaching and the control loop and left its pins.
#[derive(Debug)]
pub struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Catches both signals from now on. Must run inside a tokio runtime
    /// (or with one entered) that has its I/O driver enabled.
    pub fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The signal that arrived since the last call, if any, waiting at
    /// most a millisecond. Why wait at all: a signal is only seen once the
    /// runtime's driver has read it from its pipe, which a start-up busy in
    /// synchronous work (loading libtorch and the policy) has not let it
    /// do; a short timed wait parks the runtime on its driver, a plain
    /// `yield_now` did not (measured: the stop came three intervals late).
    pub async fn pending(&mut self) -> Option<&'static str> {
        tokio::time::timeout(Duration::from_millis(1), self.recv())
            .await
            .ok()
    }

    /// Waits for either signal.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Held by every unit test that installs [`StopSignals`]: one of them
/// raises SIGINT in this process, which every installed listener sees.
#[cfg(test)]
static SIGNAL_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// For a unit test that installs [`StopSignals`]: the lock that keeps it
/// apart from the others (hold it to the end) and a runtime to run in.
#[cfg(test)]
pub(super) fn signal_test() -> (std::sync::MutexGuard<'static, ()>, tokio::runtime::Runtime) {
    let one = SIGNAL_TESTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (one, rt)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signal that arrives while start-up is busy in synchronous work is
    /// seen by the next check, without waiting; each is seen once.
    #[test]
    fn a_signal_during_start_up_is_seen_at_the_next_check() {
        let (_one, rt) = signal_test();
        rt.block_on(async {
            let mut stop = StopSignals::install().unwrap();
            // SAFETY: raise(3) on ourselves; the handler is installed.
            assert_eq!(unsafe { libc::raise(libc::SIGINT) }, 0);
            // Busy, as while loading the policy: no await in between.
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(stop.pending().await, Some("SIGINT"));
            assert_eq!(stop.pending().await, None);
        });
    }
}
