//! One error type for everything the Graph client does. `category()` is the metric label and Event
//! reason; `is_transient()` decides retry versus stall, in one place.

use std::time::Duration;

/// A Graph OData error body's useful parts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ODataDetail {
    pub code: String,
    pub message: String,
    pub target: Option<String>,
    /// The failed call's identifiers (boxed: an error stays small).
    pub ids: Option<Box<RequestIds>>,
}

/// The service's `request-id` of a failed call and the `client-request-id` the operator sent:
/// Microsoft support asks for both.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestIds {
    pub request_id: Option<String>,
    pub client_request_id: Option<String>,
}

/// How a message carries a failed call's identifiers: `[request-id: …, client-request-id: …]` at the
/// end of the Graph error it belongs to.
const REQUEST_IDS: &str = " [request-id: ";

/// `text` without the request identifiers of the calls it describes: two failures that differ only in
/// which call failed read the same (an Event is not sent again, a condition not rewritten).
pub fn without_request_ids(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(REQUEST_IDS) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(REQUEST_IDS) {
        out.push_str(&rest[..start]);
        match rest[start..].find(']') {
            Some(end) => rest = &rest[start + end + 1..],
            // Cut off (a bounded message): drop the rest.
            None => rest = "",
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

impl ODataDetail {
    /// Everything the error says, in lower case, to look for what it names.
    fn text(&self) -> String {
        format!("{} {}", self.message, self.target.as_deref().unwrap_or_default()).to_lowercase()
    }

    /// The first of `ids` the error names (compared without case), if any.
    pub fn names<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
        let text = self.text();
        ids.into_iter()
            .find(|id| !id.is_empty() && text.contains(&id.to_lowercase()))
    }

    /// Whether the error points into a list of assets without naming one: a target or detail such as
    /// `addMembers[3]` or `memberEntityIds`.
    pub fn points_at_assets(&self) -> bool {
        let text = self.text();
        [
            "addmembers",
            "removemembers",
            "addexclusions",
            "removeexclusions",
            "memberentityids",
            "ids[",
        ]
        .iter()
        .any(|k| text.contains(k))
    }
}

impl std::fmt::Display for ODataDetail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(t) = &self.target {
            write!(f, " (target {t})")?;
        }
        if let Some(ids) = &self.ids {
            write!(
                f,
                "{REQUEST_IDS}{}, client-request-id: {}]",
                ids.request_id.as_deref().unwrap_or("none"),
                ids.client_request_id.as_deref().unwrap_or("none")
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("invalid Graph configuration: {detail}")]
    Config { detail: String },

    #[error("failed to get an access token: {error} ({description})")]
    Token {
        /// The identity platform's error (`invalid_client`, `unauthorized_client`, ...).
        error: String,
        /// Its description, with any credential value removed.
        description: String,
        status: u16,
    },

    #[error("failed to read the credential: {detail}")]
    Credential { detail: String },

    #[error("failed to {operation}: Graph answered {status} {detail}")]
    Status {
        operation: &'static str,
        status: u16,
        detail: ODataDetail,
        /// When the service asked to wait (429/503 `Retry-After`).
        retry_after: Option<Duration>,
    },

    #[error("failed to {operation}: {detail}")]
    Transport {
        operation: &'static str,
        detail: String,
        #[source]
        source: Option<reqwest::Error>,
    },

    #[error(
        "failed to {operation}: the outcome is unknown ({detail}); the deployment may or may not exist, and must be \
         adopted rather than created again"
    )]
    AmbiguousCreate { operation: &'static str, detail: String },

    #[error("failed to {operation}: the response could not be read: {detail}")]
    Decode { operation: &'static str, detail: String },

    #[error("failed to {operation}: {detail}")]
    Protocol { operation: &'static str, detail: String },

    /// The request body could not be written; nothing was sent.
    #[error("failed to {operation}: the request could not be encoded: {detail}")]
    Encode { operation: &'static str, detail: String },
}

/// The kinds of Graph failure (their meanings and fixes are in the reconciler's reason registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Config,
    Authentication,
    Credential,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    Throttled,
    Rejected,
    Unavailable,
    Unreachable,
    AmbiguousCreate,
    BadResponse,
    EncodeFailed,
}

impl Category {
    pub const ALL: [Category; 14] = [
        Category::Config,
        Category::Authentication,
        Category::Credential,
        Category::Unauthorized,
        Category::Forbidden,
        Category::NotFound,
        Category::Conflict,
        Category::Throttled,
        Category::Rejected,
        Category::Unavailable,
        Category::Unreachable,
        Category::AmbiguousCreate,
        Category::BadResponse,
        Category::EncodeFailed,
    ];

    /// The label: `GraphThrottled`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Config => "GraphConfig",
            Category::Authentication => "GraphAuthentication",
            Category::Credential => "GraphCredential",
            Category::Unauthorized => "GraphUnauthorized",
            Category::Forbidden => "GraphForbidden",
            Category::NotFound => "GraphNotFound",
            Category::Conflict => "GraphConflict",
            Category::Throttled => "GraphThrottled",
            Category::Rejected => "GraphRejected",
            Category::Unavailable => "GraphUnavailable",
            Category::Unreachable => "GraphUnreachable",
            Category::AmbiguousCreate => "GraphAmbiguousCreate",
            Category::BadResponse => "GraphBadResponse",
            Category::EncodeFailed => "EncodeFailed",
        }
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Category {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl GraphError {
    /// What kind of failure it is: the metric label and Event reason.
    pub fn category(&self) -> Category {
        match self {
            GraphError::Config { .. } => Category::Config,
            GraphError::Token { .. } => Category::Authentication,
            GraphError::Credential { .. } => Category::Credential,
            GraphError::Status { status: 401, .. } => Category::Unauthorized,
            GraphError::Status { status: 403, .. } => Category::Forbidden,
            GraphError::Status { status: 404, .. } => Category::NotFound,
            GraphError::Status { status: 409, .. } => Category::Conflict,
            GraphError::Status { status: 429, .. } => Category::Throttled,
            GraphError::Status {
                status: 400..=499, ..
            } => Category::Rejected,
            GraphError::Status { .. } => Category::Unavailable,
            GraphError::Transport { .. } => Category::Unreachable,
            GraphError::AmbiguousCreate { .. } => Category::AmbiguousCreate,
            GraphError::Decode { .. } | GraphError::Protocol { .. } => Category::BadResponse,
            GraphError::Encode { .. } => Category::EncodeFailed,
        }
    }

    /// Whether retrying later can succeed without a change to the spec or the credential.
    pub fn is_transient(&self) -> bool {
        match self {
            GraphError::Status { status, .. } => matches!(status, 408 | 409 | 429 | 500..=599),
            GraphError::Token { status, error, .. } => *status >= 500 || error == "temporarily_unavailable",
            GraphError::Transport { .. } | GraphError::AmbiguousCreate { .. } => true,
            GraphError::Decode { .. } | GraphError::Protocol { .. } => true,
            GraphError::Config { .. } | GraphError::Credential { .. } | GraphError::Encode { .. } => false,
        }
    }

    /// How long the service asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GraphError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            GraphError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// The causes of a failed request, innermost last (reqwest's own text says only "error sending
/// request"; the certificate problem is three sources down), each once.
pub fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    let mut out = parts.join(": ");
    let lower = out.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("unknownissuer") {
        out.push_str(
            "; the server's certificate is not trusted: where a proxy or a private CA signs it, trust that CA with --ca-file (chart: caBundle.configMap or caBundle.secret)",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn every_cause_is_told_and_an_untrusted_certificate_names_the_fix() {
        let e = Layer(
            "error sending request",
            Some(Box::new(Layer(
                "client error (Connect)",
                Some(Box::new(Layer("invalid peer certificate: UnknownIssuer", None))),
            ))),
        );
        let text = causes(&e);
        assert!(
            text.starts_with("client error (Connect): invalid peer certificate: UnknownIssuer; "),
            "{text}"
        );
        assert!(
            text.contains("--ca-file") && text.contains("caBundle.configMap"),
            "{text}"
        );
        let plain = Layer("x", Some(Box::new(Layer("connection refused", None))));
        assert_eq!(causes(&plain), "connection refused");
    }

    fn status(code: u16) -> GraphError {
        GraphError::Status {
            operation: "list deployments",
            status: code,
            detail: ODataDetail {
                code: "X".into(),
                message: "m".into(),
                ..Default::default()
            },
            retry_after: None,
        }
    }

    #[test]
    fn transient_versus_permanent() {
        for s in [429, 500, 503, 504] {
            assert!(status(s).is_transient(), "{s}");
        }
        for s in [400, 401, 403, 404] {
            assert!(!status(s).is_transient(), "{s}");
        }
        assert_eq!(status(403).category(), "GraphForbidden");
        assert_eq!(
            status(400).to_string(),
            "failed to list deployments: Graph answered 400 X: m"
        );
    }

    #[test]
    fn a_graph_error_names_both_request_ids_and_they_can_be_set_aside() {
        let mut detail = ODataDetail {
            code: "Forbidden".into(),
            message: "Missing role".into(),
            ..Default::default()
        };
        assert_eq!(detail.to_string(), "Forbidden: Missing role");
        detail.ids = Some(Box::new(RequestIds {
            request_id: Some("8c1b".into()),
            client_request_id: Some("f00d".into()),
        }));
        let text = GraphError::Status {
            operation: "create a deployment",
            status: 403,
            detail,
            retry_after: None,
        }
        .to_string();
        assert_eq!(
            text,
            "failed to create a deployment: Graph answered 403 Forbidden: Missing role [request-id: 8c1b, client-request-id: f00d]"
        );
        assert_eq!(
            without_request_ids(&format!("{text}; grant it")),
            "failed to create a deployment: Graph answered 403 Forbidden: Missing role; grant it"
        );
        // A message cut inside the ids loses them and what follows.
        assert_eq!(without_request_ids("a [request-id: 8c"), "a");
        assert_eq!(without_request_ids("no ids [x: y]"), "no ids [x: y]");
    }
}
