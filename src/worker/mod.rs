//! The worker thread: the one owner of the inference session.
//!
//! The UI (or any other front end) sends [`Request`]s and drains [`Response`]s without ever
//! waiting: the channel to the worker is bounded, the way back is drained with
//! [`Worker::try_iter`], and the worker calls the `notify` callback (e.g. `ctx.request_repaint()`)
//! after each response. Every photo job carries a [`JobId`]; a newer job supersedes older ones,
//! which the worker skips. A panic while handling a request becomes [`Response::Panicked`] and the
//! worker keeps serving.

mod state;

use state::State;

use std::{
    panic::AssertUnwindSafe,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use image::{GrayImage, RgbImage, RgbaImage};

use crate::{
    engine::{
        EngineError, ModelChoice, Precision, ProviderKind, ProviderReport, RunStopper,
        SegmenterOptions, models::FetchStage, segmenter::StartupTimings,
    },
    image_ops::{CompositeSettings, DecodeLimits, Embedded, Target, edits::Stroke},
    paths::AppDirs,
};

/// Longer side of the thumbnails sent with [`Response::Decoded`].
pub const THUMBNAIL_SIDE_PX: u32 = 96;

pub use crate::engine::StageTimings;

/// What produced a mask: the provider and precision that actually ran, at which input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunInfo {
    /// Which session of the worker ran it (each configuration starts a new one, so equal runs
    /// come from the same model, provider and precision).
    pub session: u64,
    /// The execution provider of the session.
    pub provider: ProviderKind,
    /// The precision of the network.
    pub precision: Precision,
    /// The network's input side in pixels.
    pub input_side_px: u32,
}

/// The pixels an export starts from.
#[derive(Debug, Clone)]
pub enum ExportSource {
    /// A photo whose mask is already computed.
    Segmented {
        /// The photo.
        rgb: Arc<RgbImage>,
        /// Its mask, same size.
        mask: Arc<GrayImage>,
    },
    /// A file to decode and segment first.
    File(PathBuf),
    /// Pixels in memory (a pasted image) to segment first.
    Pixels {
        /// A name for messages.
        name: String,
        /// The pixels.
        rgb: Arc<RgbImage>,
    },
}

/// Identifies one photo job; larger is newer.
pub type JobId = u64;

/// Whether a newer job makes a job pointless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// What is on screen: a newer preview job supersedes it, and it is skipped.
    Preview,
    /// A queued photo (thumbnails, export all): always processed.
    Queue,
}

/// Which of the worker's two queues a request waits in. The worker always takes the next
/// [`Lane::Now`] request first, so a click on a photo is not kept waiting behind an "Export all".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// What the user is looking at: configuration and preview jobs.
    Now = 0,
    /// Work in the background: queued photos and exports.
    Queue = 1,
}

/// What the front end asks of the worker.
#[derive(Debug)]
pub enum Request {
    /// Load (or switch) model, provider, precision or input size. Can take seconds to minutes
    /// (a TensorRT engine build); [`Response::Configuring`] says it started.
    Configure {
        /// Model to load.
        model: ModelChoice,
        /// Session settings.
        options: SegmenterOptions,
    },
    /// Decode a photo file and compute its mask.
    SegmentFile {
        /// Job id (from [`Worker::next_id`]).
        id: JobId,
        /// Preview or queue.
        kind: JobKind,
        /// The photo.
        path: PathBuf,
    },
    /// Compute the mask of pixels already in memory (clipboard, or re-running the current photo).
    SegmentImage {
        /// Job id.
        id: JobId,
        /// Preview or queue.
        kind: JobKind,
        /// A name for messages.
        name: String,
        /// The pixels.
        rgb: Arc<RgbImage>,
    },
    /// Composite and write a PNG atomically (never superseded).
    Export {
        /// Job id.
        id: JobId,
        /// The photo (and mask, if known).
        source: ExportSource,
        /// Threshold, softness and background, as in the preview.
        settings: CompositeSettings,
        /// The photo's touch-up strokes, painted on it before compositing (empty: none).
        edits: Vec<Stroke>,
        /// The PNG to write, and what it may replace there (and, for a photo already decoded,
        /// the profile and EXIF it carries).
        output: Target,
        /// Whether a photo decoded for this export keeps its EXIF in the PNG.
        keep_exif: bool,
    },
    /// Composites the cutout for the clipboard at full resolution (straight alpha), with the
    /// worker's finisher, whose GPU device (when the edge passes run on one) is opened once.
    Copy {
        /// Job id.
        id: JobId,
        /// The photo.
        photo: Arc<RgbImage>,
        /// Its mask.
        mask: Arc<GrayImage>,
        /// Threshold, softness, background and edge passes, as in the preview.
        settings: CompositeSettings,
        /// The photo's touch-up strokes (empty: none).
        edits: Vec<Stroke>,
    },
    /// Panics inside request handling, as a bug would: for tests of the recovery path (the
    /// panic is reported, the session dropped, and the worker goes on serving).
    Panic,
}

impl Request {
    /// The queue this request waits in.
    pub fn lane(&self) -> Lane {
        match self {
            Self::Configure { .. }
            | Self::Copy { .. }
            | Self::Panic
            | Self::SegmentFile {
                kind: JobKind::Preview,
                ..
            }
            | Self::SegmentImage {
                kind: JobKind::Preview,
                ..
            } => Lane::Now,
            Self::SegmentFile { .. } | Self::SegmentImage { .. } | Self::Export { .. } => {
                Lane::Queue
            }
        }
    }
}

pub use crate::finish::PhotoError;

/// What the worker reports back.
#[derive(Debug)]
pub enum Response {
    /// A configuration started, or moved on to its next step.
    Configuring {
        /// What is being done, for a progress line.
        what: String,
    },
    /// The model is being fetched (first use); sent about ten times a second.
    Fetching {
        /// Model name.
        model: String,
        /// Downloading, or checking the pieces.
        stage: FetchStage,
        /// Bytes so far.
        done: u64,
        /// Bytes in all, when known.
        total: Option<u64>,
    },
    /// The session is ready: what runs, and what starting it cost.
    Ready {
        /// The model's name (or the custom file's path).
        model: String,
        /// Provider, precision, features, and why faster providers are not used.
        report: ProviderReport,
        /// Prepared model, session and first-run costs.
        startup: StartupTimings,
        /// Input side in pixels.
        input_side_px: u32,
    },
    /// The configuration failed; the previous session (if any) is gone.
    ConfigureFailed {
        /// Why, in words the user can act on.
        error: EngineError,
        /// The user cancelled it ([`Worker::cancel_configure`]).
        cancelled: bool,
    },
    /// A photo was decoded (sent before its mask, so the front end can show it at once).
    Decoded {
        /// Job id.
        id: JobId,
        /// The upright photo, in its own colours (what exports start from).
        rgb: Arc<RgbImage>,
        /// The same converted to sRGB for the screen (`rgb` itself when it is sRGB already).
        display: Arc<RgbImage>,
        /// Its colour profile and EXIF, for exports.
        embedded: Embedded,
        /// A small copy of `display`, at most [`THUMBNAIL_SIDE_PX`] a side.
        thumbnail: RgbImage,
    },
    /// A mask is ready.
    Mask {
        /// Job id.
        id: JobId,
        /// The mask at the photo's size.
        mask: Arc<GrayImage>,
        /// Per-stage times.
        timings: StageTimings,
        /// What ran.
        ran: RunInfo,
    },
    /// An export was written.
    Exported {
        /// Job id.
        id: JobId,
        /// The file written.
        path: PathBuf,
        /// The name asked for, when it held another photo's result (or a file that is not a
        /// result of this photo) and a numbered one was written instead.
        instead_of: Option<PathBuf>,
        /// Compositing and encoding time (after any segmentation), in milliseconds.
        write_ms: f64,
    },
    /// The cutout for the clipboard is ready.
    Copied {
        /// Job id.
        id: JobId,
        /// The composite, straight alpha.
        rgba: RgbaImage,
    },
    /// A job failed; the worker goes on.
    Failed {
        /// Job id.
        id: JobId,
        /// Why, with the file named.
        error: PhotoError,
    },
    /// Handling a request panicked; the session was dropped and must be configured again.
    Panicked {
        /// The panic message.
        message: String,
    },
}

/// The network run under way, shared with the front end so that a newer preview can stop an
/// older one mid-run.
#[derive(Default)]
struct Running {
    /// The preview job being run (queue jobs and exports are never stopped).
    preview: Option<JobId>,
    /// Stops the current session's run.
    stopper: Option<RunStopper>,
}

/// Handle to the worker thread. Dropping it shuts the thread down and joins it.
pub struct Worker {
    running: Arc<Mutex<Running>>,
    /// The [`Lane::Now`] and [`Lane::Queue`] queues.
    requests: Option<[Sender<Request>; 2]>,
    /// Set when the worker is dropped: requests still queued are not handled.
    closing: Arc<AtomicBool>,
    responses: Receiver<Response>,
    ids: AtomicU64,
    latest_preview: Arc<AtomicU64>,
    cancel: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// The worker is gone (it can only end by a panic outside request handling, or shutdown).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The request queue is full: the worker is busy.
    #[error("the worker is busy; try again in a moment")]
    Busy(Box<Request>),
    /// The thread has ended.
    #[error("the worker thread has stopped")]
    Stopped,
}

/// How often fetch progress is sent at most.
const FETCH_PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// Requests waiting for the worker in each lane at most; more are refused with
/// [`SendError::Busy`].
const QUEUE_DEPTH: usize = 16;

/// The worker thread's loop: takes work (the Now lane first, then work left over, then the queue
/// lane, gathering exports), does it and sends what came of it, until the lanes close or
/// `closing` is set. A panic in a request drops the session and is reported; the loop goes on.
fn serve(
    mut state: State,
    now_rx: &Receiver<Request>,
    queue_rx: &Receiver<Request>,
    closing: &AtomicBool,
    mut send: impl FnMut(Response),
) {
    // The next request, the Now lane first; `None` once the worker is closing.
    let next = || {
        let request = match now_rx.try_recv() {
            Ok(request) => Some(request),
            Err(_) => crossbeam_channel::select! {
                recv(now_rx) -> r => r.ok(),
                recv(queue_rx) -> r => r.ok(),
            },
        };
        request.filter(|_| !closing.load(Ordering::SeqCst))
    };
    // Work taken from the queue lane but not done yet: a request met while gathering exports,
    // or exports a preview interrupted. It goes before the rest of the queue lane, after the
    // Now lane.
    let mut pending = std::collections::VecDeque::new();
    let interrupted = || !now_rx.is_empty() || closing.load(Ordering::SeqCst);
    loop {
        let work = match now_rx.try_recv() {
            Ok(request) => state::Work::One(request),
            Err(_) => match pending.pop_front() {
                Some(work) => work,
                None => match next() {
                    Some(request) => state::gather(request, queue_rx, now_rx, &mut pending),
                    None => break,
                },
            },
        };
        if closing.load(Ordering::SeqCst) {
            break;
        }
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            state.handle_work(work, &interrupted, &mut send)
        }));
        let left = outcome.unwrap_or_else(|payload| {
            state.drop_session();
            send(Response::Panicked {
                message: panic_message(payload.as_ref()),
            });
            Vec::new()
        });
        if !left.is_empty() {
            pending.push_front(state::Work::Exports(left));
        }
    }
}

/// A panic's message, when it has one.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

impl Worker {
    /// Starts the worker thread. `notify` is called after every response (wake the UI).
    pub fn spawn(
        dirs: AppDirs,
        limits: DecodeLimits,
        notify: impl Fn() + Send + 'static,
    ) -> std::io::Result<Self> {
        let (now_tx, now_rx) = crossbeam_channel::bounded::<Request>(QUEUE_DEPTH);
        let (queue_tx, queue_rx) = crossbeam_channel::bounded::<Request>(QUEUE_DEPTH);
        let closing = Arc::new(AtomicBool::new(false));
        let closing_seen = Arc::clone(&closing);
        let running = Arc::new(Mutex::new(Running::default()));
        let running_seen = Arc::clone(&running);
        let (resp_tx, resp_rx) = crossbeam_channel::unbounded::<Response>();
        let latest_preview = Arc::new(AtomicU64::new(0));
        let latest_seen = Arc::clone(&latest_preview);
        let cancel = Arc::new(AtomicBool::new(false));
        let cancel_seen = Arc::clone(&cancel);
        let handle = std::thread::Builder::new()
            .name("cutout-worker".into())
            .spawn(move || {
                let state = State::new(dirs, limits, latest_seen, running_seen, cancel_seen);
                let send = move |r| {
                    let _ = resp_tx.send(r);
                    notify();
                };
                serve(state, &now_rx, &queue_rx, &closing_seen, send);
            })?;
        Ok(Self {
            requests: Some([now_tx, queue_tx]),
            closing,
            running,
            responses: resp_rx,
            ids: AtomicU64::new(0),
            latest_preview,
            cancel,
            handle: Some(handle),
        })
    }

    /// Stops the model fetch of the configuration in progress (nothing is kept); it ends with
    /// [`Response::ConfigureFailed`] and `cancelled` set.
    pub fn cancel_configure(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// A fresh job id, newer than every earlier one. For [`JobKind::Preview`] it also becomes the
    /// current preview, so older preview jobs still queued are skipped.
    pub fn next_id(&self, kind: JobKind) -> JobId {
        let id = self.ids.fetch_add(1, Ordering::SeqCst) + 1;
        if kind == JobKind::Preview {
            self.latest_preview.fetch_max(id, Ordering::SeqCst);
            // An older preview mid-run is stopped rather than finished.
            if let Ok(running) = self.running.lock()
                && running.preview.is_some_and(|p| p < id)
                && let Some(stopper) = &running.stopper
            {
                tracing::debug!("stopping the superseded preview run");
                stopper.stop();
            }
        }
        id
    }

    /// The current preview job; responses for older preview jobs can be ignored.
    pub fn current_preview(&self) -> JobId {
        self.latest_preview.load(Ordering::SeqCst)
    }

    /// Queues a request without blocking.
    pub fn send(&self, request: Request) -> Result<(), SendError> {
        let Some(lanes) = &self.requests else {
            return Err(SendError::Stopped);
        };
        let tx = &lanes[request.lane() as usize];
        tx.try_send(request).map_err(|e| match e {
            TrySendError::Full(r) => SendError::Busy(Box::new(r)),
            TrySendError::Disconnected(_) => SendError::Stopped,
        })
    }

    /// Responses that have arrived, without waiting.
    pub fn try_iter(&self) -> impl Iterator<Item = Response> + '_ {
        self.responses.try_iter()
    }

    /// Waits for the next response (tests and command-line front ends only; a UI must not).
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Option<Response> {
        self.responses.recv_timeout(timeout).ok()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // The thread ends after the request in hand, leaving queued ones; a model fetch in
        // progress is cancelled rather than waited out.
        self.closing.store(true, Ordering::SeqCst);
        self.requests = None;
        self.cancel.store(true, Ordering::SeqCst);
        if let Some(handle) = self.handle.take()
            && handle.join().is_err()
        {
            tracing::error!("the worker thread ended with a panic outside a request");
        }
    }
}
