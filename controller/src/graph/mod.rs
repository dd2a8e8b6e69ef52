//! The Graph client: the operator's only door to the tenant.
//!
//! - [`auth`]: credentials and the token cache;
//! - [`endpoints`]: clouds and custom endpoints;
//! - [`transport`]: retries, `Retry-After`, rate limit, concurrency, paging, size limits;
//! - [`models`]: tolerant typed Graph objects;
//! - [`client`]: the operations the reconciler uses;
//! - [`error`]: one error type with `category()` and `is_transient()`;
//! - [`metrics`]: request, retry, throttle and latency metrics.

pub mod auth;
pub mod build;
pub mod client;
pub mod compliance;
pub mod endpoints;
pub mod error;
pub mod groups;
pub mod metrics;
pub mod models;
pub mod transport;

pub use auth::{Credential, CredentialKind, SecretString};
pub use client::{Audience, AudienceOf, DEFAULT_BATCH_SIZE, GraphClient, GraphConfig, TokenClaims};

/// The names of the service behaviours [`GraphClient::service_behaviours`] finds.
pub mod client_behaviours {
    pub use super::client::{AUDIENCE_PAGING, DEPLOYMENT_FILTER, DEVICE_SIGNALS};
}
pub use endpoints::{Cloud, Endpoints};
pub use error::GraphError;
pub use groups::GroupDevices;
pub use metrics::GraphMetrics;
pub use models::{AssetKind, AssetRef, AudienceUpdate, ContentRequest, SettingsRequest};
pub use transport::TransportConfig;
