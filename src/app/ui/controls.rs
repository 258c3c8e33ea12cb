//! The right-hand panel: engine (precision, provider, Live), compositing controls, export.

use crate::{
    app::{
        AppState, Command, EngineStatus, Settings, UiCommand,
        settings::{BrushSettings, Choice},
        state::FetchStatus,
    },
    engine::{Precision, ProviderKind, ProviderReport},
    image_ops::{
        Background,
        edits::BrushMode,
        refine::{self, RefineSettings},
    },
};

/// Engine, composite and export controls.
pub(super) fn controls_ui(
    ui: &mut egui::Ui,
    state: &AppState,
    settings: &mut Settings,
    commands: &mut Vec<Command>,
) {
    egui::ScrollArea::vertical().show(ui, |ui| {
        engine_ui(ui, state, settings, commands);
        ui.separator();
        composite_ui(ui, settings);
        ui.separator();
        export_ui(ui, state, settings, commands);
        ui.separator();
        touchup_ui(ui, state, settings, commands);
    });
}

fn engine_ui(
    ui: &mut egui::Ui,
    state: &AppState,
    settings: &Settings,
    commands: &mut Vec<Command>,
) {
    ui.heading("Engine");
    let configuring = matches!(state.engine, EngineStatus::Configuring { .. });
    model_picker_ui(ui, state, settings, configuring, commands);
    precision_and_provider_ui(ui, settings, configuring, commands);
    let mut live = state.live;
    if ui
        .add_enabled(
            state.current.is_some(),
            egui::Checkbox::new(
                &mut live,
                format!(
                    "Live: re-run inference continuously ({})",
                    UiCommand::ToggleLive
                        .shortcut_text(ui.ctx())
                        .unwrap_or_default()
                ),
            ),
        )
        .changed()
    {
        commands.push(Command::SetLive(live));
    }
    match &state.engine {
        EngineStatus::Configuring { what, since, fetch } => {
            configuring_ui(ui, what, *since, fetch.as_ref(), commands);
        }
        EngineStatus::Ready {
            model,
            report,
            input_side_px,
            ..
        } => running_ui(ui, state, model, report, *input_side_px),
        EngineStatus::Failed(error) => engine_failed_ui(ui, state, settings, error, commands),
    }
}

/// The precision buttons and the provider picker (`auto` first).
fn precision_and_provider_ui(
    ui: &mut egui::Ui,
    settings: &Settings,
    configuring: bool,
    commands: &mut Vec<Command>,
) {
    ui.horizontal(|ui| {
        ui.label("Precision");
        for p in [Precision::Fp32, Precision::Fp16] {
            let chosen = settings.precision == Choice::Fixed(p);
            let button = egui::Button::selectable(chosen, p.to_string());
            if ui.add_enabled(!configuring, button).clicked() {
                commands.push(Command::SetPrecision(p));
            }
        }
    });
    ui.horizontal(|ui| {
        let mut provider = settings.provider;
        egui::ComboBox::new("provider", "Provider")
            .selected_text(provider.word())
            .show_ui(ui, |ui| {
                let fixed = ProviderKind::PREFERENCE.map(Choice::Fixed);
                for p in std::iter::once(Choice::Auto).chain(fixed) {
                    ui.selectable_value(&mut provider, p, p.word());
                }
            });
        if provider != settings.provider {
            commands.push(Command::SetProvider(provider));
        }
    });
}

/// The step being loaded, and a model fetch's progress with its Cancel button.
fn configuring_ui(
    ui: &mut egui::Ui,
    what: &str,
    since: std::time::Instant,
    fetch: Option<&FetchStatus>,
    commands: &mut Vec<Command>,
) {
    // Wrapped: a long step name once widened the panel past the window's edge, and the canvas
    // took its place until the session was ready.
    ui.horizontal(|ui| {
        ui.spinner();
        let verb = if fetch.is_some() { "" } else { "Loading " };
        ui.add(
            egui::Label::new(format!(
                "{verb}{what}… {:.0} s",
                since.elapsed().as_secs_f64()
            ))
            .wrap(),
        );
    });
    if let Some(fetch) = fetch {
        ui.horizontal(|ui| {
            let text = match fetch.total {
                Some(total) => format!("{} / {}", megabytes(fetch.done), megabytes(total)),
                None => megabytes(fetch.done),
            };
            ui.add(
                egui::ProgressBar::new(fetch.fraction())
                    .desired_width(160.0)
                    .text(text),
            );
            if ui.button("Cancel").clicked() {
                commands.push(Command::CancelFetch);
            }
        });
    }
}

/// What runs, and in a few words why nothing faster; the reasons in full behind a disclosure
/// (the overlay and the status bar name the provider only).
fn running_ui(
    ui: &mut egui::Ui,
    state: &AppState,
    model: &str,
    report: &ProviderReport,
    input_side_px: u32,
) {
    ui.label(
        egui::RichText::new(format!(
            "Running: {model} · {} · {} · {input_side_px} px",
            report.provider_name(),
            report.precision
        ))
        .strong(),
    );
    if let Some(why) = report.why_not_faster() {
        ui.weak(why);
    }
    egui::CollapsingHeader::new("Details")
        .id_salt("engine details")
        .show(ui, |ui| {
            if let Some(note) = report.note() {
                ui.weak(note);
            }
            for skipped in &report.skipped {
                ui.weak(format!("{} not used: {}", skipped.provider, skipped.reason));
            }
            if !report.features.is_empty() {
                ui.weak(format!("On: {}", report.features.join(", ")));
            }
            ui.weak(format!(
                "Edges: {}, because {}",
                state.edges.runner, state.edges.why
            ));
            ui.weak("`cutout doctor` lists every provider, library and device.");
        });
}

/// Why the model could not be loaded, Try again, and the models already here (a way on while
/// offline: they need no download).
fn engine_failed_ui(
    ui: &mut egui::Ui,
    state: &AppState,
    settings: &Settings,
    error: &str,
    commands: &mut Vec<Command>,
) {
    ui.colored_label(
        ui.visuals().error_fg_color,
        format!("{} could not be loaded", settings.model_name()),
    );
    ui.add(egui::Label::new(egui::RichText::new(error).small()).wrap());
    ui.horizontal_wrapped(|ui| {
        if ui.button("Try again").clicked() {
            commands.push(Command::RetryEngine);
        }
        for model in state
            .models
            .iter()
            .filter(|m| m.fetched && m.spec.name != settings.model_name())
        {
            if ui
                .button(format!("Use {} (on this machine)", model.spec.name))
                .on_hover_text(&model.spec.description)
                .clicked()
            {
                commands.push(Command::SetModel(model.spec.name.clone()));
            }
        }
    });
}

fn megabytes(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let mb = bytes as f64 / 1e6;
    format!("{mb:.0} MB")
}

/// One button per model of the manifest, with what it is for and what it costs on this machine.
fn model_picker_ui(
    ui: &mut egui::Ui,
    state: &AppState,
    settings: &Settings,
    configuring: bool,
    commands: &mut Vec<Command>,
) {
    let running = match &state.engine {
        EngineStatus::Ready { report, .. } => Some(report.provider),
        _ => None,
    };
    ui.horizontal(|ui| {
        ui.label("Model");
        for model in &state.models {
            let selected = settings.model_name() == model.spec.name;
            let text = if model.spec.label.is_empty() {
                model.spec.name.clone()
            } else {
                format!("{} · {}", model.spec.name, model.spec.label)
            };
            let response = ui
                .add_enabled(!configuring, egui::Button::selectable(selected, text))
                .on_hover_text(format!(
                    "{}\n{:.0} MB, licence {}\nfrom {}",
                    model.spec.description,
                    model.spec.size_bytes as f64 / 1e6,
                    model.spec.licence,
                    model.spec.source.describe()
                ));
            if response.clicked() && !selected {
                commands.push(Command::SetModel(model.spec.name.clone()));
            }
        }
    });
    // What the other models cost here: measured when they ran on this provider, else estimated
    // from the running model's time and the two networks' arithmetic.
    let Some(provider) = running else {
        return;
    };
    let current = state
        .models
        .iter()
        .find(|m| m.spec.name == settings.model_name());
    for model in &state.models {
        if model.spec.name == settings.model_name() {
            continue;
        }
        let measured = settings.measured_infer_ms(&model.spec.name, provider);
        let estimated = current.and_then(|c| {
            let known = settings.measured_infer_ms(&c.spec.name, provider)?;
            (c.spec.gmac > 0.0 && model.spec.gmac > 0.0)
                .then(|| known * model.spec.gmac / c.spec.gmac)
        });
        let cost = match (measured, estimated) {
            (Some(ms), _) => format!("{} per photo here on {provider} (measured)", duration(ms)),
            (None, Some(ms)) => format!(
                "≈ {} per photo here on {provider} (estimated from {})",
                duration(ms),
                settings.model_name()
            ),
            (None, None) => String::new(),
        };
        let fetch = if model.fetched {
            String::new()
        } else {
            format!(
                "not fetched yet ({} download)",
                megabytes(model.spec.source.transfer_bytes(model.spec.size_bytes))
            )
        };
        let parts: Vec<String> = [cost, fetch]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
        if !parts.is_empty() {
            ui.weak(format!("{}: {}", model.spec.name, parts.join("; ")));
        }
    }
}

/// `850 ms` or `2.1 s`.
fn duration(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

/// Edge refinement and foreground colours: GPU passes over the photo and the network's mask,
/// re-run when these change (the network is not).
fn refine_ui(ui: &mut egui::Ui, r: &mut RefineSettings) {
    ui.checkbox(&mut r.guided, "Refine edges (guided filter)")
        .on_hover_text("Snaps the mask to the photo's edges on the GPU; the network is not re-run");
    if r.guided {
        ui.add(
            egui::Slider::new(&mut r.radius, 1..=refine::MAX_RADIUS_PX)
                .text("Radius (px)")
                .logarithmic(true),
        )
        .on_hover_text("Window of the filter: wider follows larger blurs of the mask");
        ui.add(
            egui::Slider::new(&mut r.eps, 1e-6..=1e-1)
                .text("Regularisation")
                .logarithmic(true)
                .custom_formatter(|v, _| format!("{v:.0e}")),
        )
        .on_hover_text("Smaller follows the photo's edges more closely");
    }
    ui.checkbox(&mut r.foreground, "Clean edge colours")
        .on_hover_text(
            "Foreground colour estimation: semi-transparent edge pixels take the subject's \
             colour instead of the old background's (preview and export)",
        );
}

fn composite_ui(ui: &mut egui::Ui, settings: &mut Settings) {
    let c = &mut settings.composite;
    ui.horizontal(|ui| {
        ui.heading("Cutout");
        if ui
            .small_button("Reset edge")
            .on_hover_text("Threshold, edge softness and refinement back to their defaults")
            .clicked()
        {
            let defaults = crate::image_ops::CompositeSettings::default();
            c.threshold = defaults.threshold;
            c.softness = defaults.softness;
            c.refine = defaults.refine;
        }
    });
    ui.add(egui::Slider::new(&mut c.threshold, 0.0..=1.0).text("Threshold"))
        .on_hover_text("Higher keeps less of the photo: only what the network is surer of");
    ui.add(egui::Slider::new(&mut c.softness, 0.0..=1.0).text("Edge softness"))
        .on_hover_text("0: a hard edge; 1: the network's own soft edge");
    refine_ui(ui, &mut c.refine);
    ui.horizontal(|ui| {
        egui::ComboBox::new("background", "Background")
            .selected_text(c.background.label())
            .show_ui(ui, |ui| {
                for b in Background::ALL {
                    ui.selectable_value(&mut c.background, b, b.label());
                }
            });
        match c.background {
            Background::Color => {
                ui.color_edit_button_srgb(&mut c.color);
            }
            Background::Dimmed => {
                ui.add(
                    egui::DragValue::new(&mut c.dim)
                        .range(0.0..=1.0)
                        .speed(0.01)
                        .prefix("brightness "),
                );
            }
            Background::Transparent | Background::Blurred => {}
        }
    });
    ui.horizontal_wrapped(|ui| {
        ui.checkbox(&mut settings.mask_only, "Mask only");
        ui.checkbox(&mut settings.split_enabled, "Before/after split")
            .on_hover_text("Drag the line on the canvas to move it");
    });
}

/// The touch-up brush: Keep / Erase, size, hardness, edge snapping, undo, redo and reset.
fn touchup_ui(
    ui: &mut egui::Ui,
    state: &AppState,
    settings: &mut Settings,
    commands: &mut Vec<Command>,
) {
    ui.heading("Touch up");
    let can = state.can_touch_up();
    ui.horizontal(|ui| {
        for (command, mode) in [
            (UiCommand::KeepBrush, BrushMode::Keep),
            (UiCommand::EraseBrush, BrushMode::Erase),
        ] {
            let label = format!(
                "{} ({})",
                mode.label(),
                command.shortcut_text(ui.ctx()).unwrap_or_default()
            );
            let button = egui::Button::selectable(state.tool == Some(mode), label);
            if ui
                .add_enabled(can, button)
                .on_hover_text(command.help())
                .clicked()
            {
                commands.push(command.command(state));
            }
        }
    });
    let brush = &mut settings.brush;
    ui.add(
        egui::Slider::new(&mut brush.radius_pt, BrushSettings::RADIUS_PT)
            .logarithmic(true)
            .text("Size")
            .suffix(" pt"),
    )
    .on_hover_text(format!(
        "The brush radius on screen ({} smaller, {} larger)",
        UiCommand::BrushSmaller
            .shortcut_text(ui.ctx())
            .unwrap_or_default(),
        UiCommand::BrushLarger
            .shortcut_text(ui.ctx())
            .unwrap_or_default()
    ));
    ui.add(egui::Slider::new(&mut brush.hardness, 0.0..=1.0).text("Hardness"))
        .on_hover_text("How much of the radius paints at full strength; the rest fades out");
    ui.checkbox(&mut brush.edge_aware, "Snap to edges")
        .on_hover_text(
            "A stroke paints only what looks like the colour under the brush's centre, and its rim \
         follows the photo's edges (a guided filter over the stroke), so a rough stroke along \
         hair does not paint a hard disc",
        );
    ui.horizontal(|ui| {
        for command in [UiCommand::Undo, UiCommand::Redo, UiCommand::ResetEdits] {
            if ui
                .add_enabled(command.enabled(state), egui::Button::new(command.label()))
                .on_hover_text(command.hint(ui.ctx()))
                .on_hover_text(command.help())
                .clicked()
            {
                commands.push(command.command(state));
            }
        }
    });
    if let Some(edits) = state.current_edits()
        && edits.has_edits()
    {
        ui.weak(format!(
            "{} strokes on this photo; Export and Copy include them",
            edits.stroke_count()
        ));
    }
}

fn export_ui(
    ui: &mut egui::Ui,
    state: &AppState,
    settings: &mut Settings,
    commands: &mut Vec<Command>,
) {
    ui.heading("Export");
    let folder = settings
        .export_dir
        .as_ref()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    ui.horizontal(|ui| {
        ui.label("Folder:");
        // Typed folders are taken on Enter or when the field is left; until then the text being
        // typed is kept in egui's memory, and otherwise the field shows the folder in use.
        let id = ui.make_persistent_id("export folder text");
        let mut text = ui
            .data(|d| d.get_temp::<String>(id))
            .unwrap_or_else(|| folder.clone());
        let response = ui.add(
            egui::TextEdit::singleline(&mut text)
                .hint_text(state.export_fallback.as_ref().map_or_else(
                    || "type a folder, or Folder…".to_owned(),
                    |(fallback, _)| fallback.display().to_string(),
                ))
                .desired_width(f32::INFINITY),
        );
        if response.has_focus() {
            ui.data_mut(|d| d.insert_temp(id, text.clone()));
        } else {
            ui.data_mut(|d| d.remove_temp::<String>(id));
            let typed = text.trim();
            if response.lost_focus() && !typed.is_empty() && typed != folder {
                commands.push(Command::SetExportFolder(typed.into()));
            }
        }
    });
    if settings.export_dir.is_none()
        && let Some((fallback, why)) = &state.export_fallback
    {
        ui.add(
            egui::Label::new(
                egui::RichText::new(format!(
                    "Exports go to {} until you type a folder above.",
                    fallback.display()
                ))
                .small()
                .weak(),
            )
            .wrap(),
        )
        .on_hover_text(format!("{why}, so cutout cannot ask with a dialog"));
    }
    ui.horizontal(|ui| {
        if ui
            .add_enabled(state.has_cutout(), egui::Button::new("Export PNG"))
            .on_hover_text(format!(
                "Full resolution, with the threshold, softness and background above ({})",
                UiCommand::Export
                    .shortcut_text(ui.ctx())
                    .unwrap_or_default()
            ))
            .clicked()
        {
            commands.push(Command::Export);
        }
        if ui
            .add_enabled(state.has_cutout(), egui::Button::new("Copy"))
            .clicked()
        {
            commands.push(Command::Copy);
        }
        if ui.button("Folder…").clicked() {
            commands.push(Command::ChooseExportFolder);
        }
    });
    ui.checkbox(&mut settings.keep_exif, "Keep EXIF")
        .on_hover_text(
            "Exports keep the photo's capture date and camera (and any location it holds). \
         The colour profile is always kept.",
        );
}
