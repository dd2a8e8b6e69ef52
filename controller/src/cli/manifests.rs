//! Reads manifests: files, directories (recursively, like a Kustomize tree of plain manifests) and `-`
//! for stdin; multi-document YAML or JSON; `List` objects are flattened.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// Largest manifest file read.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// One object from a manifest file.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The file (or `<stdin>`).
    pub source: String,
    /// 1-based document number within the file.
    pub index: usize,
    pub value: Value,
}

impl Document {
    pub fn kind(&self) -> &str {
        self.value.get("kind").and_then(Value::as_str).unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn namespace(&self) -> Option<&str> {
        self.value.pointer("/metadata/namespace").and_then(Value::as_str)
    }

    pub fn location(&self) -> String {
        format!("{}:{}", self.source, self.index)
    }
}

/// A file or document that could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadError {
    pub location: String,
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Parses the documents of one file.
pub fn parse(source: &str, text: &str) -> (Vec<Document>, Vec<LoadError>) {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        match Value::deserialize(de) {
            Ok(Value::Null) => {}
            Ok(Value::Object(o)) if o.get("kind").and_then(Value::as_str) == Some("List") => {
                for item in o.get("items").and_then(Value::as_array).cloned().unwrap_or_default() {
                    docs.push(Document { source: source.into(), index, value: item });
                }
            }
            Ok(v @ Value::Object(_)) => docs.push(Document { source: source.into(), index, value: v }),
            Ok(other) => errors.push(LoadError {
                location: format!("{source}:{index}"),
                message: format!("the document is a {}, not a Kubernetes object (fix: give a mapping with apiVersion, kind and metadata)", kind_of(&other)),
            }),
            Err(e) => {
                errors.push(LoadError { location: format!("{source}:{index}"), message: format!("not valid YAML: {e} (fix the syntax)") });
                // A syntax error ends the stream: the rest of the file cannot be read reliably.
                break;
            }
        }
    }
    (docs, errors)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "list",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        _ => "value",
    }
}

fn is_manifest(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
    matches!(ext, "yaml" | "yml" | "json")
        && !matches!(name, "kustomization.yaml" | "kustomization.yml" | "Kustomization")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if is_manifest(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// Reads every manifest under `paths` (`-` is stdin).
pub fn load(paths: &[PathBuf]) -> (Vec<Document>, Vec<LoadError>) {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            use std::io::Read;
            match std::io::stdin()
                .take(MAX_FILE_BYTES + 1)
                .read_to_string(&mut text)
            {
                Ok(n) if n as u64 > MAX_FILE_BYTES => errors.push(too_large("<stdin>")),
                Ok(_) => extend(parse("<stdin>", &text), &mut docs, &mut errors),
                Err(e) => errors.push(LoadError {
                    location: "<stdin>".into(),
                    message: format!("cannot read: {e}"),
                }),
            }
            continue;
        }
        let mut files = Vec::new();
        if path.is_dir() {
            if let Err(e) = walk(path, &mut files) {
                errors.push(LoadError {
                    location: path.display().to_string(),
                    message: format!("cannot read the directory: {e}"),
                });
            }
        } else {
            files.push(path.clone());
        }
        for file in files {
            let source = file.display().to_string();
            match std::fs::metadata(&file) {
                Ok(m) if m.len() > MAX_FILE_BYTES => errors.push(too_large(&source)),
                Ok(_) => match std::fs::read_to_string(&file) {
                    Ok(text) => extend(parse(&source, &text), &mut docs, &mut errors),
                    Err(e) => errors.push(LoadError {
                        location: source,
                        message: format!("cannot read: {e}"),
                    }),
                },
                Err(e) => errors.push(LoadError {
                    location: source,
                    message: format!("cannot read: {e}"),
                }),
            }
        }
    }
    (docs, errors)
}

fn too_large(source: &str) -> LoadError {
    LoadError {
        location: source.into(),
        message: format!("larger than {MAX_FILE_BYTES} bytes (fix: split it into smaller files)"),
    }
}

fn extend(parsed: (Vec<Document>, Vec<LoadError>), docs: &mut Vec<Document>, errors: &mut Vec<LoadError>) {
    docs.extend(parsed.0);
    errors.extend(parsed.1);
}

/// The examples shipped with the project, built into the binary so the demo runs from anywhere.
pub fn embedded_examples() -> Vec<Document> {
    let files: [(&str, &str); 4] = [
        (
            "examples/10-pilot-ring.yaml",
            include_str!("../../../examples/10-pilot-ring.yaml"),
        ),
        (
            "examples/20-emergency-latest.yaml",
            include_str!("../../../examples/20-emergency-latest.yaml"),
        ),
        (
            "examples/30-pinned-release.yaml",
            include_str!("../../../examples/30-pinned-release.yaml"),
        ),
        (
            "examples/40-paused.yaml",
            include_str!("../../../examples/40-paused.yaml"),
        ),
    ];
    files
        .iter()
        .flat_map(|(name, text)| parse(name, text).0)
        .collect()
}

/// The health-gated wave examples (`examples/waves/`), which the demo applies after the others.
pub fn embedded_wave_examples() -> Vec<Document> {
    let files: [(&str, &str); 2] = [
        (
            "examples/waves/60-staged-rollout.yaml",
            include_str!("../../../examples/waves/60-staged-rollout.yaml"),
        ),
        (
            "examples/waves/70-canary.yaml",
            include_str!("../../../examples/waves/70-canary.yaml"),
        ),
    ];
    files
        .iter()
        .flat_map(|(name, text)| parse(name, text).0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_files_lists_and_errors() {
        let (docs, errors) = parse(
            "f.yaml",
            "a: 1\nkind: X\n---\n---\nkind: List\nitems:\n- kind: A\n- kind: B\n---\n- 1\n",
        );
        assert_eq!(
            docs.iter()
                .map(|d| (d.kind().to_string(), d.index))
                .collect::<Vec<_>>(),
            vec![("X".into(), 1), ("A".into(), 3), ("B".into(), 3)]
        );
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]
                .to_string()
                .starts_with("f.yaml:4: the document is a list")
        );
        let (_, errors) = parse("g.yaml", "kind: [unclosed\n");
        assert!(errors[0].message.contains("not valid YAML"), "{errors:?}");
    }

    #[test]
    fn the_examples_parse() {
        let docs = embedded_examples();
        assert_eq!(docs.len(), 5);
        assert!(
            docs.iter().all(|d| d.namespace().is_none()),
            "examples take the namespace they are applied to"
        );
    }
}
