//! The OpenAPI 3.1 description of the API, generated with utoipa's
//! builders from the route table, so the spec lists exactly the routes the
//! router serves, with their parameters, access rules and answers.
//! Response bodies are described as JSON objects; their fields are in
//! docs/admin-api.md.

use axum::http::Method;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, Content, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder, Paths, Ref,
    Required, ResponseBuilder, Type,
};

use super::error::ApiError;
use super::routes::{route_table, Access, BodyKind, RouteInfo};

const BEARER: &str = "bearer";

/// The spec of this build's API.
pub fn spec() -> OpenApi {
    let mut paths = Paths::new();
    for route in route_table() {
        let Some(method) = http_method(&route.method) else {
            continue;
        };
        paths.add_path_operation(spec_path(route.path), vec![method], operation(&route));
    }
    let bearer = SecurityScheme::Http(
        HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "a token from `hypha token create`, or a static token from the node's config",
            ))
            .build(),
    );
    let error = ObjectBuilder::new()
        .property(
            "error",
            ObjectBuilder::new()
                .property("code", ObjectBuilder::new().schema_type(Type::String))
                .property("message", ObjectBuilder::new().schema_type(Type::String))
                .required("code")
                .required("message"),
        )
        .required("error")
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Hypha admin and data API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Files, jobs, membership and supervision of one Hypha node.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(
            ComponentsBuilder::new()
                .security_scheme(BEARER, bearer)
                .schema("Error", error)
                .build(),
        ))
        .build()
}

/// `GET /openapi.json`.
pub(super) async fn serve() -> Response {
    match spec().to_json() {
        Ok(json) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            json,
        )
            .into_response(),
        Err(err) => ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "spec_error",
            err.to_string(),
        )
        .into_response(),
    }
}

fn http_method(method: &Method) -> Option<HttpMethod> {
    Some(match *method {
        Method::GET => HttpMethod::Get,
        Method::PUT => HttpMethod::Put,
        Method::POST => HttpMethod::Post,
        Method::DELETE => HttpMethod::Delete,
        Method::HEAD => HttpMethod::Head,
        Method::PATCH => HttpMethod::Patch,
        _ => return None,
    })
}

/// `/v1/files/{*name}` → `/v1/files/{name}` (OpenAPI has no catch-all; a
/// name's slashes are sent percent-encoded or as they are).
fn spec_path(path: &str) -> String {
    path.replace("{*", "{")
}

fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter_map(|seg| {
        seg.strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .map(|s| s.trim_start_matches('*'))
    })
}

fn string_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn operation(route: &RouteInfo) -> utoipa::openapi::path::Operation {
    let mut op = OperationBuilder::new()
        .summary(Some(route.summary))
        .operation_id(Some(operation_id(route)));
    for name in path_params(route.path) {
        op = op.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(string_schema().min_length(Some(1)))),
        );
    }
    for (name, description) in route.query {
        op = op.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(*description))
                .schema(Some(string_schema())),
        );
    }
    if let Some((content_type, content)) = body_content(route.body) {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(content_type, content)
                .build(),
        ));
    }
    op = op.response(
        route.ok_status.to_string(),
        ResponseBuilder::new().description("success").build(),
    );
    for (status, why) in error_statuses(route) {
        op = op.response(
            status.to_string(),
            ResponseBuilder::new()
                .description(why)
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name("Error"))),
                )
                .build(),
        );
    }
    match route.access {
        Access::Open => op.build(),
        Access::AnyToken | Access::Needs(_) => op
            .security(SecurityRequirement::new(BEARER, Vec::<String>::new()))
            .description(Some(access_text(route.access)))
            .build(),
    }
}

fn operation_id(route: &RouteInfo) -> String {
    let path: String = route
        .path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!(
        "{}{}",
        route.method.as_str().to_ascii_lowercase(),
        path.trim_end_matches('_')
    )
}

fn access_text(access: Access) -> String {
    match access {
        Access::Open => "open".to_owned(),
        Access::AnyToken => "any valid token".to_owned(),
        Access::Needs(role) => format!("needs the {} role", role.as_str()),
    }
}

fn body_content(body: BodyKind) -> Option<(&'static str, Content)> {
    let bytes = || {
        ObjectBuilder::new().schema_type(Type::String).format(Some(
            utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Binary),
        ))
    };
    match body {
        BodyKind::None => None,
        BodyKind::Json => Some((
            "application/json",
            Content::new(Some(ObjectBuilder::new().schema_type(Type::Object))),
        )),
        BodyKind::Bytes => Some(("application/octet-stream", Content::new(Some(bytes())))),
        BodyKind::Text => Some(("text/plain", Content::new(Some(string_schema())))),
    }
}

fn error_statuses(route: &RouteInfo) -> Vec<(u16, &'static str)> {
    let mut out = vec![(400, "bad request"), (404, "not found")];
    if route.access != Access::Open {
        out.extend([
            (401, "missing, invalid or expired token"),
            (429, "rate limit of this token exceeded"),
        ]);
    }
    if matches!(route.access, Access::Needs(r) if r > crate::auth::Role::Read) {
        out.push((403, "the token's role is too low"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_spec_once() {
        let spec = serde_json::to_value(spec()).unwrap();
        let mut operations = 0;
        for route in route_table() {
            let path = spec_path(route.path);
            let method = route.method.as_str().to_ascii_lowercase();
            let op = &spec["paths"][&path][&method];
            assert!(op.is_object(), "{method} {path} missing from the spec");
            operations += 1;
        }
        let in_spec: usize = spec["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum();
        assert_eq!(
            in_spec, operations,
            "the spec has operations the router lacks"
        );
    }

    #[test]
    fn path_parameters_are_found() {
        assert_eq!(
            path_params("/v1/files/{*name}").collect::<Vec<_>>(),
            ["name"]
        );
        assert_eq!(
            spec_path("/v1/chaos/actors/{*path}"),
            "/v1/chaos/actors/{path}"
        );
    }
}
