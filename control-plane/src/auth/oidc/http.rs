//! The HTTP client under `openidconnect` (discovery, JWKS, token endpoint):
//! the workspace's reqwest 0.13 (rustls on aws-lc-rs) behind the crate's
//! [`AsyncHttpClient`] trait. Its own bundled client is reqwest 0.12, a
//! second copy with ring; this adapter only moves requests and responses
//! between the two `http` shapes, the protocol stays the crate's.

use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Per-request limit for calls to the provider, connect to last byte.
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest provider response read, in bytes (discovery documents and key
/// sets are a few KiB).
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Why a call to the provider failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Connecting, TLS, timeout or reading the body.
    #[error(transparent)]
    Reqwest(#[from] reqwest::Error),
    /// The request or response could not be converted.
    #[error(transparent)]
    Http(#[from] http::Error),
    /// The response body is larger than [`MAX_RESPONSE_BYTES`].
    #[error("the provider's response is larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
}

/// A reqwest client for the provider: no redirects (the crate's advice
/// against SSRF: discovery must not be bounced to another host), a
/// [`PROVIDER_TIMEOUT`], the system's roots over rustls.
#[derive(Debug, Clone)]
pub struct ProviderHttp {
    client: reqwest::Client,
}

impl ProviderHttp {
    /// Builds the client. Errors when the TLS backend cannot start.
    pub fn new() -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .user_agent(concat!("corsair-control-plane/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client })
    }

    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let mut response = self.client.execute(request).await?;
        let mut builder = http::Response::builder()
            .status(response.status())
            .version(response.version());
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(HttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(builder.body(body)?)
    }
}

impl<'c> AsyncHttpClient<'c> for ProviderHttp {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}
