//! The OData query subset that Graph clients send to this API: `$filter` (with `isof`, type-cast
//! properties, comparisons, `and`, `or`, `not` and parentheses), `$orderby`, `$top`, `$skip`, `$count`,
//! `$select`, `$expand` and server-driven paging through `$skiptoken`.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::error::GraphError;

/// The namespace every Windows Update type lives in.
pub const NS: &str = "microsoft.graph.windowsUpdates.";

/// Parsed query options of one collection request.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pub filter: Option<Expr>,
    pub orderby: Vec<(String, bool)>,
    pub top: Option<usize>,
    pub skip: usize,
    pub count: bool,
    pub select: Vec<String>,
    pub expand: Vec<String>,
    pub skiptoken: Option<usize>,
    /// Every option except `$skiptoken`, percent-decoded, to rebuild `@odata.nextLink`.
    pub passthrough: Vec<(String, String)>,
}

impl Query {
    /// Parses a raw (percent-encoded) query string.
    pub fn parse(raw: Option<&str>) -> Result<Self, GraphError> {
        let mut q = Query::default();
        let Some(raw) = raw else { return Ok(q) };
        if percent_encoding::percent_decode_str(raw).decode_utf8().is_err() {
            return Err(GraphError::bad_request(
                "The query string is not valid UTF-8 once decoded.",
            ));
        }
        for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
            let key = key.trim().to_string();
            let value = value.trim().to_string();
            match key.to_ascii_lowercase().as_str() {
                "$filter" => q.filter = Some(parse_filter(&value)?),
                "$orderby" => q.orderby = parse_orderby(&value)?,
                "$top" => q.top = Some(parse_usize("$top", &value)?),
                "$skip" => q.skip = parse_usize("$skip", &value)?,
                "$count" => {
                    q.count = match value.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(GraphError::bad_request(format!(
                                "Invalid $count value '{value}'."
                            )));
                        }
                    }
                }
                "$select" => q.select = property_paths("$select", &value)?,
                "$expand" => q.expand = property_paths("$expand", &value)?,
                "$skiptoken" => {
                    q.skiptoken = Some(
                        value
                            .strip_prefix("o")
                            .and_then(|n| n.parse().ok())
                            .ok_or_else(|| GraphError::bad_request("Invalid $skiptoken."))?,
                    );
                    continue;
                }
                "$search" | "$format" => {}
                k if k.starts_with('$') => {
                    return Err(GraphError::bad_request(format!(
                        "Query option '{key}' is not supported."
                    )));
                }
                _ => {}
            }
            q.passthrough.push((key, value));
        }
        Ok(q)
    }

    /// Whether `$expand` asks for a navigation property ending in `name`.
    pub fn expands(&self, name: &str) -> bool {
        self.expand
            .iter()
            .any(|e| e == name || e.ends_with(&format!("/{name}")))
    }
}

fn parse_usize(name: &str, value: &str) -> Result<usize, GraphError> {
    value
        .parse()
        .map_err(|_| GraphError::bad_request(format!("Invalid value '{value}' for {name}.")))
}

/// A `$select` or `$expand` list: property paths (`id`, `microsoft.graph.windowsUpdates.x/y`, `*`).
/// Nested options (`$expand=x($levels=2)`) and anything that is no name are refused.
fn property_paths(option: &str, value: &str) -> Result<Vec<String>, GraphError> {
    let items = split_list(value);
    for item in &items {
        let name = item.len() <= 256
            && item
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b'_' | b'*'));
        if !name {
            return Err(GraphError::bad_request(format!(
                "Invalid {option} item '{}': only property names are supported.",
                item.chars().take(80).collect::<String>()
            )));
        }
    }
    Ok(items)
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn parse_orderby(value: &str) -> Result<Vec<(String, bool)>, GraphError> {
    split_list(value)
        .into_iter()
        .map(|item| {
            let mut parts = item.split_whitespace();
            let prop = parts.next().unwrap_or_default().to_string();
            let desc = match parts.next().map(|s| s.to_ascii_lowercase()) {
                None => false,
                Some(d) if d == "asc" => false,
                Some(d) if d == "desc" => true,
                Some(d) => {
                    return Err(GraphError::bad_request(format!(
                        "Invalid $orderby direction '{d}'."
                    )));
                }
            };
            Ok((prop, desc))
        })
        .collect()
}

mod filter;

pub use filter::{CmpOp, Expr, is_of, matches, parse_filter, property, short_type};
use filter::{compare, item_type};

/// Refuses an `$orderby` on a property no item of the collection has, as Graph does ("Could not find a
/// property named ..."). An empty collection cannot tell, and accepts it.
pub fn check_orderby(items: &[Value], q: &Query) -> Result<(), GraphError> {
    for (prop, _) in &q.orderby {
        if !items.is_empty() && items.iter().all(|i| property(i, prop).is_none()) {
            let ty = items
                .first()
                .map(|i| item_type(i).trim_start_matches('#').to_string())
                .unwrap_or_default();
            return Err(GraphError::bad_request(format!(
                "Could not find a property named '{prop}' on type '{ty}'."
            )));
        }
    }
    Ok(())
}

/// Applies `$filter`, `$orderby`, `$skip`, `$top`, `$select` and paging to a collection, and builds the
/// response body. `self_url` is the absolute URL of the collection without a query string.
pub fn collection(mut items: Vec<Value>, q: &Query, page_size: usize, self_url: &str) -> Value {
    if let Some(f) = &q.filter {
        items.retain(|i| matches(f, i));
    }
    if !q.orderby.is_empty() {
        items.sort_by(|a, b| {
            for (prop, desc) in &q.orderby {
                let ord = compare(
                    property(a, prop).unwrap_or(&Value::Null),
                    property(b, prop).unwrap_or(&Value::Null),
                )
                .unwrap_or(Ordering::Equal);
                let ord = if *desc { ord.reverse() } else { ord };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
    }
    page(items.iter(), q, page_size, self_url, |i| (*i).clone())
}

/// Like [`collection`] for items that need rendering: when the query neither filters nor orders, the
/// items are walked only up to the page and only the page is rendered (paging through a large
/// collection neither copies nor renders it for every page).
pub fn collection_with<T>(
    items: impl Iterator<Item = T>,
    q: &Query,
    page_size: usize,
    self_url: &str,
    render: impl Fn(&T) -> Value,
) -> Result<Value, GraphError> {
    if q.filter.is_some() || !q.orderby.is_empty() {
        let rendered: Vec<Value> = items.map(|i| render(&i)).collect();
        check_orderby(&rendered, q)?;
        return Ok(collection(rendered, q, page_size, self_url));
    }
    Ok(page(items, q, page_size, self_url, render))
}

/// One page of `items` after `$skip` and `$top`, from the offset `$skiptoken` carries; the rest of the
/// items is walked only for `$count` or to learn whether another page follows.
fn page<T>(
    mut items: impl Iterator<Item = T>,
    q: &Query,
    page_size: usize,
    self_url: &str,
    render: impl Fn(&T) -> Value,
) -> Value {
    let start = q.skip;
    let end = q.top.map_or(usize::MAX, |t| start.saturating_add(t));
    let offset = q.skiptoken.unwrap_or(start).clamp(start, end);
    let want = page_size.max(1).min(end - offset);
    let mut seen = items.by_ref().take(offset).count();
    let page: Vec<Value> = items
        .by_ref()
        .take(want)
        .map(|i| select(render(&i), &q.select))
        .collect();
    seen += page.len();
    let page_end = offset + page.len();
    let more = seen == page_end && page_end < end && items.next().is_some();
    let mut body = Map::new();
    if q.count {
        let total = seen + usize::from(more) + items.count();
        body.insert("@odata.count".into(), Value::from(total));
    }
    body.insert("value".into(), Value::Array(page));
    if more {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &q.passthrough {
            ser.append_pair(k, v);
        }
        ser.append_pair("$skiptoken", &format!("o{page_end}"));
        body.insert(
            "@odata.nextLink".into(),
            Value::String(format!("{self_url}?{}", ser.finish())),
        );
    }
    Value::Object(body)
}

fn select(item: Value, props: &[String]) -> Value {
    if props.is_empty() {
        return item;
    }
    let Value::Object(obj) = item else {
        return item;
    };
    let keep = |k: &str| {
        k == "@odata.type"
            || k == "id"
            || props.iter().any(|p| {
                p == k || p.rsplit('/').next() == Some(k) || (p == "releaseDate" && k == "releaseDateTime")
            })
    };
    Value::Object(obj.into_iter().filter(|(k, _)| keep(k)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(ty: &str, exp: bool, date: &str) -> Value {
        json!({"@odata.type": format!("#{NS}{ty}"), "id": date, "isExpeditable": exp, "releaseDateTime": date})
    }

    /// The lazy page answers as paging a copy of the whole collection did: the same items, count and
    /// next link, for every skip, top, skiptoken and page size around the collection's edges.
    #[test]
    fn lazy_pages_answer_as_whole_collection_pages_did() {
        fn reference(items: &[Value], q: &Query, page_size: usize) -> Value {
            let total = items.len();
            let start = q.skip.min(total);
            let end = q.top.map_or(total, |t| (start + t).min(total));
            let offset = q.skiptoken.unwrap_or(start).clamp(start, end);
            let page_end = (offset + page_size.max(1)).min(end);
            let mut body = Map::new();
            if q.count {
                body.insert("@odata.count".into(), Value::from(total));
            }
            body.insert("value".into(), Value::Array(items[offset..page_end].to_vec()));
            if page_end < end {
                body.insert(
                    "@odata.nextLink".into(),
                    Value::String(format!("https://x/c?%24skiptoken=o{page_end}")),
                );
            }
            Value::Object(body)
        }
        let mut checked = 0;
        for n in [0usize, 1, 2, 5, 7] {
            let items: Vec<Value> = (0..n).map(|i| json!({"id": i.to_string()})).collect();
            for skip in [0usize, 1, 3, 9] {
                for top in [None, Some(0usize), Some(1), Some(4), Some(20)] {
                    for skiptoken in [None, Some(0usize), Some(2), Some(6), Some(99)] {
                        for count in [false, true] {
                            for page_size in [1usize, 2, 100] {
                                let q = Query {
                                    skip,
                                    top,
                                    skiptoken,
                                    count,
                                    ..Query::default()
                                };
                                let want = reference(&items, &q, page_size);
                                let have = page(items.iter(), &q, page_size, "https://x/c", |i| (*i).clone());
                                assert_eq!(
                                    have, want,
                                    "n {n} skip {skip} top {top:?} token {skiptoken:?} count {count} page {page_size}"
                                );
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 5 * 4 * 5 * 5 * 2 * 3);
    }

    #[test]
    fn seed_filter_selects_expeditable_quality_entries() {
        let f = parse_filter(
            "isof('microsoft.graph.windowsUpdates.qualityUpdateCatalogEntry') and \
             microsoft.graph.windowsUpdates.qualityUpdateCatalogEntry/isExpeditable eq true",
        )
        .unwrap();
        assert!(matches(
            &f,
            &entry("qualityUpdateCatalogEntry", true, "2026-01-13T00:00:00Z")
        ));
        assert!(!matches(
            &f,
            &entry("qualityUpdateCatalogEntry", false, "2026-01-13T00:00:00Z")
        ));
        assert!(!matches(
            &f,
            &entry("featureUpdateCatalogEntry", true, "2026-01-13T00:00:00Z")
        ));
    }

    #[test]
    fn isof_honours_the_type_hierarchy() {
        assert!(is_of(
            "#microsoft.graph.windowsUpdates.qualityUpdateCatalogEntry",
            "catalogEntry"
        ));
        assert!(is_of(
            "azureADDevice",
            "microsoft.graph.windowsUpdates.updatableAsset"
        ));
        assert!(!is_of("azureADDevice", "updatableAssetGroup"));
    }

    #[test]
    fn comparisons_on_dates_numbers_and_negation() {
        let e = entry("qualityUpdateCatalogEntry", true, "2026-01-13T00:00:00Z");
        assert!(matches(
            &parse_filter("releaseDateTime ge 2026-01-01T00:00:00Z").unwrap(),
            &e
        ));
        assert!(!matches(
            &parse_filter("releaseDateTime lt 2026-01-01T00:00:00Z").unwrap(),
            &e
        ));
        assert!(matches(
            &parse_filter("not (isExpeditable eq false) or id eq 'x'").unwrap(),
            &e
        ));
        assert!(matches(
            &parse_filter("releaseDate eq '2026-01-13T00:00:00Z'").unwrap(),
            &e
        ));
    }

    #[test]
    fn malformed_filters_are_400() {
        for bad in ["isof(", "(a eq 1", "a eq", "a eq 'x", "and"] {
            let err = parse_filter(bad).unwrap_err();
            assert_eq!(err.status.as_u16(), 400, "{bad}");
        }
    }

    #[test]
    fn paging_walks_every_item_once() {
        let items: Vec<Value> = (0..7).map(|i| json!({"id": i.to_string(), "n": i})).collect();
        let mut q = Query::parse(Some("$orderby=n%20desc&$top=5")).unwrap();
        let mut seen = Vec::new();
        loop {
            let body = collection(items.clone(), &q, 2, "http://h/x");
            seen.extend(
                body["value"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v["n"].as_i64().unwrap()),
            );
            match body.get("@odata.nextLink").and_then(Value::as_str) {
                Some(next) => q = Query::parse(next.split_once('?').map(|(_, q)| q)).unwrap(),
                None => break,
            }
        }
        assert_eq!(seen, vec![6, 5, 4, 3, 2]);
    }

    #[test]
    fn select_keeps_type_and_id() {
        let q = Query::parse(Some("$select=releaseDate&$count=true")).unwrap();
        let body = collection(vec![entry("qualityUpdateCatalogEntry", true, "d")], &q, 10, "u");
        assert_eq!(body["@odata.count"], 1);
        let obj = body["value"][0].as_object().unwrap();
        assert_eq!(obj.len(), 3, "{obj:?}");
    }
}
