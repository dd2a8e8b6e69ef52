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
    /// Treat warnings as errors (for example a DeviceGroup that is referenced but not in the files,
    /// which is fine when it already exists in the cluster).
    #[arg(long)]
    pub strict: bool,
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The object would be refused or stall.
    Error,
    /// Fine if something outside the files holds (a DeviceGroup already in the cluster).
    Warning,
}

/// One problem in one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `file:document`.
    pub location: String,
    pub error: FieldError,
    pub severity: Severity,
}

impl Finding {
    /// Whether it fails the check (`strict` counts warnings too).
    pub fn fails(&self, strict: bool) -> bool {
        strict || self.severity == Severity::Error
    }

    /// The finding as printed: a warning that `--strict` makes fail says `error:`.
    pub fn render(&self, strict: bool) -> String {
        match self.severity {
            Severity::Warning if strict => format!("{}: error: {}", self.location, self.error),
            _ => self.to_string(),
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.severity {
            Severity::Error => write!(f, "{}: {}", self.location, self.error),
            Severity::Warning => write!(f, "{}: warning: {}", self.location, self.error),
        }
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
        severity: Severity::Error,
    }
}

/// Whether a document is one of the operator's kinds.
pub fn is_ours(doc: &Document) -> bool {
    doc.value
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|a| a.starts_with("wufb.dev/"))
        && matches!(
            doc.kind(),
            "ExpeditedDeployment" | "DeviceGroup" | "GraphConnection" | "ClusterGraphConnection"
        )
}

/// A connection as the manifests name it: (kind, namespace or none for the cluster kind, name).
type Named = (String, Option<String>, String);

/// The connection a `spec.connectionRef` names.
fn named_connection(doc: &Document, spec: &Value) -> Option<Named> {
    let r: crate::crd::ConnectionRef = serde_json::from_value(spec.get("connectionRef")?.clone()).ok()?;
    Some(match r.kind {
        crate::crd::ConnectionKind::GraphConnection => (
            "GraphConnection".into(),
            doc.namespace().map(str::to_string),
            r.name,
        ),
        crate::crd::ConnectionKind::ClusterGraphConnection => ("ClusterGraphConnection".into(), None, r.name),
    })
}

/// The rules of a connection's spec that no schema states.
fn connection_rules(
    kind: &str,
    spec: &crate::crd::ConnectionSpec,
    warnings: &mut Vec<FieldError>,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if spec.credential.secret_ref.is_some() == spec.credential.workload_identity.is_some() {
        errors.push(FieldError {
            field: "spec.credential".into(),
            problem: "sets both or neither of secretRef and workloadIdentity".into(),
            fix: "set exactly one of secretRef or workloadIdentity".into(),
        });
    }
    if spec.cloud == crate::crd::graph_connection::ConnectionCloud::China && spec.endpoints.is_none() {
        errors.push(FieldError {
            field: "spec.cloud".into(),
            problem: "the Windows Update for Business deployment service is not offered in china".into(),
            fix: "use global, us-gov or us-gov-dod".into(),
        });
    }
    if let Some(e) = &spec.endpoints
        && crate::graph::Endpoints::custom(
            e.authority_host
                .as_deref()
                .unwrap_or("https://login.microsoftonline.com"),
            &e.graph_url,
        )
        .is_err()
    {
        errors.push(FieldError {
            field: "spec.endpoints.graphUrl".into(),
            problem: format!("'{}' is not a Graph base URL", rules::printable(&e.graph_url)),
            fix: "give a URL with the version, such as https://graph.microsoft.com/beta".into(),
        });
    }
    if kind == "GraphConnection" && spec.credential.workload_identity.is_some() {
        warnings.push(FieldError {
            field: "spec.credential.workloadIdentity".into(),
            problem: "a GraphConnection may sign in as the operator's service account only when the operator runs with --namespaced-workload-identity".into(),
            fix: "use a ClusterGraphConnection or a secretRef; --strict makes this an error".into(),
        });
    }
    errors
}

/// Checks the documents as one set: each object on its own, then references between them.
pub fn check(docs: &[Document]) -> Vec<Finding> {
    let ed_schema = spec_schema(&serde_json::to_value(ExpeditedDeployment::crd()).unwrap_or_default());
    let dg_schema = spec_schema(&serde_json::to_value(DeviceGroup::crd()).unwrap_or_default());
    let gc_schema =
        spec_schema(&serde_json::to_value(crate::crd::GraphConnection::crd()).unwrap_or_default());
    let cgc_schema =
        spec_schema(&serde_json::to_value(crate::crd::ClusterGraphConnection::crd()).unwrap_or_default());
    let mut out = Vec::new();
    let mut seen: BTreeMap<(String, Option<String>, String), String> = BTreeMap::new();
    let mut groups: BTreeSet<(Option<String>, String)> = BTreeSet::new();
    // Each DeviceGroup's connection, and the connections the manifests define.
    let mut group_connections: BTreeMap<(Option<String>, String), Option<Named>> = BTreeMap::new();
    let mut connections: BTreeSet<Named> = BTreeSet::new();
    for doc in docs.iter().filter(|d| is_ours(d)) {
        match doc.kind() {
            "DeviceGroup" => {
                groups.insert((doc.namespace().map(str::to_string), doc.name().to_string()));
                group_connections.insert(
                    (doc.namespace().map(str::to_string), doc.name().to_string()),
                    doc.value.get("spec").and_then(|s| named_connection(doc, s)),
                );
            }
            "GraphConnection" => {
                connections.insert((
                    "GraphConnection".into(),
                    doc.namespace().map(str::to_string),
                    doc.name().to_string(),
                ));
            }
            "ClusterGraphConnection" => {
                connections.insert(("ClusterGraphConnection".into(), None, doc.name().to_string()));
            }
            _ => {}
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
        let mut warnings = Vec::new();
        let (schema, is_deployment) = match doc.kind() {
            "ExpeditedDeployment" => (&ed_schema, true),
            "GraphConnection" => (&gc_schema, false),
            "ClusterGraphConnection" => (&cgc_schema, false),
            _ => (&dg_schema, false),
        };
        schema::check(schema, spec, "spec", &mut errors);
        // The operator's annotations, as the controller reads them: a refused value is an error here
        // (the controller would go on with the default and say so in Ready).
        let annotations: std::collections::BTreeMap<String, String> = doc.value["metadata"]["annotations"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        // Reported with the rest, after the spec's own rules (which run only on a spec the schema holds).
        let refused_annotations = rules::annotation_values(&annotations);
        let mine = named_connection(doc, spec);
        if let Some(c) = &mine
            && !connections.contains(c)
        {
            let (kind, ns, name) = c;
            warnings.push(FieldError {
                field: "spec.connectionRef".into(),
                problem: match ns {
                    Some(ns) => format!("{kind} {name} is not defined in these manifests for namespace {ns}, so it must already exist in the cluster"),
                    None => format!("{kind} {name} is not defined in these manifests, so it must already exist in the cluster"),
                },
                fix: "add the connection, or fix the name; --strict makes this an error".into(),
            });
        }
        if is_deployment {
            let ns = doc.namespace().map(str::to_string);
            // Read raw (the spec may not decode yet): the lists of AUDIENCE_ITEM_LISTS.
            let waves = spec["rollout"]["waves"].as_array().into_iter().flatten();
            let named: BTreeSet<&str> = ["members", "exclusions"]
                .iter()
                .flat_map(|l| spec["audience"][*l].as_array().into_iter().flatten())
                .chain(waves.flat_map(|w| w["members"].as_array().into_iter().flatten()))
                .filter_map(|i| i["deviceGroup"].as_str())
                .collect();
            for g in named {
                if let Some(theirs) = group_connections.get(&(ns.clone(), g.to_string()))
                    && *theirs != mine
                {
                    let say = |c: &Option<Named>| {
                        c.as_ref()
                            .map_or("the operator's own credentials".to_string(), |(k, _, n)| {
                                format!("{k} {n}")
                            })
                    };
                    errors.push(FieldError {
                        field: "spec.connectionRef".into(),
                        problem: format!(
                            "DeviceGroup {g} uses {} but this deployment uses {}, and a group lives in one tenant",
                            say(theirs),
                            say(&mine)
                        ),
                        fix: "set the same spec.connectionRef on the deployment and its DeviceGroups".into(),
                    });
                }
            }
        }
        if errors.is_empty() && matches!(doc.kind(), "GraphConnection" | "ClusterGraphConnection") {
            match serde_json::from_value::<crate::crd::ConnectionSpec>(spec.clone()) {
                Ok(s) => errors.extend(connection_rules(doc.kind(), &s, &mut warnings)),
                Err(e) => errors.push(FieldError {
                    field: "spec".into(),
                    problem: e.to_string(),
                    fix: "fix the spec".into(),
                }),
            }
        } else if errors.is_empty() {
            // The schema holds: the typed rules (the CEL rules and what no schema can say) apply.
            if is_deployment {
                match serde_json::from_value::<ExpeditedDeploymentSpec>(spec.clone()) {
                    Ok(s) => {
                        errors.extend(rules::expedited_deployment(&s));
                        errors.extend(rules::rollout_annotations(&s, &annotations));
                        if spec.get("equivalentContent").is_some() {
                            warnings.push(FieldError {
                                field: "spec.equivalentContent".into(),
                                problem: "is deprecated and ignored: every content form is deployed as the catalog entry it resolves to (catalogContent), which has no equivalent content in the current Graph schema".into(),
                                fix: "remove it".into(),
                            });
                        }
                        for (path, item) in s.items() {
                            if let Some(g) = item.device_group()
                                && !groups.contains(&(doc.namespace().map(str::to_string), g.to_string()))
                            {
                                warnings.push(FieldError {
                                    field: format!("{path}.deviceGroup"),
                                    problem: format!("DeviceGroup {g} is not defined in these manifests, so it must already exist in the cluster"),
                                    fix: "add the DeviceGroup, or fix the name; --strict makes this an error".into(),
                                });
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
        errors.extend(refused_annotations);
        out.extend(errors.into_iter().map(|error| Finding {
            location: doc.location(),
            error,
            severity: Severity::Error,
        }));
        out.extend(warnings.into_iter().map(|error| Finding {
            location: doc.location(),
            error,
            severity: Severity::Warning,
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
        println!("{}", f.render(args.strict));
    }
    let ours = docs.iter().filter(|d| is_ours(d)).count();
    let problems = findings.iter().filter(|f| f.fails(args.strict)).count() + load_errors.len();
    let warnings = findings.len() + load_errors.len() - problems;
    eprintln!(
        "validate: {ours} objects checked ({} other documents skipped), {problems} problems, {warnings} warnings",
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
    fn messages_read_as_sentences() {
        let found = check(&docs(
            "apiVersion: wufb.dev/v1alpha1\nkind: ExpeditedDeployment\nmetadata: {name: a}\nspec:\n  content: {releaseDate: 11/10/2026}\n  maxDevices: many\n  paused: 1\n",
        ));
        let lines: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert!(
            lines.contains(&"m.yaml:1: spec.content.releaseDate: \"11/10/2026\" is not a date in the form YYYY-MM-DD (give a date such as 2026-11-10)".to_string()),
            "{lines:#?}"
        );
        assert!(
            lines.contains(&"m.yaml:1: spec.maxDevices: is \"many\" (a string), but must be an integer (give an integer)".to_string()),
            "{lines:#?}"
        );
        assert!(
            lines.contains(
                &"m.yaml:1: spec.paused: is 1 (an integer), but must be true or false (give true or false)"
                    .to_string()
            ),
            "{lines:#?}"
        );
        assert!(
            lines.iter().all(|l| !l.contains('^') && !l.contains("a integer")),
            "{lines:#?}"
        );
    }

    #[test]
    fn connections_and_the_references_to_them_are_checked() {
        let mut examples = docs(include_str!("../../../examples/tenants/contoso.yaml"));
        examples.extend(docs(include_str!("../../../examples/tenants/shared.yaml")));
        assert_eq!(check(&examples), vec![], "the tenants examples are valid");
        let found = check(&docs(
            "apiVersion: wufb.dev/v1alpha1\nkind: GraphConnection\nmetadata: {name: a, namespace: n}\nspec:\n  tenantId: 7c2a1e0f-3b4d-4e5f-8a9b-0c1d2e3f4a5b\n  clientId: 1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b\n  credential: {workloadIdentity: {}}\n  cloud: china\n---\napiVersion: wufb.dev/v1alpha1\nkind: DeviceGroup\nmetadata: {name: ring, namespace: n}\nspec:\n  connectionRef: {name: a}\n  devices: [5a1c9e2b-7d3f-4b6a-9c8e-1f2d3a4b5c6d]\n---\napiVersion: wufb.dev/v1alpha1\nkind: ExpeditedDeployment\nmetadata: {name: d, namespace: n}\nspec:\n  connectionRef: {kind: ClusterGraphConnection, name: shared}\n  content: {latest: true}\n  audience:\n    members: [{deviceGroup: ring}]\n",
        ));
        let lines: Vec<String> = found.iter().map(ToString::to_string).collect();
        let has = |s: &str| lines.iter().any(|l| l.contains(s));
        assert!(
            has(
                "m.yaml:1: spec.cloud: the Windows Update for Business deployment service is not offered in china"
            ),
            "{lines:#?}"
        );
        assert!(
            has("m.yaml:1: warning: spec.credential.workloadIdentity"),
            "{lines:#?}"
        );
        assert!(
            has(
                "m.yaml:3: warning: spec.connectionRef: ClusterGraphConnection shared is not defined in these manifests"
            ),
            "{lines:#?}"
        );
        assert!(
            has(
                "m.yaml:3: spec.connectionRef: DeviceGroup ring uses GraphConnection a but this deployment uses ClusterGraphConnection shared"
            ),
            "{lines:#?}"
        );
        assert_eq!(lines.len(), 4, "{lines:#?}");
    }

    #[test]
    fn refused_annotations_and_gate_waits_past_their_bound_are_named_offline() {
        let found = check(&docs(
            "apiVersion: wufb.dev/v1alpha1\nkind: ExpeditedDeployment\nmetadata:\n  name: a\n  annotations:\n    wufb.dev/resync-interval: \"18446744073709551615\"\n    wufb.dev/abort: \"now\\u202e\"\nspec:\n  content: {latest: true}\n  rollout:\n    waves:\n    - name: pilot\n      members: [{device: 3b2a1c0d-5e4f-4a6b-9c8d-000000000101}]\n    - name: broad\n      members: [{device: 3b2a1c0d-5e4f-4a6b-9c8d-000000000102}]\n      gate: {wait: 91d}\n---\napiVersion: wufb.dev/v1alpha1\nkind: DeviceGroup\nmetadata:\n  name: g\n  annotations: {wufb.dev/resync-interval: 1s}\nspec: {devices: []}\n",
        ));
        let lines: Vec<String> = found.iter().map(ToString::to_string).collect();
        for want in [
            "metadata.annotations[wufb.dev/resync-interval]: '18446744073709551615' is refused (the default applies) (write a whole number and a unit (s, m, h or d) from 10s to 7d, or remove the annotation)",
            "metadata.annotations[wufb.dev/abort]: 'now\u{fffd}' is refused",
            "spec.rollout.waves[1].gate.wait: '91d' is out of range (write a whole number and a unit (s, m, h or d) from 1s to 90d, such as 30m, 4h or 1d)",
            "m.yaml:2: metadata.annotations[wufb.dev/resync-interval]: '1s' is refused",
        ] {
            assert!(
                lines.iter().any(|l| l.contains(want)),
                "{want}\nnot in {lines:#?}"
            );
        }
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
            "m.yaml:1: warning: spec.audience.members[0].deviceGroup: DeviceGroup ring is not defined in these manifests, so it must already exist in the cluster (add the DeviceGroup, or fix the name; --strict makes this an error)"
        );
        assert!(
            !found[0].fails(false) && found[0].fails(true),
            "a warning unless --strict"
        );
        assert_eq!(found[0].render(false), lines[0]);
        assert!(
            found[0]
                .render(true)
                .starts_with("m.yaml:1: error: spec.audience.members[0].deviceGroup: "),
            "--strict says error: for what fails: {}",
            found[0].render(true)
        );
        assert_eq!(
            lines[1],
            "m.yaml:2: apiVersion: wufb.dev/v1beta1 is not served (use wufb.dev/v1alpha1)"
        );
        assert!(
            lines[2].starts_with("m.yaml:4: metadata.name: 'Bad_Name' is not a valid name"),
            "{lines:?}"
        );
        assert_eq!(
            lines[3],
            "m.yaml:4: spec.devices[0]: \"x\" is not an Entra device id (give the device's Entra (Azure AD) device id, a GUID such as 3d0a0c8e-1c5e-4c53-9b3f-2a1d6e0c9a01)",
        );
        assert_eq!(lines.len(), 4, "the ConfigMap is skipped: {lines:?}");
    }

    #[test]
    fn the_deprecated_equivalent_content_is_a_warning_naming_the_fix() {
        let found = check(&docs(
            "apiVersion: wufb.dev/v1alpha1\nkind: ExpeditedDeployment\nmetadata: {name: a}\nspec:\n  content: {releaseDate: \"2026-11-10\"}\n  equivalentContent: none\n",
        ));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(!found[0].fails(false) && found[0].fails(true));
        let line = found[0].to_string();
        assert!(
            line.contains("warning: spec.equivalentContent: is deprecated and ignored")
                && line.contains("(remove it)"),
            "{line}"
        );
    }
}
