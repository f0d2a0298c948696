//! The single exit: one audit row and one structured log line per verified Access-Request
//! (the line written once the reply is known, `audit_line`). Neither ever holds a password,
//! code, State or secret.

use super::{RequestContext, Verdict};
use crate::app::AppState;
use crate::radius::Request;
use crate::store::AuditRecord;

pub async fn record(
    app: &AppState,
    ctx: &RequestContext,
    req: &Request,
    user: &str,
    v: &Verdict,
    answered: bool,
) -> bool {
    let config = app.config();
    let audit_cfg = config.audit;
    let info = v.info.as_ref();
    let first_name = info
        .and_then(|i| i.given_name.clone().or_else(|| i.display_name.clone()))
        .filter(|_| audit_cfg.include_name);
    let last_name = info
        .and_then(|i| i.surname.clone())
        .filter(|_| audit_cfg.include_name);
    let email = info
        .and_then(|i| i.mail.clone())
        .filter(|_| audit_cfg.include_email);
    let from = Source::of(ctx, req);
    let client_ip = req
        .calling_station_id()
        .or_else(|| v.client_ip.clone())
        .or_else(|| from.nas_ip.clone());
    // A no_reply client's request whose backend failed gets no reply at all: "reject" here
    // would say the NAS was refused, and `audit --result unanswered` (and a SIEM counting
    // them against radmfa_requests_unanswered_total) would miss it.
    let result = if answered {
        v.reply.code.as_str()
    } else {
        "unanswered"
    };
    let rec = AuditRecord {
        id: 0,
        time: app.clock.now(),
        user: user.to_string(),
        first_name,
        last_name,
        email,
        phone: v.phone.clone(),
        token_serial: v.token_serial.clone(),
        mode: v.mode.to_string(),
        result: result.to_string(),
        reason: ctx.reason_with_notes(v.reason.as_deref()),
        server_name: config.server.name.clone(),
        server_ip: ctx.local.map(|a| a.ip().to_string()),
        client_ip,
        nas_ip: from.nas_ip,
        nas_identifier: from.nas_identifier,
        nas_name: Some(ctx.client.name.clone()),
        latency_ms: ctx.received.elapsed().as_millis() as i64,
        actor: None,
    };
    // The log line waits for the outcome (`audit_line`); it holds the record from now, so
    // that a request cut short at its deadline still says what was decided.
    let rec = std::sync::Arc::new(rec);
    ctx.audit_line.decided(rec.clone());
    match app.store.append_audit(&rec).await {
        Ok(_) => {
            ctx.audit_line.handed_in();
            true
        }
        Err(e) => {
            count_lost(app);
            super::fault_log::AUDIT.error("audit record could not be written", &e);
            ctx.store_failed(app);
            false
        }
    }
}

/// Counts a record the store could not write in `radmfa_audit_records_lost_total`, so that
/// lost evidence can be alerted on (the error lines are rate-limited, `fault_log`). Called
/// where the write failed rather than wrapping it: a wrapper's future grew every
/// request's (`pipeline::tests::a_requests_future_stays_small`).
pub(crate) fn count_lost(app: &AppState) {
    crate::server::metrics::Metrics::inc(&app.metrics.audit_records_lost);
}

/// Where a request came from, as its audit record says it.
#[derive(Clone, Debug)]
pub(crate) struct Source {
    /// The address it came from (the NAS, or a proxy in front of it); an IPv4 NAS reaching
    /// a dual-stack listener as itself, not as `::ffff:…`.
    pub nas_ip: Option<String>,
    /// What the NAS calls itself: NAS-Identifier, NAS-IP-Address (or NAS-IPv6-Address), or
    /// both as "RDG01 (10.1.1.1)".
    pub nas_identifier: Option<String>,
}

impl Source {
    pub(crate) fn of(ctx: &RequestContext, req: &Request) -> Source {
        Source {
            nas_ip: Some(ctx.src.ip().to_canonical().to_string()),
            nas_identifier: nas_identity(req.nas_identifier(), req.nas_ip_address()),
        }
    }
}

/// A NAS's name and its own address where it sends both: behind a proxy (NPS forwarding
/// for RD Gateway) the source address is the proxy's, and with the name alone the NAS's
/// address was in no record.
fn nas_identity(name: Option<String>, ip: Option<std::net::IpAddr>) -> Option<String> {
    let name = name.filter(|n| !n.is_empty());
    match (name, ip) {
        (Some(name), Some(ip)) => Some(format!("{name} ({ip})")),
        (name, ip) => name.or_else(|| ip.map(|ip| ip.to_string())),
    }
}
