//! `GET /openapi.json`: the OpenAPI 3.1 document of this API, derived from
//! the code rather than written beside it.
//!
//! - Operations come from the handlers' `#[utoipa::path]` annotations,
//!   collected by `utoipa_axum` as [`super::routes`] registers each handler:
//!   a route cannot exist without its entry, nor an entry without its route.
//! - Schemas come from the request and response types (`utoipa::ToSchema`),
//!   with the constraints the API enforces (lengths, patterns, ranges, enums).
//! - The statuses every operation shares through its extractors are added
//!   here by [`standard_responses`], so none is forgotten: 401 and 403 for
//!   authenticated operations (`RequireRole`), 400 for path and query
//!   parameters (`Path`, `Query`), 400, 413, 415 and 422 for JSON bodies (`Json`),
//!   and the `{"error": ...}` body on every 4xx.

use super::AppState;
use super::error::Body as ErrorResponse;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, RefOr};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The document's fixed parts; paths and schemas are added by the routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Corsair control plane API",
        description = "Centrally managed CORS policies. Authenticate with \
            `Authorization: Bearer <token>` (from POST /login, or an API token). \
            Request bodies must be sent as `Content-Type: application/json` \
            (otherwise 415); a body that is not JSON is 400, JSON of the wrong \
            shape 422. Errors are `{\"error\": {\"code\", \"message\", \"details\"?}}`."
    ),
    servers((url = "/api/v1")),
    security(("bearer" = [])),
    tags(
        (name = "auth", description = "Signing in"),
        (name = "services", description = "Services and their policy settings"),
        (name = "origins", description = "Origin requests and their approval"),
        (name = "agents", description = "Agent tokens and connected agents"),
        (name = "observe", description = "Audit log, blocked requests, simulation"),
    )
)]
pub struct ApiDoc;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(serve))
}

/// The whole document: every route's entry, the schemas they use, the
/// bearer scheme and the shared error responses.
pub fn document() -> Document {
    let mut doc = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(super::routes())
        .into_openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    let mut schemas = Vec::new();
    <ErrorResponse<'_> as ToSchema>::schemas(&mut schemas);
    components.schemas.extend(schemas);
    components.schemas.insert(
        <ErrorResponse<'_> as ToSchema>::name().into_owned(),
        <ErrorResponse<'_> as utoipa::PartialSchema>::schema(),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in [
            ("get", &mut item.get),
            ("post", &mut item.post),
            ("put", &mut item.put),
            ("patch", &mut item.patch),
            ("delete", &mut item.delete),
        ] {
            if let Some(op) = op {
                op.operation_id = Some(operation_id(method, path));
                standard_responses(op);
            }
        }
    }
    doc
}

/// A unique operation id from the method and path, e.g.
/// `post_origins_id_approve` (the handlers' own names repeat: `list`).
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_owned();
    for part in path
        .split(['/', '{', '}', '.', '-'])
        .filter(|p| !p.is_empty())
    {
        id.push('_');
        id.push_str(part);
    }
    id
}

/// Whether `op` needs a token: it names no security of its own (the
/// document's bearer applies), or one that is not the empty "anonymous" one.
fn authenticated(op: &Operation) -> bool {
    op.security.as_ref().is_none_or(|reqs| {
        reqs.iter().any(|r| {
            serde_json::to_value(r).is_ok_and(|v| v.as_object().is_none_or(|m| !m.is_empty()))
        })
    })
}

/// Adds the statuses `op` can answer through its extractors, and the error
/// body to every 4xx that has no content of its own.
fn standard_responses(op: &mut Operation) {
    let has_params = op.parameters.as_ref().is_some_and(|ps| {
        ps.iter().any(|p| match p {
            RefOr::T(p) => matches!(p.parameter_in, ParameterIn::Path | ParameterIn::Query),
            RefOr::Ref(_) => true,
        })
    });
    let authenticated = authenticated(op);
    let has_body = op.request_body.is_some();
    let mut add = |status: &str, description: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| ResponseBuilder::new().description(description).into());
    };
    if authenticated {
        add("401", "Missing, invalid or expired token");
        add(
            "403",
            "The token's role is too low for this operation (or a rule such as four eyes forbids it)",
        );
    }
    if has_params || has_body {
        add(
            "400",
            "Malformed request: a path or query parameter of the wrong type, or a body that is not JSON",
        );
    }
    if has_body {
        add(
            "413",
            "The body is larger than axum's default limit (2 MiB)",
        );
        add(
            "415",
            "The body was not sent as `Content-Type: application/json`",
        );
        add("422", "The JSON body does not have the documented shape");
    }
    let error = Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
        <ErrorResponse<'_> as ToSchema>::name(),
    ))));
    for (status, response) in op.responses.responses.iter_mut() {
        if let RefOr::T(response) = response
            && status.starts_with('4')
            && response.content.is_empty()
        {
            response
                .content
                .insert("application/json".to_owned(), RefOr::T(error.clone()));
        }
    }
}

/// The document as served, rendered once.
fn rendered() -> &'static str {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        // Serialising plain data cannot fail; an empty object is still JSON.
        document().to_json().unwrap_or_else(|_| "{}".to_owned())
    })
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "observe",
    security(()),
    responses((status = 200, description = "This OpenAPI 3.1 document", body = serde_json::Value)),
)]
async fn serve() -> impl axum::response::IntoResponse {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        rendered(),
    )
}
