//! `/v1/cluster/members`: the membership view as this node sees it.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hypha_cluster::fence::Standing as LeaseStanding;
use hypha_cluster::membership::info::{Capacity, NodeLoad};
use hypha_cluster::membership::{MemberSnapshot, MemberState};
use serde::Serialize;

use super::files::{query_number, query_pairs};
use crate::admin::error::ApiError;
use crate::admin::AppState;
use crate::rolling::{ClusterApi, Runner};

#[derive(Serialize)]
pub(super) struct Members {
    /// This node's id.
    me: String,
    /// True when this node hears no majority (it then declares nobody Down).
    isolated: bool,
    /// Whether this node may acknowledge writes (docs/dht.md, "The fence").
    lease: Lease,
    members: Vec<Member>,
}

/// The majority lease as the API shows it.
#[derive(Serialize)]
struct Lease {
    /// `held`, `probation` (held again after a break, not yet
    /// acknowledging) or `lost`.
    state: &'static str,
    /// How long the lease (or the probation) lasts from now, unless lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    remaining_ms: Option<u64>,
    /// When lost: other nodes that answered within the lease, and how
    /// many are needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    answered: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    needed: Option<usize>,
}

impl Lease {
    fn of(standing: LeaseStanding, now: tokio::time::Instant) -> Self {
        let ms = |until: tokio::time::Instant| {
            Some(
                u64::try_from(until.saturating_duration_since(now).as_millis()).unwrap_or(u64::MAX),
            )
        };
        match standing {
            LeaseStanding::Held { until, .. } => Lease {
                state: "held",
                remaining_ms: ms(until),
                answered: None,
                needed: None,
            },
            LeaseStanding::Probation { until } => Lease {
                state: "probation",
                remaining_ms: ms(until),
                answered: None,
                needed: None,
            },
            LeaseStanding::Lost { need, have, .. } => Lease {
                state: "lost",
                remaining_ms: None,
                answered: Some(have),
                needed: Some(need),
            },
        }
    }
}

#[derive(Serialize)]
struct Member {
    id: String,
    name: Option<String>,
    generation: u64,
    state: MemberState,
    incarnation: u64,
    is_self: bool,
    linked: bool,
    last_heard_ms: u64,
    cluster_addr: Option<String>,
    http_addr: Option<String>,
    capacity: Option<Capacity>,
    load: Option<NodeLoad>,
    labels: BTreeMap<String, String>,
}

impl From<&MemberSnapshot> for Member {
    fn from(m: &MemberSnapshot) -> Self {
        let info = m.info.as_ref();
        Member {
            id: m.key.node_id.clone(),
            name: info.map(|i| i.name.clone()),
            generation: m.key.generation,
            state: m.state,
            incarnation: m.incarnation,
            is_self: m.is_self,
            linked: m.linked,
            last_heard_ms: m.last_heard_ms,
            cluster_addr: info.map(|i| i.cluster_addr.to_string()),
            http_addr: info.map(|i| i.http_addr.to_string()),
            capacity: info.map(|i| i.capacity),
            load: m.load,
            labels: info.map(|i| i.labels.clone()).unwrap_or_default(),
        }
    }
}

pub(super) async fn members(State(state): State<AppState>) -> Json<Members> {
    let view = state.membership.view();
    let (standing, now) = state.files.lease();
    Json(Members {
        me: state.facts.id.to_hex(),
        isolated: view.isolated,
        lease: Lease::of(standing, now),
        members: view.members.iter().map(Member::from).collect(),
    })
}

/// Default bound of one step of a rolling restart.
const STEP_TIMEOUT_S: u64 = 300;

/// `POST /v1/cluster/restart?rolling=true[&step_timeout_s=N]` [admin]: a
/// rolling restart run by this node ([`crate::rolling`]), its events
/// streamed as NDJSON while it runs. This node restarts last, so its own
/// step ends the stream early (`restarting` is the last event); the
/// caller confirms it with `GET /v1/node`. The caller's token is the one
/// used on every node (the cluster shares its admin tokens or keys).
pub(super) async fn restart(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let rolling = query_pairs(raw.as_deref())
        .iter()
        .any(|(k, v)| k == "rolling" && v == "true");
    if !rolling {
        return Err(ApiError::bad_request(
            "only ?rolling=true is supported: restarting every node at once would take the cluster down",
        ));
    }
    let step_timeout_s: u64 =
        query_number(raw.as_deref(), "step_timeout_s", "a number of seconds")?
            .unwrap_or(STEP_TIMEOUT_S);
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = crate::auth::bearer_token(presented).map(str::to_owned);
    let ca = state
        .admin_tls
        .as_ref()
        .map(|tls| tls.status().dir.join(hypha_cluster::peers::tls::CA_FILE));
    let client = crate::commands::client(ca.as_deref())
        .map_err(|e| ApiError::unavailable(format!("no client for the other nodes: {e}")))?;
    let scheme = if state.admin_tls.is_some() {
        "https"
    } else {
        "http"
    };
    let url = format!("{scheme}://{}", state.facts.listen.http);
    let me = state.facts.id.to_hex();
    let runner = Runner::new(
        ClusterApi::new(client, &url, token),
        Some(me),
        step_timeout_s.saturating_mul(1_000),
    );
    let lines = futures::stream::unfold(runner, |mut runner| async move {
        let event = runner.step().await?;
        let line = match event {
            Ok(event) => serde_json::to_string(&event),
            Err(err) => serde_json::to_string(&crate::rolling::Event::Failed {
                reason: err.to_string(),
            }),
        };
        let mut line = line.unwrap_or_default();
        line.push('\n');
        Some((Ok::<_, std::convert::Infallible>(line), runner))
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}
