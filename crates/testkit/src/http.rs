//! A tiny HTTP/1.1 GET client over hyper. For exact answers without client-side retries,
//! see `kube_sim::testing::tcp_request`.

use http_body_util::BodyExt;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// GET returning status and body text.
pub async fn get_text(url: &str) -> Result<(u16, String), String> {
    let client: HyperClient<_, http_body_util::Empty<bytes::Bytes>> =
        HyperClient::builder(TokioExecutor::new()).build_http();
    let resp = client
        .get(url.parse().map_err(|e| format!("{e}"))?)
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// GET returning status and JSON body (`Null` when empty or not JSON).
pub async fn get(url: &str) -> Result<(u16, Value), String> {
    let (status, text) = get_text(url).await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}
