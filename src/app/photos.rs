//! The queue of photos: adding files, folders and pasted images, choosing the one on screen,
//! and putting its photo and mask into the compositor.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use image::{GrayImage, RgbImage};

use super::{
    Current, CutoutApp, Entry, EntryId, EntryStatus, Purpose, Source, UiCommand, ViewState,
    compositor::Compositor, tasks,
};
use crate::{
    image_ops::edits::History,
    image_ops::{self, composite},
    worker::{JobKind, Request, RunInfo},
};

impl CutoutApp {
    // ---- queue ------------------------------------------------------------------------------

    pub(super) fn add_paths(&mut self, paths: &[PathBuf]) {
        let mut added = Vec::new();
        for path in paths {
            match crate::batch::expand_inputs(std::slice::from_ref(path), false, None) {
                Ok(files) if files.is_empty() && path.is_dir() => self.state.post(
                    format!("no photos in that folder: {}", path.display()),
                    true,
                ),
                Ok(files) => {
                    for crate::batch::Found { path: file, .. } in files {
                        let name = file.file_name().map_or_else(
                            || file.display().to_string(),
                            |n| n.to_string_lossy().into_owned(),
                        );
                        added.push(self.push_entry(name, Source::File(file)));
                    }
                }
                Err(e) => self.state.post(e.to_string(), true),
            }
        }
        if let Some(dir) = paths.first().and_then(|p| {
            if p.is_dir() {
                Some(p.clone())
            } else {
                p.parent().map(Path::to_path_buf)
            }
        }) {
            self.settings.open_dir = Some(dir);
        }
        self.after_adding(&added);
    }

    pub(super) fn push_entry(&mut self, name: String, source: Source) -> EntryId {
        self.next_entry += 1;
        let id = self.next_entry;
        let origin = match &source {
            Source::File(path) => image_ops::Origin::of_file(path),
            // A pasted image has no name to go by: it is its own photo, this run.
            Source::Pasted(_) => {
                let stamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos();
                let unique = format!("{}-{stamp}-{id}", std::process::id());
                image_ops::Origin::of_bytes(b"pasted:", unique.as_bytes())
            }
        };
        self.state.entries.push(Entry {
            id,
            name,
            source,
            status: EntryStatus::Pending,
            origin,
            thumbnail: None,
            edits: History::default(),
        });
        id
    }

    /// The first new photo goes on screen (when nothing is); the others are scanned.
    pub(super) fn after_adding(&mut self, added: &[EntryId]) {
        let Some(&first) = added.first() else {
            return;
        };
        let show = if self.state.current.is_none() {
            Some(first)
        } else {
            None
        };
        for &id in added {
            if Some(id) == show {
                self.select(id);
            } else {
                self.scan(id);
            }
        }
    }

    pub(super) fn scan(&mut self, entry: EntryId) {
        let Some(e) = self.state.entry(entry) else {
            return;
        };
        let source = e.source.clone();
        let name = e.name.clone();
        let id = self.link.new_job(entry, Purpose::Scan);
        self.send(match source {
            Source::File(path) => Request::SegmentFile {
                id,
                kind: JobKind::Queue,
                path,
            },
            Source::Pasted(rgb) => Request::SegmentImage {
                id,
                kind: JobKind::Queue,
                name,
                rgb,
            },
        });
    }

    pub(super) fn select(&mut self, entry: EntryId) {
        let Some(e) = self.state.entry(entry) else {
            return;
        };
        let source = e.source.clone();
        let name = e.name.clone();
        self.end_stroke();
        let id = self.link.new_job(entry, Purpose::Preview);
        self.state.current = Some(Current::new(entry, id));
        self.view = ViewState::default();
        if let Some(rs) = &self.render_state {
            Compositor::with(rs, |c, _, _| c.clear());
        }
        self.edges.clear();
        let request = match source {
            Source::File(path) => Request::SegmentFile {
                id,
                kind: JobKind::Preview,
                path,
            },
            Source::Pasted(rgb) => {
                self.install_photo(&rgb);
                if let Some(current) = &mut self.state.current {
                    current.photo = Some(Arc::clone(&rgb));
                    current.display = Some(Arc::clone(&rgb));
                }
                if self.state.current_edits().is_some_and(History::has_edits) {
                    self.paint_layer_again();
                }
                Request::SegmentImage {
                    id,
                    kind: JobKind::Preview,
                    name,
                    rgb,
                }
            }
        };
        self.send(request);
    }

    /// Runs the network again on the photo on screen (Live mode, or after a precision switch).
    pub(super) fn rerun_current(&mut self) {
        let Some(current) = &self.state.current else {
            return;
        };
        let entry = current.entry;
        // The network gets the photo in sRGB.
        let Some(photo) = current.display.clone() else {
            // Not decoded yet (or it failed): start over from the source.
            self.select(entry);
            return;
        };
        let name = self
            .state
            .entry(entry)
            .map(|e| e.name.clone())
            .unwrap_or_default();
        let id = self.link.new_job(entry, Purpose::Preview);
        if let Some(current) = &mut self.state.current {
            current.job = id;
            current.busy = true;
        }
        self.send(Request::SegmentImage {
            id,
            kind: JobKind::Preview,
            name,
            rgb: photo,
        });
    }

    pub(super) fn remove(&mut self, entry: EntryId) {
        self.state.entries.retain(|e| e.id != entry);
        self.link
            .jobs
            .retain(|_, (e, p)| *e != entry || *p == Purpose::Export);
        if self
            .state
            .current
            .as_ref()
            .is_some_and(|c| c.entry == entry)
        {
            self.state.current = None;
            if let Some(rs) = &self.render_state {
                Compositor::with(rs, |c, _, _| c.clear());
            }
            self.edges.clear();
            if let Some(next) = self.state.entries.first().map(|e| e.id) {
                self.select(next);
            }
        }
    }

    pub(super) fn paste_image(&mut self, image: &egui::ColorImage) {
        let [w, h] = image.size;
        #[allow(clippy::cast_possible_truncation)]
        let rgb: Vec<u8> = image
            .pixels
            .iter()
            .flat_map(|c| {
                // Transparent clipboard pixels are shown over white.
                let [r, g, b, a] = c.to_srgba_unmultiplied();
                let over = |v: u8| {
                    ((u32::from(v) * u32::from(a) + 255 * (255 - u32::from(a)) + 127) / 255) as u8
                };
                [over(r), over(g), over(b)]
            })
            .collect();
        #[allow(clippy::cast_possible_truncation)]
        let Some(rgb) = RgbImage::from_raw(w as u32, h as u32, rgb) else {
            self.state
                .post("the clipboard image has an impossible size", true);
            return;
        };
        self.pasted += 1;
        let rgb = Arc::new(rgb);
        let id = self.push_entry(
            format!("Pasted image {}", self.pasted),
            Source::Pasted(Arc::clone(&rgb)),
        );
        // Files get their row's picture from the worker's decode; a pasted image is decoded
        // already.
        match image_ops::resize::shrink_to_fit(&rgb, crate::worker::THUMBNAIL_SIDE_PX) {
            Ok(small) => self.set_thumbnail(id, &small),
            Err(e) => tracing::warn!("no thumbnail for the pasted image: {e}"),
        }
        self.select(id);
    }

    pub(super) fn paste_text(&mut self, text: &str) {
        let paths: Vec<PathBuf> = text
            .lines()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .map(|l| PathBuf::from(l.strip_prefix("file://").unwrap_or(l)))
            .filter(|p| p.exists())
            .collect();
        if paths.is_empty() {
            self.state.post(
                "the clipboard holds text, not an image or photo files; copy an image and paste again",
                true,
            );
        } else {
            self.add_paths(&paths);
        }
    }

    // ---- GPU textures -----------------------------------------------------------------------

    /// Uploads a photo (downscaled only beyond the GPU's texture limit) and its backdrop.
    pub(super) fn install_photo(&mut self, photo: &Arc<RgbImage>) {
        let Some(rs) = self.render_state.clone() else {
            return;
        };
        let started = Instant::now();
        let limit = Compositor::max_texture_side_px(&rs.device);
        let shown = if photo.width() > limit || photo.height() > limit {
            match image_ops::resize::shrink_to_fit(photo, limit) {
                Ok(small) => Arc::new(small),
                Err(e) => return self.state.post(e.to_string(), true),
            }
        } else {
            Arc::clone(photo)
        };
        let result = composite::backdrop(&shown)
            .map_err(|e| e.to_string())
            .and_then(|backdrop| {
                Compositor::with(&rs, |c, device, queue| {
                    c.set_photo(device, queue, &shown, &backdrop)
                })
                .unwrap_or(Ok(()))
                .map_err(|e| e.to_string())
            });
        match result {
            Ok(()) => {
                if let Some(current) = &mut self.state.current {
                    current.texture_size = Some([shown.width(), shown.height()]);
                    current.uploaded = None;
                }
                self.edges.set_photo(shown);
                self.state
                    .stats
                    .texture_upload
                    .push(started.elapsed().as_secs_f64() * 1e3);
            }
            Err(e) => self.state.post(e, true),
        }
    }

    pub(super) fn install_mask(&mut self, mask: &Arc<GrayImage>, ran: RunInfo) {
        let Some(rs) = self.render_state.clone() else {
            return;
        };
        let Some(current) = &self.state.current else {
            return;
        };
        if current.uploaded == Some(ran) {
            // Live mode re-runs the same network on the same photo: the mask is the same.
            return;
        }
        let Some([tw, th]) = current.texture_size else {
            return;
        };
        let started = Instant::now();
        let fitted = if mask.dimensions() == (tw, th) {
            Arc::clone(mask)
        } else {
            match image_ops::resize::box_average(
                mask.as_raw(),
                mask.width(),
                mask.height(),
                1,
                tw,
                th,
            )
            .ok()
            .and_then(|v| GrayImage::from_raw(tw, th, v))
            {
                Some(m) => Arc::new(m),
                None => return,
            }
        };
        let result = Compositor::with(&rs, |c, _, queue| c.set_mask(queue, &fitted));
        if let Some(Err(e)) = result {
            return self.state.post(e.to_string(), true);
        }
        // On the CPU edge path: the unrefined cutout at once, the refined one when it is ready.
        if let Some(rgba) = self.edges.set_mask(fitted)
            && let Some(Err(e)) = Compositor::with(&rs, |c, _, queue| c.write_cutout(queue, &rgba))
        {
            return self.state.post(e.to_string(), true);
        }
        if let Some(current) = &mut self.state.current {
            current.uploaded = Some(ran);
        }
        self.state
            .stats
            .texture_upload
            .push(started.elapsed().as_secs_f64() * 1e3);
    }

    /// Shows the open dialog (for photos, or a folder), or says how else to add photos where
    /// there is none.
    pub(super) fn open_dialog(&mut self, folder: bool) {
        if let Some(why) = tasks::file_dialog_missing() {
            return self.state.post(
                format!(
                    "{why}; drop photos onto the window, paste one ({}) or name them on the command line",
                    UiCommand::Paste.shortcut_text(&self.ctx).unwrap_or_default()
                ),
                true,
            );
        }
        let start = self.settings.open_dir.clone();
        let opened = if folder {
            self.tasks.open_folder(&self.ctx, start)
        } else {
            self.tasks.open_files(&self.ctx, start)
        };
        if let Err(e) = opened {
            self.state.post(e.to_string(), true);
        }
    }
}
