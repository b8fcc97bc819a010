//! The HTTP API on a local port: every request becomes an [`ApiRequest`] and is
//! answered by [`Handlers::api`], the same routes and answers as the deployed stack's
//! API (SPEC §4).
//!
//! `GET /metrics` answers the Prometheus text exposition of the runs this process
//! drove (see `braid_local::metrics`).
//!
//! Management routes (everything but `/hooks/`, `/callbacks/` and `/approvals/`) are
//! signed with AWS credentials on AWS; here they answer only to the loopback
//! interface, which is all there is with the default `--listen 127.0.0.1:…`. Hooks,
//! callbacks and approval links, authenticated by their signature or token, answer to
//! anyone who can reach the port.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use braid_handlers::{ApiRequest, ApiResponse, Handlers};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The largest request body taken: what the deployed stack takes (a Lambda function
/// behind API Gateway receives at most 6 MB), so what works here works there.
pub const MAX_BODY: usize = 6 * 1024 * 1024;

/// Serves the API on `listener` until `stop` resolves, then lets requests in flight
/// finish.
pub async fn serve(
    listener: TcpListener,
    handlers: Arc<Handlers>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .fallback(answer)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(handlers);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .await
}

async fn answer(
    State(handlers): State<Arc<Handlers>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        // Over the limit (or cut short): the API's JSON error, not the framework's text.
        Err(e) => {
            return response(ApiResponse::error(
                e.status().as_u16(),
                "invalid_request",
                format!("request body: {e} (at most {MAX_BODY} bytes)"),
            ));
        }
    };
    let reply = match request(&method, &uri, &headers, body) {
        Err(refused) => refused,
        Ok(req) if is_management(&req.path) && !peer.ip().to_canonical().is_loopback() => {
            ApiResponse::error(
                403,
                "forbidden",
                "braid dev answers management routes on the loopback interface only",
            )
        }
        Ok(req) if req.method == "GET" && req.path == "/metrics" => {
            return metrics(&handlers);
        }
        Ok(req) => handlers.api(&req).await,
    };
    if uri.path().starts_with("/hooks/") && reply.status >= 400 {
        eprintln!(
            "{method} {}: {} {}",
            uri.path(),
            reply.status,
            reply.body["message"].as_str().unwrap_or_default()
        );
    }
    response(reply)
}

/// `GET /metrics`: the Prometheus text exposition of the runs this process drove.
fn metrics(handlers: &Handlers) -> Response {
    match handlers.ports().metrics.exposition() {
        Some(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            text,
        )
            .into_response(),
        None => response(ApiResponse::error(
            404,
            "not_found",
            "this backend sends its metrics on (CloudWatch on AWS); the embedded backend serves them here",
        )),
    }
}

/// Who calls a management route: nobody is authenticated here, so the body's `by`
/// when it names one (left for the handlers to take), else the OS user.
fn principal(body: Option<&str>) -> Option<String> {
    let names_by = body
        .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        .is_some_and(|v| v.get("by").is_some());
    (!names_by).then(crate::cmd::os_user)
}

/// The request as the handlers take it; a body that is not UTF-8 text is refused
/// with 400, as on AWS.
fn request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<ApiRequest, ApiResponse> {
    let body =
        if body.is_empty() {
            None
        } else {
            Some(String::from_utf8(body.to_vec()).map_err(|_| {
                ApiResponse::error(400, "invalid_request", "body is not UTF-8 text")
            })?)
        };
    Ok(ApiRequest {
        method: method.as_str().to_string(),
        path: uri.path().to_string(),
        query: query(uri.query().unwrap_or("")),
        principal: principal(body.as_deref()),
        // The handlers know the address they serve on.
        base_url: None,
        // A header value that is not text is left out, as API Gateway does.
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body,
    })
}

/// The query string decoded; a repeated name gets its values joined with commas, as
/// API Gateway gives them.
fn query(raw: &str) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = HashMap::new();
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        out.entry(k.into_owned())
            .and_modify(|all| {
                all.push(',');
                all.push_str(&v);
            })
            .or_insert_with(|| v.into_owned());
    }
    out
}

/// Routes that need the caller's credentials on AWS.
fn is_management(path: &str) -> bool {
    !["/hooks/", "/callbacks/", "/approvals/"]
        .iter()
        .any(|open| path.starts_with(open))
}

fn response(r: ApiResponse) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(r.content_type),
        )],
        r.text(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_method_path_query_headers_and_text_body() {
        let uri: Uri = "/runs?workflow=a%20b&status=running&x=1&x=2"
            .parse()
            .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("Braid-Signature", HeaderValue::from_static("t=1,v1=ab"));
        let req = request(&Method::GET, &uri, &headers, Bytes::from_static(b"{}")).unwrap();
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/runs");
        assert_eq!(req.query["workflow"], "a b");
        assert_eq!(req.query["x"], "1,2");
        assert_eq!(
            req.headers,
            [("braid-signature".to_string(), "t=1,v1=ab".to_string())]
        );
        assert_eq!(req.body.as_deref(), Some("{}"));
        let empty = request(&Method::GET, &uri, &headers, Bytes::new()).unwrap();
        assert_eq!(empty.body, None);
    }

    #[test]
    fn a_body_that_is_not_utf8_is_refused_with_400() {
        let uri: Uri = "/hooks/x".parse().unwrap();
        let refused = request(
            &Method::POST,
            &uri,
            &HeaderMap::new(),
            Bytes::from_static(&[0xff, 0xfe]),
        )
        .unwrap_err();
        assert_eq!(refused.status, 400);
    }

    #[test]
    fn the_caller_is_the_os_user_unless_the_body_names_one() {
        assert_eq!(principal(Some(r#"{"by": "ana", "comment": "ok"}"#)), None);
        assert_eq!(principal(None), Some(crate::cmd::os_user()));
        assert_eq!(principal(Some("not json")), Some(crate::cmd::os_user()));
    }

    #[test]
    fn hooks_and_callbacks_are_not_management_routes() {
        assert!(!is_management("/hooks/orders"));
        assert!(!is_management("/callbacks/tok"));
        assert!(!is_management("/approvals/tok"));
        assert!(is_management("/runs"));
        assert!(is_management("/runs/abc/cancel"));
    }
}
