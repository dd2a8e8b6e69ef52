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

/// A `$filter` expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    IsOf(String),
    Cmp(String, CmpOp, Value),
    /// A bare boolean property, such as `isExpeditable`.
    Prop(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    LParen,
    RParen,
    Comma,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, GraphError> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '\'' => {
                let mut lit = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(invalid_filter(s, "unterminated string literal")),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            lit.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            lit.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(lit));
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !matches!(chars[i], '(' | ')' | ',' | '\'')
                {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(out)
}

fn invalid_filter(filter: &str, why: &str) -> GraphError {
    GraphError::bad_request(format!("Invalid filter clause '{filter}': {why}."))
}

/// Parses a `$filter` value (already percent-decoded).
pub fn parse_filter(s: &str) -> Result<Expr, GraphError> {
    let toks = tokenize(s)?;
    let mut p = Parser {
        toks,
        pos: 0,
        src: s,
        depth: 0,
    };
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return Err(invalid_filter(s, "unexpected trailing input"));
    }
    Ok(e)
}

/// How deeply parentheses and `not` may nest in a `$filter`: the parser recurses once per level, so
/// a hostile filter of thousands of `(` must be refused, not overflow the stack.
const MAX_FILTER_DEPTH: usize = 32;

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    src: &'a str,
    /// Parentheses and `not` open around the current position.
    depth: usize,
}

impl Parser<'_> {
    fn peek_kw(&self, kw: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Ident(i)) if i.eq_ignore_ascii_case(kw))
    }

    fn or(&mut self) -> Result<Expr, GraphError> {
        let mut left = self.and()?;
        while self.peek_kw("or") {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, GraphError> {
        let mut left = self.unary()?;
        while self.peek_kw("and") {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, GraphError> {
        if self.peek_kw("not") {
            self.pos += 1;
            self.enter()?;
            let e = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(e)));
        }
        self.primary()
    }

    fn enter(&mut self) -> Result<(), GraphError> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            return Err(invalid_filter(self.src, "nested too deeply"));
        }
        Ok(())
    }

    fn primary(&mut self) -> Result<Expr, GraphError> {
        match self.toks.get(self.pos).cloned() {
            Some(Tok::LParen) => {
                self.pos += 1;
                self.enter()?;
                let e = self.or()?;
                self.depth -= 1;
                self.expect(Tok::RParen)?;
                Ok(e)
            }
            Some(Tok::Ident(name)) if name.eq_ignore_ascii_case("isof") => {
                self.pos += 1;
                self.expect(Tok::LParen)?;
                let ty = match self.toks.get(self.pos).cloned() {
                    Some(Tok::Str(t)) | Some(Tok::Ident(t)) => t,
                    _ => return Err(invalid_filter(self.src, "isof expects a type name")),
                };
                self.pos += 1;
                self.expect(Tok::RParen)?;
                Ok(Expr::IsOf(ty))
            }
            Some(Tok::Ident(prop)) if !["and", "or", "not"].contains(&prop.to_ascii_lowercase().as_str()) => {
                self.pos += 1;
                let op = match self.toks.get(self.pos) {
                    Some(Tok::Ident(op)) => match op.to_ascii_lowercase().as_str() {
                        "eq" => Some(CmpOp::Eq),
                        "ne" => Some(CmpOp::Ne),
                        "gt" => Some(CmpOp::Gt),
                        "ge" => Some(CmpOp::Ge),
                        "lt" => Some(CmpOp::Lt),
                        "le" => Some(CmpOp::Le),
                        _ => None,
                    },
                    _ => None,
                };
                let Some(op) = op else { return Ok(Expr::Prop(prop)) };
                self.pos += 1;
                let value = match self.toks.get(self.pos).cloned() {
                    Some(Tok::Str(s)) => Value::String(s),
                    Some(Tok::Ident(lit)) => literal(&lit)
                        .ok_or_else(|| invalid_filter(self.src, &format!("'{lit}' is not a literal")))?,
                    _ => return Err(invalid_filter(self.src, "comparison without a value")),
                };
                self.pos += 1;
                Ok(Expr::Cmp(prop, op, value))
            }
            _ => Err(invalid_filter(self.src, "expected an expression")),
        }
    }

    fn expect(&mut self, t: Tok) -> Result<(), GraphError> {
        if self.toks.get(self.pos) == Some(&t) {
            self.pos += 1;
            Ok(())
        } else {
            Err(invalid_filter(self.src, "unbalanced parentheses"))
        }
    }
}

/// An unquoted literal: a boolean, null, a number, or a DateTimeOffset, date or GUID (kept as text);
/// anything else is no literal (`None`), as Graph answers 400 for it.
fn literal(lit: &str) -> Option<Value> {
    Some(match lit {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "null" => Value::Null,
        _ => {
            if let Ok(i) = lit.parse::<i64>() {
                Value::from(i)
            } else if let Some(f) = lit.parse::<f64>().ok().filter(|f| f.is_finite()) {
                Value::from(f)
            } else if chrono::DateTime::parse_from_rfc3339(lit).is_ok()
                || chrono::NaiveDate::parse_from_str(lit, "%Y-%m-%d").is_ok()
                || is_guid(lit)
            {
                Value::String(lit.to_string())
            } else {
                return None;
            }
        }
    })
}

fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Type hierarchy of the types the emulator serves, child -> parent.
fn parent_type(ty: &str) -> Option<&'static str> {
    match ty {
        "qualityUpdateCatalogEntry" | "featureUpdateCatalogEntry" | "driverUpdateCatalogEntry" => {
            Some("softwareUpdateCatalogEntry")
        }
        "softwareUpdateCatalogEntry" => Some("catalogEntry"),
        "azureADDevice" | "updatableAssetGroup" => Some("updatableAsset"),
        _ => None,
    }
}

/// Short type name (`qualityUpdateCatalogEntry`) from any spelling of it.
pub fn short_type(ty: &str) -> &str {
    let ty = ty.trim_start_matches('#');
    ty.strip_prefix(NS).unwrap_or(ty)
}

/// Whether an object of type `ty` is of type `target` or derives from it.
pub fn is_of(ty: &str, target: &str) -> bool {
    let target = short_type(target);
    let mut cur = Some(short_type(ty));
    while let Some(t) = cur {
        if t == target {
            return true;
        }
        cur = parent_type(t);
    }
    false
}

fn item_type(item: &Value) -> &str {
    item.get("@odata.type")
        .and_then(Value::as_str)
        .map(short_type)
        .unwrap_or("")
}

/// Resolves a property path, honouring type casts (`ns.type/prop`) and aliases.
pub fn property<'a>(item: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = item;
    for seg in path.split('/') {
        if seg.contains('.') && seg.starts_with("microsoft.graph") {
            if !is_of(item_type(cur), seg) {
                return None;
            }
            continue;
        }
        let seg = if seg == "releaseDate" && cur.get("releaseDate").is_none() {
            "releaseDateTime"
        } else {
            seg
        };
        cur = cur.get(seg)?;
    }
    Some(cur)
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::String(x), Value::String(y)) => {
            match (
                chrono::DateTime::parse_from_rfc3339(x),
                chrono::DateTime::parse_from_rfc3339(y),
            ) {
                (Ok(dx), Ok(dy)) => Some(dx.cmp(&dy)),
                _ => Some(x.to_ascii_lowercase().cmp(&y.to_ascii_lowercase())),
            }
        }
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        _ => None,
    }
}

/// Evaluates a filter on one item.
pub fn matches(expr: &Expr, item: &Value) -> bool {
    match expr {
        Expr::And(a, b) => matches(a, item) && matches(b, item),
        Expr::Or(a, b) => matches(a, item) || matches(b, item),
        Expr::Not(a) => !matches(a, item),
        Expr::IsOf(t) => is_of(item_type(item), t),
        Expr::Prop(p) => property(item, p) == Some(&Value::Bool(true)),
        Expr::Cmp(p, op, v) => {
            let actual = property(item, p).unwrap_or(&Value::Null);
            let ord = compare(actual, v);
            match op {
                CmpOp::Eq => ord == Some(Ordering::Equal),
                CmpOp::Ne => ord != Some(Ordering::Equal),
                CmpOp::Gt => ord == Some(Ordering::Greater),
                CmpOp::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
                CmpOp::Lt => ord == Some(Ordering::Less),
                CmpOp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
            }
        }
    }
}

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
