//! The reconcile error. `category()` is the metric label and the Event reason; transient versus
//! permanent is decided here, in one place.

use std::time::Duration;

use super::reasons::{Category, Reason};
use crate::graph::GraphError;

/// Reconcile errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to {action}: {source}")]
    Kube {
        action: &'static str,
        #[source]
        source: kube::Error,
    },

    #[error(transparent)]
    Graph(#[from] GraphError),

    /// A request body could not be written (a bug, never sent half-written).
    #[error("failed to encode {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    #[error("failed to run the finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),

    /// The pass panicked (a bug): reported for its object alone and retried with backoff.
    #[error("internal error: the pass failed at {location}")]
    Internal { location: String },

    /// Cleanup must wait (the finalizer stays until it can finish).
    #[error("{message}")]
    Waiting {
        reason: Reason,
        message: String,
        retry: Duration,
    },
}

impl Error {
    pub fn kube(action: &'static str) -> impl FnOnce(kube::Error) -> Error {
        move |source| Error::Kube { action, source }
    }

    pub fn encode(what: &'static str) -> impl FnOnce(serde_json::Error) -> Error {
        move |source| Error::Encode { what, source }
    }

    /// The error inside a finalizer error, when it is one of ours.
    fn inner(&self) -> Option<&Error> {
        match self {
            Error::Finalizer(f) => match f.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => Some(e),
                _ => None,
            },
            _ => None,
        }
    }

    pub fn category(&self) -> Category {
        if let Some(e) = self.inner() {
            return e.category();
        }
        match self {
            Error::Kube {
                source: kube::Error::Api(s),
                ..
            } if s.code == 409 => Category::KubernetesConflict,
            Error::Kube { .. } => Category::KubernetesApi,
            Error::Graph(g) => Category::Graph(g.category()),
            Error::Encode { .. } => Category::EncodeFailed,
            Error::Finalizer(f) => match f.as_ref() {
                kube::runtime::finalizer::Error::AddFinalizer(_)
                | kube::runtime::finalizer::Error::RemoveFinalizer(_) => Category::KubernetesApi,
                _ => Category::Finalizer,
            },
            Error::Waiting { reason, .. } => Category::Waiting(*reason),
            Error::Internal { .. } => Category::Internal,
        }
    }

    /// Whether retrying later can succeed without a change to the spec or the credential.
    pub fn is_transient(&self) -> bool {
        if let Some(e) = self.inner() {
            return e.is_transient();
        }
        match self {
            // A panic may depend on what Graph or the cluster answered: tried again with backoff.
            Error::Kube { .. } | Error::Waiting { .. } | Error::Finalizer(_) | Error::Internal { .. } => true,
            Error::Graph(g) => g.is_transient(),
            Error::Encode { .. } => false,
        }
    }

    /// How long the service asked to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        if let Some(e) = self.inner() {
            return e.retry_after();
        }
        match self {
            Error::Graph(g) => g.retry_after(),
            Error::Waiting { retry, .. } => Some(*retry),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_and_transience() {
        let conflict = Error::Kube {
            action: "record status",
            source: kube::Error::Api(
                kube::core::Status::failure("changed", "Conflict")
                    .with_code(409)
                    .boxed(),
            ),
        };
        assert_eq!(conflict.category(), "KubernetesConflict");
        assert!(conflict.is_transient());
        let encode = Error::Encode {
            what: "an audience batch",
            source: serde_json::from_str::<u8>("x").unwrap_err(),
        };
        assert_eq!(encode.category(), "EncodeFailed");
        assert!(
            !encode.is_transient(),
            "a body that cannot be written will not be written later"
        );
        let wrapped = Error::Finalizer(Box::new(kube::runtime::finalizer::Error::CleanupFailed(
            Error::Waiting {
                reason: Reason::IN_USE,
                message: "m".into(),
                retry: Duration::from_secs(5),
            },
        )));
        assert_eq!(wrapped.category(), "InUse");
        assert_eq!(wrapped.retry_after(), Some(Duration::from_secs(5)));
    }
}
