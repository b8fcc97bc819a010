//! API Gateway HTTP API (payload format 2.0) requests to and from the backend-neutral
//! [`ApiRequest`] / [`ApiResponse`].

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::HeaderValue;
use aws_lambda_events::http::header::CONTENT_TYPE;
use base64::Engine;
use braid_handlers::{ApiRequest, ApiResponse};

/// The request as the API handlers take it; a body that is neither text nor base64 of
/// UTF-8 text is refused with 400.
pub fn request(event: &ApiGatewayV2httpRequest) -> Result<ApiRequest, ApiResponse> {
    let body = match (&event.body, event.is_base64_encoded) {
        (None, _) => None,
        (Some(b), false) => Some(b.clone()),
        (Some(b), true) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|_| ApiResponse::error(400, "invalid_request", "body is not base64"))?;
            Some(String::from_utf8(bytes).map_err(|_| {
                ApiResponse::error(400, "invalid_request", "body is not UTF-8 text")
            })?)
        }
    };
    Ok(ApiRequest {
        method: event.request_context.http.method.as_str().to_string(),
        path: event
            .raw_path
            .clone()
            .or_else(|| event.request_context.http.path.clone())
            .unwrap_or_default(),
        query: event
            .query_string_parameters
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        headers: event
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body,
        principal: principal(event),
        base_url: event
            .request_context
            .domain_name
            .as_ref()
            .map(|d| format!("https://{d}")),
    })
}

/// The IAM user or role ARN API Gateway authenticated the request with (routes with
/// `Authorizer: AWS_IAM`); `None` on open routes (webhooks, approval links).
fn principal(event: &ApiGatewayV2httpRequest) -> Option<String> {
    event
        .request_context
        .authorizer
        .as_ref()?
        .iam
        .as_ref()?
        .user_arn
        .clone()
}

/// The API Gateway response for `r`: its status, content type and body.
pub fn response(r: ApiResponse) -> ApiGatewayV2httpResponse {
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(r.status);
    out.headers
        .insert(CONTENT_TYPE, HeaderValue::from_static(r.content_type));
    out.body = Some(Body::Text(r.text()));
    out.is_base64_encoded = false;
    out
}
