//! Unit tests of `app/responses.rs`, without a window or a model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;

use super::*;
use crate::worker::JobKind;

fn job(id: JobId, kind: JobKind) -> Request {
    Request::SegmentFile {
        id,
        kind,
        path: format!("{id}.jpg").into(),
    }
}

fn id(request: &Request) -> JobId {
    match request {
        Request::SegmentFile { id, .. } => *id,
        other => panic!("unexpected {other:?}"),
    }
}

/// The outbox in the order the UI queued it: exports (queue lane) and clicks (now lane)
/// mixed.
fn outbox() -> VecDeque<Request> {
    [
        (1, JobKind::Queue),
        (2, JobKind::Queue),
        (3, JobKind::Preview),
        (4, JobKind::Queue),
        (5, JobKind::Preview),
    ]
    .into_iter()
    .map(|(i, k)| job(i, k))
    .collect()
}

/// The app without a window: a headless egui context, no wgpu renderer, settings in a
/// temporary folder, never saved. Its worker starts but is never answered here: the tests
/// hand responses to `handle_response` themselves.
fn app(dir: &std::path::Path) -> CutoutApp {
    let mut options = super::super::AppOptions::new(crate::paths::AppDirs::under(dir), Vec::new());
    options.persist = false;
    options.settings = Some(super::super::Settings::default());
    CutoutApp::start(egui::Context::default(), None, options).unwrap()
}

/// A photo in the queue with a job of `purpose` under way for it.
fn photo_with_job(app: &mut CutoutApp, purpose: Purpose) -> (EntryId, JobId) {
    let entry = app.push_entry(
        "car.jpg".to_owned(),
        super::super::Source::File("car.jpg".into()),
    );
    let id = app.link.new_job(entry, purpose);
    (entry, id)
}

fn write_failure() -> PhotoError {
    PhotoError::Write(crate::finish::FinishError::Image(
        image_ops::ImageError::Write {
            path: "out/car.png".into(),
            reason: "Read-only file system".to_owned(),
        },
    ))
}

#[test]
fn a_failed_write_is_not_the_photos_fault_but_a_broken_photo_is() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = app(dir.path());
    let (entry, id) = photo_with_job(&mut app, Purpose::Export);
    app.state.entry_mut(entry).unwrap().status = EntryStatus::Done;
    app.handle_response(Response::Failed {
        id,
        error: write_failure(),
    });
    assert_eq!(app.state.entry(entry).unwrap().status, EntryStatus::Done);
    let message = app.state.messages.last().unwrap();
    assert!(message.is_error && message.text.contains("Read-only file system"));
    assert_eq!((message.entry, message.topic), (Some(entry), Topic::Export));

    let (entry, id) = photo_with_job(&mut app, Purpose::Scan);
    app.handle_response(Response::Failed {
        id,
        error: PhotoError::Photo(image_ops::ImageError::Corrupt {
            path: "car.jpg".into(),
            reason: "truncated".to_owned(),
        }),
    });
    assert!(matches!(
        app.state.entry(entry).unwrap().status,
        EntryStatus::Failed(_)
    ));
}

#[test]
fn without_a_model_a_photo_waits_and_no_message_is_posted() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = app(dir.path());
    let (entry, id) = photo_with_job(&mut app, Purpose::Scan);
    let before = app.state.messages.len();
    app.handle_response(Response::Failed {
        id,
        error: PhotoError::NoModel {
            name: "car.jpg".to_owned(),
        },
    });
    assert_eq!(app.state.entry(entry).unwrap().status, EntryStatus::Pending);
    assert_eq!(app.state.messages.len(), before);
    // A response for a job the app no longer tracks (a removed photo) changes nothing.
    app.handle_response(Response::Failed {
        id,
        error: write_failure(),
    });
    assert_eq!(app.state.messages.len(), before);
}

#[test]
fn a_failed_configuration_says_why_and_a_cancelled_fetch_goes_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = app(dir.path());
    app.handle_response(Response::ConfigureFailed {
        error: EngineError::Setup("no network".to_owned()),
        cancelled: false,
    });
    assert!(matches!(&app.state.engine, EngineStatus::Failed(why) if why.contains("no network")));
    assert_eq!(
        app.state
            .messages
            .iter()
            .filter(|m| m.topic == Topic::Engine)
            .count(),
        1
    );
    // A fetch of another model cancelled while u2netp ran: back to u2netp.
    app.loaded_model = Some("u2netp".to_owned());
    app.settings.model = super::super::settings::Choice::Fixed("isnet".to_owned());
    app.handle_response(Response::ConfigureFailed {
        error: EngineError::Setup("cancelled".to_owned()),
        cancelled: true,
    });
    assert_eq!(app.settings.model_name(), "u2netp");
    assert!(matches!(app.state.engine, EngineStatus::Configuring { .. }));
}

#[test]
fn a_full_queue_lane_does_not_hold_up_a_click_and_keeps_its_order() {
    let mut outbox = outbox();
    let mut sent = Vec::new();
    let mut queue_room = 1;
    let flushed = flush(&mut outbox, |request| {
        if request.lane() == crate::worker::Lane::Queue {
            if queue_room == 0 {
                return Err(SendError::Busy(Box::new(request)));
            }
            queue_room -= 1;
        }
        sent.push(id(&request));
        Ok(())
    });
    assert_eq!(flushed, Ok(()));
    assert_eq!(sent, [1, 3, 5], "the clicks went past the full queue lane");
    assert_eq!(
        outbox.iter().map(id).collect::<Vec<_>>(),
        [2, 4],
        "what the full lane refused waits, in order"
    );
    // The next frame, with room: the rest goes, still in order.
    let mut later = Vec::new();
    flush(&mut outbox, |request| {
        later.push(id(&request));
        Ok(())
    })
    .unwrap();
    assert_eq!(later, [2, 4]);
    assert!(outbox.is_empty());
}

#[test]
fn a_stopped_worker_is_reported_and_the_rest_stays_queued() {
    let mut outbox = outbox();
    let mut calls = 0;
    let flushed = flush(&mut outbox, |request| {
        calls += 1;
        if calls == 2 {
            return Err(SendError::Stopped);
        }
        drop(request);
        Ok(())
    });
    assert_eq!(flushed, Err(Stopped));
    assert_eq!(
        outbox.iter().map(id).collect::<Vec<_>>(),
        [3, 4, 5],
        "the requests not sent stay"
    );
}
