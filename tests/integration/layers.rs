//! Data flows one way (file → decode → preprocess → infer → postprocess → composite/export), and
//! the folders show it. This reads every path in the sources (`use` trees and inline
//! `crate::`/`super::` paths, following `pub use` re-exports to the module that defines the item)
//! and fails on
//! - an import that goes up a layer between the top-level modules,
//! - a circle between modules of one folder (`a` uses `b` and `b` uses `a`, or longer), at every
//!   level: a circle means a type lives in the wrong file,
//! - a UI crate used outside the app.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layers from the bottom up; a module may use its own layer and those listed before it.
const LAYERS: &[&[&str]] = &[
    &["paths", "memory", "timing"],
    &["image_ops"],
    &["engine"],
    &["render"],
    &["finish"],
    &["batch", "bench", "chart"],
    &["worker"],
    &["app"],
    &["cli"],
];

/// Crates that only the app may use.
const UI_CRATES: &[&str] = &["egui", "eframe", "egui_wgpu", "egui_extras", "rfd"];

/// A module's path below the crate root (`["render", "gpu"]`; the root is `[]`).
type ModPath = Vec<String>;

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

/// The module a source file defines (`src/engine/npm.rs` → `engine::npm`, `src/render/mod.rs` →
/// `render`), or `None` for the binaries.
fn module_of(src: &Path, file: &Path) -> Option<ModPath> {
    let relative = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned()
        })
        .collect();
    if matches!(parts.first().map(String::as_str), Some("main" | "bin")) {
        return None;
    }
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    Some(parts)
}

/// The code of a file without comments and without its test module.
fn code_of(text: &str) -> String {
    text.split("#[cfg(test)]")
        .next()
        .unwrap_or(text)
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Expands one `use` tree (`a::{b, c::{d, e}}`) into its paths, each ending in the item (or
/// `self`/`*`).
fn expand_tree(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if tree.is_empty() {
        return;
    }
    let mut path = prefix.to_vec();
    let mut rest = tree;
    loop {
        rest = rest.trim_start();
        if let Some(inner) = rest.strip_prefix('{') {
            let inner = inner.trim_end().strip_suffix('}').unwrap_or(inner);
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand_tree(&path, &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            expand_tree(&path, &inner[start..], out);
            return;
        }
        let segment: String = rest
            .chars()
            .take_while(|&c| is_ident(c) || c == '*')
            .collect();
        if segment.is_empty() {
            return;
        }
        rest = &rest[segment.len()..];
        path.push(segment);
        match rest.trim_start().strip_prefix("::") {
            Some(next) => rest = next,
            None => {
                out.push(path);
                return;
            }
        }
    }
}

/// The paths a file names: its `use` trees (re-exports apart) and inline `crate::`/`super::`
/// paths; plus the re-exports (`pub use x::Y`) separately.
fn paths_in(code: &str) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let mut uses = Vec::new();
    let mut reexports = Vec::new();
    let mut outside_use = String::new();
    let mut rest = code;
    while let Some(at) = find_word(rest, "use") {
        let before = &rest[..at];
        let is_pub = before.trim_end().ends_with("pub") || before.trim_end().ends_with(')');
        outside_use.push_str(before);
        let after = &rest[at + 3..];
        let end = after.find(';').unwrap_or(after.len());
        let mut paths = Vec::new();
        expand_tree(&[], &after[..end], &mut paths);
        if is_pub {
            reexports.extend(paths);
        } else {
            uses.extend(paths);
        }
        rest = &after[(end + 1).min(after.len())..];
    }
    outside_use.push_str(rest);
    for start in ["crate::", "super::"] {
        let mut text = outside_use.as_str();
        while let Some(at) = text.find(start) {
            let word_start = at == 0 || !text[..at].ends_with(|c: char| is_ident(c) || c == ':');
            let tail = &text[at..];
            let path: String = tail
                .chars()
                .take_while(|&c| is_ident(c) || c == ':')
                .collect();
            if word_start {
                uses.push(
                    path.split("::")
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                );
            }
            text = &tail[path.len().max(1)..];
        }
    }
    (uses, reexports)
}

/// The next `use` keyword in `text` (as a word, at the start of an item).
fn find_word(text: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = text[from..].find(word) {
        let at = from + at;
        let before_ok = at == 0 || !text[..at].ends_with(is_ident);
        let after_ok = text[at + word.len()..].starts_with(char::is_whitespace);
        if before_ok && after_ok {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// Makes a path absolute: `crate::`, `super::`, `self::` or a child module of `here`. `None` for
/// paths into other crates.
fn absolute(here: &ModPath, path: &[String], modules: &BTreeSet<ModPath>) -> Option<Vec<String>> {
    let (first, rest) = path.split_first()?;
    match first.as_str() {
        "crate" => Some(rest.to_vec()),
        "self" => Some([here.as_slice(), rest].concat()),
        "super" => {
            let mut base = here.clone();
            let mut rest = path;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
            Some([base.as_slice(), rest].concat())
        }
        _ => {
            let child = [here.as_slice(), std::slice::from_ref(first)].concat();
            modules
                .contains(&child)
                .then(|| [here.as_slice(), path].concat())
        }
    }
}

/// The module that defines what `path` names: the longest module prefix, then through that
/// module's re-exports.
fn resolve(
    path: &[String],
    modules: &BTreeSet<ModPath>,
    reexports: &BTreeMap<ModPath, BTreeMap<String, Vec<String>>>,
    depth: usize,
) -> Option<ModPath> {
    let module = (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| modules.contains(prefix))?;
    let item = path.get(module.len());
    if depth < 8
        && let Some(target) = item.and_then(|item| reexports.get(&module)?.get(item))
    {
        return resolve(target, modules, reexports, depth + 1);
    }
    Some(module)
}

/// Every module's source, and the modules each one uses.
struct Graph {
    text: BTreeMap<ModPath, (PathBuf, String)>,
    edges: BTreeMap<ModPath, BTreeSet<ModPath>>,
}

fn graph() -> Graph {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut text = BTreeMap::new();
    for file in files {
        if let Some(module) = module_of(&src, &file) {
            let contents = std::fs::read_to_string(&file).unwrap();
            text.insert(module, (file, contents));
        }
    }
    let modules: BTreeSet<ModPath> = text.keys().cloned().collect();
    let mut uses = BTreeMap::new();
    let mut reexports: BTreeMap<ModPath, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for (module, (_, contents)) in &text {
        let (used, exported) = paths_in(&code_of(contents));
        let used: Vec<Vec<String>> = used
            .iter()
            .filter_map(|p| absolute(module, p, &modules))
            .collect();
        uses.insert(module.clone(), used);
        for path in exported {
            if let Some(abs) = absolute(module, &path, &modules)
                && let Some(item) = abs.last()
                && item != "*"
                && item != "self"
            {
                reexports
                    .entry(module.clone())
                    .or_default()
                    .insert(item.clone(), abs);
            }
        }
    }
    let mut edges = BTreeMap::new();
    for (module, used) in uses {
        let targets: BTreeSet<ModPath> = used
            .iter()
            .filter_map(|p| resolve(p, &modules, &reexports, 0))
            .filter(|t| *t != module)
            .collect();
        edges.insert(module, targets);
    }
    Graph { text, edges }
}

/// The edges between the children of each folder: `a::x::…` using `a::y::…` is `x → y` in `a`.
fn sibling_edges(graph: &Graph) -> BTreeMap<ModPath, BTreeSet<(String, String)>> {
    let mut out: BTreeMap<ModPath, BTreeSet<(String, String)>> = BTreeMap::new();
    for (from, targets) in &graph.edges {
        for to in targets {
            let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
            if common < from.len() && common < to.len() {
                out.entry(from[..common].to_vec())
                    .or_default()
                    .insert((from[common].clone(), to[common].clone()));
            }
        }
    }
    out
}

/// A circle in a directed graph, if there is one.
fn find_cycle(edges: &BTreeSet<(String, String)>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeSet<(String, String)>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for (_, to) in edges.iter().filter(|(from, _)| from == node) {
            if let Some(cycle) = visit(to, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .iter()
        .find_map(|(from, _)| visit(from, edges, &mut Vec::new(), &mut done))
}

#[test]
fn every_import_goes_down_the_layers() {
    let graph = graph();
    let mut upward = Vec::new();
    for (from, to) in sibling_edges(&graph).get(&Vec::new()).into_iter().flatten() {
        if layer_of(to) > layer_of(from) {
            upward.push(format!("{from} uses crate::{to}"));
        }
    }
    assert!(
        upward.is_empty(),
        "imports that go up a layer:\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_module_circles_at_any_level() {
    let graph = graph();
    let circles: Vec<String> = sibling_edges(&graph)
        .iter()
        .filter_map(|(parent, edges)| {
            let cycle = find_cycle(edges)?;
            let place = if parent.is_empty() {
                "crate".to_owned()
            } else {
                parent.join("::")
            };
            Some(format!("in {place}: {}", cycle.join(" → ")))
        })
        .collect();
    assert!(
        circles.is_empty(),
        "modules that use each other (move the shared type down to one of them, or to a new module both use):\n{}",
        circles.join("\n")
    );
}

#[test]
fn ui_crates_only_in_the_app() {
    let graph = graph();
    let mut misplaced = Vec::new();
    for (module, (file, contents)) in &graph.text {
        if module.first().is_some_and(|m| m == "app") {
            continue;
        }
        let code = code_of(contents);
        for krate in UI_CRATES {
            if code.contains(&format!("{krate}::")) {
                misplaced.push(format!("{} uses the UI crate {krate}", file.display()));
            }
        }
    }
    assert!(
        misplaced.is_empty(),
        "only the app may use UI crates:\n{}",
        misplaced.join("\n")
    );
}

#[test]
fn the_checker_reads_trees_relative_paths_and_reexports() {
    let (uses, reexports) = paths_in(&code_of(
        "//! see [`crate::worker`]\nuse crate::{\n    engine::{self, Precision},\n    image_ops::x,\n};\nuse super::gpu::Pipeline;\npub use callback::Compositor;\nlet a = crate::paths::AppDirs::x();\n#[cfg(test)]\nuse crate::app;",
    ));
    let names: Vec<String> = uses.iter().map(|p| p.join("::")).collect();
    for expected in [
        "crate::engine::self",
        "crate::engine::Precision",
        "crate::image_ops::x",
        "super::gpu::Pipeline",
        "crate::paths::AppDirs::x",
    ] {
        assert!(
            names.contains(&expected.to_owned()),
            "{expected} in {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n.contains("app")),
        "test modules are not read"
    );
    assert!(
        !names.iter().any(|n| n.contains("worker")),
        "comments are not read"
    );
    assert_eq!(
        reexports,
        vec![vec!["callback".to_owned(), "Compositor".to_owned()]]
    );

    let edges: BTreeSet<(String, String)> = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]
        .iter()
        .map(|(x, y)| ((*x).to_owned(), (*y).to_owned()))
        .collect();
    assert_eq!(find_cycle(&edges).unwrap().len(), 4);
    let tree: BTreeSet<(String, String)> = edges.into_iter().filter(|(x, _)| x != "c").collect();
    assert!(find_cycle(&tree).is_none());
}

/// A file over this many lines is a hint that it holds two things: split it the way `app/` is
/// split (several files holding parts of one `impl`) or by responsibility.
const MAX_FILE_LINES: usize = 600;

#[test]
fn no_source_file_is_over_600_lines() {
    let graph = graph();
    let long: Vec<String> = graph
        .text
        .values()
        .filter(|(_, contents)| contents.lines().count() > MAX_FILE_LINES)
        .map(|(file, contents)| format!("{}: {} lines", file.display(), contents.lines().count()))
        .collect();
    assert!(long.is_empty(), "files to split:\n{}", long.join("\n"));
}
