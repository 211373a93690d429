//! Declaring who may call a route, once: [`Admit::admit`] installs the role check on the route and
//! writes the same roles into its OpenAPI operation (`x-ia-rct-roles`, the bearer security
//! requirement, and the 401 and 403 responses the middleware gives), so the document, the code and
//! the access tests cannot disagree.

use axum::extract::Request;
use axum::middleware::{Next, from_fn};
use serde_json::{Value, json};
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa_axum::router::UtoipaMethodRouter;

use super::middleware::{mask_outside_directorate, require_role};
use crate::domain::Role;

/// The OpenAPI extension that lists the roles a route admits.
pub const ROLES_EXTENSION: &str = "x-ia-rct-roles";

/// The OpenAPI extension (`true`) on a route whose responses outside the directorate pass through
/// the disclosure rule ([`Admit::masked`]).
pub const MASKED_EXTENSION: &str = "x-ia-rct-masked";

/// Role declarations for routes built with `utoipa_axum::routes!`.
pub trait Admit {
    /// Admits only callers with one of `roles` (others get 403) and documents it: the roles, the
    /// bearer requirement, 401 (no, a malformed, an unknown or a revoked token) and, unless every
    /// role is admitted, 403 (a role outside `roles`).
    #[must_use]
    fn admit(self, roles: &'static [Role]) -> Self;

    /// Runs every response of the route through the disclosure rule for its caller
    /// ([`crate::disclosure::mask_for`]: counts of 1 to 4 become `"<5"` outside the directorate)
    /// and documents it (`x-ia-rct-masked`). Every route that shows aggregates over firms to a
    /// fylke or a researcher must use it; `tests/api/masking.rs` checks that each one does.
    #[must_use]
    fn masked(self) -> Self;
}

impl<S> Admit for UtoipaMethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    fn admit(self, roles: &'static [Role]) -> Self {
        let (schemas, mut paths, router) = self;
        let names: Vec<&str> = roles.iter().map(Role::as_str).collect();
        let refused = Role::ALL.iter().find(|r| !roles.contains(r));
        for (path, item) in &mut paths.paths {
            for (method, operation) in methods_mut(item) {
                operation
                    .responses
                    .responses
                    .entry("401".to_owned())
                    .or_insert_with(|| RefOr::T(unauthenticated()));
                if let Some(refused) = refused {
                    let response = forbidden(*refused, method, path, &names);
                    operation
                        .responses
                        .responses
                        .entry("403".to_owned())
                        .and_modify(|existing| {
                            if let RefOr::T(r) = existing {
                                r.description =
                                    format!("{} Also: {}", response.description, r.description);
                            }
                        })
                        .or_insert_with(|| RefOr::T(response.clone()));
                }
                let mut extensions = Extensions::default();
                extensions.insert(ROLES_EXTENSION.to_owned(), json!(names));
                operation
                    .extensions
                    .get_or_insert_with(Extensions::default)
                    .merge(extensions);
                operation.security = Some(vec![SecurityRequirement::new(
                    "bearer",
                    Vec::<String>::new(),
                )]);
                let note = format!("Roles: {}.", names.join(", "));
                operation.description = Some(match operation.description.take() {
                    Some(d) => format!("{d}\n\n{note}"),
                    None => note,
                });
            }
        }
        let router = router.route_layer(from_fn(move |req: Request, next: Next| {
            require_role(roles, req, next)
        }));
        (schemas, paths, router)
    }

    fn masked(self) -> Self {
        let (schemas, mut paths, router) = self;
        for item in paths.paths.values_mut() {
            for operation in operations_mut(item) {
                let mut extensions = Extensions::default();
                extensions.insert(MASKED_EXTENSION.to_owned(), json!(true));
                operation
                    .extensions
                    .get_or_insert_with(Extensions::default)
                    .merge(extensions);
                let note = "Outside the directorate every count of 1 to 4 firms, persons or \
                            clusters, in every field and message, is shown as \"<5\" \
                            (docs/data-formats.md §2).";
                operation.description = Some(match operation.description.take() {
                    Some(d) => format!("{d}\n\n{note}"),
                    None => note.to_owned(),
                });
            }
        }
        let router = router.route_layer(from_fn(mask_outside_directorate));
        (schemas, paths, router)
    }
}

/// An error response in the envelope, with an example of it.
fn error_response(description: &str, code: &str, message: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                .example(Some(error_example(code, message)))
                .build(),
        )
        .build()
}

/// The error envelope with `code` and `message` and no details, as the service sends it.
pub fn error_example(code: &str, message: &str) -> Value {
    json!({ "error": { "code": code, "message": message, "details": {} } })
}

/// 401, as [`super::middleware::authenticate_and_audit`] sends it.
fn unauthenticated() -> Response {
    error_response(
        "No bearer token, a malformed one, or one that is unknown or revoked (audited as denied)",
        "unauthenticated",
        "this route needs a bearer token: send `Authorization: Bearer iarct_…` (a direktorat \
         creates tokens with `ia-rct token create`)",
    )
}

/// 403, as [`super::middleware::require_role`] sends it to a `refused` caller.
fn forbidden(refused: Role, method: &str, path: &str, names: &[&str]) -> Response {
    error_response(
        &format!(
            "The token's role is not admitted (only {}; audited as denied).",
            names.join(", ")
        ),
        "forbidden",
        &format!(
            "role {refused} may not call {} {path}; it is open to: {}",
            method.to_ascii_uppercase(),
            names.join(", ")
        ),
    )
}

/// Every operation of a path item.
pub fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    methods_mut(item).map(|(_, op)| op)
}

/// Every operation of a path item with its method (lower case, as in the document).
fn methods_mut(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("options", &mut item.options),
        ("head", &mut item.head),
        ("patch", &mut item.patch),
        ("trace", &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.as_mut().map(|op| (m, op)))
}
