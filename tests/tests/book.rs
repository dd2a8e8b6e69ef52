//! The documentation book (`docs/`): mdBook builds it without a warning, and every internal link and
//! anchor in the built HTML resolves (mdBook does not check them). The reference pages' coverage and
//! drift are checked by the operator's own tests (`docgen`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use wufb_e2e::root;

/// The book's site-url (book.toml): absolute links inside the book start with it.
const SITE: &str = "/wufb-operator/";

fn html_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            html_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "html") {
            out.push(p);
        }
    }
}

/// The values of `attr="..."` in an HTML text.
fn attribute_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let needle = format!("{attr}=\"");
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find(&needle) {
        rest = &rest[at + needle.len()..];
        if let Some(end) = rest.find('"') {
            out.push(&rest[..end]);
            rest = &rest[end..];
        }
    }
    out
}

#[test]
fn the_book_builds_without_warnings_and_every_internal_link_resolves() {
    let mdbook = std::env::var("WUFB_MDBOOK")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join(".tools/bin/mdbook"));
    let out_dir = std::env::temp_dir().join(format!("wufb-book-{}", std::process::id()));
    let built = std::process::Command::new(&mdbook)
        .args(["build", "docs", "--dest-dir"])
        .arg(&out_dir)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("mdbook could not run ({e}); `make tools` installs it into .tools/bin"));
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    assert!(built.status.success(), "{log}");
    assert!(
        !log.contains("WARN") && !log.contains("ERROR"),
        "the book builds with warnings:\n{log}"
    );

    let mut files = Vec::new();
    html_files(&out_dir, &mut files);
    let ids: BTreeMap<PathBuf, BTreeSet<String>> = files
        .iter()
        .map(|f| {
            let html = std::fs::read_to_string(f).unwrap();
            (
                f.clone(),
                attribute_values(&html, "id")
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
            )
        })
        .collect();
    let mut broken = Vec::new();
    let mut checked = 0;
    for f in &files {
        let html = std::fs::read_to_string(f).unwrap();
        for href in attribute_values(&html, "href") {
            if href.contains("://") || href.starts_with("mailto:") || href.starts_with("javascript:") {
                continue;
            }
            let (path, fragment) = href.split_once('#').unwrap_or((href, ""));
            let path = path.split('?').next().unwrap_or_default();
            let target = if path.is_empty() {
                f.clone()
            } else if let Some(in_book) = path.strip_prefix(SITE) {
                out_dir.join(in_book)
            } else {
                let joined = f.parent().unwrap().join(path);
                if joined.is_dir() {
                    joined.join("index.html")
                } else {
                    joined
                }
            };
            let target = std::path::absolute(&target).unwrap();
            let normal: PathBuf = target.components().fold(PathBuf::new(), |mut p, c| {
                match c {
                    std::path::Component::ParentDir => {
                        p.pop();
                    }
                    std::path::Component::CurDir => {}
                    other => p.push(other),
                }
                p
            });
            checked += 1;
            let page = f.strip_prefix(&out_dir).unwrap().display().to_string();
            if !normal.exists() {
                broken.push(format!("{page}: {href} (no such file)"));
            } else if !fragment.is_empty()
                && normal.extension().is_some_and(|x| x == "html")
                && !ids.get(&normal).is_some_and(|ids| ids.contains(fragment))
            {
                broken.push(format!("{page}: {href} (no such anchor)"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&out_dir);
    assert!(checked > 200, "{checked} links checked");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The alerts link their runbooks into the reasons page through the one docs base; the page is where
/// the base says.
#[test]
fn the_docs_base_serves_the_reasons_page_at_the_anchors_it_links() {
    use wufb_operator::reconcile::reasons::{DOCS_BASE, REGISTRY};
    let summary = std::fs::read_to_string(root().join("docs/src/SUMMARY.md")).unwrap();
    assert!(
        summary.contains("(reasons.md)"),
        "reasons.md at the book's root: reasons.html"
    );
    let book = std::fs::read_to_string(root().join("docs/book.toml")).unwrap();
    let path = DOCS_BASE.rsplit_once('/').unwrap().1;
    assert!(book.contains(&format!("site-url = \"/{path}/\"")), "{book}");
    let page = std::fs::read_to_string(root().join("docs/src/reasons.md")).unwrap();
    for e in REGISTRY {
        assert!(page.contains(&format!("<a id=\"{}\"></a>", e.reason.anchor())));
    }
}

/// The chart's icon is a file of this repository (the URL serves it from the main branch).
#[test]
fn the_chart_icon_is_in_the_repository() {
    let chart: serde_json::Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("charts/wufb-operator/Chart.yaml")).unwrap(),
    )
    .unwrap();
    let icon = chart["icon"].as_str().unwrap();
    let path = icon
        .strip_prefix("https://raw.githubusercontent.com/wufb-operator/wufb-operator/main/")
        .unwrap_or_else(|| panic!("{icon} is not a file of this repository"));
    let svg = std::fs::read_to_string(root().join(path)).unwrap();
    assert!(svg.starts_with("<svg"), "{path}");
}
