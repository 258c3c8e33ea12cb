//! `cutout remove --shard K/N`: N copies of one command, with nothing shared but the folder, do
//! every photo exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeMap, process::Command};

use crate::common;

#[test]
fn shards_do_every_photo_exactly_once() {
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("photos");
    std::fs::create_dir_all(&input).unwrap();
    let photos = common::shared_photos();
    for photo in &photos {
        std::fs::copy(photo, input.join(photo.file_name().unwrap())).unwrap();
    }
    let count = 3;
    let mut written: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for index in 0..count {
        // Each copy writes into its own folder, so that a photo done twice shows.
        let out = root.path().join(format!("out{index}"));
        let run = Command::new(env!("CARGO_BIN_EXE_cutout"))
            .arg("remove")
            .arg(&input)
            .arg("-o")
            .arg(&out)
            .args(["--shard", &format!("{index}/{count}"), "-q"])
            .env("CUTOUT_MODELS_DIR", common::models_dir())
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "shard {index}: {log}");
        for entry in std::fs::read_dir(&out).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            written.entry(name).or_default().push(index);
        }
    }
    assert_eq!(
        written.len(),
        photos.len(),
        "every photo has a cutout: {written:?}"
    );
    let twice: Vec<_> = written.iter().filter(|(_, by)| by.len() > 1).collect();
    assert!(twice.is_empty(), "done more than once: {twice:?}");
    let mut sizes = vec![0usize; count];
    for by in written.values() {
        sizes[by[0]] += 1;
    }
    assert!(
        sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
        "{sizes:?}"
    );
}

#[test]
fn a_shard_outside_the_count_says_how_to_write_one() {
    let run = Command::new(env!("CARGO_BIN_EXE_cutout"))
        .args(["remove", "photo.jpg", "--shard", "3/3"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{log}");
    assert!(log.contains("K/N") && log.contains("0/4"), "{log}");
}
