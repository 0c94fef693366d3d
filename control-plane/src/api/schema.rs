//! Schemas the OpenAPI document needs beyond what the types derive:
//! [`CreateService`] and [`UpdateService`] (both views of the one body type
//! [`ServiceBody`], whose `name` is required on create and absent on update)
//! [`HttpToken`] and [`ServiceName`] (string shapes used in lists), and
//! [`AnyBlockedPage`] (`anyOf` where the derive would say `oneOf`).

use super::services::ServiceBody;
use crate::store::blocked::{BlockedRow, GroupedRow, Page};
use std::borrow::Cow;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AnyOfBuilder, Object, ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

/// RFC 9110 `token` (`tchar`s): a method or header name; `*` is one too.
pub const HTTP_TOKEN_PATTERN: &str = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";

/// A method or header name (an RFC 9110 token), or `*`.
pub struct HttpToken;

impl PartialSchema for HttpToken {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(HTTP_TOKEN_PATTERN))
            .description(Some(
                "A method or header name (an HTTP token), or `*` for any; \
                 names browsers refuse (e.g. CONNECT, Cookie) are refused with 422",
            ))
            .into()
    }
}

impl ToSchema for HttpToken {}

/// The pattern of a service name (the database checks the same).
pub const SERVICE_NAME_PATTERN: &str = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$";

/// A service name: 1-63 lowercase letters, digits and `-`, not starting or
/// ending with `-`.
pub struct ServiceName;

impl PartialSchema for ServiceName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(SERVICE_NAME_PATTERN))
            .examples(["payments-api"])
            .into()
    }
}

impl ToSchema for ServiceName {}

/// `ServiceBody`'s derived object schema.
fn service_body() -> Object {
    match ServiceBody::schema() {
        RefOr::T(Schema::Object(object)) => object,
        // The derive makes a named struct an object schema; anything else
        // would be a change of the derive that the tests would show.
        _ => Object::new(),
    }
}

/// Body of `POST /services`: [`ServiceBody`] with `name` required.
pub struct CreateService;

impl PartialSchema for CreateService {
    fn schema() -> RefOr<Schema> {
        let mut object = service_body();
        if let Some(RefOr::T(Schema::Object(name))) = object.properties.get_mut("name") {
            // Required and not nullable: `null` is refused like a missing name.
            name.schema_type = Type::String.into();
        }
        object.required.retain(|r| r != "name");
        object.required.push("name".to_owned());
        object.description =
            Some("A new service: its name, and settings (missing ones take their defaults)".into());
        RefOr::T(Schema::Object(object))
    }
}

impl ToSchema for CreateService {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <ServiceBody as ToSchema>::schemas(schemas);
    }
}

/// Body of `PATCH /services/{name}`: [`ServiceBody`] without `name` (a
/// service cannot be renamed; the API accepts only its own name there).
pub struct UpdateService;

impl PartialSchema for UpdateService {
    fn schema() -> RefOr<Schema> {
        let mut object = service_body();
        object.properties.remove("name");
        object.required.retain(|r| r != "name");
        object.description = Some("Changes to a service; missing fields stay as they are".into());
        RefOr::T(Schema::Object(object))
    }
}

impl ToSchema for UpdateService {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <ServiceBody as ToSchema>::schemas(schemas);
    }
}

/// `GET /blocked`'s JSON body: a page of rows, or of groups
/// ([`crate::store::blocked::BlockedPage`], an untagged enum). `anyOf`, not
/// the derive's `oneOf`: an empty page fits both shapes.
pub struct AnyBlockedPage;

impl PartialSchema for AnyBlockedPage {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(<Page<BlockedRow> as PartialSchema>::schema())
            .item(<Page<GroupedRow> as PartialSchema>::schema())
            .description(Some(
                "Rows (no `group_by`) or groups, and the cursor of the next page",
            ))
            .into()
    }
}

impl ToSchema for AnyBlockedPage {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("BlockedPage")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((BlockedRow::name().into_owned(), BlockedRow::schema()));
        schemas.push((GroupedRow::name().into_owned(), GroupedRow::schema()));
        <BlockedRow as ToSchema>::schemas(schemas);
        <GroupedRow as ToSchema>::schemas(schemas);
    }
}
