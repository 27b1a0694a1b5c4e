//! `hypha members`: print the membership view of one node.

use anyhow::{bail, Context};
use serde_json::Value;

/// Fetch `/v1/cluster/members` from `url` with `token` (`ca`: only for the
/// error message; the client trusts it already).
pub async fn fetch(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    ca: Option<&std::path::Path>,
) -> anyhow::Result<Value> {
    let mut request = client.get(format!("{}/v1/cluster/members", url.trim_end_matches('/')));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .with_context(|| super::unreachable(url, ca))?;
    let status = response.status();
    let body: Value = response.json().await.context("the answer is not JSON")?;
    if !status.is_success() {
        let message = body["error"]["message"].as_str().unwrap_or("unknown error");
        bail!("{url} answered {status}: {message}");
    }
    Ok(body)
}

/// Number of members in `state` in a members document.
pub fn count_in_state(doc: &Value, state: &str) -> usize {
    doc["members"]
        .as_array()
        .map(|ms| ms.iter().filter(|m| m["state"] == state).count())
        .unwrap_or(0)
}

/// Render a members document as a table.
pub fn table(doc: &Value) -> String {
    let mut out = format!(
        "{:<18} {:<8} {:>4} {:>4} {:<6} {:>10}  {:<22} {}\n",
        "NAME", "STATE", "GEN", "INC", "LINKED", "HEARD_MS", "HTTP", "ID"
    );
    let empty = Vec::new();
    for m in doc["members"].as_array().unwrap_or(&empty) {
        let id = m["id"].as_str().unwrap_or("?");
        let name = m["name"].as_str().unwrap_or("?");
        let me = if m["is_self"] == true { "*" } else { "" };
        out.push_str(&format!(
            "{:<18} {:<8} {:>4} {:>4} {:<6} {:>10}  {:<22} {}\n",
            format!("{name}{me}"),
            m["state"].as_str().unwrap_or("?"),
            m["generation"].to_string(),
            m["incarnation"].to_string(),
            m["linked"].to_string(),
            m["last_heard_ms"].to_string(),
            m["http_addr"].as_str().unwrap_or("-"),
            id.get(..16).unwrap_or(id),
        ));
    }
    if doc["isolated"] == true {
        out.push_str("warning: this node hears no majority of the cluster (isolated)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_counts() {
        let doc = serde_json::json!({
            "isolated": false,
            "members": [
                {"id": "ab", "name": "n0", "state": "up", "generation": 1, "incarnation": 0,
                 "linked": true, "last_heard_ms": 0, "is_self": true, "http_addr": "127.0.0.1:7070"},
                {"id": "cd", "name": "n1", "state": "down", "generation": 2, "incarnation": 1,
                 "linked": false, "last_heard_ms": 900, "is_self": false, "http_addr": null}
            ]
        });
        assert_eq!(count_in_state(&doc, "up"), 1);
        let text = table(&doc);
        assert!(text.contains("n0*"), "{text}");
        assert!(text.contains("down"), "{text}");
    }
}
