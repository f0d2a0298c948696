//! Counters for what the server did with each datagram, the requests in flight and how long
//! replies took. Dropped packets are never answered, so these counters are the only trace
//! they leave besides the rate-limited warnings (`drop_log`). `radmfa serve` logs them at
//! shutdown and, with `[metrics] listen`, serves them to Prometheus (`metrics_http`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::delivery::FailureKind;
use crate::radius::ReplyCode;

macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        #[derive(Debug, Default)]
        pub struct Metrics {
            $(pub $name: AtomicU64,)*
            /// Requests (Access-Request, Status-Server) being processed now.
            pub in_flight: AtomicU64,
            /// Audit records of requests and callbacks the store could not write: lost
            /// evidence. Shared (an `Arc`) with the background task that writes a record
            /// after the reply (`pipeline::overturned`).
            pub audit_records_lost: std::sync::Arc<AtomicU64>,
            /// RadSec connections open now (handshakes included).
            pub radsec_connections: AtomicU64,
            /// The served RadSec certificate's notAfter, Unix seconds; 0 without one (set at
            /// start and every minute, `cert_dates::set_gauges`).
            pub radsec_certificate_expiry: AtomicU64,
            /// 1 while a changed RadSec certificate, key, CA or CRL file cannot be used and
            /// the previous ones are served.
            pub radsec_files_unusable: AtomicU64,
            /// The earliest nextUpdate of the CRLs in `radsec.crl_file`, Unix seconds; 0
            /// without one (set with the certificate's).
            pub radsec_crl_next_update: AtomicU64,
            /// When the configuration in use was read, Unix seconds: the start, then each
            /// applied reload.
            pub config_read_at: AtomicU64,
            /// Time from a request's arrival to its reply (Access-Requests answered).
            pub latency: Histogram,
            /// Replies per `[[client]]` name (the names come from the config, so the set is
            /// small; a reload adds the new names and keeps the old counters).
            pub per_client: std::sync::RwLock<BTreeMap<String, Replies>>,
        }

        impl Metrics {
            /// (name, value) pairs, for logs and tests.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters!(
    received,
    unknown_client,
    malformed,
    not_a_request,
    missing_message_authenticator,
    bad_message_authenticator,
    proxy_state_without_message_authenticator,
    eap_without_message_authenticator,
    duplicate_replayed,
    duplicate_in_flight,
    duplicate_mismatch,
    overloaded,
    deadline_exceeded,
    accepts,
    rejects,
    challenges,
    status_server,
    directory_failures,
    upstream_failures,
    store_failures,
    provider_failures,
    provider_failures_auth,
    provider_failures_refused,
    provider_failures_rate_limited,
    provider_failures_server,
    provider_failures_timeout,
    provider_failures_connection,
    provider_failures_unclear,
    provider_failures_setup,
    sms_sent,
    calls_placed,
    send_limited,
    lockouts,
    fraud_reports,
    sms_undelivered,
    callbacks_unsigned,
    callbacks_bad_signature,
    callbacks_spliced,
    callbacks_other_delivery,
    fail_open,
    unanswered,
    replies_not_sent,
    radsec_handshake_timeout,
    radsec_handshake_closed,
    radsec_handshake_protocol,
    radsec_handshake_client_certificate,
    radsec_handshake_radsec_name,
    radsec_handshake_peer_refused,
    radsec_handshake_other,
    radsec_connection_limit,
    radsec_address_limit,
    radsec_idle_closed,
    radsec_not_reading,
    radsec_reload_closed,
    radsec_recheck_closed,
    radsec_discard_closed,
    radsec_overload_closed,
    radsec_unsupported_refused,
    callbacks_connection_limit,
    callbacks_address_limit,
    metrics_connection_limit,
    metrics_address_limit,
    reloads_applied,
    reloads_refused,
    restart_pending,
);

/// The HTTP listeners, as `radmfa_http_connections_refused_total` labels them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpListener {
    Callbacks,
    Metrics,
}

impl HttpListener {
    /// The config key of its address, which names it in logs.
    pub fn key(self) -> &'static str {
        match self {
            HttpListener::Callbacks => "callbacks.listen",
            HttpListener::Metrics => "metrics.listen",
        }
    }

    /// Where on it to look, for the start-up line: the scrape's path (`/` alone answered
    /// 404); the callbacks' URLs are each a call's or a text's own.
    pub fn path(self) -> &'static str {
        match self {
            HttpListener::Callbacks => "/",
            HttpListener::Metrics => "/metrics",
        }
    }
}

/// Why an HTTP listener closed a connection on arrival (`admin::http_listener`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpRefusal {
    /// Every connection slot of the listener was taken.
    ConnectionLimit,
    /// The source address (or IPv6 /64) had its share open already.
    AddressLimit,
}

/// Access-Request replies of one client, by code.
#[derive(Debug, Default)]
pub struct Replies {
    accept: AtomicU64,
    reject: AtomicU64,
    challenge: AtomicU64,
}

impl Metrics {
    /// Counters for a server with these `[[client]]` names.
    pub fn for_clients<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let m = Metrics::default();
        m.add_clients(names);
        m
    }

    /// Adds counters for client names not seen before (a reloaded client table).
    pub fn add_clients<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let mut map = self.per_client.write().unwrap_or_else(|p| p.into_inner());
        for n in names {
            map.entry(n.to_string()).or_default();
        }
    }

    /// Counts the reply actually sent to `client` for an Access-Request.
    pub fn count_reply(&self, client: &str, code: ReplyCode) {
        let map = self.per_client.read().unwrap_or_else(|p| p.into_inner());
        let per = map.get(client);
        let (total, per) = match code {
            ReplyCode::Accept => (&self.accepts, per.map(|r| &r.accept)),
            ReplyCode::Reject => (&self.rejects, per.map(|r| &r.reject)),
            ReplyCode::Challenge => (&self.challenges, per.map(|r| &r.challenge)),
        };
        Self::inc(total);
        if let Some(c) = per {
            Self::inc(c);
        }
    }

    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection `listener` closed on arrival.
    pub fn count_http_refusal(&self, listener: HttpListener, why: HttpRefusal) {
        Self::inc(match (listener, why) {
            (HttpListener::Callbacks, HttpRefusal::ConnectionLimit) => {
                &self.callbacks_connection_limit
            }
            (HttpListener::Callbacks, HttpRefusal::AddressLimit) => &self.callbacks_address_limit,
            (HttpListener::Metrics, HttpRefusal::ConnectionLimit) => &self.metrics_connection_limit,
            (HttpListener::Metrics, HttpRefusal::AddressLimit) => &self.metrics_address_limit,
        });
    }

    /// Counts a provider failure, in the total and under its kind.
    pub fn count_provider_failure(&self, kind: FailureKind) {
        Self::inc(&self.provider_failures);
        Self::inc(self.provider_failures_of(kind));
    }

    fn provider_failures_of(&self, kind: FailureKind) -> &AtomicU64 {
        match kind {
            FailureKind::Auth => &self.provider_failures_auth,
            FailureKind::Refused => &self.provider_failures_refused,
            FailureKind::RateLimited => &self.provider_failures_rate_limited,
            FailureKind::Server => &self.provider_failures_server,
            FailureKind::Timeout => &self.provider_failures_timeout,
            FailureKind::Connection => &self.provider_failures_connection,
            FailureKind::Unclear => &self.provider_failures_unclear,
            FailureKind::Setup => &self.provider_failures_setup,
        }
    }

    pub fn get(&self, name: &str) -> u64 {
        self.snapshot()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .unwrap_or(0)
    }

    /// Sets `config_read_at` (at the start, an applied reload), Unix seconds.
    pub fn config_read(&self, at: i64) {
        self.config_read_at
            .store(u64::try_from(at).unwrap_or(0), Ordering::Relaxed);
    }

    /// Counts a request as in flight until the guard is dropped (also on cancellation).
    pub fn start_request(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    /// The Prometheus text exposition format (version 0.0.4).
    ///
    /// Written by hand: it is a few lines of text per metric, and the client crates would
    /// bring a registry and metric types of their own beside the atomics the request path
    /// already updates.
    pub fn prometheus(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::with_capacity(4096);
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        family(
            "radmfa_build_info",
            "gauge",
            "Always 1; the version and the build are labels.",
            &[(
                concat!(
                    "{version=\"",
                    env!("CARGO_PKG_VERSION"),
                    "\",build=\"",
                    env!("RADMFA_BUILD"),
                    "\"}"
                ),
                1,
            )],
        );
        family(
            "radmfa_datagrams_received_total",
            "counter",
            "RADIUS packets received: UDP datagrams on the RADIUS ports and packets read from RadSec connections.",
            &[("", get(&self.received))],
        );
        family(
            "radmfa_requests_dropped_total",
            "counter",
            "Requests dropped without a reply, by reason. unknown_client: from an address \
             with no [[client]] entry for the transport (UDP or RadSec); for RadSec it counts \
             connections from such addresses, closed before their handshake.",
            &[
                ("{reason=\"unknown_client\"}", get(&self.unknown_client)),
                ("{reason=\"malformed\"}", get(&self.malformed)),
                ("{reason=\"not_a_request\"}", get(&self.not_a_request)),
                (
                    "{reason=\"missing_message_authenticator\"}",
                    get(&self.missing_message_authenticator),
                ),
                (
                    "{reason=\"bad_message_authenticator\"}",
                    get(&self.bad_message_authenticator),
                ),
                (
                    "{reason=\"proxy_state_without_message_authenticator\"}",
                    get(&self.proxy_state_without_message_authenticator),
                ),
                (
                    "{reason=\"eap_without_message_authenticator\"}",
                    get(&self.eap_without_message_authenticator),
                ),
                ("{reason=\"overloaded\"}", get(&self.overloaded)),
            ],
        );
        family(
            "radmfa_radsec_handshake_failures_total",
            "counter",
            "RadSec connections closed because their TLS handshake failed, by reason: timeout \
             (not done within 10 s), closed (the peer closed or broke the connection first: \
             port probes), protocol (not TLS, or no version or cipher in common), \
             client_certificate (none, not from radsec.ca_file, expired, revoked, or its \
             revocation unknown), radsec_name (a certificate not issued to the client's \
             radsec_name), peer_refused (the NAS sent a fatal alert, most often refusing \
             radmfa's certificate), other.",
            &[
                ("{reason=\"timeout\"}", get(&self.radsec_handshake_timeout)),
                ("{reason=\"closed\"}", get(&self.radsec_handshake_closed)),
                (
                    "{reason=\"protocol\"}",
                    get(&self.radsec_handshake_protocol),
                ),
                (
                    "{reason=\"client_certificate\"}",
                    get(&self.radsec_handshake_client_certificate),
                ),
                (
                    "{reason=\"radsec_name\"}",
                    get(&self.radsec_handshake_radsec_name),
                ),
                (
                    "{reason=\"peer_refused\"}",
                    get(&self.radsec_handshake_peer_refused),
                ),
                ("{reason=\"other\"}", get(&self.radsec_handshake_other)),
            ],
        );
        family(
            "radmfa_radsec_closed_total",
            "counter",
            "RadSec connections closed by radmfa: over radsec.max_connections or \
             max_connections_per_address, idle for \
             radsec.idle_timeout_secs, not reading their replies, left without a client \
             entry (or a matching radsec_name) by a reload, found by the periodic check with \
             an expired or no longer trusted certificate, after a packet that failed \
             verification (RFC 6613 section 2.6.4) or whose Length broke the framing, or waiting longer than half the \
             request deadline for a free request slot.",
            &[
                (
                    "{reason=\"connection_limit\"}",
                    get(&self.radsec_connection_limit),
                ),
                (
                    "{reason=\"address_limit\"}",
                    get(&self.radsec_address_limit),
                ),
                ("{reason=\"idle\"}", get(&self.radsec_idle_closed)),
                ("{reason=\"not_reading\"}", get(&self.radsec_not_reading)),
                ("{reason=\"reload\"}", get(&self.radsec_reload_closed)),
                ("{reason=\"recheck\"}", get(&self.radsec_recheck_closed)),
                ("{reason=\"discarded\"}", get(&self.radsec_discard_closed)),
                ("{reason=\"overloaded\"}", get(&self.radsec_overload_closed)),
            ],
        );
        // Without it, a load balancer in front of [callbacks] that holds more than the
        // per-address share lost callbacks (a call's keypress) with nothing to show at the
        // default log level.
        family(
            "radmfa_http_connections_refused_total",
            "counter",
            "Connections the HTTP listeners ([callbacks] and [metrics]) closed on arrival: \
             256 already open (connection_limit), or 16 already open from the same address \
             or IPv6 /64 (address_limit; 127.0.0.1 and ::1 have only the total). A load \
             balancer or reverse proxy not on loopback is one address.",
            &[
                (
                    "{listener=\"callbacks\",reason=\"connection_limit\"}",
                    get(&self.callbacks_connection_limit),
                ),
                (
                    "{listener=\"callbacks\",reason=\"address_limit\"}",
                    get(&self.callbacks_address_limit),
                ),
                (
                    "{listener=\"metrics\",reason=\"connection_limit\"}",
                    get(&self.metrics_connection_limit),
                ),
                (
                    "{listener=\"metrics\",reason=\"address_limit\"}",
                    get(&self.metrics_address_limit),
                ),
            ],
        );
        family(
            "radmfa_radsec_unsupported_refused_total",
            "counter",
            "Accounting-, CoA- and Disconnect-Requests received over RadSec and refused with \
             Error-Cause 406 (RFC 6614 section 2.5), or left unanswered when that refusal would \
             exceed 4096 octets; over UDP they are dropped.",
            &[("", get(&self.radsec_unsupported_refused))],
        );
        family(
            "radmfa_config_reloads_total",
            "counter",
            "Reloads (SIGHUP, systemctl reload) applied, and refused because the file did not \
             validate or asked for what only a restart can do; the journal names the key. \
             `systemctl reload` itself succeeds either way.",
            &[
                ("{result=\"applied\"}", get(&self.reloads_applied)),
                ("{result=\"refused\"}", get(&self.reloads_refused)),
            ],
        );
        family(
            "radmfa_config_last_reload_success_timestamp_seconds",
            "gauge",
            "When the configuration in use was read, Unix time: the start, then each applied \
             reload. Behind the file's modification time: a reload was refused, or not sent.",
            &[("", get(&self.config_read_at))],
        );
        family(
            "radmfa_config_restart_pending",
            "gauge",
            "1 when the last applied reload found sections (or files they name) changed that \
             only a restart applies, such as [server] or a rotated provider token: the running \
             configuration is not the file's until then; the journal names them.",
            &[("", get(&self.restart_pending))],
        );
        family(
            "radmfa_duplicates_total",
            "counter",
            "Retransmits (RFC 5080): answered from the cache (or, for an SMS or call the cache \
             no longer held, from its decision in the store), joined to the request in flight, \
             or dropped because the same ID and source carried different bytes.",
            &[
                ("{outcome=\"replayed\"}", get(&self.duplicate_replayed)),
                ("{outcome=\"in_flight\"}", get(&self.duplicate_in_flight)),
                ("{outcome=\"mismatch\"}", get(&self.duplicate_mismatch)),
            ],
        );
        let mut replies = Vec::new();
        let per_client = self.per_client.read().unwrap_or_else(|p| p.into_inner());
        for (name, r) in per_client.iter() {
            let client = label_value(name);
            for (code, c) in [
                ("accept", &r.accept),
                ("reject", &r.reject),
                ("challenge", &r.challenge),
            ] {
                replies.push((format!("{{client=\"{client}\",code=\"{code}\"}}"), get(c)));
            }
        }
        let replies: Vec<(&str, u64)> = replies.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        family(
            "radmfa_replies_total",
            "counter",
            "Access-Request replies by client ([[client]] name) and code.",
            &replies,
        );
        family(
            "radmfa_status_server_total",
            "counter",
            "Status-Server requests received and verified (RFC 5997); all are answered, but \
             those of on_backend_failure = \"no_reply\" clients while the directory or \
             store fails, or, for primary = \"upstream\" clients, while their upstream \
             group is not answering.",
            &[("", get(&self.status_server))],
        );
        family(
            "radmfa_backend_failures_total",
            "counter",
            "Directory (LDAP), upstream RADIUS or store failures met while answering \
             requests: unreachable, timed out, or an error; each refuses its request. Wrong \
             passwords and codes are not failures. A login whose request deadline ran out \
             while it waited for upstream RADIUS servers counts as upstream.",
            &[
                ("{backend=\"directory\"}", get(&self.directory_failures)),
                ("{backend=\"upstream\"}", get(&self.upstream_failures)),
                ("{backend=\"store\"}", get(&self.store_failures)),
            ],
        );
        family(
            "radmfa_requests_unanswered_total",
            "counter",
            "Requests left unanswered after a backend failure or a missed deadline, because \
             their client has on_backend_failure = \"no_reply\" (its NAS asks its next \
             server), and held calls' logins that a stopping node left to the nodes sharing \
             its PostgreSQL store.",
            &[("", get(&self.unanswered))],
        );
        family(
            "radmfa_replies_not_sent_total",
            "counter",
            "UDP replies the system would not send (no route, a firewall rule, a local \
             address gone), Status-Server answers and replayed duplicates included: their NAS \
             never got them.",
            &[("", get(&self.replies_not_sent))],
        );
        let by_kind: Vec<(String, u64)> = FailureKind::ALL
            .iter()
            .map(|k| {
                (
                    format!("{{kind=\"{}\"}}", k.as_str()),
                    get(self.provider_failures_of(*k)),
                )
            })
            .collect();
        let by_kind: Vec<(&str, u64)> = by_kind.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        family(
            "radmfa_provider_failures_total",
            "counter",
            "SMS or call providers that failed to take a message, by kind: auth (401/403, \
             our credentials refused: every send fails until someone acts), refused (another \
             4xx: the message or its number), rate_limited (429), server (5xx), timeout \
             (408 too), connection, unclear, setup (a request radmfa could not build, or a \
             404/405: a URL the provider does not serve). Each refuses its login, unless the client's \
             provider_failure = \"allow\" and it is an outage. The sum over kind is the \
             total.",
            &by_kind,
        );
        family(
            "radmfa_oob_sent_total",
            "counter",
            "SMS codes the provider took, and calls it placed: what they cost. A rise \
             without more logins is SMS pumping or toll fraud (see \
             radmfa_send_limited_total).",
            &[
                ("{kind=\"sms\"}", get(&self.sms_sent)),
                ("{kind=\"voice\"}", get(&self.calls_placed)),
            ],
        );
        family(
            "radmfa_send_limited_total",
            "counter",
            "Texts and calls radmfa's send limits refused (per user, per number, per NAS, \
             per day; the audit reason says which). Users or NASes at their limit: a \
             stolen password, or a NAS's limit too low for its peak.",
            &[("", get(&self.send_limited))],
        );
        family(
            "radmfa_lockouts_total",
            "counter",
            "Second factors locked for wrong codes ([lockout] threshold reached): someone \
             guessing with a user's password, or a user with a broken token. A lock follows \
             only the right password: keep /metrics from those who can send logins.",
            &[("", get(&self.lockouts))],
        );
        family(
            "radmfa_fraud_reports_total",
            "counter",
            "Calls answered with the fraud digits: users blocked until `radmfa user \
             unblock`. Each is a password in someone else's hands.",
            &[("", get(&self.fraud_reports))],
        );
        family(
            "radmfa_sms_undelivered_total",
            "counter",
            "SMS the provider took but reported undelivered or failed (Twilio's status \
             callback, with [callbacks]): the user waited for a code that never came. The \
             log names the user, the masked number and the provider's error code.",
            &[("", get(&self.sms_undelivered))],
        );
        family(
            "radmfa_callbacks_refused_total",
            "counter",
            "Provider callbacks refused, by reason: unsigned (no signature, or not one in \
             shape), bad_signature (not signed with the auth token for this URL and \
             parameters, or another account's), spliced (a parameter repeated or re-split \
             under a valid signature), other_delivery (signed, but about another call or \
             message than the login's). Someone forging keypresses or delivery reports, or \
             a rotated auth_token not yet in radmfa.toml (bad_signature).",
            &[
                ("{reason=\"unsigned\"}", get(&self.callbacks_unsigned)),
                (
                    "{reason=\"bad_signature\"}",
                    get(&self.callbacks_bad_signature),
                ),
                ("{reason=\"spliced\"}", get(&self.callbacks_spliced)),
                (
                    "{reason=\"other_delivery\"}",
                    get(&self.callbacks_other_delivery),
                ),
            ],
        );
        family(
            "radmfa_fail_open_total",
            "counter",
            "Logins accepted without a second factor because the provider failed \
             (provider_failure = \"allow\"). Worth an alert.",
            &[("", get(&self.fail_open))],
        );
        family(
            "radmfa_audit_records_lost_total",
            "counter",
            "Audit records of requests whatever their result (and of the locks they set, \
             and of fraud reports on calls) that the store could not write or commit: the \
             log has the line, the audit table not. Lost evidence; worth an alert.",
            &[("", get(&self.audit_records_lost))],
        );
        family(
            "radmfa_deadline_exceeded_total",
            "counter",
            "Requests not decided within the request deadline: rejected, or left \
             unanswered where the client has on_backend_failure = \"no_reply\".",
            &[("", get(&self.deadline_exceeded))],
        );
        family(
            "radmfa_requests_in_flight",
            "gauge",
            "Requests being processed (Access-Request and Status-Server, from arrival to reply).",
            &[("", get(&self.in_flight))],
        );
        family(
            "radmfa_radsec_connections",
            "gauge",
            "RadSec connections open, TLS handshakes included (at most radsec.max_connections).",
            &[("", get(&self.radsec_connections))],
        );
        let expiry = get(&self.radsec_certificate_expiry);
        if expiry != 0 {
            family(
                "radmfa_radsec_certificate_expiry_timestamp_seconds",
                "gauge",
                "When the RadSec server certificate being served (the first in \
                 radsec.cert_file as last loaded) expires, as Unix time; checked every minute. Every NAS that checks it refuses the TLS \
                 handshake from then on.",
                &[("", expiry)],
            );
        }
        if expiry != 0 {
            family(
                "radmfa_radsec_files_unusable",
                "gauge",
                "1 while a RadSec certificate, key, CA or CRL file changed on disk but cannot \
                 be used (the previous ones are still served, and the date gauges are \
                 theirs); the log says why.",
                &[("", get(&self.radsec_files_unusable))],
            );
        }
        let crl_next = get(&self.radsec_crl_next_update);
        if crl_next != 0 {
            family(
                "radmfa_radsec_crl_next_update_timestamp_seconds",
                "gauge",
                "The earliest nextUpdate of the CRLs in radsec.crl_file as last loaded, as Unix \
                 time; checked every minute. From then on, until a new CRL is in place, every client \
                 certificate under that CA is refused.",
                &[("", crl_next)],
            );
        }
        self.latency.render(
            &mut out,
            "radmfa_request_duration_seconds",
            "Time from an Access-Request's arrival to its reply (requests left unanswered \
             are not in it).",
        );
        out
    }
}

/// A label value as the exposition format wants it: backslash, quote and newline escaped.
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// See [`Metrics::start_request`].
pub struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Upper bounds of the latency buckets, in seconds: from an inline login on a fast
/// directory to a held phone call.
const BOUNDS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

/// A fixed-bucket histogram of durations, lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last one is +Inf.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BOUNDS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BOUNDS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = BOUNDS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        // The count is the +Inf bucket, so the two always agree within one scrape.
        let _ = writeln!(out, "{name}_count {cumulative}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_count_matches() {
        let h = Histogram::default();
        for ms in [0, 3, 3, 40, 700, 90_000] {
            h.observe(Duration::from_millis(ms));
        }
        let mut out = String::new();
        h.render(&mut out, "t", "help");
        let line = |le: &str| {
            out.lines()
                .find(|l| l.starts_with(&format!("t_bucket{{le=\"{le}\"}} ")))
                .unwrap_or_else(|| panic!("no bucket {le} in {out}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .to_string()
        };
        assert_eq!(line("0.001"), "1");
        assert_eq!(line("0.005"), "3");
        assert_eq!(line("0.05"), "4");
        assert_eq!(line("1"), "5");
        assert_eq!(line("60"), "5");
        assert_eq!(line("+Inf"), "6");
        assert!(out.contains("\nt_count 6\n"), "{out}");
        assert!(out.contains("\nt_sum 90.746\n"), "{out}");
    }

    #[test]
    fn replies_are_counted_per_client_with_escaped_names() {
        let m = Metrics::for_clients(["vpn", "odd \"name\""]);
        m.count_reply("vpn", ReplyCode::Accept);
        m.count_reply("vpn", ReplyCode::Accept);
        m.count_reply("odd \"name\"", ReplyCode::Challenge);
        let text = m.prometheus();
        assert!(text.contains("\nradmfa_replies_total{client=\"vpn\",code=\"accept\"} 2\n"));
        assert!(text.contains(
            "\nradmfa_replies_total{client=\"odd \\\"name\\\"\",code=\"challenge\"} 1\n"
        ));
        assert_eq!(m.get("accepts"), 2);
    }

    /// Every family served has its row in docs/operations.md's metrics table: an operator
    /// reads there what a series means (and the table once missed a new counter).
    #[test]
    fn the_operations_guide_lists_every_metric() {
        let doc = include_str!("../../docs/operations.md");
        let m = Metrics::default();
        // Gauges served only once set.
        m.radsec_certificate_expiry.store(1, Ordering::Relaxed);
        m.radsec_crl_next_update.store(1, Ordering::Relaxed);
        let text = m.prometheus();
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        assert!(names.len() > 20, "{names:?}");
        for name in names {
            assert!(
                doc.contains(&format!("| `{name}` |")),
                "{name} is not in docs/operations.md's metrics table"
            );
        }
    }

    #[test]
    fn http_refusals_are_counted_per_listener_and_reason() {
        let m = Metrics::default();
        m.count_http_refusal(HttpListener::Callbacks, HttpRefusal::AddressLimit);
        m.count_http_refusal(HttpListener::Callbacks, HttpRefusal::AddressLimit);
        m.count_http_refusal(HttpListener::Metrics, HttpRefusal::ConnectionLimit);
        let text = m.prometheus();
        for (labels, n) in [
            ("listener=\"callbacks\",reason=\"address_limit\"", 2),
            ("listener=\"callbacks\",reason=\"connection_limit\"", 0),
            ("listener=\"metrics\",reason=\"address_limit\"", 0),
            ("listener=\"metrics\",reason=\"connection_limit\"", 1),
        ] {
            let line = format!("\nradmfa_http_connections_refused_total{{{labels}}} {n}\n");
            assert!(text.contains(&line), "{line} in {text}");
        }
    }

    #[test]
    fn in_flight_guard_counts_down_when_dropped() {
        let m = Metrics::default();
        let a = m.start_request();
        let b = m.start_request();
        assert_eq!(m.in_flight.load(Ordering::Relaxed), 2);
        drop(a);
        drop(b);
        assert!(m.prometheus().contains("\nradmfa_requests_in_flight 0\n"));
    }
}
