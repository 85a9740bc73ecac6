//! The HTTP API: routing of Kubernetes REST paths to discovery documents and to the verbs
//! (get, list, watch, create, update, patch, delete, deletecollection) on the store, plus
//! the simulator's own `/sim/v1/...` control calls.
//!
//! Every failure leaves as a `Status` body ([`ApiError`]); bodies are size-limited
//! ([`MAX_BODY`]) and the server keeps serving after any bad input.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, request::Parts, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::controllers::kubelet;
use super::discovery;
use super::format::Format;
use super::object;
use super::patch::{self, PatchType};
use super::resources::{self, ResourceDef};
use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::{DeleteOpts, Deleted, Part};
use super::watch::{self, WatchFilter, WatchStream};
use super::Shared;

/// Largest accepted request body (the real apiserver's limit is 3 MiB too).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// How much of an oversized body is read and discarded before answering 413, so the
/// client sees the answer instead of a reset connection.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Default watch length when `timeoutSeconds` is absent (the apiserver picks 30–60 min).
const DEFAULT_WATCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1800);

/// Query parameters.
#[derive(Default)]
struct Query(HashMap<String, String>);

impl Query {
    fn parse(q: Option<&str>) -> Self {
        Self(
            url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("1" | "true" | "True"))
    }
    fn number<T: std::str::FromStr>(&self, k: &str) -> Result<Option<T>, ApiError> {
        match self.get(k).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("invalid value for {k}: {s:?}"))),
        }
    }
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    (
        code,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        serde_json::to_vec(v).unwrap_or_default(),
    )
        .into_response()
}

fn ok(v: &Value) -> Response {
    json_response(StatusCode::OK, v)
}

/// The axum fallback handler: every request enters here.
pub(crate) async fn handle(State(sh): State<Arc<Shared>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    match route(sh, req).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%method, %path, code = e.code, message = %e.message, "sim: request failed");
            e.into_response()
        }
    }
}

async fn route(sh: Arc<Shared>, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let q = Query::parse(parts.uri.query());
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segs.first() == Some(&"sim") {
        return sim_control(&sh, &parts.method, &segs[1..]);
    }
    if let Some(until) = sh.faults.stalled_until() {
        tokio::time::sleep_until(until).await;
    }
    if let Some(code) = sh.faults.take_failure() {
        return Err(ApiError::injected(code));
    }
    let discovery_doc = match segs.as_slice() {
        ["version"] => Some(discovery::version()),
        ["api"] => Some(discovery::core_versions(&sh.addr.to_string())),
        ["apis"] => Some(discovery::group_list()),
        ["apis", g] => Some(discovery::group(g).ok_or_else(ApiError::not_found_path)?),
        ["api", v] => Some(discovery::resource_list("", v).ok_or_else(ApiError::not_found_path)?),
        ["apis", g, v] => {
            Some(discovery::resource_list(g, v).ok_or_else(ApiError::not_found_path)?)
        }
        ["healthz" | "livez" | "readyz", ..] => {
            return Ok((StatusCode::OK, "ok").into_response());
        }
        _ => None,
    };
    if let Some(doc) = discovery_doc {
        if parts.method != Method::GET {
            return Err(ApiError::method_not_allowed(format!(
                "{} is not allowed on discovery documents",
                parts.method
            )));
        }
        return Ok(ok(&doc));
    }
    match segs.as_slice() {
        ["api", v, rest @ ..] => resource(&sh, parts, body, "", v, rest, &q).await,
        ["apis", g, v, rest @ ..] => resource(&sh, parts, body, g, v, rest, &q).await,
        _ => Err(ApiError::not_found_path()),
    }
}

/// A parsed resource path.
struct Target<'a> {
    def: &'static ResourceDef,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
    part: Part,
    watch_path: bool,
}

fn parse_target<'a>(group: &str, version: &str, rest: &[&'a str]) -> Result<Target<'a>, ApiError> {
    if !resources::group_version_known(group, version) {
        return Err(ApiError::not_found_path());
    }
    let (watch_path, rest) = match rest.first() {
        Some(&"watch") => (true, &rest[1..]),
        _ => (false, rest),
    };
    let (namespace, rest) = if rest.len() >= 3
        && rest[0] == "namespaces"
        && resources::find(group, version, rest[2]).is_some_and(|d| d.namespaced)
    {
        (Some(rest[1]), &rest[2..])
    } else {
        (None, rest)
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(*n), None),
        [p, n, s] => (*p, Some(*n), Some(*s)),
        _ => return Err(ApiError::not_found_path()),
    };
    let def = resources::find(group, version, plural).ok_or_else(ApiError::not_found_path)?;
    if def.namespaced && namespace.is_none() && name.is_some() {
        return Err(ApiError::not_found_path());
    }
    let part = match sub {
        None => Part::Main,
        Some("status") if def.has_status => Part::Status,
        Some(_) => return Err(ApiError::not_found_path()),
    };
    Ok(Target {
        def,
        namespace,
        name,
        part,
        watch_path,
    })
}

fn format(parts: &Parts) -> Format {
    Format::from_accept(
        parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    )
}

async fn resource(
    sh: &Arc<Shared>,
    parts: Parts,
    body: Body,
    group: &str,
    version: &str,
    rest: &[&str],
    q: &Query,
) -> Result<Response, ApiError> {
    let t = parse_target(group, version, rest)?;
    let ns = t.namespace.unwrap_or("");
    if q.get("dryRun").is_some_and(|d| !d.is_empty()) {
        return Err(ApiError::bad_request(
            "dryRun is not supported by the simulator",
        ));
    }
    let method = parts.method.clone();
    match (method, t.name) {
        (Method::GET, _) if t.watch_path || q.flag("watch") => {
            start_watch(sh, &t, q, format(&parts))
        }
        (Method::GET, None) => list(sh, &t, q, format(&parts)),
        (Method::GET, Some(name)) => {
            let obj = sh
                .store
                .get(t.def, ns, name)
                .ok_or_else(|| ApiError::not_found(t.def, name))?;
            let inc = q.get("includeObject").unwrap_or("Metadata");
            Ok(ok(&format(&parts).one(t.def, &obj, inc)))
        }
        (Method::POST, None) if t.namespace.is_some() || !t.def.namespaced => {
            require_json(&parts)?;
            let body = read_body(&parts, body).await?;
            let obj = parse_json(&body)?;
            let created = sh.store.create(t.def, ns, obj, false)?;
            Ok(json_response(StatusCode::CREATED, &created))
        }
        (Method::PUT, Some(name)) => {
            require_json(&parts)?;
            let body = read_body(&parts, body).await?;
            let obj = parse_json(&body)?;
            let updated = sh.store.update(t.def, ns, name, t.part, false, obj)?;
            Ok(ok(&updated))
        }
        (Method::PATCH, Some(name)) => patch_object(sh, &t, name, &parts, body).await,
        (Method::DELETE, Some(name)) => {
            let body = read_body(&parts, body).await?;
            let opts = delete_opts(q, &body)?;
            let res = sh
                .store
                .delete(t.def, ns, name, &opts, sh.config.default_grace_period)?;
            let obj = match res {
                Deleted::Gone(o) | Deleted::Terminating(o) => o,
            };
            Ok(ok(&obj))
        }
        (Method::DELETE, None) => delete_collection(sh, &t, q, &parts, body).await,
        (m, _) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m})"
        ))),
    }
}

/// PATCH of one object (or its status); an apply patch creates a missing object.
async fn patch_object(
    sh: &Arc<Shared>,
    t: &Target<'_>,
    name: &str,
    parts: &Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let ns = t.namespace.unwrap_or("");
    let ct = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let kind = PatchType::from_content_type(ct)?;
    let body = read_body(parts, body).await?;
    let p = patch::parse_body(kind, &body)?;
    if kind == PatchType::Apply && sh.store.get(t.def, ns, name).is_none() {
        let mut obj = p;
        if !obj.is_object() {
            return Err(ApiError::bad_request("apply patch must be an object"));
        }
        object::meta_mut(&mut obj).insert("name".into(), json!(name));
        let created = sh.store.create(t.def, ns, obj, false)?;
        return Ok(json_response(StatusCode::CREATED, &created));
    }
    let patched = sh.store.modify(t.def, ns, name, t.part, false, |cur| {
        let mut out = patch::apply(kind, cur, &p)?;
        // A patch that does not name a version must not trip the version check.
        if p.pointer("/metadata/resourceVersion").is_none() {
            object::meta_mut(&mut out).insert(
                "resourceVersion".into(),
                json!(object::resource_version(cur)),
            );
        }
        Ok(out)
    })?;
    Ok(ok(&patched))
}

/// DELETE on a collection: deletes every selected object (gracefully for pods) and
/// answers with the list of deleted (or now terminating) objects.
async fn delete_collection(
    sh: &Arc<Shared>,
    t: &Target<'_>,
    q: &Query,
    parts: &Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_body(parts, body).await?;
    let opts = delete_opts(q, &body)?;
    let (labels, fields) = selectors(t.def, q)?;
    let (items, _) = sh.store.list(t.def, t.namespace);
    let mut deleted = Vec::new();
    for o in items
        .iter()
        .filter(|o| labels.matches_object(o) && fields.matches_object(o))
    {
        if let Ok(Deleted::Gone(d) | Deleted::Terminating(d)) = sh.store.delete(
            t.def,
            object::namespace(o),
            object::name(o),
            &opts,
            sh.config.default_grace_period,
        ) {
            deleted.push(d);
        }
    }
    Ok(ok(&json!({
        "kind": t.def.list_kind(), "apiVersion": t.def.api_version(),
        "metadata": {"resourceVersion": sh.store.resource_version().to_string()},
        "items": deleted.iter().map(|d| (**d).clone()).collect::<Vec<_>>(),
    })))
}

/// Rejects bodies in encodings the simulator does not decode (protobuf, CBOR) with the
/// 415 a real apiserver sends for an unsupported content type.
fn require_json(parts: &Parts) -> Result<(), ApiError> {
    let ct = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.contains("protobuf") || ct.contains("cbor") || ct.contains("yaml") {
        return Err(ApiError::unsupported_media_type(ct));
    }
    Ok(())
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the object provided is unrecognized: couldn't get version/kind; json parse error: {e}"
        ))
    })
}

fn delete_opts(q: &Query, body: &[u8]) -> Result<DeleteOpts, ApiError> {
    let mut opts = DeleteOpts {
        grace_seconds: q.number("gracePeriodSeconds")?,
        ..Default::default()
    };
    if body.iter().any(|b| !b.is_ascii_whitespace()) {
        let v = parse_json(body)?;
        if opts.grace_seconds.is_none() {
            opts.grace_seconds = v.get("gracePeriodSeconds").and_then(Value::as_i64);
        }
        opts.uid = object::str_at(&v, &["preconditions", "uid"]).map(str::to_string);
        opts.resource_version =
            object::str_at(&v, &["preconditions", "resourceVersion"]).map(str::to_string);
    }
    if opts.grace_seconds.is_some_and(|g| g < 0) {
        opts.grace_seconds = Some(0);
    }
    Ok(opts)
}

/// Reads the body, answering 413 past [`MAX_BODY`] (after draining up to
/// [`DRAIN_LIMIT`] so the client reads the answer).
async fn read_body(parts: &Parts, body: Body) -> Result<Bytes, ApiError> {
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut body = body;
    let mut buf = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("reading body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= MAX_BODY && declared.is_none_or(|d| d <= MAX_BODY) {
                buf.extend_from_slice(&data);
            } else if seen > DRAIN_LIMIT {
                break;
            }
        }
    }
    if seen > MAX_BODY || declared.is_some_and(|d| d > MAX_BODY) {
        return Err(ApiError::too_large(MAX_BODY));
    }
    Ok(Bytes::from(buf))
}

fn selectors(def: &ResourceDef, q: &Query) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.0))?;
    let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), def)
        .map_err(|e| ApiError::bad_request(e.0))?;
    Ok((labels, fields))
}

fn list(sh: &Arc<Shared>, t: &Target<'_>, q: &Query, format: Format) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(t.def, q)?;
    let limit: Option<usize> = q.number("limit")?;
    let page = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => sh.pages.next(token, limit)?,
        None => {
            let (items, rv) = sh.store.list(t.def, t.namespace);
            let items: Vec<_> = items
                .into_iter()
                .filter(|o| labels.matches_object(o) && fields.matches_object(o))
                .collect();
            sh.pages.first(items, rv, limit)
        }
    };
    let mut meta = json!({"resourceVersion": page.resource_version.to_string()});
    if let Some(c) = &page.continue_token {
        meta["continue"] = json!(c);
    }
    if let Some(r) = page.remaining {
        meta["remainingItemCount"] = json!(r);
    }
    let inc = q.get("includeObject").unwrap_or("Metadata");
    Ok(ok(&format.list(t.def, &page.items, meta, inc)))
}

fn start_watch(
    sh: &Arc<Shared>,
    t: &Target<'_>,
    q: &Query,
    format: Format,
) -> Result<Response, ApiError> {
    let (labels, mut fields) = selectors(t.def, q)?;
    if let Some(name) = t.name {
        let existing = q.get("fieldSelector").unwrap_or("");
        let combined = if existing.is_empty() {
            format!("metadata.name={name}")
        } else {
            format!("metadata.name={name},{existing}")
        };
        fields = FieldSelector::parse(&combined, t.def).map_err(|e| ApiError::bad_request(e.0))?;
    }
    let initial_events = q.flag("sendInitialEvents");
    if initial_events
        && (!q.flag("allowWatchBookmarks") || q.get("resourceVersionMatch") != Some("NotOlderThan"))
    {
        return Err(ApiError {
            code: 422,
            reason: "Invalid",
            message: "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled and allowWatchBookmarks=true and resourceVersionMatch=NotOlderThan".into(),
            details: Some(json!({"kind": "ListOptions", "group": "meta.k8s.io",
                "causes": [{"reason": "FieldValueForbidden", "field": "sendInitialEvents"}]})),
            retry_after: None,
        });
    }
    let from = match q.get("resourceVersion").unwrap_or("") {
        _ if initial_events => None,
        "" | "0" => None,
        s => Some(
            s.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s:?}")))?,
        ),
    };
    if sh.faults.take_gone() {
        let rv = from.unwrap_or(0);
        let err = ApiError::expired(format!(
            "too old resource version: {rv} ({})",
            sh.store.resource_version()
        ));
        return Ok(watch::watch_response(Body::from(watch::error_line(&err))));
    }
    let (replay, rx, rv) = match sh.store.watch(t.def, t.namespace, from) {
        Ok(x) => x,
        Err(err) if err.code == 410 => {
            return Ok(watch::watch_response(Body::from(watch::error_line(&err))));
        }
        Err(err) => return Err(err),
    };
    // `timeoutSeconds=0` means "no explicit timeout", as with the apiserver.
    let timeout = q
        .number::<u64>("timeoutSeconds")?
        .filter(|t| *t > 0)
        .map(std::time::Duration::from_secs)
        .unwrap_or(DEFAULT_WATCH_TIMEOUT);
    let stream = WatchStream {
        filter: WatchFilter {
            def: t.def,
            namespace: t.namespace.map(str::to_string),
            labels,
            fields,
        },
        replay: replay.into(),
        rx,
        // Every matching change up to `rv` is in the replay, so once it is sent a
        // bookmark at `rv` is truthful.
        last_rv: rv,
        deadline: Instant::now() + timeout,
        bookmarks: q
            .flag("allowWatchBookmarks")
            .then(|| watch::bookmark_interval(sh.config.bookmark_interval)),
        initial_events_end: initial_events,
        drops: sh.faults.watch_drops(),
        faults: sh.faults.clone(),
        cancel: sh.cancel.clone(),
        format,
        done: false,
    };
    sh.watches_opened
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    Ok(stream.into_response())
}

/// `/sim/v1/...`: crash/recover pods, kill/revive nodes. Never subject to faults.
fn sim_control(sh: &Arc<Shared>, method: &Method, segs: &[&str]) -> Result<Response, ApiError> {
    if method != Method::POST {
        return Err(ApiError::method_not_allowed("sim control calls are POST"));
    }
    match segs {
        ["v1", "namespaces", ns, "pods", name, "crash"] => {
            kubelet::crash(&sh.store, ns, name)?;
        }
        ["v1", "namespaces", ns, "pods", name, "recover"] => {
            kubelet::recover(&sh.store, ns, name)?;
        }
        ["v1", "nodes", name, "kill"] => sh.kill_node(name)?,
        ["v1", "nodes", name, "revive"] => sh.revive_node(name)?,
        _ => return Err(ApiError::not_found_path()),
    }
    Ok(ok(
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
    ))
}
