//! The shape of `controller/src`: imports point down the layers cli -> runtime -> reconcile ->
//! connections -> graph -> crd (`server`, `leader`, `telemetry` and `panics` beside them, usable from
//! any layer and using only each other), and no module imports another that imports it back. Read from
//! every `crate::` and `super::` path of every file, test modules aside.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, top first.
const LAYERS: [&str; 6] = ["cli", "runtime", "reconcile", "connections", "graph", "crd"];
/// Beside the layers.
const BESIDE: [&str; 4] = ["server", "leader", "telemetry", "panics"];

type Module = Vec<String>;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every file's module path (`reconcile/plan/mod.rs` is `reconcile::plan`), test files aside.
fn modules() -> BTreeMap<Module, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&src(), &mut files);
    let mut out = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src()).unwrap().with_extension("");
        let mut m: Module = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
        if matches!(m.last().map(String::as_str), Some("mod")) {
            m.pop();
        }
        if m.last().is_some_and(|s| s == "tests")
            || matches!(m.as_slice(), [one] if one == "lib" || one == "main")
        {
            continue;
        }
        out.insert(m, f);
    }
    out
}

/// The code of a file without comments and without its test module.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a use tree names: `a::{b, c::{d}}` is `a::b` and `a::c::d`.
fn expand(tree: &str) -> Vec<Vec<String>> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![
            tree.split("::")
                .map(|s| s.trim().split(' ').next().unwrap_or_default().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        ];
    };
    let prefix: Vec<String> = tree[..open]
        .split("::")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|i| !i.trim().is_empty())
        .flat_map(expand)
        .map(|rest| prefix.iter().cloned().chain(rest).collect())
        .collect()
}

/// Every module path a file refers to through `crate::` or `super::`, made absolute.
fn references(module: &Module, text: &str) -> Vec<Vec<String>> {
    let parent: Vec<String> = module[..module.len() - 1].to_vec();
    let absolute = |path: Vec<String>| -> Vec<String> {
        match path.first().map(String::as_str) {
            Some("crate") => path[1..].to_vec(),
            Some("super") => parent.iter().cloned().chain(path[1..].iter().cloned()).collect(),
            _ => path,
        }
    };
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = text[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            // The path, and the use tree after it if there is one.
            let rest = &text[at..];
            let path_end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            let end = if rest[path_end..].starts_with('{') {
                let mut depth = 0;
                rest[path_end..]
                    .char_indices()
                    .find(|(_, c)| {
                        match c {
                            '{' => depth += 1,
                            '}' => depth -= 1,
                            _ => {}
                        }
                        depth == 0 && *c == '}'
                    })
                    .map_or(rest.len(), |(i, _)| path_end + i + 1)
            } else {
                path_end
            };
            for path in expand(&rest[..end]) {
                out.push(absolute(path));
            }
        }
    }
    out
}

/// Module -> the modules it refers to (the longest known prefix of each path; itself aside).
fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let modules = modules();
    let mut g = BTreeMap::new();
    for (m, path) in &modules {
        let mut to = BTreeSet::new();
        for r in references(m, &code(path)) {
            let target = (1..=r.len())
                .rev()
                .map(|n| r[..n].to_vec())
                .find(|p| modules.contains_key(p));
            if let Some(t) = target.filter(|t| t != m) {
                to.insert(t);
            }
        }
        g.insert(m.clone(), to);
    }
    g
}

fn name(m: &Module) -> String {
    m.join("::")
}

#[test]
fn imports_point_down_the_layers() {
    let rank = |m: &Module| LAYERS.iter().position(|l| *l == m[0]);
    let beside = |m: &Module| BESIDE.contains(&m[0].as_str());
    let mut upward = Vec::new();
    for (m, to) in graph() {
        for t in to.iter().filter(|t| t[0] != m[0]) {
            let ok = match (rank(&m), rank(t)) {
                (Some(a), Some(b)) => b > a,
                (Some(_), None) => beside(t),
                (None, _) => beside(&m) && beside(t),
            };
            if !ok {
                upward.push(format!("{} -> {}", name(&m), name(t)));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports must point down cli -> runtime -> reconcile -> connections -> graph -> crd: {upward:#?}"
    );
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let g = graph();
    // A module and its own submodules may use each other (a parent declares its children; a child uses
    // its parent's types).
    let related = |a: &Module, b: &Module| a.starts_with(b) || b.starts_with(a);
    let mut cycles = Vec::new();
    // A path back from each edge's target to its source.
    for (m, to) in &g {
        for t in to.iter().filter(|t| !related(m, t)) {
            let mut seen = BTreeSet::new();
            let mut stack = vec![(t.clone(), vec![name(m), name(t)])];
            while let Some((at, path)) = stack.pop() {
                if !seen.insert(at.clone()) {
                    continue;
                }
                for next in g[&at].iter().filter(|n| !related(&at, n)) {
                    if next == m {
                        cycles.push(format!("{} -> {}", path.join(" -> "), name(m)));
                    } else {
                        let mut p = path.clone();
                        p.push(name(next));
                        stack.push((next.clone(), p));
                    }
                }
            }
        }
    }
    cycles.sort();
    cycles.dedup();
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
}

#[test]
fn the_reader_sees_every_form_of_path() {
    let m: Module = vec!["reconcile".into(), "plan".into()];
    let text = "use super::observe::{self, Known};\nuse crate::{crd::{DeviceId, validate::FieldError}, graph};\nlet x = crate::graph::Cloud::Global;\nfoo_crate::x;\nuse crate::reconcile::{act, plan::{Step, Target}};";
    let refs: BTreeSet<String> = references(&m, text).iter().map(|r| r.join("::")).collect();
    for want in [
        "reconcile::observe::self",
        "reconcile::observe::Known",
        "crd::DeviceId",
        "crd::validate::FieldError",
        "graph",
        "graph::Cloud::Global",
        "reconcile::act",
        "reconcile::plan::Step",
    ] {
        assert!(refs.contains(want), "{want}: {refs:?}");
    }
    assert!(!refs.iter().any(|r| r.starts_with("x")), "{refs:?}");
    // The graph finds the layers' modules at all: a reader that saw nothing would pass the tests above.
    let g = graph();
    assert!(
        g[&vec!["reconcile".to_string(), "act".to_string()]]
            .contains(&vec!["graph".to_string(), "client".to_string()])
            || g[&vec!["reconcile".to_string(), "act".to_string()]]
                .iter()
                .any(|t| t[0] == "graph")
    );
    assert!(g.len() > 50, "{} modules", g.len());
}

#[test]
fn status_is_written_in_one_place() {
    // Every status write goes through `reconcile/status.rs` (server-side apply only).
    let mut writers: Vec<String> = modules()
        .into_iter()
        .filter(|(_, path)| code(path).contains("patch_status("))
        .map(|(m, _)| name(&m))
        .collect();
    writers.sort();
    assert_eq!(writers, ["reconcile::status"]);
    let status = code(&src().join("reconcile/status.rs"));
    assert!(
        !status.contains("Patch::Merge") && !status.contains("Patch::Json"),
        "status is written by server-side apply only"
    );
}
