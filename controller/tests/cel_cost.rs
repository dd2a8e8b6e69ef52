//! The worst-case cost of every CEL rule in the generated CRDs, estimated as the API server's checker
//! does it (each list iterated to its maxItems, each string compared at its maxLength) and kept far below
//! the server's limits: 10,000,000 per expression and 100,000,000 per CRD (a rule inside a list counts
//! once per item). Each rule's figure is stated beside it in the Rust source (`// CEL cost: N`), and
//! kube-cel's coarse analysis finds nothing to warn about.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};

use kube::CustomResourceExt;
use kube_cel::cel::Program;
use kube_cel::cel::common::ast::{Expr, LiteralValue};
use serde_json::Value;
use wufb_operator::crd::ExpeditedDeployment;

/// The API server's estimated-cost limit for one expression.
const PER_EXPRESSION_LIMIT: u64 = 10_000_000;
/// The API server's estimated-cost limit for all rules of a CRD together.
const PER_CRD_LIMIT: u64 = 100_000_000;
/// What this project allows itself: a hundredth of the per-expression limit.
const OWN_BUDGET: u64 = PER_EXPRESSION_LIMIT / 100;
/// What the server assumes for a string or list without a bound: the largest request it accepts (3 MiB).
const UNBOUNDED: u64 = 3 * 1024 * 1024;

fn child<'a>(node: &'a Value, field: &str) -> Option<&'a Value> {
    node["properties"]
        .get(field)
        .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))
}

/// The schema node an expression denotes, where it can be told (`self`, bound iteration variables,
/// field selections, indexing).
fn node_of<'a>(expr: &Expr, scope: &HashMap<String, &'a Value>) -> Option<&'a Value> {
    match expr {
        Expr::Ident(name) => scope.get(name).copied(),
        Expr::Select(sel) => child(node_of(&sel.operand.expr, scope)?, &sel.field),
        Expr::Call(call) if call.func_name == "_[_]" => {
            node_of(&call.args.first()?.expr, scope)?.get("items")
        }
        _ => None,
    }
}

/// The worst-case length of what a node holds when compared or traversed: a string's maxLength (or its
/// longest enum value), an object's fields together.
fn traversal(node: Option<&Value>) -> u64 {
    let Some(node) = node else { return 1 };
    match node["type"].as_str() {
        // An enum bounds a string by its longest value, as the server's estimator takes it.
        Some("string") => node["maxLength"].as_u64().unwrap_or_else(|| {
            node["enum"]
                .as_array()
                .and_then(|e| e.iter().filter_map(Value::as_str).map(|v| v.len() as u64).max())
                .unwrap_or(UNBOUNDED)
        }),
        Some("object") => node["properties"]
            .as_object()
            .map(|p| p.values().map(|v| traversal(Some(v))).sum::<u64>() + p.len() as u64)
            .unwrap_or(1),
        Some("array") => node["maxItems"].as_u64().unwrap_or(UNBOUNDED) * traversal(node.get("items")),
        _ => 1,
    }
}

/// CEL's cost model, coarsely: 1 per identifier, selection and call; comparisons and string functions
/// add a tenth of the length they traverse; a comprehension costs its range's maxItems times its body.
fn cost(expr: &Expr, scope: &HashMap<String, &Value>) -> u64 {
    match expr {
        Expr::Literal(LiteralValue::String(_)) | Expr::Literal(_) => 0,
        Expr::Ident(_) => 1,
        Expr::Select(sel) => 1 + cost(&sel.operand.expr, scope),
        Expr::List(list) => list.elements.iter().map(|e| cost(&e.expr, scope)).sum(),
        Expr::Map(_) | Expr::Struct(_) | Expr::Unspecified => 1,
        Expr::Call(call) => {
            let target = call.target.as_ref().map_or(0, |t| cost(&t.expr, scope));
            let args: u64 = call.args.iter().map(|a| cost(&a.expr, scope)).sum();
            let traversed = match call.func_name.as_str() {
                "_==_" | "_!=_" | "_<_" | "_<=_" | "_>_" | "_>=_" => call
                    .args
                    .iter()
                    .map(|a| traversal(node_of(&a.expr, scope)))
                    .max()
                    .unwrap_or(1),
                "contains" | "startsWith" | "endsWith" | "matches" | "indexOf" | "lastIndexOf" | "split"
                | "replace" | "find" | "findAll" => call
                    .target
                    .as_ref()
                    .map_or(1, |t| traversal(node_of(&t.expr, scope))),
                _ => 0,
            };
            1 + target + args + traversed.div_ceil(10)
        }
        Expr::Comprehension(c) => {
            let range = node_of(&c.iter_range.expr, scope);
            let items = range.and_then(|r| r["maxItems"].as_u64()).unwrap_or(UNBOUNDED);
            let mut inner = scope.clone();
            if let Some(item) = range.and_then(|r| r.get("items")) {
                inner.insert(c.iter_var.clone(), item);
            }
            let body = cost(&c.loop_cond.expr, &inner) + cost(&c.loop_step.expr, &inner);
            cost(&c.iter_range.expr, scope)
                + cost(&c.accu_init.expr, scope)
                + items.saturating_mul(body)
                + cost(&c.result.expr, scope)
        }
    }
}

fn estimate(rule: &str, node: &Value) -> u64 {
    let program = Program::compile(rule).unwrap_or_else(|e| panic!("{rule}: {e}"));
    let scope = HashMap::from([("self".to_string(), node)]);
    cost(&program.expression().expr, &scope)
}

/// Every rule with the schema node it sits on and how many times that node can occur in one object.
fn rules<'a>(node: &'a Value, occurs: u64, out: &mut Vec<(String, &'a Value, u64)>) {
    for v in node["x-kubernetes-validations"].as_array().into_iter().flatten() {
        out.push((v["rule"].as_str().unwrap().to_string(), node, occurs));
    }
    for p in node["properties"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.values())
    {
        rules(p, occurs, out);
    }
    if let Some(items) = node.get("items") {
        let n = node["maxItems"].as_u64().unwrap_or(UNBOUNDED);
        rules(items, occurs.saturating_mul(n), out);
    }
}

/// `// CEL cost: N` on the line before each `Rule::new("...")` in the CRD sources (every file of `src/crd/`) (`None` where the
/// figure is missing).
fn stated() -> BTreeMap<String, Option<u64>> {
    let mut out = BTreeMap::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/crd");
    for file in std::fs::read_dir(dir).unwrap() {
        let file = file.unwrap().path();
        if file.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(start) = line.find("Rule::new(\"") else {
                continue;
            };
            let rest = &line[start + "Rule::new(\"".len()..];
            let rule = &rest[..rest.find("\")").unwrap()];
            let figure = i
                .checked_sub(1)
                .and_then(|j| lines[j].trim().strip_prefix("// CEL cost: "))
                .and_then(|f| f.split_whitespace().next())
                .and_then(|n| n.replace(',', "").parse().ok());
            out.insert(rule.to_string(), figure);
        }
    }
    out
}

#[test]
fn every_rule_costs_far_less_than_the_api_server_allows() {
    let stated = stated();
    for crd in wufb_operator::crd::all()
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
    {
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let mut found = Vec::new();
        rules(schema, 1, &mut found);
        assert!(!found.is_empty());
        let mut total = 0u64;
        for (rule, node, occurs) in &found {
            let each = estimate(rule, node);
            total = total.saturating_add(each.saturating_mul(*occurs));
            println!("{each:>9} x{occurs:<5} {rule}");
            assert!(each <= OWN_BUDGET, "{rule} costs {each}, above {OWN_BUDGET}");
            assert_eq!(
                stated.get(rule),
                Some(&Some(each)),
                "state `// CEL cost: {each}` on the line above the rule {rule} in controller/src/crd/"
            );
            let warnings = kube_cel::estimate_rule_cost(rule, &kube_cel::compile_schema(node));
            assert!(warnings.is_empty(), "{rule}: {warnings:?}");
        }
        println!("{}: {total} in all", crd["metadata"]["name"].as_str().unwrap());
        assert!(total <= PER_CRD_LIMIT / 100, "all rules of the CRD cost {total}");
    }
}

#[test]
fn the_member_exclusion_overlap_rule_would_exceed_the_limit() {
    // The rule this CRD once had on spec.audience: every member against every exclusion.
    let crd = serde_json::to_value(ExpeditedDeployment::crd()).unwrap();
    let audience = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["audience"];
    let overlap = "!has(self.members) || !has(self.exclusions) || !self.members.exists(m, self.exclusions.exists(e, e == m))";
    let each = estimate(overlap, audience);
    println!("overlap rule: {each}");
    assert!(each > PER_EXPRESSION_LIMIT, "{each}");
    // The same on one device id per item would be cheaper, but still quadratic; the controller checks it.
    let per_device = "!has(self.members) || !has(self.exclusions) || !self.members.exists(m, has(m.device) && self.exclusions.exists(e, has(e.device) && e.device == m.device))";
    assert!(estimate(per_device, audience) > OWN_BUDGET);
}
