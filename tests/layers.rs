//! Data flows one way (file → decode → preprocess → infer → postprocess → composite/export), and
//! the folders show it: each layer may use the layers below it, never one above. This reads every
//! `crate::` path in the sources and fails on an import that goes upward.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

/// Layers from the bottom up; a module may use its own layer and those listed before it.
const LAYERS: &[&[&str]] = &[
    &["paths"],
    &["image_ops"],
    &["engine"],
    &["render", "finish", "batch", "bench", "chart"],
    &["worker"],
    &["app", "ui"],
    &["cli"],
];

/// Crates that only the UI layers may use.
const UI_CRATES: &[&str] = &["egui", "eframe", "egui_wgpu", "rfd"];

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| panic!("module `{module}` is in no layer; add it to LAYERS"))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to (`src/engine/npm.rs` → `engine`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_string_lossy();
    let name = first.trim_end_matches(".rs").to_owned();
    (!matches!(name.as_str(), "lib" | "main" | "bin")).then_some(name)
}

/// The modules named by `crate::x` paths in `text`, outside comments and test modules.
fn crate_uses(text: &str) -> Vec<String> {
    let code: String = text
        .split("#[cfg(test)]")
        .next()
        .unwrap_or(text)
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let code = code.as_str();
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    // `use crate::{a, b::c}` lists several modules in braces.
    for group in code.split("use crate::{").skip(1) {
        let mut depth = 1;
        let mut item = String::new();
        for c in group.chars() {
            match c {
                '{' => depth += 1,
                '}' if depth == 1 => break,
                '}' => depth -= 1,
                _ => {}
            }
            if depth == 1 {
                item.push(c);
            }
        }
        for part in item.split(',') {
            let name: String = part
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

#[test]
fn every_import_goes_down_the_layers() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut upward = Vec::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        let own = layer_of(&module);
        for used in crate_uses(&text) {
            if LAYERS.iter().any(|l| l.contains(&used.as_str())) && layer_of(&used) > own {
                upward.push(format!("{} uses crate::{used}", file.display()));
            }
        }
        if own < layer_of("app") {
            for krate in UI_CRATES {
                if text.contains(&format!("{krate}::")) && module != "render" {
                    upward.push(format!("{} uses the UI crate {krate}", file.display()));
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that go up a layer:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_checker_sees_braced_and_plain_paths() {
    let uses = crate_uses(
        "//! see [`crate::worker`]\nuse crate::{\n    engine::{self, Precision},\n    image_ops::x,\n};\nlet a = crate::paths::AppDirs::x();\n#[cfg(test)]\nuse crate::app;",
    );
    assert!(uses.contains(&"engine".to_owned()));
    assert!(uses.contains(&"image_ops".to_owned()));
    assert!(uses.contains(&"paths".to_owned()));
    assert!(
        !uses.contains(&"app".to_owned()),
        "test modules are not checked"
    );
    assert!(
        !uses.contains(&"worker".to_owned()),
        "comments are not checked"
    );
}
