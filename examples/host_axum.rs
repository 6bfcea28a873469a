//! A small SaaS backend embedding InsightPulse Core the way a host does:
//! axum routes over `Repos` in the app state, an extractor that turns
//! `Authorization: Bearer ipk_…` into a `Context`, and every SDK error
//! mapped to an HTTP status through its stable `code()`.
//!
//! ```text
//! cargo run --example host_axum                      # in-memory backend, 127.0.0.1:3000
//! DATABASE_URL=postgres://… cargo run --example host_axum
//! curl -H "Authorization: Bearer ipk_…" localhost:3000/v1/projects
//! ```
//!
//! The extractor is a dozen lines over `AuthRepo::authenticate`, so it lives
//! here rather than in the SDK: hosts differ in where credentials come from
//! (a header, a cookie, a session) and in how they answer errors.

use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use insightpulse::projects::{NewProject, Project};
use insightpulse::{Context, IdempotencyKey, Name, Repos, RequestMeta, SecretString, Slug};
use serde::{Deserialize, Serialize};

/// What every handler can reach.
#[derive(Clone)]
struct AppState {
    repos: Repos,
}

impl FromRef<AppState> for Repos {
    fn from_ref(state: &AppState) -> Repos {
        state.repos.clone()
    }
}

/// An SDK error as an HTTP answer: the status from the error's code, the
/// code and the (loggable, value-free) message in the body. Backend
/// failures say nothing more than that.
struct ApiError(insightpulse::Error);

impl From<insightpulse::Error> for ApiError {
    fn from(e: insightpulse::Error) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.0.code() {
            "invalid_input" => StatusCode::UNPROCESSABLE_ENTITY,
            "not_found" => StatusCode::NOT_FOUND,
            "conflict" | "invalid_state" => StatusCode::CONFLICT,
            "permission_denied" => StatusCode::FORBIDDEN,
            "unauthenticated" => StatusCode::UNAUTHORIZED,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = if status.is_server_error() {
            eprintln!("backend failure: {}", self.0);
            "internal error".to_owned()
        } else {
            self.0.to_string()
        };
        let body = serde_json::json!({ "error": { "code": self.0.code(), "message": message } });
        (status, Json(body)).into_response()
    }
}

/// The request's metadata, for the audit trail and idempotent creates.
fn request_meta(headers: &HeaderMap) -> Result<RequestMeta, ApiError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mut meta = RequestMeta::default();
    if let Some(id) = text("x-request-id") {
        meta = meta.with_request_id(id);
    }
    if let Some(agent) = text(header::USER_AGENT.as_str()) {
        meta = meta.with_user_agent(agent);
    }
    if let Some(key) = text("idempotency-key") {
        meta = meta.with_idempotency_key(IdempotencyKey::parse(key)?);
    }
    Ok(meta)
}

/// The caller, authenticated by its API key: a `Context` acting with
/// exactly the key's tenant, scope and permissions.
struct Caller(Context);

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Repos: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let meta = request_meta(&parts.headers)?;
        // A missing or non-Bearer header is presented as an empty key: the
        // SDK rejects it as malformed, like any other bad key.
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let repos = Repos::from_ref(state);
        let ctx = repos
            .auth
            .authenticate(&SecretString::from(bearer.to_owned()), meta)
            .await?;
        Ok(Caller(ctx))
    }
}

#[derive(Serialize, Deserialize)]
struct ProjectOut {
    id: String,
    slug: String,
    name: String,
}

impl From<Project> for ProjectOut {
    fn from(p: Project) -> Self {
        Self {
            id: p.id.to_string(),
            slug: p.slug.to_string(),
            name: p.name.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct ProjectIn {
    slug: String,
    name: String,
}

async fn list_projects(
    State(repos): State<Repos>,
    Caller(ctx): Caller,
) -> Result<Json<Vec<ProjectOut>>, ApiError> {
    let projects = repos.projects.list_projects(&ctx, false).await?;
    Ok(Json(projects.into_iter().map(ProjectOut::from).collect()))
}

/// Creates a project; an `Idempotency-Key` makes a retried request return
/// the project the first one made.
async fn create_project(
    State(repos): State<Repos>,
    Caller(ctx): Caller,
    Json(input): Json<ProjectIn>,
) -> Result<(StatusCode, Json<ProjectOut>), ApiError> {
    let new = NewProject {
        slug: Slug::parse(&input.slug)?,
        name: Name::parse(&input.name)?,
        description: None,
    };
    let project = repos.projects.create_project(&ctx, new).await?;
    Ok((StatusCode::CREATED, Json(project.into())))
}

/// The host's routes over the SDK.
fn app(repos: Repos) -> Router {
    Router::new()
        .route("/v1/projects", get(list_projects).post(create_project))
        .with_state(AppState { repos })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let repos = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let pepper = std::env::var("INSIGHTPULSE_TOKEN_PEPPER")
                .map_err(|_| "set INSIGHTPULSE_TOKEN_PEPPER (32+ bytes) to run on PostgreSQL")?;
            let hasher = insightpulse::tenancy::tokens::TokenHasher::new(pepper)?;
            let backend = insightpulse::postgres::PgBackend::connect(&url, hasher).await?;
            backend.migrate().await?;
            backend.repos()
        }
        _ => insightpulse_testing::memory::MemoryBackend::new().repos(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(repos)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The host's own tests: the whole app in-process over the in-memory
    //! backend, a request at a time.

    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use insightpulse::tenancy::{ApiKeyScope, NewApiKey, NewTenant, SignUp};
    use insightpulse::{Email, ExposeSecret, PermissionCode, TimeZone};
    use insightpulse_testing::memory::MemoryBackend;
    use tower::ServiceExt;

    /// A signed-up tenant and the plaintext of an API key of it holding
    /// `permissions`.
    async fn tenant_with_key(
        repos: &Repos,
        slug: &str,
        permissions: Vec<PermissionCode>,
    ) -> String {
        let signed = repos
            .auth
            .sign_up(
                RequestMeta::default(),
                SignUp {
                    email: Email::parse(&format!("owner@{slug}.io")).unwrap(),
                    full_name: None,
                    password: SecretString::from("correct horse battery"),
                    tenant: NewTenant {
                        slug: Slug::parse(slug).unwrap(),
                        name: Name::parse(slug).unwrap(),
                        timezone: TimeZone::utc(),
                    },
                },
            )
            .await
            .unwrap();
        let key = NewApiKey {
            name: Name::parse("backend").unwrap(),
            scope: ApiKeyScope::Tenant,
            permissions,
            expires_at: None,
        };
        let issued = repos
            .api_keys
            .create_api_key(&signed.ctx, key)
            .await
            .unwrap();
        issued.secret.expose_secret().to_owned()
    }

    async fn call(
        app: &Router,
        method: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> (StatusCode, serde_json::Value) {
        let mut req = Request::builder().method(method).uri("/v1/projects");
        if let Some(key) = key {
            req = req.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    fn code(body: &serde_json::Value) -> &str {
        body["error"]["code"].as_str().unwrap_or_default()
    }

    #[tokio::test]
    async fn keys_authenticate_and_errors_map_to_statuses() {
        let repos = MemoryBackend::new().repos();
        let writer = tenant_with_key(
            &repos,
            "acme",
            vec![
                PermissionCode::PROJECT_CREATE,
                PermissionCode::DASHBOARD_READ,
            ],
        )
        .await;
        let reader =
            tenant_with_key(&repos, "umbrella", vec![PermissionCode::DASHBOARD_READ]).await;
        let app = app(repos);
        let web = serde_json::json!({ "slug": "web", "name": "Web" });

        // No key, a malformed key, a well-formed key with a wrong secret: 401.
        let forged = format!("{}{}", &writer[..21], "a".repeat(writer.len() - 21));
        for key in [None, Some("nope"), Some(forged.as_str())] {
            let (status, body) = call(&app, "GET", key, &[], None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
            assert_eq!(code(&body), "unauthenticated");
        }

        // The writer creates a project; a retry with the same key returns it.
        let retry = [("idempotency-key", "form-7")];
        let (status, first) = call(&app, "POST", Some(&writer), &retry, Some(web.clone())).await;
        assert_eq!(status, StatusCode::CREATED, "{first}");
        let (status, second) = call(&app, "POST", Some(&writer), &retry, Some(web.clone())).await;
        assert_eq!(status, StatusCode::CREATED, "{second}");
        assert_eq!(first["id"], second["id"]);
        // Without the key, the same slug again is a conflict.
        let (status, body) = call(&app, "POST", Some(&writer), &[], Some(web.clone())).await;
        assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "conflict"));
        assert!(!body["error"]["message"].as_str().unwrap().contains("web"));
        // Bad input is refused before anything is written.
        let bad = serde_json::json!({ "slug": "Not A Slug", "name": "x" });
        let (status, body) = call(&app, "POST", Some(&writer), &[], Some(bad)).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input")
        );

        let (status, list) = call(&app, "GET", Some(&writer), &[], None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list.as_array().map(Vec::len), Some(1));
        assert_eq!(list[0]["slug"], "web");

        // A key without project.create is refused; another tenant's key
        // sees none of acme's projects.
        let (status, body) = call(&app, "POST", Some(&reader), &[], Some(web)).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "permission_denied")
        );
        let (status, list) = call(&app, "GET", Some(&reader), &[], None).await;
        assert_eq!((status, list), (StatusCode::OK, serde_json::json!([])));
    }
}
