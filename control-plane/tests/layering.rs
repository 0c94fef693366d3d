//! The control plane's import rules (issue 11): faces (REST `api`, admin
//! `ui`) never reach into each other, `auth` renders nothing of a face, the
//! store sits below auth and the service layer, and domain types below
//! everything. Reads the sources as text: a violation names its file and
//! line.

use std::path::{Path, PathBuf};

/// (module whose files are checked, modules they must not reference).
const RULES: &[(&str, &[&str])] = &[
    ("ui", &["api"]),
    ("api", &["ui"]),
    ("auth", &["ui", "api"]),
    ("store", &["auth", "service", "api", "ui"]),
    ("service", &["api", "ui"]),
    (
        "domain",
        &["store", "service", "auth", "api", "ui", "state"],
    ),
];

/// The module path of `file` below `src/`: `ui/services/forms.rs` is
/// `[ui, services, forms]`, `ui/mod.rs` is `[ui]`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if stem != "mod" {
            parts.push(stem.to_owned());
        }
    }
    parts
}

/// The first path segment(s) of `path`: `api::Error` is `[api]`,
/// `{api, store}` is `[api, store]`.
fn names(path: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    match path.strip_prefix('{') {
        Some(group) => group
            .split('}')
            .next()
            .unwrap_or_default()
            .split(',')
            .map(ident)
            .collect(),
        None => vec![ident(path)],
    }
}

/// The top-level modules `line` references: `crate::x`, `crate::{x, …}`,
/// and `super::…::x` paths that climb out to the crate root.
fn referenced(line: &str, module: &[String]) -> Vec<String> {
    let code = line.split("//").next().unwrap_or_default();
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        found.extend(names(after));
        rest = after;
    }
    // `super::super::x` from `ui::services::forms` climbs to `ui`; one more
    // `super` reaches the crate root, where `x` is a top-level module.
    let mut rest = code;
    while let Some(at) = rest.find("super::") {
        let mut after = &rest[at..];
        let mut climbs = 0;
        while let Some(next) = after.strip_prefix("super::") {
            climbs += 1;
            after = next;
        }
        if climbs >= module.len() {
            found.extend(names(after));
        }
        rest = after;
    }
    found.retain(|m| !m.is_empty());
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every forbidden reference under `src`, as `file:line: text`.
fn violations(src: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for (module, forbidden) in RULES {
        let mut files = Vec::new();
        rust_files(&src.join(module), &mut files);
        let single = src.join(format!("{module}.rs"));
        if single.exists() {
            files.push(single);
        }
        files.sort();
        for file in files {
            let relative = file.strip_prefix(src).unwrap_or(&file);
            let path = module_path(relative);
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            for (number, line) in text.lines().enumerate() {
                for target in referenced(line, &path) {
                    if forbidden.contains(&target.as_str()) {
                        found.push(format!(
                            "{}:{}: {module} must not use crate::{target}: {}",
                            relative.display(),
                            number + 1,
                            line.trim()
                        ));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn faces_store_and_auth_keep_to_their_layers() {
    // LAYERING_SRC points the check at another tree (e.g. an old checkout,
    // to see it fail).
    let src = std::env::var_os("LAYERING_SRC").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        PathBuf::from,
    );
    assert!(src.join("ui").is_dir(), "sources not found at {src:?}");
    let found = violations(&src);
    assert!(found.is_empty(), "forbidden imports:\n{}", found.join("\n"));
}

#[test]
fn the_checker_sees_every_form_of_reference() {
    let ui_forms = vec!["ui".to_owned(), "services".to_owned(), "forms".to_owned()];
    let cases: &[(&str, &[&str])] = &[
        ("use crate::api::{AppState, Error};", &["api"]),
        ("use crate::{api, store};", &["api", "store"]),
        (
            "        Ok(crate::api::extract::Json(origin)) => {",
            &["api"],
        ),
        ("use super::super::super::api::Error;", &["api"]),
        ("use super::super::page::Ctx;", &[]),
        ("use super::detail::FieldErrors;", &[]),
        ("// see crate::api::Error", &[]),
    ];
    for (line, expected) in cases {
        assert_eq!(&referenced(line, &ui_forms), expected, "{line}");
    }
}

#[test]
fn a_forbidden_import_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ui = dir.path().join("ui");
    std::fs::create_dir_all(&ui).expect("ui dir");
    std::fs::write(
        ui.join("approvals.rs"),
        "//! x\n\nuse crate::api::origins::decide;\n",
    )
    .expect("write");
    let found = violations(dir.path());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("ui/approvals.rs:3: ui must not use crate::api"),
        "{}",
        found[0]
    );
}
