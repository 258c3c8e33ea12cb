//! Export and Copy: names and folders, Export all, and the file dialogs' results.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{
    CutoutApp, Entry, EntryStatus, Purpose, Source, state,
    tasks::{self, AfterFolder, TaskResult},
};
use crate::{
    batch,
    worker::{ExportSource, JobKind, Request},
};

impl CutoutApp {
    pub(super) fn bump_export(&mut self, ok: bool) {
        if let Some(p) = &mut self.state.export_progress {
            if ok {
                p.done += 1;
            } else {
                p.failed += 1;
            }
            if p.done + p.failed >= p.total {
                let (done, failed) = (p.done, p.failed);
                self.state.export_progress = None;
                self.state.post(
                    format!("export all finished: {done} written, {failed} failed"),
                    failed > 0,
                );
            }
        }
    }

    // ---- export -----------------------------------------------------------------------------

    /// The PNG name for an entry in `dir` by the command line's rule ([`batch::output_name`]):
    /// never the photo itself and not one in `taken`.
    pub(super) fn export_path(dir: &Path, entry: &Entry, taken: &HashSet<PathBuf>) -> PathBuf {
        let (name, input) = match &entry.source {
            Source::File(path) => (
                path.file_name()
                    .map_or_else(|| "photo".to_owned(), |s| s.to_string_lossy().into_owned()),
                Some(path.clone()),
            ),
            Source::Pasted(_) => (entry.name.to_lowercase().replace(' ', "-"), None),
        };
        batch::output_name(dir, &name, "cutout", batch::Place::Folder, |p| {
            taken.contains(p) || input.as_deref() == Some(p)
        })
    }

    pub(super) fn export_current_to(&mut self, output: PathBuf) {
        let Some(current) = &self.state.current else {
            return self.state.post("open a photo first, then export it", true);
        };
        let (Some(rgb), Some(mask)) = (current.photo.clone(), current.mask.clone()) else {
            return self.state.post(
                "the cutout is not ready yet; export again in a moment",
                true,
            );
        };
        let entry = current.entry;
        let edits = self.edits_of(entry);
        let id = self.link.worker.next_id(JobKind::Queue);
        self.link.jobs.insert(id, (entry, Purpose::Export));
        self.send(Request::Export {
            id,
            source: ExportSource::Segmented { rgb, mask },
            settings: self.settings.composite,
            edits,
            output,
        });
    }

    /// The export folder, made again when it was deleted since it was chosen; `None` (with a
    /// message) when it cannot be made.
    pub(super) fn export_dir_ready(&mut self) -> Option<PathBuf> {
        let dir = self.settings.export_dir.clone()?;
        if dir.is_dir() {
            return Some(dir);
        }
        match std::fs::create_dir_all(&dir) {
            Ok(()) => {
                self.state.post(
                    format!(
                        "the export folder was missing and was made again: {}",
                        dir.display()
                    ),
                    false,
                );
                Some(dir)
            }
            Err(e) => {
                self.state.post(
                    format!(
                        "cannot make the export folder ({e}): {}; choose another with Folder… or type one",
                        dir.display()
                    ),
                    true,
                );
                None
            }
        }
    }

    pub(super) fn export_current(&mut self) {
        if self.settings.export_dir.is_none() {
            return self.ask_export_folder(AfterFolder::ExportCurrent);
        }
        let Some(dir) = self.export_dir_ready() else {
            return;
        };
        let Some(entry) = self.state.current_entry() else {
            return self.state.post("open a photo first, then export it", true);
        };
        let output = Self::export_path(&dir, entry, &HashSet::new());
        self.export_current_to(output);
    }

    pub(super) fn export_all(&mut self) {
        if self.settings.export_dir.is_none() {
            return self.ask_export_folder(AfterFolder::ExportAll);
        }
        let Some(dir) = self.export_dir_ready() else {
            return;
        };
        let mut taken = HashSet::new();
        let mut requests = Vec::new();
        for entry in &self.state.entries {
            if matches!(entry.status, EntryStatus::Failed(_)) {
                continue;
            }
            let output = Self::export_path(&dir, entry, &taken);
            taken.insert(output.clone());
            let current = self.state.current.as_ref().filter(|c| c.entry == entry.id);
            let source = match (
                current.and_then(|c| c.photo.clone()),
                current.and_then(|c| c.mask.clone()),
            ) {
                (Some(rgb), Some(mask)) => ExportSource::Segmented { rgb, mask },
                _ => match &entry.source {
                    Source::File(path) => ExportSource::File(path.clone()),
                    Source::Pasted(rgb) => ExportSource::Pixels {
                        name: entry.name.clone(),
                        rgb: Arc::clone(rgb),
                    },
                },
            };
            requests.push((entry.id, source, entry.edits.strokes(), output));
        }
        if requests.is_empty() {
            return self.state.post("there is nothing to export yet", true);
        }
        self.state.export_progress = Some(state::ExportProgress {
            total: requests.len(),
            ..state::ExportProgress::default()
        });
        for (entry, source, edits, output) in requests {
            let id = self.link.worker.next_id(JobKind::Queue);
            self.link.jobs.insert(id, (entry, Purpose::Export));
            self.send(Request::Export {
                id,
                source,
                settings: self.settings.composite,
                edits,
                output,
            });
        }
    }

    pub(super) fn ask_export_folder(&mut self, then: AfterFolder) {
        if let Some(why) = tasks::file_dialog_missing() {
            return self.export_without_dialog(&why, then);
        }
        let start = self
            .settings
            .export_dir
            .clone()
            .or_else(|| self.settings.open_dir.clone());
        if let Err(e) = self.tasks.pick_export_folder(&self.ctx, start, then) {
            self.state.post(e.to_string(), true);
        }
    }

    /// No dialog can ask for a folder: keep the one there is, or use the default one, and say
    /// where the files go and how to choose another.
    pub(super) fn export_without_dialog(&mut self, why: &str, then: AfterFolder) {
        let dir = self
            .settings
            .export_dir
            .clone()
            .unwrap_or_else(|| self.dirs.default_export_dir.clone());
        self.settings.export_dir = Some(dir.clone());
        self.state.post(
            format!(
                "{why}; exports go to {}. To use another folder, type it under Export → Folder",
                dir.display()
            ),
            then == AfterFolder::Remember,
        );
        match then {
            AfterFolder::ExportCurrent => self.export_current(),
            AfterFolder::ExportAll => self.export_all(),
            AfterFolder::Remember => {}
        }
    }

    pub(super) fn handle_task(&mut self, result: TaskResult) {
        match result {
            TaskResult::Opened(files) => self.add_paths(&files),
            TaskResult::ExportFolder(Some(folder), then) => {
                self.settings.export_dir = Some(folder);
                match then {
                    AfterFolder::ExportCurrent => self.export_current(),
                    AfterFolder::ExportAll => self.export_all(),
                    AfterFolder::Remember => {}
                }
            }
            TaskResult::ExportFolder(None, _) | TaskResult::ExportFile(None) => {}
            TaskResult::ExportFile(Some(path)) => {
                if let Some(dir) = path.parent() {
                    self.settings.export_dir = Some(dir.to_owned());
                }
                self.export_current_to(path);
            }
        }
    }

    /// Asks where to export the photo on screen (a save dialog).
    pub(super) fn export_as(&mut self) {
        let Some(entry) = self.state.current_entry() else {
            return self.state.post("open a photo first, then export it", true);
        };
        if let Some(why) = tasks::file_dialog_missing() {
            return self.export_without_dialog(&why, AfterFolder::ExportCurrent);
        }
        let name = Self::export_path(Path::new(""), entry, &HashSet::new());
        let start = self.settings.export_dir.clone();
        if let Err(e) = self
            .tasks
            .save_file(&self.ctx, start, name.to_string_lossy().into_owned())
        {
            self.state.post(e.to_string(), true);
        }
    }

    /// Uses `dir` (typed in the Export panel) for exports, made when missing.
    pub(super) fn set_export_folder(&mut self, dir: PathBuf) {
        match std::fs::create_dir_all(&dir) {
            Ok(()) => {
                self.state
                    .post(format!("exports go to {}", dir.display()), false);
                self.settings.export_dir = Some(dir);
            }
            Err(e) => self.state.post(
                format!("cannot use that folder ({e}): {}", dir.display()),
                true,
            ),
        }
    }

    /// Copies the cutout on screen; the worker composites it at full resolution.
    pub(super) fn copy_current(&mut self) {
        let ready = self
            .state
            .current
            .as_ref()
            .and_then(|c| Some((c.photo.clone()?, c.mask.clone()?)));
        match (ready, self.state.current_entry().map(|e| e.id)) {
            (Some((photo, mask)), Some(entry)) => {
                let edits = self.edits_of(entry);
                let id = self.link.worker.next_id(JobKind::Queue);
                self.link.jobs.insert(id, (entry, Purpose::Copy));
                self.send(Request::Copy {
                    id,
                    photo,
                    mask,
                    settings: self.settings.composite,
                    edits,
                });
            }
            _ => self.state.post("there is no cutout to copy yet", true),
        }
    }
}
