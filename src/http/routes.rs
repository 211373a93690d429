//! Declaring who may call a route, once: [`Admit::admit`] installs the role check on the route and
//! writes the same roles into its OpenAPI operation (`x-ia-rct-roles`, plus the bearer security
//! requirement), so the document, the code and the access tests cannot disagree.

use axum::extract::Request;
use axum::middleware::{Next, from_fn};
use serde_json::json;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::SecurityRequirement;
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
    /// Admits only callers with one of `roles` (others get 403) and documents it.
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
        for item in paths.paths.values_mut() {
            for operation in operations_mut(item) {
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

/// Every operation of a path item.
pub fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}
