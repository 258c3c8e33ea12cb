//! The batch's threads and what joins them.
//!
//! ```text
//!  jobs ─▶ decoding ×N ─▶ the session (caller's thread) ─▶ finishing ×N ─▶ outcomes, in order
//! ```
//!
//! Every photo in flight holds a [`Slot`]; a decoding thread takes one before it starts a photo
//! and the photo gives it back when it is dropped (written, failed or abandoned), so the photos
//! in memory never exceed the slots whatever the folder's size. The channels themselves are
//! unbounded: the slots bound them.
//!
//! Ending is by channels closing, never by waiting on a count: the jobs channel is full and closed
//! from the start, the decoding threads end when it is empty (or on stop), the session's loop ends
//! when they have all ended, and the finishing threads when it has. Each loop drains its input to
//! the end even after a stop (dropping what it would have started), so no thread ever waits on a
//! slot that nobody will give back.

use std::{
    borrow::BorrowMut,
    collections::BTreeMap,
    sync::Mutex,
    sync::atomic::{AtomicBool, Ordering},
    thread::Scope,
    time::Instant,
};

use crossbeam_channel::{Receiver, Sender};

use super::{
    BatchOptions, Job, Outcome,
    stages::{self, InFlight, Mask, Slot},
};
use crate::{
    engine::{MaskPipeline, Segmenter},
    finish::Finisher,
    timing::ms_since,
};

/// The slots not in use.
struct Slots {
    give: Sender<()>,
    take: Receiver<()>,
}

impl Slots {
    fn new(n: usize) -> Self {
        let (give, take) = crossbeam_channel::unbounded();
        for _ in 0..n {
            give.send(()).ok();
        }
        Self { give, take }
    }

    /// Waits for a free slot.
    fn take(&self) -> Option<Slot> {
        self.take.recv().ok().map(|()| Slot(self.give.clone()))
    }
}

/// How many threads decode and how many finish (each), and how many photos may be in flight.
fn sizes(workers: usize, jobs: usize) -> (usize, usize) {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    // Every core but the session's.
    let workers = if workers == 0 { cores - 1 } else { workers };
    let threads = workers.clamp(1, jobs.max(1));
    // One photo per thread, and two more so that the session always has one waiting.
    (threads, threads + 2)
}

/// Outcomes put back in input order.
struct InOrder<F> {
    next: usize,
    waiting: BTreeMap<usize, Outcome>,
    on_done: F,
}

impl<F: FnMut(Outcome)> InOrder<F> {
    fn new(on_done: F) -> Self {
        Self {
            next: 0,
            waiting: BTreeMap::new(),
            on_done,
        }
    }

    fn add(&mut self, outcome: Outcome) {
        self.waiting.insert(outcome.index, outcome);
        while let Some(outcome) = self.waiting.remove(&self.next) {
            (self.on_done)(outcome);
            self.next += 1;
        }
    }

    /// The outcomes after a gap (photos not started after a stop), still in order.
    fn finish(mut self) {
        for (_, outcome) in std::mem::take(&mut self.waiting) {
            (self.on_done)(outcome);
        }
    }
}

/// The engine running the batch: the one it opened with, or the faster one that took over.
enum Current<S> {
    Opened(S),
    Successor(Box<Segmenter>),
}

impl<S: BorrowMut<Segmenter>> Current<S> {
    fn get(&mut self) -> &mut Segmenter {
        match self {
            Self::Opened(s) => s.borrow_mut(),
            Self::Successor(s) => s,
        }
    }
}

/// The faster engine, once it has started: a thread waits for it and stops the run under way on
/// the first engine, which is then run again on the second.
struct Handover<'a> {
    arrived: &'a Mutex<Option<Segmenter>>,
    /// Dropped at the end of the batch, which ends the waiting thread.
    _over: Sender<()>,
}

impl<'a> Handover<'a> {
    fn start<'scope, S: BorrowMut<Segmenter>>(
        scope: &'scope Scope<'scope, '_>,
        current: &mut Current<S>,
        successor: Option<Receiver<Segmenter>>,
        arrived: &'a Mutex<Option<Segmenter>>,
    ) -> Self
    where
        'a: 'scope,
    {
        let (over, over_rx) = crossbeam_channel::bounded::<()>(0);
        let Some(successor) = successor else {
            return Self {
                arrived,
                _over: over,
            };
        };
        let stopper = current.get().run_stopper();
        let pipeline = current.get().pipeline();
        spawn(scope, "cutout-handover", move || {
            crossbeam_channel::select! {
                recv(successor) -> next => match next {
                    Ok(next) if next.pipeline() == pipeline => {
                        if let Ok(mut slot) = arrived.lock() {
                            *slot = Some(next);
                            stopper.stop();
                        }
                    }
                    Ok(_) => tracing::warn!(
                        "the second engine makes its input differently; not used"
                    ),
                    Err(_) => {}
                },
                recv(over_rx) -> _ => {}
            }
        });
        Self {
            arrived,
            _over: over,
        }
    }

    /// Moves to the second engine if it has arrived.
    fn take_over<S>(
        &self,
        current: &mut Current<S>,
        on_switch: &mut impl FnMut(&Segmenter),
    ) -> bool {
        match self.arrived.lock().ok().and_then(|mut slot| slot.take()) {
            Some(next) => {
                on_switch(&next);
                *current = Current::Successor(Box::new(next));
                true
            }
            None => false,
        }
    }
}

/// One batch run.
pub(super) struct Flow<'a> {
    pub options: BatchOptions,
    pub finisher: &'a Finisher,
    pub stop: &'a AtomicBool,
}

/// The channels between the stages.
struct Lines {
    prepared: (Sender<Prepared>, Receiver<Prepared>),
    inferred: (Sender<InFlight>, Receiver<InFlight>),
    done: (Sender<Outcome>, Receiver<Outcome>),
    /// The engine's pipeline, once per decoding thread.
    pipeline: (Sender<MaskPipeline>, Receiver<MaskPipeline>),
}

type Prepared = Result<InFlight, Outcome>;

fn spawn<'scope>(
    scope: &'scope Scope<'scope, '_>,
    name: &str,
    work: impl FnOnce() + Send + 'scope,
) {
    if let Err(e) = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn_scoped(scope, work)
    {
        tracing::error!("cannot start a {name} thread: {e}");
    }
}

impl Flow<'_> {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub(super) fn run<S: BorrowMut<Segmenter>, E>(
        self,
        open: impl FnOnce() -> Result<(S, Option<Receiver<Segmenter>>), E>,
        jobs: Vec<Job>,
        on_done: impl FnMut(Outcome),
        on_switch: impl FnMut(&Segmenter),
    ) -> Result<(), E> {
        let (threads, slots) = sizes(self.options.workers, jobs.len());
        let slots = Slots::new(slots);
        let (job_tx, job_rx) = crossbeam_channel::unbounded();
        for job in jobs.into_iter().enumerate() {
            job_tx.send(job).ok();
        }
        drop(job_tx);
        let arrived = Mutex::new(None);
        let flow = &self;
        std::thread::scope(|scope| {
            // The channels live in this closure, so that an early return closes them before the
            // scope waits for the threads.
            let lines = Lines {
                prepared: crossbeam_channel::unbounded(),
                inferred: crossbeam_channel::unbounded(),
                done: crossbeam_channel::unbounded(),
                pipeline: crossbeam_channel::bounded(threads),
            };
            for _ in 0..threads {
                flow.spawn_decoding(scope, &lines, &job_rx, &slots);
            }
            let (opened, successor) = open()?;
            let mut current = Current::Opened(opened);
            let pipeline = current.get().pipeline();
            for _ in 0..threads {
                lines.pipeline.0.send(pipeline).ok();
            }
            for _ in 0..threads {
                flow.spawn_finishing(scope, &lines, pipeline);
            }
            let handover = Handover::start(scope, &mut current, successor, &arrived);
            let Lines {
                prepared,
                inferred,
                done,
                ..
            } = lines;
            drop((prepared.0, done.0));
            let mut order = InOrder::new(on_done);
            let mut session = Session {
                current,
                handover,
                on_switch,
            };
            for item in prepared.1 {
                for outcome in done.1.try_iter() {
                    order.add(outcome);
                }
                match item {
                    // Stopped: dropped, which gives its slot back.
                    Ok(_) if flow.stopped() => {}
                    Ok(item) => match session.infer(item) {
                        Ok(item) => {
                            inferred.0.send(item).ok();
                        }
                        Err(outcome) => order.add(*outcome),
                    },
                    Err(outcome) => order.add(outcome),
                }
            }
            drop((inferred.0, session));
            for outcome in done.1 {
                order.add(outcome);
            }
            order.finish();
            Ok(())
        })
    }

    /// A decoding thread: takes a slot, then a job; decodes it and makes its input.
    fn spawn_decoding<'scope>(
        &'scope self,
        scope: &'scope Scope<'scope, '_>,
        lines: &Lines,
        jobs: &Receiver<(usize, Job)>,
        slots: &'scope Slots,
    ) {
        let prepared = lines.prepared.0.clone();
        let (pipeline, jobs) = (lines.pipeline.1.clone(), jobs.clone());
        spawn(scope, "cutout-decode", move || {
            let mut known = None;
            while let Some(slot) = slots.take() {
                if self.stopped() {
                    break;
                }
                let Ok(job) = jobs.try_recv() else { break };
                // The first photo is decoded while the engine opens; its input needs the
                // engine's pipeline.
                let item = stages::prepare(job, slot, &self.options, || {
                    if known.is_none() {
                        known = pipeline.recv().ok();
                    }
                    known
                });
                if item.is_none_or(|item| prepared.send(item).is_err()) {
                    break;
                }
            }
        });
    }

    /// A finishing thread.
    fn spawn_finishing<'scope>(
        &'scope self,
        scope: &'scope Scope<'scope, '_>,
        lines: &Lines,
        pipeline: MaskPipeline,
    ) {
        let (inferred, done) = (lines.inferred.1.clone(), lines.done.0.clone());
        spawn(scope, "cutout-finish", move || {
            for item in inferred {
                // Stopped: what is not being written yet is not started.
                if self.stopped() {
                    continue;
                }
                if done
                    .send(stages::finish(item, pipeline, &self.options, self.finisher))
                    .is_err()
                {
                    break;
                }
            }
        });
    }
}

/// The network's side of the batch, on the caller's thread.
struct Session<'a, S, F> {
    current: Current<S>,
    handover: Handover<'a>,
    on_switch: F,
}

impl<S: BorrowMut<Segmenter>, F: FnMut(&Segmenter)> Session<'_, S, F> {
    /// Runs the network on a photo (a photo whose mask was given passes through).
    fn infer(&mut self, mut item: InFlight) -> Result<InFlight, Box<Outcome>> {
        let Mask::Input(input) = &item.mask else {
            return Ok(item);
        };
        self.handover
            .take_over(&mut self.current, &mut self.on_switch);
        let started = Instant::now();
        let mut ran = self.current.get().infer(input);
        // Stopped because the faster engine arrived: run it there.
        if ran.is_err()
            && self
                .handover
                .take_over(&mut self.current, &mut self.on_switch)
        {
            tracing::debug!("stopped on the first engine; running it on the second");
            ran = self.current.get().infer(input);
        }
        item.provider = Some(self.current.get().report().provider);
        match ran {
            Ok(raw) => {
                item.timings.infer_ms = ms_since(started);
                item.mask = Mask::Raw(raw);
                Ok(item)
            }
            Err(e) => Err(Box::new(item.network_failed(e))),
        }
    }
}
