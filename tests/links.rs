//! Every relative link in the repository's Markdown resolves: to a file or
//! folder that exists and, with a `#fragment`, to a heading in it (as
//! GitHub names headings). Links into the crate's items (`crate::…`, in
//! the guide's chapters) are rustdoc's to check: CI builds the docs with
//! warnings denied. Web addresses are not fetched.

use std::path::{Path, PathBuf};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("repository root");
    let mut files = vec![root.join("README.md"), root.join("ARCHITECTURE.md"), root.join("streams/README.md")];
    for dir in ["docs", "core/src/guide"] {
        files.extend(markdown_in(&root.join(dir)));
    }
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("markdown file");
        for target in link_targets(&text) {
            checked += 1;
            if let Err(why) = resolve(file, &target) {
                broken.push(format!("{}: ({target}) {why}", file.strip_prefix(&root).unwrap_or(file).display()));
            }
        }
    }
    assert!(checked > 20, "found only {checked} links: is the link reader broken?");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    println!("links: {checked} links in {} files resolve", files.len());
}

fn markdown_in(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("folder")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    found.sort();
    found
}

/// The targets of `[text](target)` links and images outside code.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        // Inline code may hold brackets that are not links.
        let outside_code: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = outside_code.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            targets.push(after[..end].trim().to_owned());
            rest = &after[end..];
        }
    }
    targets
}

/// Whether a link from `file` to `target` lands somewhere.
fn resolve(file: &Path, target: &str) -> Result<(), String> {
    if target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:") {
        return Ok(());
    }
    if target.starts_with("crate::") || target.starts_with("Self::") || target.starts_with("super::") {
        return Ok(()); // an intra-doc link: rustdoc checks it
    }
    let (path, fragment) = target.split_once('#').map_or((target, None), |(path, fragment)| (path, Some(fragment)));
    let landing = if path.is_empty() { file.to_path_buf() } else { file.parent().expect("in a folder").join(path) };
    if !landing.exists() {
        return Err(format!("{} does not exist", landing.display()));
    }
    match fragment {
        Some(fragment) if landing.is_file() => {
            let text = std::fs::read_to_string(&landing).map_err(|err| err.to_string())?;
            if text.lines().filter(|line| line.starts_with('#')).any(|heading| slug(heading) == fragment) {
                Ok(())
            } else {
                Err(format!("no heading #{fragment} in {}", landing.display()))
            }
        }
        _ => Ok(()),
    }
}

/// A heading's anchor as GitHub makes it: lower case, punctuation dropped,
/// spaces to dashes.
fn slug(heading: &str) -> String {
    heading
        .trim_start_matches('#')
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}
