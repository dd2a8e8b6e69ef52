//! `wufb-operator validate -f PATH...`: offline checks of ExpeditedDeployment and DeviceGroup manifests
//! against the generated schema and the controller's own rules. Prints `file:document: field: problem
//! (fix)` lines; exit 1 on any error.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use kube::CustomResourceExt;
use serde_json::Value;

use super::manifests::{self, Document};
use crate::crd::validate::{self as rules, FieldError, is_object_name};
use crate::crd::{DeviceGroup, DeviceGroupSpec, ExpeditedDeployment, ExpeditedDeploymentSpec, schema};

pub const API_VERSION: &str = "wufb.dev/v1alpha1";

#[derive(clap::Args, Debug, Clone)]
pub struct ValidateArgs {
    /// Files or directories of manifests (`-` reads stdin). Repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub paths: Vec<PathBuf>,
}

/// One problem in one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `file:document`.
    pub location: String,
    pub error: FieldError,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.error)
    }
}

fn spec_schema(crd: &Value) -> Value {
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

fn finding(doc: &Document, field: &str, problem: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        location: doc.location(),
        error: FieldError {
            field: field.into(),
            problem: problem.into(),
            fix: fix.into(),
        },
    }
}

/// Whether a document is one of the operator's kinds.
pub fn is_ours(doc: &Document) -> bool {
    doc.value
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|a| a.starts_with("wufb.dev/"))
        && matches!(doc.kind(), "ExpeditedDeployment" | "DeviceGroup")
}

/// Checks the documents as one set: each object on its own, then references between them.
pub fn check(docs: &[Document]) -> Vec<Finding> {
    let ed_schema = spec_schema(&serde_json::to_value(ExpeditedDeployment::crd()).unwrap_or_default());
    let dg_schema = spec_schema(&serde_json::to_value(DeviceGroup::crd()).unwrap_or_default());
    let mut out = Vec::new();
    let mut seen: BTreeMap<(String, Option<String>, String), String> = BTreeMap::new();
    let mut groups: BTreeSet<(Option<String>, String)> = BTreeSet::new();
    for doc in docs.iter().filter(|d| is_ours(d)) {
        if doc.kind() == "DeviceGroup" {
            groups.insert((doc.namespace().map(str::to_string), doc.name().to_string()));
        }
    }
    for doc in docs.iter().filter(|d| is_ours(d)) {
        let api = doc.value["apiVersion"].as_str().unwrap_or("");
        if api != API_VERSION {
            out.push(finding(
                doc,
                "apiVersion",
                format!("{api} is not served"),
                format!("use {API_VERSION}"),
            ));
            continue;
        }
        let name = doc.name();
        if !is_object_name(name) {
            out.push(finding(
                doc,
                "metadata.name",
                format!("'{}' is not a valid name", rules::printable(name)),
                "use lower-case letters, digits, '-' and '.', at most 253 characters",
            ));
        }
        let key = (
            doc.kind().to_string(),
            doc.namespace().map(str::to_string),
            name.to_string(),
        );
        if let Some(first) = seen.insert(key, doc.location()) {
            out.push(finding(
                doc,
                "metadata.name",
                format!("{} {name} is also defined at {first}", doc.kind()),
                "give each object its own name",
            ));
        }
        let Some(spec) = doc.value.get("spec") else {
            out.push(finding(doc, "spec", "is required", "add a spec"));
            continue;
        };
        let mut errors = Vec::new();
        let (schema, is_deployment) = if doc.kind() == "ExpeditedDeployment" {
            (&ed_schema, true)
        } else {
            (&dg_schema, false)
        };
        schema::check(schema, spec, "spec", &mut errors);
        if errors.is_empty() {
            // The schema holds: the typed rules (the CEL rules and what no schema can say) apply.
            if is_deployment {
                match serde_json::from_value::<ExpeditedDeploymentSpec>(spec.clone()) {
                    Ok(s) => {
                        errors.extend(rules::expedited_deployment(&s));
                        for (list, items) in s
                            .audience
                            .iter()
                            .flat_map(|a| [("members", &a.members), ("exclusions", &a.exclusions)])
                        {
                            for (i, item) in items.iter().enumerate() {
                                if let Some(g) = &item.device_group
                                    && !groups.contains(&(doc.namespace().map(str::to_string), g.clone()))
                                {
                                    errors.push(FieldError {
                                        field: format!("spec.audience.{list}[{i}].deviceGroup"),
                                        problem: format!("DeviceGroup {g} is not defined in these manifests"),
                                        fix: "add the DeviceGroup, or fix the name".into(),
                                    });
                                }
                            }
                        }
                    }
                    Err(e) => errors.push(FieldError {
                        field: "spec".into(),
                        problem: e.to_string(),
                        fix: "fix the spec".into(),
                    }),
                }
            } else {
                match serde_json::from_value::<DeviceGroupSpec>(spec.clone()) {
                    Ok(s) => errors.extend(rules::device_group(&s)),
                    Err(e) => errors.push(FieldError {
                        field: "spec".into(),
                        problem: e.to_string(),
                        fix: "fix the spec".into(),
                    }),
                }
            }
        }
        out.extend(errors.into_iter().map(|error| Finding {
            location: doc.location(),
            error,
        }));
    }
    out
}

/// Runs the command; returns the exit code.
pub fn run(args: &ValidateArgs) -> u8 {
    let (docs, load_errors) = manifests::load(&args.paths);
    let findings = check(&docs);
    for e in &load_errors {
        println!("{}: document: {}", e.location, e.message);
    }
    for f in &findings {
        println!("{f}");
    }
    let ours = docs.iter().filter(|d| is_ours(d)).count();
    let problems = findings.len() + load_errors.len();
    eprintln!(
        "validate: {ours} objects checked ({} other documents skipped), {problems} problems",
        docs.len() - ours
    );
    u8::from(problems > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(yaml: &str) -> Vec<Document> {
        manifests::parse("m.yaml", yaml).0
    }

    #[test]
    fn the_examples_are_valid() {
        assert_eq!(check(&manifests::embedded_examples()), vec![]);
    }

    #[test]
    fn findings_name_file_document_and_field() {
        let found = check(&docs(
            "apiVersion: wufb.dev/v1alpha1\nkind: ExpeditedDeployment\nmetadata: {name: a}\nspec:\n  content: {latest: true}\n  audience:\n    members:\n    - deviceGroup: ring\n---\napiVersion: wufb.dev/v1beta1\nkind: DeviceGroup\nmetadata: {name: b}\nspec: {}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: wufb.dev/v1alpha1\nkind: DeviceGroup\nmetadata: {name: Bad_Name}\nspec: {devices: [x]}\n",
        ));
        let lines: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines[0],
            "m.yaml:1: spec.audience.members[0].deviceGroup: DeviceGroup ring is not defined in these manifests (add the DeviceGroup, or fix the name)"
        );
        assert_eq!(
            lines[1],
            "m.yaml:2: apiVersion: wufb.dev/v1beta1 is not served (use wufb.dev/v1alpha1)"
        );
        assert!(
            lines[2].starts_with("m.yaml:4: metadata.name: 'Bad_Name' is not a valid name"),
            "{lines:?}"
        );
        assert!(
            lines[3].starts_with("m.yaml:4: spec.devices[0]: \"x\" does not match the pattern"),
            "{lines:?}"
        );
        assert_eq!(lines.len(), 4, "the ConfigMap is skipped: {lines:?}");
    }
}
