//! `cutout setup`: ONNX Runtime (and with `--gpu` the CUDA libraries) from PyPI, with a progress
//! bar per file. Ctrl+C stops the download; the next `cutout setup` resumes it.

use std::{
    ops::ControlFlow,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use indicatif::{ProgressBar, ProgressStyle};

use super::{SetupArgs, fail, fetch_models};
use crate::{
    engine::{doctor, runtime},
    paths::AppDirs,
};

/// Reports set-up steps on stderr, a progress bar for each download.
struct Terminal {
    bar: Option<(String, ProgressBar)>,
    stop: Arc<AtomicBool>,
}

impl Terminal {
    fn new() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handler = move || {
            if flag.swap(true, Ordering::SeqCst) {
                super::quit::now(130);
            }
        };
        if let Err(e) = ctrlc::set_handler(handler) {
            tracing::warn!("Ctrl+C will stop the set-up without tidying up: {e}");
        }
        Self { bar: None, stop }
    }

    fn finish_bar(&mut self) {
        if let Some((_, bar)) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl runtime::SetupReport for Terminal {
    fn line(&mut self, text: &str) {
        self.finish_bar();
        eprintln!("{text}");
    }

    fn bytes(&mut self, file: &str, done: u64, total: Option<u64>) -> ControlFlow<()> {
        if self.bar.as_ref().is_none_or(|(name, _)| name != file) {
            self.finish_bar();
            let bar = ProgressBar::new(total.unwrap_or(0));
            bar.set_style(
                ProgressStyle::with_template("  {bar:40} {bytes}/{total_bytes} {bytes_per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            self.bar = Some((file.to_owned(), bar));
        }
        if let Some((_, bar)) = &self.bar {
            bar.set_position(done);
        }
        if self.stop.load(Ordering::SeqCst) {
            self.finish_bar();
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

/// Runs `cutout setup`.
pub(super) fn setup(dirs: &AppDirs, args: &SetupArgs) -> ExitCode {
    let gpu_present = doctor::nvidia_gpu();
    let flavor = if args.gpu || (!args.cpu && gpu_present.is_some()) {
        runtime::RuntimeFlavor::Gpu
    } else {
        runtime::RuntimeFlavor::Cpu
    };
    match &gpu_present {
        Some(gpu) => eprintln!("NVIDIA GPU: {gpu}"),
        None => eprintln!("No NVIDIA GPU found."),
    }
    let existing = runtime::managed_dir(dirs, flavor).join(runtime::core_library_name());
    let models = |status: ExitCode| {
        if args.model.is_empty() || status != ExitCode::SUCCESS {
            status
        } else {
            fetch_models(dirs, &args.model)
        }
    };
    let options = runtime::SetupOptions {
        flavor,
        cuda_libs: !args.no_cuda_libs,
    };
    let mut terminal = Terminal::new();
    if existing.is_file() && !args.force {
        eprintln!(
            "ONNX Runtime {} ({}) is already installed: {}",
            runtime::ORT_VERSION,
            flavor.package(),
            existing.display()
        );
        for plugin in runtime::plugins(flavor) {
            if !plugin.installed_beside(&existing) {
                // Installed before cutout fetched this plugin: add it beside the runtime.
                if let Err(e) = runtime::install_plugin(dirs, &options, plugin, &mut terminal) {
                    eprintln!("warning: {e}");
                }
            }
        }
        return models(ExitCode::SUCCESS);
    }
    match runtime::install(dirs, &options, &mut terminal) {
        Ok(_) => models(ExitCode::SUCCESS),
        Err(e @ runtime::RuntimeError::Cancelled) => {
            eprintln!("{e}");
            ExitCode::from(130)
        }
        Err(e) => fail(&e),
    }
}
