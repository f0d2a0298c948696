//! A request's audit log line, written once what the NAS gets is known: after its writes
//! are committed (or failed), with the result it was answered with.
//!
//! Written as the decision was made, the line said `result=accept` for a login whose writes
//! then failed to commit, and a second line, with fewer fields, said it was refused after
//! all: a SIEM counting accepts counted one the NAS never got, and could not join the
//! correction to it. Now there is one line per request: the decision's, at INFO, or, when
//! what was decided was withheld, a WARN line with the result sent and why (`result=reject
//! reason="accept withheld: …"`, as the correction line said it), what had been decided
//! (`decided`, `decided_reason`) and the decision's other fields.

use std::sync::{Arc, Mutex};

use crate::store::AuditRecord;

/// What the line will say, held in the request's context until [`AuditLine::write`] (or,
/// for a request cut short, its drop).
#[derive(Default)]
pub struct AuditLine(Mutex<Held>);

#[derive(Default)]
struct Held {
    /// The decision's record, as handed to the store.
    decided: Option<Arc<AuditRecord>>,
    /// The store took it without an error: whether it is on disk is then the request's
    /// commit (inside `durability::deferred`).
    handed_in: bool,
    /// What the NAS got instead (the overturning record) and why.
    overturned: Option<(AuditRecord, String)>,
    written: bool,
}

impl AuditLine {
    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The decision's record, before it goes to the store.
    pub fn decided(&self, rec: Arc<AuditRecord>) {
        self.held().decided = Some(rec);
    }

    /// The store took the decision's record (its commit is still to come).
    pub fn handed_in(&self) {
        self.held().handed_in = true;
    }

    /// Whether the decision's record went to the store without an error, so that a failed
    /// commit of the request's writes lost it.
    pub fn was_handed_in(&self) -> bool {
        self.held().handed_in
    }

    /// The decision is withheld: the NAS gets `rec.result` for `why`. The first one stands
    /// (a later one, the deadline passing after an audit record that failed, says less).
    pub fn overturned(&self, rec: AuditRecord, why: &str) {
        let mut held = self.held();
        if held.overturned.is_none() {
            held.overturned = Some((rec, why.to_string()));
        }
    }

    /// Writes the line, once.
    pub fn write(&self) {
        let (decided, overturned) = {
            let mut held = self.held();
            if std::mem::replace(&mut held.written, true) {
                return;
            }
            (held.decided.take(), held.overturned.take())
        };
        match (decided, overturned) {
            (Some(d), None) => tracing::info!(
                target: "radmfa::audit",
                user = d.user.as_str(),
                result = %d.result,
                mode = %d.mode,
                reason = s(&d.reason),
                token = s(&d.token_serial),
                client_ip = s(&d.client_ip),
                nas = s(&d.nas_name),
                nas_ip = s(&d.nas_ip),
                nas_identifier = s(&d.nas_identifier),
                latency_ms = d.latency_ms,
                "auth"
            ),
            (Some(d), Some((sent, why))) => tracing::warn!(
                target: "radmfa::audit",
                user = d.user.as_str(),
                result = %sent.result,
                reason = why,
                decided = %d.result,
                decided_reason = s(&d.reason),
                mode = %d.mode,
                token = s(&d.token_serial),
                client_ip = s(&d.client_ip),
                nas = s(&d.nas_name),
                nas_ip = s(&d.nas_ip),
                nas_identifier = s(&d.nas_identifier),
                latency_ms = sent.latency_ms,
                "auth"
            ),
            // Cut short before its decision was recorded (its deadline).
            (None, Some((sent, why))) => tracing::warn!(
                target: "radmfa::audit",
                user = sent.user.as_str(),
                result = %sent.result,
                reason = why,
                mode = %sent.mode,
                token = "",
                client_ip = s(&sent.client_ip),
                nas = s(&sent.nas_name),
                nas_ip = s(&sent.nas_ip),
                nas_identifier = s(&sent.nas_identifier),
                latency_ms = sent.latency_ms,
                "auth"
            ),
            (None, None) => {}
        }
    }
}

/// An optional field as the line gives it: empty when absent.
fn s(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

/// A request whose task ended before [`AuditLine::write`] (abandoned at a shutdown, a
/// panic) still leaves the line of what was decided, as it did when the line came first.
impl Drop for AuditLine {
    fn drop(&mut self) {
        self.write();
    }
}
