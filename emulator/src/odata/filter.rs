//! `$filter`: the expression, its parser (the subset the deployment service answers) and how an item
//! matches it; with the property paths and type casts `$orderby` and `isof` read.

use std::cmp::Ordering;

use serde_json::Value;

use crate::error::GraphError;

use super::NS;

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

pub(super) fn item_type(item: &Value) -> &str {
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

pub(super) fn compare(a: &Value, b: &Value) -> Option<Ordering> {
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
