//! What only this suite needs besides the test kit (`testkit`): a plain JSON `POST`.

use reqwest::Response;
use serde_json::Value;

/// `POST {base}/` with `body`, and a bearer `token` when given.
pub async fn post(base: &str, token: Option<&str>, body: &Value) -> Response {
    let mut req = reqwest::Client::new().post(format!("{base}/")).json(body);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.send().await.expect("request")
}

/// `POST {base}/` with `body`, the bearer `token` and the idempotency key `key`.
pub async fn post_keyed(base: &str, token: &str, key: &str, body: &Value) -> Response {
    reqwest::Client::new()
        .post(format!("{base}/"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .expect("post")
}
