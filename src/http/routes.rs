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

use super::middleware::require_role;
use crate::domain::Role;

/// The OpenAPI extension that lists the roles a route admits.
pub const ROLES_EXTENSION: &str = "x-ia-rct-roles";

/// Role declarations for routes built with `utoipa_axum::routes!`.
pub trait Admit {
    /// Admits only callers with one of `roles` (others get 403) and documents it.
    #[must_use]
    fn admit(self, roles: &'static [Role]) -> Self;
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
