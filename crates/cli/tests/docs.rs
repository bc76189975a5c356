//! The README and the user's guide (`docs/`, an mdBook) hold together: every relative link and
//! image points at a file that exists, every `#anchor` at a heading of its page, every chapter
//! of `docs/src` is in `SUMMARY.md`, and the README stays short enough to read in minutes.
//! (`mdbook build docs`, which CI runs, checks that SUMMARY's chapters exist.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Markdown files whose links are checked: the README, the book, every experiment's README.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    let in_dir = |dir: PathBuf| -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    };
    pages.extend(
        in_dir(root().join("docs/src"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "md")),
    );
    pages.extend(
        in_dir(root().join("experiments"))
            .into_iter()
            .map(|d| d.join("README.md"))
            .filter(|p| p.is_file()),
    );
    pages
}

/// The text outside fenced code blocks, where Markdown links live.
fn prose(text: &str) -> String {
    let mut fenced = false;
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Every link target `[text](target)` and image `![alt](target)` of a page.
fn link_targets(text: &str) -> Vec<String> {
    let text = prose(text);
    let mut targets = Vec::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(end) = rest.find(')') {
            targets.push(rest[..end].trim().to_string());
        }
    }
    targets
}

/// A heading's anchor as mdBook (and GitHub) makes it: lower case, spaces to `-`, and only
/// letters, digits, `-` and `_` kept.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(page: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(page).unwrap();
    prose(&text)
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| slug(l.trim_start_matches('#')))
        .collect()
}

/// What is wrong with one link of `page`, if anything.
fn broken(page: &Path, target: &str) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
    let file = match path.is_empty() {
        true => page.to_path_buf(),
        false => page.parent().unwrap().join(path),
    };
    if !file.exists() {
        return Some(format!("{target}: no such file"));
    }
    let is_page = file.extension().is_some_and(|e| e == "md");
    if !anchor.is_empty() && is_page && !anchors(&file).contains(anchor) {
        return Some(format!("{target}: no heading with that anchor"));
    }
    None
}

#[test]
fn every_relative_link_and_image_of_the_docs_resolves() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for target in link_targets(&text) {
            checked += 1;
            if let Some(p) = broken(&page, &target) {
                problems.push(format!("{}: {p}", page.display()));
            }
        }
    }
    assert!(checked > 50, "only {checked} links found");
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_chapter_of_the_book_is_in_its_summary() {
    let src = root().join("docs/src");
    let summary = std::fs::read_to_string(src.join("SUMMARY.md")).unwrap();
    let listed: BTreeSet<String> = link_targets(&summary).into_iter().collect();
    let orphans: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md") && n != "SUMMARY.md" && !listed.contains(n))
        .collect();
    assert!(orphans.is_empty(), "not in SUMMARY.md: {orphans:?}");
}

#[test]
fn the_readme_is_read_in_minutes() {
    let lines = std::fs::read_to_string(root().join("README.md"))
        .unwrap()
        .lines()
        .count();
    assert!(
        lines <= 160,
        "README.md has {lines} lines: move detail into docs/"
    );
}

#[test]
fn anchors_and_links_are_read_as_mdbook_makes_them() {
    assert_eq!(
        slug("Reproducibility: what is bit-identical where"),
        "reproducibility-what-is-bit-identical-where"
    );
    assert_eq!(slug("`--jobs` and progress"), "--jobs-and-progress");
    let text = "see [a](x.md#b) and ![f](../f.png)\n```\n[not](a link)\n```\n";
    assert_eq!(link_targets(text), ["x.md#b", "../f.png"]);
}
