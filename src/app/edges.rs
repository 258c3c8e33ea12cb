//! Where the preview's edge passes (guided filter, foreground colours) run, and the CPU side of
//! it: when the window is drawn by a software rasterizer (lavapipe, WARP), compute passes there
//! take seconds for a big photo, so a thread of its own runs the CPU edge path
//! ([`crate::image_ops::edges`]) and the UI uploads its result into the cutout texture. On a
//! hardware GPU the passes run on the window's device ([`super::compositor::Compositor::refine`]).
//!
//! The thread takes only the newest request (a slider being dragged sends one per frame), so the
//! preview follows the slider at the pace the CPU allows and never queues stale work.

use super::AppError;
use std::{
    sync::Arc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crossbeam_channel::{Receiver, Sender};
use image::{GrayImage, RgbImage};

use crate::{
    finish::EdgePath,
    image_ops::{CompositeSettings, edges},
    render,
};

/// What a finished CPU edge run gives the UI.
pub(super) struct EdgeDone {
    /// The photo and mask it was for (see [`EdgePreview::serial`]).
    pub serial: u64,
    /// The cutout texture's bytes ([`render::pack_cutout`]).
    pub rgba: Vec<u8>,
    /// Its time, the passes and the packing.
    pub took: Duration,
    /// The bands it worked on.
    pub sizes: edges::BandSizes,
}

/// The CPU path's thread and its two channels.
struct EdgeThread {
    jobs: Sender<EdgeJob>,
    done: Receiver<EdgeDone>,
    handle: JoinHandle<()>,
}

struct EdgeJob {
    serial: u64,
    photo: Arc<RgbImage>,
    mask: Arc<GrayImage>,
    settings: CompositeSettings,
}

/// The preview's edge passes: where they run, and on the CPU path the thread and what it was
/// last asked for.
pub(super) struct EdgePreview {
    path: EdgePath,
    thread: Option<EdgeThread>,
    /// Counts photo and mask uploads: a result is used only for the textures it was made from.
    serial: u64,
    photo: Option<Arc<RgbImage>>,
    mask: Option<Arc<GrayImage>>,
    requested: Option<(u64, CompositeSettings)>,
}

impl EdgePreview {
    /// Chooses the path for a window drawn by `adapter` (`None`: no wgpu renderer) and, for the
    /// CPU path, starts its thread; `wake` is called when a result is ready.
    pub(super) fn new(
        adapter: Option<&wgpu::AdapterInfo>,
        wake: impl Fn() + Send + 'static,
    ) -> Result<Self, AppError> {
        let path = match adapter {
            Some(info) if render::is_software(info) => {
                EdgePath::cpu(format!("{} is a software rasterizer", info.name))
            }
            Some(info) => EdgePath {
                runner: crate::finish::EdgeRunner::Gpu {
                    adapter: render::adapter_label(info),
                },
                why: "the window's GPU runs them".to_owned(),
            },
            None => EdgePath::cpu("no wgpu renderer"),
        };
        let thread = match (&path.runner, adapter) {
            (crate::finish::EdgeRunner::Cpu { .. }, Some(_)) => Some(spawn(wake)?),
            _ => None,
        };
        Ok(Self {
            path,
            thread,
            serial: 0,
            photo: None,
            mask: None,
            requested: None,
        })
    }

    /// Where the preview's edge passes run, and why.
    pub(super) fn path(&self) -> &EdgePath {
        &self.path
    }

    /// Whether they run on the CPU (the caller uploads [`EdgeDone::rgba`]).
    pub(super) fn on_cpu(&self) -> bool {
        self.thread.is_some()
    }

    /// A new photo on the GPU (as uploaded; its mask follows).
    pub(super) fn set_photo(&mut self, photo: Arc<RgbImage>) {
        self.serial += 1;
        self.photo = Some(photo);
        self.mask = None;
    }

    /// A new mask on the GPU (as uploaded). On the CPU path, returns the cutout texture's bytes
    /// without refinement, to show at once while the edge passes run.
    pub(super) fn set_mask(&mut self, mask: Arc<GrayImage>) -> Option<Vec<u8>> {
        self.serial += 1;
        let mask = &*self.mask.insert(mask);
        let photo = self.photo.as_ref()?;
        (self.thread.is_some() && photo.dimensions() == mask.dimensions())
            .then(|| render::pack_cutout(photo, mask, None))
    }

    /// Forgets the photo.
    pub(super) fn clear(&mut self) {
        self.serial += 1;
        self.photo = None;
        self.mask = None;
    }

    /// On the CPU path: asks for the edge passes with `settings` unless they were asked for
    /// this photo and mask already. Returns whether a run was started.
    pub(super) fn request(&mut self, settings: &CompositeSettings) -> bool {
        let (Some(EdgeThread { jobs, .. }), Some(photo), Some(mask)) =
            (&self.thread, &self.photo, &self.mask)
        else {
            return false;
        };
        if photo.dimensions() != mask.dimensions() {
            return false;
        }
        let wanted = (self.serial, *settings);
        if self.requested == Some(wanted) {
            return false;
        }
        self.requested = Some(wanted);
        jobs.send(EdgeJob {
            serial: self.serial,
            photo: Arc::clone(photo),
            mask: Arc::clone(mask),
            settings: *settings,
        })
        .is_ok()
    }

    /// Finished runs for the textures on the GPU now (older ones are dropped).
    pub(super) fn take_done(&self) -> Vec<EdgeDone> {
        let Some(EdgeThread { done, .. }) = &self.thread else {
            return Vec::new();
        };
        done.try_iter()
            .filter(|d| d.serial == self.serial)
            .collect()
    }
}

impl Drop for EdgePreview {
    fn drop(&mut self) {
        if let Some(EdgeThread { jobs, done, handle }) = self.thread.take() {
            // Closing the channel ends the thread after the run in progress.
            drop(jobs);
            drop(done);
            if handle.join().is_err() {
                tracing::warn!("the edge thread panicked");
            }
        }
    }
}

fn spawn(wake: impl Fn() + Send + 'static) -> Result<EdgeThread, AppError> {
    let (jobs_tx, jobs) = crossbeam_channel::unbounded::<EdgeJob>();
    let (done_tx, done) = crossbeam_channel::unbounded();
    let handle = std::thread::Builder::new()
        .name("cutout-edges".to_owned())
        .spawn(move || {
            while let Ok(mut job) = jobs.recv() {
                // Only the newest request matters.
                while let Ok(newer) = jobs.try_recv() {
                    job = newer;
                }
                let started = Instant::now();
                let (refined, sizes) =
                    edges::refine(&job.photo, &job.mask, &job.settings.refine, |m| {
                        job.settings.alpha(m)
                    });
                let rgba =
                    render::pack_cutout(&job.photo, &refined.mask, refined.foreground.as_ref());
                let result = EdgeDone {
                    serial: job.serial,
                    rgba,
                    took: started.elapsed(),
                    sizes,
                };
                if done_tx.send(result).is_err() {
                    return;
                }
                wake();
            }
        })
        .map_err(|source| AppError::Thread {
            what: "edge passes".to_owned(),
            source,
        })?;
    Ok(EdgeThread {
        jobs: jobs_tx,
        done,
        handle,
    })
}
