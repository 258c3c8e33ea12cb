//! Unit tests of `app/state.rs`, without a window or a model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use super::*;

fn state(dir: &std::path::Path) -> AppState {
    AppState::starting(
        "a test adapter".to_owned(),
        false,
        crate::finish::EdgePath::cpu("a test"),
        &AppDirs::under(dir),
    )
}

fn shown(state: &AppState, after: Duration) -> Option<String> {
    let now = state.messages.last().map_or_else(Instant::now, |m| m.at) + after;
    state.status_message(now).map(|(m, _)| m.text.clone())
}

#[test]
fn the_status_bar_shows_the_newest_message_about_the_photo_on_screen_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = state(dir.path());
    state.current = Some(Current::new(1, 10));
    state.post("general", false);
    assert_eq!(shown(&state, Duration::ZERO).as_deref(), Some("general"));
    state.post_about(Some(2), Topic::Export, "about another photo", true);
    assert_eq!(
        shown(&state, Duration::ZERO).as_deref(),
        Some("general"),
        "a message about a photo not on screen waits for it"
    );
    state.post_about(Some(1), Topic::Export, "about this photo", true);
    assert_eq!(
        shown(&state, Duration::ZERO).as_deref(),
        Some("about this photo")
    );
    state.current = Some(Current::new(2, 11));
    assert_eq!(
        shown(&state, Duration::ZERO).as_deref(),
        Some("about another photo")
    );
}

#[test]
fn information_fades_sooner_than_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = state(dir.path());
    state.post("an error", true);
    state.post("information", false);
    let just_before = INFO_SHOWN_FOR - Duration::from_millis(1);
    assert_eq!(shown(&state, just_before).as_deref(), Some("information"));
    assert_eq!(
        shown(&state, INFO_SHOWN_FOR).as_deref(),
        Some("an error"),
        "the older error outlives the newer information"
    );
    assert_eq!(shown(&state, ERROR_SHOWN_FOR), None);
}

#[test]
fn a_newer_engine_message_replaces_the_older_and_the_list_stays_short() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = state(dir.path());
    state.post_about(None, Topic::Engine, "cannot fetch the model", true);
    state.post("something else", false);
    state.post_about(None, Topic::Engine, "the model loaded", false);
    let engine: Vec<_> = state
        .messages
        .iter()
        .filter(|m| m.topic == Topic::Engine)
        .map(|m| m.text.as_str())
        .collect();
    assert_eq!(engine, ["the model loaded"]);
    for i in 0..500 {
        state.post(format!("message {i}"), false);
    }
    assert!(state.messages.len() <= 200, "{}", state.messages.len());
    assert_eq!(state.messages.last().unwrap().text, "message 499");
}

#[test]
fn counts_take_exported_as_done() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = state(dir.path());
    for (id, status) in [
        EntryStatus::Pending,
        EntryStatus::Done,
        EntryStatus::Exported("a.png".into()),
        EntryStatus::Failed("broken".to_owned()),
    ]
    .into_iter()
    .enumerate()
    {
        let path = std::path::PathBuf::from(format!("{id}.jpg"));
        state.entries.push(Entry {
            id: id as EntryId,
            name: format!("{id}.jpg"),
            origin: Origin::of_file(&path),
            source: Source::File(path),
            status,
            thumbnail: None,
            edits: History::default(),
        });
    }
    assert_eq!(state.counts(), (2, 1));
}
