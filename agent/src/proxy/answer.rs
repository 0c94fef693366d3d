//! The proxy's failures as answers: why a request that was to be forwarded
//! got an answer from the agent instead (400, 408, 501, 502, 504).
//!
//! A browser reads no response without the CORS decision on it: a 502 or
//! 504 without `Access-Control-Allow-Origin` shows up as a CORS failure, so
//! a page could not tell "service down" from "origin refused". So each
//! failure is answered through [`crate::enforce::respond_forwarded`], the
//! constructor of every answer the agent makes itself to a request it was
//! forwarding, which writes the same decision an upstream answer would get:
//! the allowed-origin headers and `Vary`.

use super::ProxyBody;
use super::forward::RewriteError;
use crate::engine::ForwardHeaders;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};

/// Why a request that was to be forwarded got an answer from the agent
/// instead of the upstream.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The request cannot be mapped onto the upstream (e.g. `CONNECT`).
    #[error("{0}")]
    Unforwardable(#[from] RewriteError),
    /// Connecting, the TLS handshake or the exchange with the upstream failed.
    #[error("corsair-agent: the upstream did not answer")]
    Unreachable,
    /// The upstream answered `101 Switching Protocols` to a request that did
    /// not ask for an upgrade.
    #[error("corsair-agent: the upstream switched protocols without being asked")]
    UnaskedUpgrade,
    /// No connection to the upstream (name resolution, TCP and, for
    /// `https://`, the TLS handshake) within `--upstream-connect-timeout`.
    #[error("corsair-agent: timed out connecting to the upstream")]
    ConnectTimeout,
    /// No response headers from the upstream within `--upstream-timeout`.
    #[error("corsair-agent: the upstream did not answer in time")]
    UpstreamTimeout,
    /// The client sent no part of its request body for
    /// `--request-body-timeout`; the upstream's connection was dropped.
    #[error("corsair-agent: the request body stopped arriving")]
    RequestBodyTimeout,
    /// The client's request body broke off (the client closed its side
    /// before sending all it announced); the upstream's connection was
    /// dropped.
    #[error("corsair-agent: the request body ended early")]
    RequestBodyIncomplete,
    /// The request's `Transfer-Encoding` names a coding other than
    /// `chunked` (e.g. `gzip, chunked`): the agent re-frames the body for
    /// the upstream and would drop the coding, so it refuses (RFC 9112
    /// §6.1's 501) rather than forward altered bytes.
    #[error(
        "corsair-agent: the request's Transfer-Encoding is not supported; send chunked or a Content-Length"
    )]
    RequestTransferCoding,
    /// The upstream's answer named a transfer coding other than `chunked`
    /// (the agent never asks for one: `TE` does not cross it), which the
    /// agent could not pass on without handing the client coded bytes.
    #[error("corsair-agent: the upstream answered with an unsupported Transfer-Encoding")]
    UpstreamTransferCoding,
}

impl Failure {
    /// Machine-readable name, e.g. `upstream_timeout` (the `failure` label
    /// of `corsair_agent_proxy_failures`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Failure::Unforwardable(_) => "unforwardable",
            Failure::Unreachable => "unreachable",
            Failure::UnaskedUpgrade => "unasked_upgrade",
            Failure::ConnectTimeout => "connect_timeout",
            Failure::UpstreamTimeout => "upstream_timeout",
            Failure::RequestBodyTimeout => "request_body_timeout",
            Failure::RequestBodyIncomplete => "request_body_incomplete",
            Failure::RequestTransferCoding => "request_transfer_coding",
            Failure::UpstreamTransferCoding => "upstream_transfer_coding",
        }
    }

    /// Counts this answer in `reporter`'s metrics (none: not counted); each
    /// path calls it once per answer it writes.
    pub fn count(&self, reporter: Option<&crate::report::Reporter>) {
        if let Some(reporter) = reporter {
            reporter.proxy_failure(self.as_str(), self.status().as_u16());
        }
    }

    /// The status the client sees.
    pub fn status(&self) -> StatusCode {
        match self {
            Failure::Unforwardable(_) | Failure::RequestBodyIncomplete => StatusCode::BAD_REQUEST,
            Failure::Unreachable | Failure::UnaskedUpgrade | Failure::UpstreamTransferCoding => {
                StatusCode::BAD_GATEWAY
            }
            Failure::RequestTransferCoding => StatusCode::NOT_IMPLEMENTED,
            Failure::ConnectTimeout | Failure::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Failure::RequestBodyTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// Whether the upstream is to blame (logged as a warning) rather than the
    /// client (logged at debug level: nothing for an operator to fix).
    pub fn is_upstream(&self) -> bool {
        !matches!(
            self,
            Failure::Unforwardable(_)
                | Failure::RequestBodyTimeout
                | Failure::RequestBodyIncomplete
                | Failure::RequestTransferCoding
        )
    }

    /// The failure as a short `text/plain` answer (the message above) with
    /// the request's CORS decision (`cors`, what
    /// [`crate::engine::Decision::forward_headers`] kept); not cacheable,
    /// as it says nothing lasting about the resource.
    ///
    /// To a `HEAD` request (`head`) the answer has no content, only the
    /// `content-length` a `GET` would get, as the fast path writes it:
    /// HTTP/1.1 servers drop a HEAD answer's body themselves, but over
    /// HTTP/2 a body on a HEAD answer is a protocol error, and the client
    /// would see a reset stream instead of the status.
    pub fn respond(&self, cors: ForwardHeaders, head: bool) -> Response<ProxyBody> {
        let message = self.body();
        let length = HeaderValue::from(message.len());
        let body = if head {
            Empty::new().map_err(|never| match never {}).boxed()
        } else {
            Full::new(message).map_err(|never| match never {}).boxed()
        };
        let mut response = crate::enforce::respond_forwarded(cors, self.status(), body);
        self.describe(response.headers_mut());
        if head {
            response.headers_mut().insert(CONTENT_LENGTH, length);
        }
        response
    }

    /// The answer's body: the message and a newline.
    pub fn body(&self) -> Bytes {
        Bytes::from(format!("{self}\n"))
    }

    /// Adds the answer's own headers to `headers` (which hold the CORS
    /// decision's): `text/plain`, not cacheable.
    pub fn describe(&self, headers: &mut HeaderMap) {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}
