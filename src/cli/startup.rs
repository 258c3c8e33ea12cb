//! A reminder on the terminal while the engine starts: a first TensorRT or TensorRT-RTX engine
//! build takes minutes, and a silent command looks hung.

use std::time::{Duration, Instant};

/// Says, every few seconds, that the engine is still starting (a first TensorRT or TensorRT-RTX
/// engine build takes minutes), until dropped.
pub(super) struct StartupTicker {
    /// Dropping it stops the reminders.
    _stop: Option<crossbeam_channel::Sender<()>>,
}

impl StartupTicker {
    const FIRST: Duration = Duration::from_secs(5);
    const EVERY: Duration = Duration::from_secs(15);

    pub(super) fn start(since: Instant) -> Self {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let spawned = std::thread::Builder::new()
            .name("startup-ticker".to_owned())
            .spawn(move || {
                let mut wait = Self::FIRST;
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(wait)
                {
                    // Without an NVIDIA GPU no engine is built: a slow start is something else.
                    if crate::engine::doctor::nvidia_gpu().is_none() {
                        return;
                    }
                    eprintln!(
                        "Still starting the engine ({:.0} s): a first TensorRT or TensorRT-RTX \
                         engine build for this model, size and precision can take minutes; \
                         later runs reuse it",
                        since.elapsed().as_secs_f64()
                    );
                    wait = Self::EVERY;
                }
            });
        // Without the thread there is only no reminder.
        Self {
            _stop: spawned.is_ok().then_some(stop),
        }
    }
}
