//! The commands: what the UI asks for ([`Command`]), and the table of named commands with their
//! labels, help and shortcuts ([`UiCommand`]): the menu, the keyboard handler and the help read
//! from it. Applying them is `commands.rs`.

use std::path::PathBuf;

use super::{
    AppState, EntryId,
    brush::{EditStep, PaintEvent},
};
use crate::{
    engine::Precision,
    image_ops::edits::{BrushMode, History},
};

/// What the UI asks for (anything that is more than a redraw).
#[derive(Debug, Clone)]
pub enum Command {
    /// Show the open dialog.
    OpenDialog,
    /// Show the folder dialog, to add a folder of photos.
    OpenFolderDialog,
    /// Add files and folders to the queue.
    Add(Vec<PathBuf>),
    /// Put a photo on screen.
    Select(EntryId),
    /// Remove a photo from the queue.
    Remove(EntryId),
    /// Export the photo on screen into the export folder.
    Export,
    /// Export the photo on screen under a name chosen in a dialog.
    ExportAs,
    /// Export every photo of the queue into the export folder.
    ExportAll,
    /// Choose the export folder.
    ChooseExportFolder,
    /// Use this export folder (typed in the Export panel); made when missing.
    SetExportFolder(PathBuf),
    /// Copy the cutout to the clipboard.
    Copy,
    /// Paste an image (or file paths) from the clipboard.
    Paste,
    /// Switch precision (reloads the session on the worker).
    SetPrecision(Precision),
    /// Switch provider (or leave it to cutout: `auto`).
    SetProvider(super::settings::Choice<crate::engine::ProviderKind>),
    /// Switch model (a manifest name; fetched on first use, with progress).
    SetModel(String),
    /// Stop the model fetch in progress and go back to the model before it.
    CancelFetch,
    /// Load the model again after it failed (a fetch that could not connect, say).
    RetryEngine,
    /// Move the before/after line (0 = left edge, 1 = right edge).
    SetSplit(f32),
    /// Show or close the About window.
    ShowAbout(bool),
    /// Turn continuous re-inference on or off.
    SetLive(bool),
    /// Zoom in around the canvas centre.
    ZoomIn,
    /// Zoom out around the canvas centre.
    ZoomOut,
    /// Fit the photo in the canvas.
    ZoomFit,
    /// One photo pixel per screen pixel.
    ZoomActual,
    /// Pick a touch-up brush (the one in hand again, or `None`: put it down).
    PickBrush(Option<BrushMode>),
    /// Grow (> 1) or shrink the brush.
    ResizeBrush(f32),
    /// The brush on the canvas.
    Paint(PaintEvent),
    /// Undo, redo or reset the edits of the photo on screen.
    Edit(EditStep),
    /// Close the window.
    Quit,
}

/// The commands that have a name, a menu entry and (most) a keyboard shortcut, defined once: the
/// menu, the keyboard handler and the help window all read this table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UiCommand {
    /// Open photos with the file dialog.
    Open,
    /// Open a folder of photos with the folder dialog.
    OpenFolder,
    /// Paste an image or file paths.
    Paste,
    /// Export the photo on screen.
    Export,
    /// Export the photo on screen under a chosen name.
    ExportAs,
    /// Export every photo in the queue.
    ExportAll,
    /// Choose the export folder.
    ChooseExportFolder,
    /// Copy the cutout.
    Copy,
    /// Close the window.
    Quit,
    /// Live inference on or off.
    ToggleLive,
    /// Zoom in.
    ZoomIn,
    /// Zoom out.
    ZoomOut,
    /// Fit the photo in the canvas.
    ZoomFit,
    /// One photo pixel per screen pixel.
    ZoomActual,
    /// Undo the last touch-up.
    Undo,
    /// Redo what was undone.
    Redo,
    /// Take the Keep brush.
    KeepBrush,
    /// Take the Erase brush.
    EraseBrush,
    /// Smaller brush.
    BrushSmaller,
    /// Larger brush.
    BrushLarger,
    /// Drop the photo's touch-ups.
    ResetEdits,
}

/// Where a command sits in the menu bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Menu {
    /// File.
    File,
    /// Edit: undo, the brushes.
    Edit,
    /// View.
    View,
}

impl Menu {
    /// The menus, left to right.
    pub const ALL: [Self; 3] = [Self::File, Self::Edit, Self::View];

    /// Its title in the menu bar.
    pub fn title(self) -> &'static str {
        match self {
            Self::File => "File",
            Self::Edit => "Edit",
            Self::View => "View",
        }
    }

    /// Its commands, in order.
    pub fn commands(self) -> impl Iterator<Item = UiCommand> {
        UiCommand::ALL.into_iter().filter(move |c| c.menu() == self)
    }
}

impl UiCommand {
    /// Every command, in menu order.
    pub const ALL: [Self; 21] = [
        Self::Open,
        Self::OpenFolder,
        Self::Paste,
        Self::Export,
        Self::ExportAs,
        Self::ExportAll,
        Self::ChooseExportFolder,
        Self::Copy,
        Self::Quit,
        Self::ToggleLive,
        Self::ZoomIn,
        Self::ZoomOut,
        Self::ZoomFit,
        Self::ZoomActual,
        Self::Undo,
        Self::Redo,
        Self::KeepBrush,
        Self::EraseBrush,
        Self::BrushSmaller,
        Self::BrushLarger,
        Self::ResetEdits,
    ];

    /// The menu entry's words.
    pub fn label(self) -> &'static str {
        match self {
            Self::Open => "Open photos…",
            Self::OpenFolder => "Open folder…",
            Self::Paste => "Paste image",
            Self::Export => "Export PNG",
            Self::ExportAs => "Export as…",
            Self::ExportAll => "Export all",
            Self::ChooseExportFolder => "Choose export folder…",
            Self::Copy => "Copy cutout",
            Self::Quit => "Quit",
            Self::ToggleLive => "Live inference",
            Self::ZoomIn => "Zoom in",
            Self::ZoomOut => "Zoom out",
            Self::ZoomFit => "Fit",
            Self::ZoomActual => "Actual pixels",
            Self::Undo => "Undo",
            Self::Redo => "Redo",
            Self::KeepBrush => "Keep brush",
            Self::EraseBrush => "Erase brush",
            Self::BrushSmaller => "Smaller brush",
            Self::BrushLarger => "Larger brush",
            Self::ResetEdits => "Reset edits",
        }
    }

    /// What it does, in a sentence (the help window and tooltips).
    pub fn help(self) -> &'static str {
        match self {
            Self::Open => "Add photos to the queue (or drop photos and folders on the window).",
            Self::OpenFolder => "Add every photo of a folder to the queue.",
            Self::Paste => "Add the image (or the file paths) on the clipboard.",
            Self::Export => {
                "Write the photo on screen as a transparent PNG into the export folder, at full resolution."
            }
            Self::ExportAs => "Write the photo on screen under a name you choose.",
            Self::ExportAll => "Write every photo in the queue into the export folder.",
            Self::ChooseExportFolder => "Choose where exports go.",
            Self::Copy => "Copy the cutout to the clipboard as an image.",
            Self::Quit => "Close cutout.",
            Self::ToggleLive => "Run the network again and again on the photo on screen.",
            Self::ZoomIn => "Zoom in around the middle of the canvas (or scroll).",
            Self::ZoomOut => "Zoom out around the middle of the canvas (or scroll).",
            Self::ZoomFit => "Fit the whole photo in the canvas.",
            Self::ZoomActual => "Show one photo pixel per screen pixel.",
            Self::Undo => "Take back the last brush stroke (or reset) on this photo.",
            Self::Redo => "Put back the stroke you took back.",
            Self::KeepBrush => {
                "Paint the subject back in where the network left it out (again: put the brush down). Space+drag or the middle button pans."
            }
            Self::EraseBrush => {
                "Paint out what the network wrongly kept (again: put the brush down). Space+drag or the middle button pans."
            }
            Self::BrushSmaller => "Make the brush smaller.",
            Self::BrushLarger => "Make the brush larger.",
            Self::ResetEdits => "Drop every brush stroke on this photo (Undo brings them back).",
        }
    }

    /// The menu it is in.
    pub fn menu(self) -> Menu {
        match self {
            Self::ToggleLive | Self::ZoomIn | Self::ZoomOut | Self::ZoomFit | Self::ZoomActual => {
                Menu::View
            }
            Self::Undo
            | Self::Redo
            | Self::KeepBrush
            | Self::EraseBrush
            | Self::BrushSmaller
            | Self::BrushLarger
            | Self::ResetEdits => Menu::Edit,
            _ => Menu::File,
        }
    }

    /// Its keyboard shortcuts; the first is the one shown. Command is Ctrl, or ⌘ on macOS.
    pub fn shortcuts(self) -> &'static [egui::KeyboardShortcut] {
        use egui::{Key, KeyboardShortcut as K, Modifiers as M};
        // Each list a constant, so that it lives as long as the table.
        macro_rules! keys {
            ($($modifiers:expr, $key:ident);*) => {{
                const KEYS: &[K] = &[$(K::new($modifiers, Key::$key)),*];
                KEYS
            }};
        }
        const CMD: M = M::COMMAND;
        const CMD_SHIFT: M = M::COMMAND.plus(M::SHIFT);
        match self {
            Self::Open => keys![CMD, O],
            Self::OpenFolder => keys![CMD_SHIFT, O],
            Self::Paste => keys![CMD, V],
            Self::Export => keys![CMD, S],
            Self::ExportAs => keys![CMD_SHIFT, S],
            Self::ExportAll => keys![CMD, E],
            Self::Copy => keys![CMD, C],
            Self::Quit => keys![CMD, Q],
            Self::ToggleLive => keys![CMD, L],
            Self::ZoomIn => keys![CMD, Plus; CMD, Equals],
            Self::ZoomOut => keys![CMD, Minus],
            Self::ZoomFit => keys![CMD, Num0],
            Self::ZoomActual => keys![CMD, Num1],
            Self::Undo => keys![CMD, Z],
            Self::Redo => keys![CMD_SHIFT, Z; CMD, Y],
            Self::KeepBrush => keys![M::NONE, B],
            Self::EraseBrush => keys![M::NONE, E],
            Self::BrushSmaller => keys![M::NONE, OpenBracket],
            Self::BrushLarger => keys![M::NONE, CloseBracket],
            Self::ChooseExportFolder | Self::ResetEdits => &[],
        }
    }

    /// Whether the menu draws a line above it (a new group).
    pub fn starts_group(self) -> bool {
        matches!(
            self,
            Self::Export | Self::Quit | Self::ZoomIn | Self::KeepBrush | Self::ResetEdits
        )
    }

    /// Copy and paste arrive as the platform's clipboard events, not as key presses.
    fn arrives_as_clipboard_event(self) -> bool {
        matches!(self, Self::Copy | Self::Paste)
    }

    /// The shown shortcut in the platform's words (`Ctrl+S`, or `⌘S` on macOS).
    pub fn shortcut_text(self, ctx: &egui::Context) -> Option<String> {
        self.shortcuts().first().map(|s| {
            if s.modifiers.is_none() {
                // A single key: its symbol (`]`), not its name (`CloseBracket`).
                s.logical_key.symbol_or_name().to_owned()
            } else {
                ctx.format_shortcut(s)
            }
        })
    }

    /// The label with its shortcut in brackets, for a hint in running text.
    pub fn hint(self, ctx: &egui::Context) -> String {
        match self.shortcut_text(ctx) {
            Some(keys) => format!("{} ({keys})", self.label()),
            None => self.label().to_owned(),
        }
    }

    /// Whether it can run now.
    pub fn enabled(self, state: &AppState) -> bool {
        match self {
            Self::Export | Self::ExportAs | Self::Copy => state.has_cutout(),
            Self::ExportAll => !state.entries.is_empty(),
            Self::Undo => state.current_edits().is_some_and(History::can_undo),
            Self::Redo => state.current_edits().is_some_and(History::can_redo),
            Self::ResetEdits => state.current_edits().is_some_and(History::has_edits),
            Self::KeepBrush | Self::EraseBrush => state.can_touch_up(),
            _ => true,
        }
    }

    /// The command it stands for now.
    pub fn command(self, state: &AppState) -> Command {
        match self {
            Self::Open => Command::OpenDialog,
            Self::OpenFolder => Command::OpenFolderDialog,
            Self::Paste => Command::Paste,
            Self::Export => Command::Export,
            Self::ExportAs => Command::ExportAs,
            Self::ExportAll => Command::ExportAll,
            Self::ChooseExportFolder => Command::ChooseExportFolder,
            Self::Copy => Command::Copy,
            Self::Quit => Command::Quit,
            Self::ToggleLive => Command::SetLive(!state.live),
            Self::ZoomIn => Command::ZoomIn,
            Self::ZoomOut => Command::ZoomOut,
            Self::ZoomFit => Command::ZoomFit,
            Self::ZoomActual => Command::ZoomActual,
            Self::Undo => Command::Edit(EditStep::Undo),
            Self::Redo => Command::Edit(EditStep::Redo),
            Self::ResetEdits => Command::Edit(EditStep::Reset),
            Self::KeepBrush => Command::PickBrush(Some(BrushMode::Keep)),
            Self::EraseBrush => Command::PickBrush(Some(BrushMode::Erase)),
            Self::BrushSmaller => Command::ResizeBrush(1.0 / BRUSH_STEP),
            Self::BrushLarger => Command::ResizeBrush(BRUSH_STEP),
        }
    }

    /// Whether it is selected now (a brush in hand, Live on), for a tick in the menu.
    pub fn selected(self, state: &AppState) -> Option<bool> {
        match self {
            Self::ToggleLive => Some(state.live),
            Self::KeepBrush => Some(state.tool == Some(BrushMode::Keep)),
            Self::EraseBrush => Some(state.tool == Some(BrushMode::Erase)),
            _ => None,
        }
    }
}

/// How much `[` and `]` change the brush radius.
pub(super) const BRUSH_STEP: f32 = 1.25;

/// Every key shortcut (clipboard ones aside) with its command, those with more modifiers first:
/// egui ignores extra Shift when matching, so Ctrl+Shift+S must be tried before Ctrl+S.
pub(super) fn shortcuts_most_specific_first() -> Vec<(UiCommand, egui::KeyboardShortcut)> {
    let mut all: Vec<_> = UiCommand::ALL
        .into_iter()
        .filter(|c| !c.arrives_as_clipboard_event())
        .flat_map(|c| c.shortcuts().iter().map(move |s| (c, *s)))
        .collect();
    let count = |m: egui::Modifiers| {
        usize::from(m.alt) + usize::from(m.shift) + usize::from(m.ctrl || m.command || m.mac_cmd)
    };
    all.sort_by_key(|(_, s)| std::cmp::Reverse(count(s.modifiers)));
    all
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn every_shortcut_belongs_to_one_command() {
        let mut seen = Vec::new();
        for command in UiCommand::ALL {
            assert!(!command.label().is_empty() && !command.help().is_empty());
            for shortcut in command.shortcuts() {
                assert!(
                    !seen.contains(shortcut),
                    "{shortcut:?} is given to two commands"
                );
                seen.push(*shortcut);
            }
        }
        let distinct: std::collections::HashSet<_> =
            UiCommand::ALL.iter().map(|c| c.label()).collect();
        assert_eq!(distinct.len(), UiCommand::ALL.len(), "labels are distinct");
    }

    #[test]
    fn shortcuts_speak_the_platform_s_words() {
        let ctx = egui::Context::default();
        // Fonts (which decide whether ⌘ can be drawn) exist after the first pass.
        let _ = ctx.run_ui(egui::RawInput::default(), |_| {});
        ctx.set_os(egui::os::OperatingSystem::Nix);
        assert_eq!(
            UiCommand::ExportAs.shortcut_text(&ctx).as_deref(),
            Some("Ctrl+Shift+S")
        );
        assert_eq!(UiCommand::Export.hint(&ctx), "Export PNG (Ctrl+S)");
        ctx.set_os(egui::os::OperatingSystem::Mac);
        let mac = UiCommand::Export.shortcut_text(&ctx).unwrap();
        assert!(
            mac == "⌘S" || mac == "Cmd+S",
            "macOS shows Command, not Ctrl: {mac}"
        );
        assert_eq!(UiCommand::ChooseExportFolder.shortcut_text(&ctx), None);
        ctx.set_os(egui::os::OperatingSystem::Nix);
        assert_eq!(UiCommand::Redo.hint(&ctx), "Redo (Ctrl+Shift+Z)");
        assert_eq!(
            UiCommand::BrushLarger.shortcut_text(&ctx).as_deref(),
            Some("]")
        );
    }

    #[test]
    fn a_shortcut_with_shift_is_tried_before_the_same_key_without() {
        let order = shortcuts_most_specific_first();
        let at = |command| order.iter().position(|(c, _)| *c == command).unwrap();
        assert!(at(UiCommand::ExportAs) < at(UiCommand::Export));
        assert!(at(UiCommand::Redo) < at(UiCommand::Undo));
        assert!(at(UiCommand::ExportAll) < at(UiCommand::EraseBrush));
    }
}
