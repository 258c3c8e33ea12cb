//! What `remove` pays at start-up: the session settings that trade the first inference against
//! every later one, by batch length, and a reminder on the terminal while the engine starts (a
//! first TensorRT or TensorRT-RTX engine build takes minutes, and a silent command looks hung).

use std::time::{Duration, Instant};

use crate::engine::{ConvSearch, SegmenterOptions};

/// Batches at least this long get cuDNN's exhaustive algorithm search on the CUDA provider.
const EXHAUSTIVE_SEARCH_MIN_PHOTOS: usize = 200;
/// Batches at least this long get cuDNN's heuristic algorithm choice; shorter ones one fixed
/// algorithm and no search.
const HEURISTIC_SEARCH_MIN_PHOTOS: usize = 4;
/// Batches at least this long get a CUDA graph.
const CUDA_GRAPHS_MIN_PHOTOS: usize = 4;

/// Sets what a batch of `photos` pays once against what it saves on each photo (measured on the
/// H200, 2026-12-03, u2netp at 320 px; isnet at 1024 px):
/// - the exhaustive cuDNN search costs 1.2–3 s at the first inference and saves a fraction of a
///   millisecond a photo over the heuristic one;
/// - the heuristic one costs 0.4–1 s (cuDNN 9 describes every engine it has for each
///   convolution) and saves 8 ms a photo over one fixed algorithm (45 ms at 1024 px, 67 ms for
///   isnet);
/// - a CUDA graph's capture costs about one inference and saves the launch costs of every later
///   one.
///
/// `asked` is the user's `--conv-search`, which wins.
pub(super) fn tune_for_batch(
    options: &mut SegmenterOptions,
    photos: usize,
    asked: Option<ConvSearch>,
) {
    options.conv_search = asked.unwrap_or(if photos >= EXHAUSTIVE_SEARCH_MIN_PHOTOS {
        ConvSearch::Exhaustive
    } else if photos >= HEURISTIC_SEARCH_MIN_PHOTOS {
        ConvSearch::Heuristic
    } else {
        ConvSearch::Fixed
    });
    if photos < CUDA_GRAPHS_MIN_PHOTOS {
        options.cuda_graphs = false;
    }
    // Decoding and finishing run beside the network: its waiting threads must not spin.
    options.spin = photos < 2;
}

/// Drops ONNX Runtime's warning that a convolution runs "in Fallback mode", one per
/// convolution, which is what the fixed cuDNN algorithm (`ConvSearch::Fixed`) asks for: where
/// cuDNN has no kernel for that algorithm it substitutes one. The session's report already says
/// "cuDNN fixed algorithm", and `cutout bench --conv-search` measures what it costs a run.
pub(super) struct ExpectedFallbacks;

impl ExpectedFallbacks {
    const MESSAGE: &str = "running in Fallback mode";
}

impl<S> tracing_subscriber::layer::Filter<S> for ExpectedFallbacks {
    fn enabled(
        &self,
        _: &tracing::Metadata<'_>,
        _: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        true
    }

    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        let mut found = Contains(Self::MESSAGE, false);
        event.record(&mut found);
        !found.1
    }
}

/// Whether any field of an event holds the text.
struct Contains(&'static str, bool);

impl tracing::field::Visit for Contains {
    fn record_str(&mut self, _: &tracing::field::Field, value: &str) {
        self.1 |= value.contains(self.0);
    }

    fn record_debug(&mut self, _: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.1 |= format!("{value:?}").contains(self.0);
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_expected_fallback_warnings_are_dropped() {
        use std::sync::{Arc, Mutex};
        use tracing_subscriber::{Layer as _, layer::SubscriberExt as _};
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().map_or(Ok(0), |mut b| {
                    b.extend_from_slice(bytes);
                    Ok(bytes.len())
                })
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .with_filter(ExpectedFallbacks),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                "OP Conv(/stage1/Conv) running in Fallback mode. May be extremely slow."
            );
            tracing::warn!("Some nodes were not assigned to the preferred execution providers");
        });
        let text = String::from_utf8(buffer.0.lock().map(|b| b.clone()).unwrap_or_default())
            .unwrap_or_default();
        assert!(!text.contains("Fallback mode"), "{text}");
        assert!(text.contains("preferred execution providers"), "{text}");
    }

    #[test]
    fn short_batches_skip_the_searches_and_long_ones_pay_for_them() {
        let tuned = |photos, asked| {
            let mut options = SegmenterOptions::default();
            tune_for_batch(&mut options, photos, asked);
            (options.conv_search, options.cuda_graphs)
        };
        assert_eq!(tuned(1, None), (ConvSearch::Fixed, false));
        assert_eq!(tuned(3, None), (ConvSearch::Fixed, false));
        assert_eq!(tuned(4, None), (ConvSearch::Heuristic, true));
        assert_eq!(tuned(199, None), (ConvSearch::Heuristic, true));
        assert_eq!(tuned(200, None), (ConvSearch::Exhaustive, true));
        // What the user asks for wins, whatever the length.
        assert_eq!(
            tuned(1, Some(ConvSearch::Exhaustive)),
            (ConvSearch::Exhaustive, false)
        );
        assert_eq!(
            tuned(500, Some(ConvSearch::Fixed)),
            (ConvSearch::Fixed, true)
        );
    }
}
