//! Holds the layers that `ARCHITECTURE.md` declares: reads every `use
//! crate::…` / `super::…` / `crate::…` path in `core/src` and
//! `streams/src`, follows `pub use` re-exports to the file that defines
//! the name, and fails on an edge that runs upward against the declared
//! order, on any cycle between files, and on a file the order does not
//! place. A folder's `mod.rs` may name its own files (it is their front
//! door); every other edge counts. Code under `#[cfg(test)]` is left out:
//! a test may reach anywhere. `LAYERS_DEBUG=1` prints every path read and
//! the file it resolves to.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let architecture = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut failures = String::new();
    for (crate_dir, layers) in declared_layers(&architecture) {
        let graph = Graph::of_crate(&root.join(&crate_dir));
        failures.push_str(&graph.check(&crate_dir, &layers));
    }
    assert!(!failures.is_empty() || architecture.contains("```layers"), "ARCHITECTURE.md declares no layers");
    if !failures.is_empty() {
        eprintln!("{failures}");
        panic!("the layers declared in ARCHITECTURE.md do not hold (see above)");
    }
    println!("layers: ARCHITECTURE.md holds for every file");
}

/// The `layers <crate dir>` blocks of ARCHITECTURE.md: one line per
/// layer, the lowest first, each a list of module paths (`engine` stands
/// for every file under `engine/`, `<root>` for lib.rs or main.rs).
fn declared_layers(text: &str) -> Vec<(String, Vec<Vec<String>>)> {
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(crate_dir) = line.trim().strip_prefix("```layers ") else { continue };
        let mut layers = Vec::new();
        for line in lines.by_ref().take_while(|line| line.trim() != "```") {
            let modules = line.split('#').next().unwrap_or("");
            let modules: Vec<String> = modules.split_whitespace().map(|m| m.trim_end_matches(',').to_owned()).collect();
            if !modules.is_empty() {
                layers.push(modules);
            }
        }
        blocks.push((crate_dir.trim().to_owned(), layers));
    }
    assert!(blocks.len() >= 2, "ARCHITECTURE.md declares the layers of core/src and streams/src");
    blocks
}

/// The files of one crate and the edges between them.
struct Graph {
    /// Module path (`""` for the crate root) → the file's code, comments,
    /// strings and test modules left out.
    modules: BTreeMap<String, String>,
    edges: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    fn of_crate(src: &Path) -> Graph {
        let mut modules = BTreeMap::new();
        for file in rust_files(src) {
            let code = std::fs::read_to_string(&file).expect("source file");
            modules.insert(module_path(src, &file), without_tests(&code_only(&code)));
        }
        let mut graph = Graph { modules, edges: BTreeMap::new() };
        let exports = graph.re_exports();
        for (module, code) in &graph.modules {
            for path in paths_named(code) {
                let Some(absolute) = graph.absolute(module, &path) else { continue };
                let target = graph.resolve(&absolute, &exports, 0);
                if std::env::var_os("LAYERS_DEBUG").is_some() {
                    eprintln!("{module} {path:?} -> {target}");
                }
                let own_file = target.starts_with(&format!("{module}::")) || (module.is_empty() && !target.is_empty());
                let is_mod_rs_front = own_file && graph.is_folder(module);
                if target != *module && !is_mod_rs_front {
                    graph.edges.entry(module.clone()).or_default().insert(target);
                }
            }
        }
        graph
    }

    fn is_folder(&self, module: &str) -> bool {
        module.is_empty() || self.modules.keys().any(|other| other.starts_with(&format!("{module}::")))
    }

    /// `pub use` and `pub(crate) use` items: (module, name) → the path they name.
    fn re_exports(&self) -> HashMap<(String, String), Vec<String>> {
        let mut exports = HashMap::new();
        for (module, code) in &self.modules {
            for statement in use_statements(code).into_iter().filter(|statement| statement.public) {
                for (path, alias) in statement.paths {
                    if let Some(absolute) = self.absolute(module, &path) {
                        let name = alias.unwrap_or_else(|| absolute.last().cloned().unwrap_or_default());
                        exports.insert((module.clone(), name), absolute);
                    }
                }
            }
        }
        exports
    }

    /// A path as written in `module`, from the crate root; `None` for
    /// another crate's.
    fn absolute(&self, module: &str, path: &[String]) -> Option<Vec<String>> {
        let mut base: Vec<String> =
            if module.is_empty() { Vec::new() } else { module.split("::").map(str::to_owned).collect() };
        let mut rest = path;
        match rest.first().map(String::as_str) {
            Some("crate") => {
                base.clear();
                rest = &rest[1..];
            }
            Some("super" | "self") => {
                while let Some(first) = rest.first().filter(|seg| *seg == "super" || *seg == "self") {
                    if first == "super" {
                        base.pop();
                    }
                    rest = &rest[1..];
                }
            }
            Some(first) => {
                // A path from one of the module's own files (uniform paths).
                let child = if module.is_empty() { (*first).to_owned() } else { format!("{module}::{first}") };
                if !self.modules.contains_key(&child) {
                    return None;
                }
            }
            None => return None,
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    /// The file that defines what `path` names, through re-exports.
    fn resolve(&self, path: &[String], exports: &HashMap<(String, String), Vec<String>>, depth: usize) -> String {
        let (module, rest) = (0..=path.len())
            .rev()
            .map(|len| (path[..len].join("::"), &path[len..]))
            .find(|(module, _)| self.modules.contains_key(module))
            .expect("the crate root is a module");
        match rest.first().and_then(|name| exports.get(&(module.clone(), name.clone()))) {
            Some(target) if depth < 8 => {
                let mut followed = target.clone();
                followed.extend(rest[1..].iter().cloned());
                self.resolve(&followed, exports, depth + 1)
            }
            _ => module,
        }
    }

    /// The failures of this crate against its declared layers.
    fn check(&self, crate_dir: &str, layers: &[Vec<String>]) -> String {
        let mut failures = String::new();
        let layer_of = |module: &str| -> Option<usize> {
            let name = if module.is_empty() { "<root>" } else { module };
            layers
                .iter()
                .enumerate()
                .flat_map(|(level, modules)| modules.iter().map(move |declared| (level, declared)))
                .filter(|(_, declared)| name == declared.as_str() || name.starts_with(&format!("{declared}::")))
                .max_by_key(|(_, declared)| declared.len())
                .map(|(level, _)| level)
        };
        for module in self.modules.keys() {
            if layer_of(module).is_none() {
                let _ = writeln!(failures, "{crate_dir}: `{module}` is in no layer of ARCHITECTURE.md");
            }
        }
        for (from, targets) in &self.edges {
            for to in targets {
                if let (Some(low), Some(high)) = (layer_of(from), layer_of(to))
                    && high > low
                {
                    let _ =
                        writeln!(failures, "{crate_dir}: `{from}` (layer {low}) names `{to}` (layer {high}), above it");
                }
            }
        }
        for cycle in self.cycles() {
            let _ = writeln!(failures, "{crate_dir}: files that name each other: {}", cycle.join(", "));
        }
        failures
    }

    /// Strongly connected components of more than one file (Tarjan).
    fn cycles(&self) -> Vec<Vec<String>> {
        struct Walk<'g> {
            graph: &'g Graph,
            index: HashMap<&'g str, usize>,
            low: HashMap<&'g str, usize>,
            stack: Vec<&'g str>,
            found: Vec<Vec<String>>,
        }
        impl<'g> Walk<'g> {
            fn visit(&mut self, node: &'g str) {
                let number = self.index.len();
                self.index.insert(node, number);
                self.low.insert(node, number);
                self.stack.push(node);
                for next in self.graph.edges.get(node).into_iter().flatten() {
                    if !self.index.contains_key(next.as_str()) {
                        self.visit(next);
                        self.low.insert(node, self.low[node].min(self.low[next.as_str()]));
                    } else if self.stack.contains(&next.as_str()) {
                        self.low.insert(node, self.low[node].min(self.index[next.as_str()]));
                    }
                }
                if self.low[node] == self.index[node] {
                    let at = self.stack.iter().rposition(|&n| n == node).expect("on the stack");
                    let component: Vec<String> = self.stack.drain(at..).map(str::to_owned).collect();
                    if component.len() > 1 {
                        self.found.push(component);
                    }
                }
            }
        }
        let mut walk =
            Walk { graph: self, index: HashMap::new(), low: HashMap::new(), stack: Vec::new(), found: Vec::new() };
        for module in self.modules.keys() {
            if !walk.index.contains_key(module.as_str()) {
                walk.visit(module);
            }
        }
        walk.found
    }
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("source folder") {
        let path = entry.expect("folder entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

/// `engine/mod.rs` → `engine`, `txn/write.rs` → `txn::write`, lib.rs → ""
/// (a binary's main.rs stays `main`).
fn module_path(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("under src").with_extension("");
    let mut parts: Vec<String> = relative.iter().map(|part| part.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts.join("::")
}

/// The code with comments, string and character literals blanked out.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == 'r' && matches!(next, Some('#' | '"')) && (i == 0 || !ident(chars[i - 1])) {
            let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
            if chars.get(i + 1 + hashes) == Some(&'"') {
                let closing: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
                let rest: String = chars[i + 2 + hashes..].iter().collect();
                let end = rest.find(&closing).map_or(rest.len(), |at| at + closing.len());
                i += 2 + hashes + rest[..end].chars().count();
                out.push_str("\"\"");
            } else {
                out.push(c);
                i += 1;
            }
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The code without `#[cfg(test)]` items.
fn without_tests(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        // The item ends at its closing brace, or at a `;` before any brace.
        let end = match (item.find('{'), item.find(';')) {
            (Some(open), Some(semi)) if semi < open => semi + 1,
            (Some(open), _) => matching_brace(item, open).map_or(item.len(), |close| close + 1),
            (None, Some(semi)) => semi + 1,
            (None, None) => item.len(),
        };
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

fn matching_brace(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (at, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + at);
                }
            }
            _ => {}
        }
    }
    None
}

/// One `use` declaration: its paths (with the name each is imported as,
/// when renamed) and whether it re-exports them.
struct UseStatement {
    public: bool,
    paths: Vec<(Vec<String>, Option<String>)>,
}

fn use_statements(code: &str) -> Vec<UseStatement> {
    let mut statements = Vec::new();
    let mut rest = code;
    while let Some(at) = find_word(rest, "use") {
        let before = rest[..at].trim_end();
        let public = before.ends_with("pub")
            || before.ends_with(')') && before.rsplit("pub").next().is_some_and(|v| v.starts_with('('));
        let tree_start = at + 3;
        let Some(end) = rest[tree_start..].find(';') else { break };
        let tree: String = rest[tree_start..tree_start + end].split_whitespace().collect::<Vec<_>>().join(" ");
        statements.push(UseStatement { public, paths: expand_tree(&tree) });
        rest = &rest[tree_start + end..];
    }
    statements
}

fn find_word(text: &str, word: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    text.match_indices(word).map(|(at, _)| at).find(|&at| {
        let before = at == 0 || !is_ident(bytes[at - 1]);
        let after = bytes.get(at + word.len()).is_none_or(|&b| !is_ident(b));
        before && after
    })
}

/// `a::{b, c::{d as e}}` → `a::b`, `a::c::d` (imported as `e`).
fn expand_tree(tree: &str) -> Vec<(Vec<String>, Option<String>)> {
    let tree = tree.trim().trim_start_matches("::");
    let Some(open) = tree.find('{') else {
        let tree = tree.trim_end_matches("::*");
        let (path, alias) = match tree.split_once(" as ") {
            Some((path, alias)) => (path, Some(alias.trim().to_owned())),
            None => (tree, None),
        };
        let segments: Vec<String> =
            path.split("::").map(|seg| seg.trim().to_owned()).filter(|seg| !seg.is_empty()).collect();
        return if segments.is_empty() { Vec::new() } else { vec![(segments, alias)] };
    };
    let prefix = tree[..open].trim();
    let close = matching_brace(tree, open).unwrap_or(tree.len() - 1);
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, open + 1);
    for (at, c) in tree[open + 1..close].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&tree[start..open + 1 + at]);
                start = open + 2 + at;
            }
            _ => {}
        }
    }
    parts.push(&tree[start..close]);
    let mut paths = Vec::new();
    for part in parts.into_iter().map(str::trim).filter(|part| !part.is_empty() && *part != "*") {
        let joined = if part == "self" { prefix.trim_end_matches("::").to_owned() } else { format!("{prefix}{part}") };
        paths.extend(expand_tree(&joined));
    }
    if tree[open + 1..close].trim() == "*" || paths.is_empty() && !prefix.is_empty() {
        paths.extend(expand_tree(prefix.trim_end_matches("::")));
    }
    paths
}

/// Every path a file names: its `use` trees and the `crate::…` and
/// `super::…` paths written in its code.
fn paths_named(code: &str) -> Vec<Vec<String>> {
    let mut paths: Vec<Vec<String>> =
        use_statements(code).into_iter().flat_map(|s| s.paths.into_iter().map(|(path, _)| path)).collect();
    for start in ["crate::", "super::"] {
        for (at, _) in code.match_indices(start) {
            if at > 0 && matches!(code.as_bytes()[at - 1], b'$' | b'_' | b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9') {
                continue;
            }
            let path: String =
                code[at..].chars().take_while(|&c| c.is_alphanumeric() || c == '_' || c == ':').collect();
            let segments: Vec<String> = path.split("::").filter(|seg| !seg.is_empty()).map(str::to_owned).collect();
            // `crate::{…}` is a use tree, read above.
            if segments.len() > 1 {
                paths.push(segments);
            }
        }
    }
    paths
}
