//! What `radmfa config check` prints after "ok": the store, the directory and each client's
//! policy in a line, then a warning for each setting that lets a login in with less than
//! the password and a second factor, or weakens the RADIUS protection. All of these are
//! valid choices; the check still passes. An admin reviewing a config (or a change to one)
//! sees at a glance what each NAS gets, without reading every key.

use std::time::Duration;

use crate::config::delivery::{PhoneSource, ProviderFailure, VoiceMode};
use crate::config::upstream::{section_key, StatusCheck, DEFAULT_GROUP};
use crate::config::{ClientConfig, Config, NoFactorPolicy, OtpMode, Primary, StoreConfig};
use crate::mfa::method::Method;
use crate::pipeline::audit_reserve;

/// One line each: store, LDAP, then every client.
pub fn summary(cfg: &Config) -> Vec<String> {
    let store = match &cfg.store {
        StoreConfig::Sqlite { path, .. } => format!("SQLite {}", path.display()),
        // The URL is a secret (it may hold the password): never printed.
        StoreConfig::Postgres { settings, .. } => {
            format!(
                "PostgreSQL, up to {} connections (and one for audit records)",
                settings.pool_size
            )
        }
    };
    let mut lines = vec![
        format!("store:  {store}"),
        match &cfg.ldap {
            Some(l) => format!("ldap:   {}", l.urls.join(", ")),
            None => "ldap:   none (every client's password is checked upstream; users are \
                     known by name, phones from `radmfa user set-phone`)"
                .into(),
        },
    ];
    let domains = cfg.user_names.domains();
    if !domains.is_empty() {
        lines.push(format!(
            "users:  {} taken off names (DOMAIN\\alice and alice@DOMAIN are alice)",
            domains.join(", ")
        ));
    }
    for u in &cfg.upstreams {
        let servers: Vec<String> = u.servers.iter().map(|s| s.to_string()).collect();
        let mut line = format!(
            "{}: {} ({} ms each",
            u.label(),
            servers.join(", "),
            u.timeout.as_millis()
        );
        if !u.pass_through.is_empty() {
            let names: Vec<&str> = u.pass_through.iter().map(|(n, _)| n.as_str()).collect();
            line.push_str(&format!("; passes on {}", names.join(", ")));
        }
        if let Some(check) = u.status_check {
            let how = match check {
                StatusCheck::StatusServer => "Status-Server",
                StatusCheck::AccessRequest => "a made-up user's Access-Request",
            };
            line.push_str(&format!(
                "; a silent server checked with {how} every {} s",
                u.check_interval.as_secs()
            ));
        }
        line.push(')');
        lines.push(line);
    }
    for c in &cfg.clients {
        lines.push(format!("client {:?}: {}", c.name, client_line(cfg, c)));
    }
    lines
}

/// One client as `config check` and the start-up log describe it: addresses, how it logs
/// in, the methods it offers (and which of them the running sections cannot deliver).
pub fn client_line(cfg: &Config, c: &ClientConfig) -> String {
    // A single host as its address, a network as its CIDR.
    let addresses: Vec<String> = c
        .networks
        .iter()
        .map(|n| {
            if n.prefix_len() == n.max_prefix_len() {
                n.addr().to_string()
            } else {
                n.to_string()
            }
        })
        .collect();
    let f = &c.factors;
    let mut parts = vec![addresses.join(", ")];
    parts.push(if f.second_factor_only {
        "second factor only (no password)".to_string()
    } else {
        let mode = match &c.otp_mode {
            OtpMode::Challenge => "password, then a prompt".to_string(),
            OtpMode::Inline { delimiter } if delimiter.is_empty() => {
                "password and code in one field".to_string()
            }
            OtpMode::Inline { delimiter } => format!("password{delimiter}code in one field"),
            OtpMode::CodeOnly => "the code alone (the NAS checks the password)".to_string(),
        };
        match &c.primary {
            Primary::Ldap => mode,
            Primary::Upstream(g) if g == DEFAULT_GROUP => {
                format!("{mode} (password checked upstream)")
            }
            Primary::Upstream(g) => format!("{mode} (password checked by [{}])", section_key(g)),
        }
    });
    // A method the server cannot deliver, or this client cannot use, is offered to nobody:
    // say so. An inline client shows no prompt, so an SMS code has nowhere to be typed and
    // a call has no Enter to wait for unless the client holds it (the pipeline's
    // `method::available` rule).
    let inline = matches!(c.otp_mode, OtpMode::Inline { .. }) && !f.second_factor_only;
    let methods: Vec<String> = f
        .methods
        .iter()
        .map(|m| match m {
            Method::Sms if cfg.delivery.sms.is_none() => "sms (no [sms] section)".into(),
            Method::Voice if cfg.delivery.voice.is_none() => "voice (no [voice] section)".into(),
            Method::Sms if inline => "sms (unusable: an inline client shows no prompt)".into(),
            Method::Voice if inline && f.voice_mode == VoiceMode::Challenge => {
                "voice (unusable: an inline client shows no prompt; use voice_mode = \"hold\")"
                    .into()
            }
            m => m.as_str().to_string(),
        })
        .collect();
    let mut methods = methods.join(", ");
    let voice_usable = !(inline && f.voice_mode == VoiceMode::Challenge);
    if f.methods.contains(&Method::Voice) && cfg.delivery.voice.is_some() && voice_usable {
        methods.push_str(match f.voice_mode {
            VoiceMode::Hold => " (calls held",
            VoiceMode::Challenge => " (calls answered with Enter",
        });
        if f.voice_mode == VoiceMode::Hold {
            methods.push_str(&format!(", {} s", f.voice_budget.as_secs()));
        }
        methods.push(')');
    }
    parts.push(methods);
    if !c.groups.allow.is_empty() {
        parts.push(format!("{} allowed group(s)", c.groups.allow.len()));
    }
    parts.join("; ")
}

/// Whether method `m` of client `c` can reach a user: as the summary line says (a provider
/// configured; on an inline client, no prompt for an SMS code or a call's Enter).
fn usable_method(cfg: &Config, c: &ClientConfig, m: Method) -> bool {
    let f = &c.factors;
    let inline = matches!(c.otp_mode, OtpMode::Inline { .. }) && !f.second_factor_only;
    match m {
        Method::Sms => cfg.delivery.sms.is_some() && !inline,
        Method::Voice => {
            cfg.delivery.voice.is_some() && !(inline && f.voice_mode == VoiceMode::Challenge)
        }
        _ => true,
    }
}

/// A line per setting that lets a login through on less than both factors, or weakens the
/// RADIUS exchange itself, or cannot work as set (upstream servers the deadline cuts off), or
/// leaves a NAS policy to config order (two group rules setting one single-valued attribute).
/// In the log at start and after each reload that brings one: the journal keeps what a NAS
/// was allowed to skip, and when that began.
pub fn warnings(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    #[cfg(unix)]
    out.extend(store_file_warning(&cfg.store));
    if cfg.legacy_app_passwords {
        out.push(
            "store: legacy_app_passwords = true: app passwords stored in the forms from \
             before they were bound to their user are accepted, and anyone who can write to \
             the database (without the key file) can copy one to another user or make one up \
             for anyone; re-issue those `user app-password list` marks \"old form\", then \
             turn it off"
                .into(),
        );
    }
    // Still read there, so a file from before [users] keeps working; said, so it is moved
    // before a release stops reading it.
    if cfg.user_names.in_ldap() {
        out.push(
            "ldap: strip_domains has moved to [users] strip_domains; the list is still read \
             from [ldap], but move it to a [users] section (the same strip_domains = [...])"
                .into(),
        );
    }
    if let Some(l) = &cfg.ldap {
        // Every search would fail its bind, and `--connect` says only "invalid credentials".
        if looks_like_a_reference(l.bind_password.expose()) {
            out.push(
                "ldap: bind_password looks like a variable reference, which radmfa does not \
                 expand: the text itself is the password (use bind_password_file for one kept \
                 elsewhere)"
                    .into(),
            );
        }
        if l.tls_insecure_skip_verify {
            out.push(
                "ldap: tls_insecure_skip_verify = true: whoever is on the path to the directory \
                 can answer its binds, and every password passes; for a lab only"
                    .into(),
            );
        }
        // Tokens, lockout counts and bypasses are keyed on the name as typed (less a listed
        // domain): a filter that finds one entry by two names makes two users of it.
        if l.user_filter.matches("{user}").count() > 1 {
            out.push(format!(
                "ldap: user_filter {:?} finds a user by more than one name: radmfa keys \
                 tokens, phones and app passwords on the name typed, so a user enrolled \
                 under one spelling is refused under the others (\"log in with the user \
                 name your second factor is enrolled under\"); match one attribute, and \
                 list the domains users add in [users] strip_domains",
                l.user_filter
            ));
        }
        // slapd clears an expired lockout's stamp only at the account's next bind, which
        // this filter keeps radmfa from making: the lock never ends here.
        if l.enabled_filter.as_deref().is_some_and(|f| {
            f.to_ascii_lowercase()
                .replace(' ', "")
                .contains("pwdaccountlockedtime=*")
        }) {
            out.push(
                "ldap: enabled_filter tests pwdAccountLockedTime=*: slapd removes an expired \
                 lockout's stamp only at the account's next bind, which this filter keeps \
                 radmfa from making, so a user locked out for pwdLockoutDuration stays locked \
                 out here; use (!(pwdAccountLockedTime=000001010000Z)) for accounts an admin \
                 locked for good (the bind refuses temporary lockouts itself)"
                    .into(),
            );
        }
        // slapd's bind refuses a locked account only where the policy has pwdLockout TRUE
        // (not its default): a remembered entry is bound without the filter's search.
        let ppolicy_lock = l.enabled_filter.as_deref().is_some_and(|f| {
            f.to_ascii_lowercase()
                .replace(' ', "")
                .contains("pwdaccountlockedtime")
        });
        if ppolicy_lock && !l.entry_cache_ttl.is_zero() {
            out.push(format!(
                "ldap: entry_cache_seconds = {} with an enabled_filter on pwdAccountLockedTime: \
                 a remembered entry is bound without that search, and slapd's bind refuses \
                 a locked account only where its password policy has pwdLockout: TRUE (not \
                 the default); without it a user locked for good keeps logging in until the \
                 entry is forgotten",
                l.entry_cache_ttl.as_secs()
            ));
        }
        // ca_file is for TLS only: with no URL on ldaps:// and no StartTLS it is never read,
        // and the admin who set it took the connection for a checked one.
        let tls = l.starttls
            || l.urls
                .iter()
                .any(|u| u.to_ascii_lowercase().starts_with("ldaps://"));
        if let (Some(ca), false) = (&l.ca_file, tls) {
            out.push(format!(
                "ldap: ca_file {} is set, but no connection uses TLS (ldap:// URLs and \
                 starttls = false): it is never read; use ldaps:// URLs or starttls = true \
                 for the TLS it is meant for, or remove it",
                ca.display()
            ));
        }
        if !l.starttls {
            for url in l.urls.iter().filter(|u| cleartext_off_host(u)) {
                out.push(format!(
                    "ldap: {url} without starttls: users' passwords cross the network in clear \
                     text; use ldaps:// or starttls = true"
                ));
            }
        }
        // With an operation's or a connect's timeout not below the time a login has to
        // decide, a server that hangs gets the login refused before the next URL is asked.
        let shortest = cfg
            .clients
            .iter()
            .filter(|c| c.primary == Primary::Ldap)
            .map(|c| c.factors.request_deadline(cfg.server.request_deadline))
            .min();
        if let Some(deadline) = shortest {
            let reserve = audit_reserve(deadline);
            for (key, t) in [
                ("timeout_ms", l.op_timeout),
                ("connect_timeout_ms", l.connect_timeout),
            ] {
                if t >= deadline - reserve {
                    out.push(format!(
                        "ldap: {key} = {} is not less than the {} ms a login has to decide \
                         (the request deadline of {} ms less {} ms kept for its audit \
                         record): a directory server that hangs gets logins refused before \
                         the next URL is asked; keep it well below (a login makes up to three \
                         connects and five operations when a server hangs)",
                        t.as_millis(),
                        (deadline - reserve).as_millis(),
                        deadline.as_millis(),
                        reserve.as_millis()
                    ));
                }
            }
        }
    }
    out.extend(super::ldap_failover::file_warning(cfg));
    for u in &cfg.upstreams {
        let label = u.label();
        let users: Vec<&ClientConfig> = cfg
            .clients
            .iter()
            .filter(|c| matches!(&c.primary, Primary::Upstream(g) if *g == u.group))
            .collect();
        if users.is_empty() {
            out.push(format!(
                "{label}: no [[client]] uses {} (primary = \"upstream\"{})",
                u.section(),
                if u.group == DEFAULT_GROUP {
                    String::new()
                } else {
                    format!(", upstream = {:?}", u.group)
                }
            ));
        }
        // radmfa asking itself: every login goes round until its deadline.
        for server in &u.servers {
            let crate::config::upstream::UpstreamHost::Addr(addr) = server.host else {
                continue;
            };
            let own = cfg.server.listen.iter().any(|l| {
                *l == addr
                    || (l.port() == addr.port()
                        && l.ip().is_unspecified()
                        && l.is_ipv4() == addr.is_ipv4()
                        && addr.ip().is_loopback())
            });
            if own {
                out.push(format!(
                    "{label}: server {} is this radmfa's own [server] listen address: logins \
                     sent there come back to radmfa itself, round and round until their \
                     deadline",
                    server.name
                ));
            }
        }
        // The servers are asked one after the other; the request's deadline does not wait,
        // and a login decides by the deadline less what is kept for its audit record.
        let shortest = users
            .iter()
            .map(|c| c.factors.request_deadline(cfg.server.request_deadline))
            .min();
        let all = u.timeout * u.servers.len() as u32;
        if let Some(deadline) = shortest.filter(|d| all >= *d - audit_reserve(*d)) {
            let reserve = audit_reserve(deadline);
            out.push(format!(
                "{label}: {} server(s) x timeout_ms {} = {} ms, not less than the {} ms a \
                 login has to decide (the request deadline of {} ms less {} ms kept for its \
                 audit record): a login still waiting for a server then is refused, and the \
                 last servers may never be asked",
                u.servers.len(),
                u.timeout.as_millis(),
                all.as_millis(),
                (deadline - reserve).as_millis(),
                deadline.as_millis(),
                reserve.as_millis()
            ));
        }
        if let Some(why) = weak_secret(u.secret.expose(), false) {
            out.push(format!("{label}: shared secret {why}"));
        }
        if !u.require_message_authenticator {
            out.push(format!(
                "{label}: require_message_authenticator = false: a forged Access-Accept from \
                 the path to the upstream server passes the password check (BlastRADIUS, \
                 CVE-2024-3596); only for a server that cannot sign its replies"
            ));
        }
    }
    // The upstream server (or, for a second-factor-only client, RD Gateway's NPS) checks
    // the password of the name as typed; radmfa then looks the name up, and keys tokens and
    // groups, without the domain. In AD a UPN's prefix need not be its account's
    // sAMAccountName: jsmith@corp.example.org may be one person and the account jsmith
    // another, whose groups (exemptions), tokens, phone and remembered logins the first
    // would then get.
    let checked_elsewhere: Vec<&str> = cfg
        .clients
        .iter()
        .filter(|c| matches!(c.primary, Primary::Upstream(_)) || c.factors.second_factor_only)
        .map(|c| c.name.as_str())
        .collect();
    // Only UPN suffixes: a NetBIOS domain (CORP), what the docs advise listing, names the
    // account itself, and warning of it sent admins to change what they had right.
    let suffixes = cfg.user_names.upn_suffixes();
    if !suffixes.is_empty() && !checked_elsewhere.is_empty() {
        out.push(format!(
            "users: strip_domains lists UPN suffix(es) {} with a password checked elsewhere \
             (client(s) {}: primary = \"upstream\", or second_factor_only behind RD \
             Gateway's NPS): that server checks the name as typed (alice@{}), while radmfa \
             keys tokens (and looks up groups, exemptions and phones in the directory) on the \
             name without the domain (alice); make sure both name the same account (in \
             Active Directory a UPN's prefix may be another account's sAMAccountName: list \
             only the NetBIOS domain, CORP, whose DOMAIN\\user is the sAMAccountName), or \
             send names without the domain",
            suffixes.join(", "),
            checked_elsewhere.join(", "),
            suffixes[0]
        ));
    }
    // A threshold no one reaches turns the lockout off, and leaves six-digit codes to be
    // guessed by whoever has the password (load tests set one on purpose).
    if cfg.lockout.threshold > 20 {
        out.push(format!(
            "lockout: threshold = {}: that many wrong codes in a row before the lock give \
             whoever has a password that many guesses at a six-digit code per lock ({} in a \
             million); 3 to 10 is usual",
            cfg.lockout.threshold,
            u64::from(cfg.lockout.threshold).min(1_000_000)
        ));
    }
    // A number from the directory is only as safe as who may write it there.
    let delivers = cfg.delivery.sms.is_some() || cfg.delivery.voice.is_some();
    let from_directory: Vec<&str> = cfg
        .delivery
        .phone
        .sources
        .iter()
        .filter_map(|s| match s {
            PhoneSource::Mobile => Some("mobile"),
            PhoneSource::Telephone => Some("telephone"),
            PhoneSource::Store => None,
        })
        .collect();
    if delivers && !cfg.delivery.phone.sources_given {
        out.push(
            "phone: sources is not set, so SMS codes and calls go only to numbers stored with \
             `radmfa user set-phone` (earlier releases also took the directory's mobile and \
             telephoneNumber by default; users with only those are now refused): set \
             [phone] sources to say which"
                .into(),
        );
    }
    if delivers && cfg.delivery.phone.allowed_country_codes.is_empty() {
        out.push(
            "phone: allowed_country_codes is not set, so SMS codes and calls go to numbers in \
             any country, premium-rate and satellite ones included (SMS pumping, toll \
             fraud): list the country codes your users' phones have (and restrict the \
             provider's own geographic permissions)"
                .into(),
        );
    }
    if delivers && !from_directory.is_empty() {
        out.push(format!(
            "phone: sources lists the directory ({}): whoever can change a user's number there \
             chooses where that user's SMS codes and calls go, and with the password has both \
             factors. Active Directory lets users write their own mobile and telephoneNumber \
             by default (SELF, Write Personal Information), as do FreeIPA's self-service \
             rules; take that right away, or keep numbers in radmfa's store (user set-phone)",
            from_directory.join(", ")
        ));
    }
    // Some apps ignore algorithm, digits and period in the URI (Google's Key-Uri-Format page
    // said so of Google Authenticator for years; Microsoft Authenticator still does): tokens
    // enrolled with anything else never match there, and without --verify nobody notices
    // before the first login fails.
    let t = &cfg.totp;
    if t.algorithm != crate::store::OtpAlgorithm::Sha1 || t.digits != 6 || t.period != 30 {
        out.push(format!(
            "totp: algorithm {}, digits {} and period {} s: {}; keep the defaults, or enroll \
             with `user enroll-totp --verify` so a mismatch shows before the token is stored",
            t.algorithm.as_str(),
            t.digits,
            t.period,
            super::users::UNFOLLOWED_PARAMETERS
        ));
    }
    // OATH codes against the lockout: each guess is compared with every code the window
    // accepts, so a wide window with a short lock adds up (a 1 s lock is no lock at all).
    // Six digits, the common length; the bar, a 1 in 100 chance a day, leaves the defaults
    // (window 1, threshold 5, 15 min) well clear.
    {
        let per_day = u64::from(cfg.lockout.threshold)
            * (86_400 / cfg.lockout.duration.as_secs().max(1)).max(1);
        // A TOTP token with a learned drift is checked around now and around its drift
        // (`mfa::otp::search_steps`): up to twice the window's codes.
        let totp_codes = 2 * (2 * u64::from(cfg.totp.window) + 1);
        let hotp_codes = cfg.hotp.window + 1;
        for (what, codes) in [
            (format!("[totp] window = {}", cfg.totp.window), totp_codes),
            (format!("[hotp] window = {}", cfg.hotp.window), hotp_codes),
        ] {
            let hits = per_day.saturating_mul(codes);
            if hits.saturating_mul(100) > 1_000_000 {
                out.push(format!(
                    "lockout: {what} with threshold {} and duration_secs {}: whoever has a \
                     password gets about {per_day} guesses a day, each against up to {codes} \
                     live six-digit codes per token (a TOTP token with a learned drift is \
                     checked around it and around now), a 1 in {} chance a day; narrow the \
                     window or lengthen the lockout",
                    cfg.lockout.threshold,
                    cfg.lockout.duration.as_secs(),
                    (1_000_000 / hits).max(1),
                ));
            }
        }
    }
    // Short SMS codes against the lockout: whoever has a password gets `threshold` guesses
    // per lock, a lock lasts `duration`, so that many guesses a day, each 1 in 10^length.
    if let Some(sms) = &cfg.delivery.sms {
        let per_day = u64::from(cfg.lockout.threshold)
            * (86_400 / cfg.lockout.duration.as_secs().max(1)).max(1);
        let space = 10u64.saturating_pow(sms.code_length);
        if per_day.saturating_mul(1000) > space {
            out.push(format!(
                "sms: code_length = {} with [lockout] threshold {} and duration_secs {}: \
                 whoever has a password gets about {per_day} guesses a day at a \
                 {}-digit code, a 1 in {} chance a day; {}",
                sms.code_length,
                cfg.lockout.threshold,
                cfg.lockout.duration.as_secs(),
                sms.code_length,
                (space / per_day).max(1),
                // The shortest length that would do with this lockout, if one up to the
                // longest allowed (10) does.
                match (sms.code_length + 1..=10)
                    .find(|l| per_day.saturating_mul(1000) <= 10u64.pow(*l))
                {
                    Some(l) => format!("use {l} digits or more, or a longer lockout"),
                    None => "lower the threshold or lengthen the lockout".to_string(),
                }
            ));
        }
    }
    if let crate::config::StoreConfig::Postgres { settings, .. } = &cfg.store {
        out.extend(settings.unencoded_warning());
        if let Ok(options) = settings.connect_options() {
            use sqlx::postgres::PgSslMode;
            let host = options.get_host();
            let local = pg_host_is_local(host);
            let mode = options.get_ssl_mode();
            if !local && matches!(mode, PgSslMode::Require) {
                // sqlx checks no certificate at all under require (libpq would, with a
                // root certificate).
                out.push(format!(
                    "store: sslmode {mode:?} to {host}: the server's certificate is not \
                     checked at all, so whoever is on the path can pose as the server (and \
                     replay codes or lift lockouts there); use sslmode = \"verify-full\" \
                     with ssl_root_cert"
                ));
            }
            if !local && matches!(mode, PgSslMode::VerifyCa) {
                // verify-ca is meant to check no name, and with the system's roots trusted
                // any publicly issued certificate would pass. sqlx 0.8.6 checks the name
                // anyway (its verifier lets through only the error rustls gave for a wrong
                // name before 0.23.46 renamed it: sqlx issue #3793), so a certificate made
                // for a DNS name, reached by address, fails as under verify-full (red team;
                // said here, since the docs had promised otherwise).
                out.push(format!(
                    "store: sslmode {mode:?} to {host}: verify-ca is meant to leave the \
                     server's name unchecked, so that any certificate from a trusted CA \
                     passes; this release checks the name anyway, as verify-full does (a \
                     certificate not naming {host} is refused). Say sslmode = \
                     \"verify-full\", with ssl_root_cert"
                ));
            }
            if !local
                && matches!(
                    mode,
                    PgSslMode::Disable | PgSslMode::Allow | PgSslMode::Prefer
                )
            {
                out.push(format!(
                    "store: sslmode {mode:?} to {host}: whoever is on the path can read the \
                     connection (seeds stay sealed; user names, audit records and the database \
                     password do not) or pose as the server; use sslmode = \"verify-full\" \
                     with ssl_root_cert"
                ));
            }
        }
    }
    // conf/radmfa.service stops the service with SIGKILL 15 s after SIGTERM: held logins
    // still waiting then lose their replies and audit records.
    if cfg.server.shutdown_grace >= Duration::from_secs(15) {
        out.push(format!(
            "server: shutdown_grace_ms = {} is not below the shipped unit's TimeoutStopSec=15, \
             which kills radmfa first; raise TimeoutStopSec with it (systemctl edit radmfa)",
            cfg.server.shutdown_grace.as_millis()
        ));
    }
    out.extend(held_calls_warning(cfg));
    if let Some(w) = grace_below_deadline(cfg) {
        out.push(w);
    }
    // NPS forwarding a request to a remote RADIUS server group evaluates none of its own
    // network policies, and RD Gateway's connection policies (RD CAPs) are such policies:
    // their user-group conditions no longer apply once radmfa answers.
    for c in cfg
        .clients
        .iter()
        .filter(|c| c.factors.second_factor_only && c.groups.allow.is_empty())
    {
        out.push(format!(
            "client {:?}: second_factor_only without allow_groups: behind RD Gateway, NPS \
             forwards the request to radmfa without evaluating its network policies, so the \
             RD CAP's user groups no longer limit who connects; copy them into allow_groups \
             (docs/rd-gateway.md)",
            c.name
        ));
    }
    // Only the approval call can finish a login without a prompt or a password to carry a
    // code (pipeline::rdg): other methods listed there are never offered.
    for c in cfg.clients.iter().filter(|c| c.factors.second_factor_only) {
        let unused: Vec<&str> = c
            .factors
            .methods
            .iter()
            .filter(|m| **m != crate::mfa::method::Method::Voice)
            .map(|m| m.as_str())
            .collect();
        if !unused.is_empty() {
            out.push(format!(
                "client {:?}: methods lists {} beside voice, but a second_factor_only client \
                 only calls (there is no prompt, and no password field to carry a code)",
                c.name,
                unused.join(", ")
            ));
        }
    }
    // An upstream server that knows a NAS's secret can forge that NAS's requests, and the
    // other way round.
    for u in &cfg.upstreams {
        for c in cfg
            .clients
            .iter()
            .filter(|c| crate::radius::crypto::ct_eq(c.secret.expose(), u.secret.expose()))
        {
            out.push(format!(
                "{}: the same shared secret as client {:?}: whoever holds one can forge the \
                 other's RADIUS traffic; give each its own",
                u.label(),
                c.name
            ));
        }
    }
    // No bind for such a client: a disabled or expired account still finds its entry, and
    // gets the call, unless the search itself leaves it out.
    let without_bind: Vec<&str> = cfg
        .clients
        .iter()
        .filter(|c| c.factors.second_factor_only)
        .map(|c| c.name.as_str())
        .collect();
    if !without_bind.is_empty()
        && cfg
            .ldap
            .as_ref()
            .is_some_and(|l| l.enabled_filter.is_none())
    {
        out.push(format!(
            "ldap: no enabled_filter beside second_factor_only client(s) {}: radmfa makes no \
             bind for them (the gateway checked the password), so disabled and expired \
             accounts are found, and called, unless enabled_filter leaves them out (Active \
             Directory's is in docs/rd-gateway.md)",
            without_bind
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if cfg.delivery.voice.is_none() {
        for c in cfg.clients.iter().filter(|c| c.factors.second_factor_only) {
            out.push(format!(
                "client {:?}: second_factor_only without a [voice] section: only members of \
                 exempt_groups (and exempt_networks, remembered logins) get in; everyone else \
                 is refused, as only a held call can finish such a login",
                c.name
            ));
        }
        // Held calls stretch a client's deadline to its budget, with nothing to call with:
        // every login gets the longer deadline, and a call login is refused.
        let holds = |c: &&ClientConfig| {
            c.factors.voice_mode == crate::config::delivery::VoiceMode::Hold
                && c.factors.methods.contains(&Method::Voice)
                && !c.factors.second_factor_only
        };
        for c in cfg.clients.iter().filter(holds) {
            out.push(format!(
                "client {:?}: voice_mode = \"hold\" without a [voice] section: no call can \
                 be placed (a user whose method is voice is refused), yet the client's \
                 requests may run its voice_budget_secs ({} s) instead of request_deadline_ms; \
                 add [voice] or take voice_mode out",
                c.name,
                c.factors.voice_budget.as_secs()
            ));
        }
    }
    if cfg.radsec.is_none() {
        for c in cfg.clients.iter().filter(|c| c.transport.radsec()) {
            out.push(format!(
                "client {:?}: it is for RadSec (radsec_name or transport) but there is no \
                 [radsec] section: {}",
                c.name,
                if c.transport.udp() {
                    "it gets requests over UDP only"
                } else {
                    "no request can reach it"
                }
            ));
        }
    } else if let Some(radsec) = &cfg.radsec {
        use crate::clock::Clock;
        out.extend(crate::server::cert_dates::warnings(
            radsec,
            crate::clock::SystemClock.now(),
        ));
        for ca in crate::server::radsec::cas_ring_cannot_verify_with(&radsec.ca_file) {
            out.push(format!(
                "radsec.ca_file: the CA {ca}: radmfa's TLS cannot verify what it signs, so \
                 every NAS certificate it issued is refused at the handshake; {}",
                crate::server::radsec::CAS_RING_VERIFIES
            ));
        }
        for c in cfg
            .clients
            .iter()
            .filter(|c| c.transport.radsec() && c.radsec_name.is_none())
        {
            out.push(format!(
                "client {:?}: RadSec without radsec_name: any certificate from radsec.ca_file \
                 is let in from its addresses; set radsec_name to the NAS's certificate name",
                c.name
            ));
        }
    }
    if let Some(m) = &cfg.metrics {
        if !m.listen.ip().is_loopback() {
            out.push(format!(
                "metrics: listen = {} is reachable from other hosts: keep the port where only \
                 your monitoring reaches it (radmfa_lockouts_total rises only after a right \
                 password, so whoever can read it and send logins can test guessed \
                 passwords; docs/operations.md)",
                m.listen
            ));
        }
    }
    if let Some(cb) = &cfg.delivery.callbacks {
        if cb.public_url.starts_with("http://") {
            out.push(format!(
                "callbacks: public_url {} is plain HTTP: the provider's signed callbacks, and \
                 the call decisions in them, cross the internet in clear text; put TLS in front",
                cb.public_url
            ));
        }
    }
    // The provider's API carries its credentials (basic or bearer, Twilio's token) and the
    // one-time codes in the texts.
    let providers = [
        cfg.delivery
            .twilio
            .as_ref()
            .map(|t| ("twilio.api_url", t.api_url.as_str())),
        cfg.delivery
            .http_sms
            .as_ref()
            .map(|h| ("http_sms.url", h.url.as_str())),
    ];
    for (key, url) in providers.into_iter().flatten() {
        if scheme_off_host("http://", url) {
            out.push(format!(
                "{key} is plain HTTP to another host: the provider's credentials and the \
                 one-time codes in the texts cross the network in clear text; use https://"
            ));
        }
    }
    out.extend(delivery_time_warnings(cfg));
    for (i, c) in cfg.clients.iter().enumerate() {
        // A RadSec-only entry's secret is never used (TLS uses "radsec"): nothing to warn.
        let udp = c.transport.udp();
        let loopback = c.networks.iter().all(|n| n.addr().is_loopback());
        let weak = weak_secret(c.secret.expose(), loopback).filter(|_| udp);
        let shared_with: Vec<&str> = cfg.clients[..i]
            .iter()
            .filter(|o| udp && o.transport.udp())
            .filter(|o| crate::radius::crypto::ct_eq(o.secret.expose(), c.secret.expose()))
            .map(|o| o.name.as_str())
            .collect();
        let mut warn = |what: String| out.push(format!("client {:?}: {what}", c.name));
        if let Some(why) = weak {
            warn(format!("shared secret {why}"));
        }
        if !shared_with.is_empty() {
            warn(format!(
                "the same shared secret as {}: one NAS's secret, leaked, opens the others \
                 (one NAS or proxy pair reaching radmfa from several addresses belongs in one \
                 entry listing them all: a login's second round may come from another \
                 of them)",
                shared_with
                    .iter()
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let f = &c.factors;
        // Every second factor the client lists unusable here: every user who needs one is
        // refused. The summary line's "(no [voice] section)" said it, among notes that
        // every sample config shows (red team: a silent `ok`).
        if !f.methods.is_empty() && !f.methods.iter().any(|m| usable_method(cfg, c, *m)) {
            warn(format!(
                "none of its methods ({}) can work here (see its line above), so every user \
                 who needs a second factor on it is refused: add the [sms] or [voice] section \
                 they need, or totp to methods",
                f.methods
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        // Over RadSec alone there is no one in the path to forge a packet: nothing to warn.
        if !c.require_message_authenticator && c.transport.udp() {
            warn(
                "require_message_authenticator = false: its Access-Requests are not protected \
                 against BlastRADIUS (CVE-2024-3596); only for a NAS that cannot send it"
                    .into(),
            );
            // Meant for one NAS that cannot sign: on a range, every host in it may send
            // unsigned requests (docs/nas.md: not on a shared range).
            let ranges: Vec<String> = c
                .networks
                .iter()
                .filter(|n| n.prefix_len() < n.max_prefix_len())
                .map(|n| n.to_string())
                .collect();
            if !ranges.is_empty() {
                warn(format!(
                    "require_message_authenticator = false on a range ({}): every host in it \
                     may send unsigned requests; give the NAS that cannot sign an entry of \
                     its own address",
                    ranges.join(", ")
                ));
            }
            // The station these decide by is an attribute of the request, which nothing
            // protects here: anyone on the path who knows only the password rewrites
            // Calling-Station-Id into an exempt network or a remembered station, and the
            // second factor is skipped. That is request tampering, which signing blocks.
            let by_station: Vec<&str> = [
                (!f.exempt_networks.is_empty(), "exempt_networks"),
                (f.remember.is_some(), "remember_second_factor_secs"),
            ]
            .into_iter()
            .filter_map(|(on, key)| on.then_some(key))
            .collect();
            if !by_station.is_empty() {
                warn(format!(
                    "{} with require_message_authenticator = false: the station they go by \
                     (Calling-Station-Id) can be rewritten on the path by anyone who knows \
                     the password, and the second factor skipped; sign the requests, or \
                     leave {} off this entry",
                    by_station.join(" and "),
                    if by_station.len() > 1 { "them" } else { "it" }
                ));
            }
            // NPS adds Proxy-State to what it forwards, and Proxy-State without
            // Message-Authenticator is refused whatever this setting says.
            if f.second_factor_only {
                warn(
                    "second_factor_only with require_message_authenticator = false: RD \
                     Gateway's NPS forwards with Proxy-State, which is refused unsigned \
                     whatever this setting says; tick \"Request must include message \
                     authenticator attribute\" on its remote RADIUS server and leave the \
                     setting on"
                        .into(),
                );
            }
        }
        if c.no_factor == NoFactorPolicy::Allow {
            warn(if c.otp_mode == crate::config::OtpMode::CodeOnly {
                // The NAS checked the password; radmfa sees only digits.
                "no_factor = \"allow\": users with no second factor get in with their name \
                 and any 4 to 10 digits, on the NAS's password check alone"
                    .into()
            } else if f.second_factor_only {
                // The gateway sends no password: its own check is all there is.
                "no_factor = \"allow\": users with no second factor get in on the gateway's \
                 own check alone (the password or smart card it checked)"
                    .into()
            } else {
                "no_factor = \"allow\": users with no second factor get in with the password".into()
            });
            // A pilot's surprise: most directory entries carry a mobile, and a user the
            // client could text is refused rather than let in. The login's own rule
            // (`pipeline::login`, as `check_refusal` applies it): texts or calls this client
            // could use for a user with a number, and a directory attribute the sources
            // leave out.
            let could_text = !crate::mfa::method::available(
                &f.methods,
                crate::mfa::method::Capabilities {
                    has_token: false,
                    has_phone: true,
                    sms_configured: cfg.delivery.sms.is_some(),
                    voice_configured: cfg.delivery.voice.is_some(),
                    can_prompt: matches!(c.otp_mode, OtpMode::Challenge),
                    holds_calls: f.voice_mode == VoiceMode::Hold,
                },
            )
            .is_empty();
            let sources = &cfg.delivery.phone.sources;
            // The attributes left out, by name: "mobile or telephoneNumber" was said with
            // mobile listed.
            let left_out: Vec<&str> = [
                (PhoneSource::Mobile, "mobile"),
                (PhoneSource::Telephone, "telephoneNumber"),
            ]
            .into_iter()
            .filter(|(s, _)| !sources.contains(s))
            .map(|(_, name)| name)
            .collect();
            if could_text && !left_out.is_empty() {
                warn(format!(
                    "no_factor = \"allow\" does not let in a user whose directory entry has \
                     a number in an attribute [phone] sources leaves out ({}): such a user, \
                     who could get texts or calls here, is refused (not taken for one without \
                     a second factor); store their numbers (user set-phone) or list the \
                     attribute in [phone] sources",
                    left_out.join(" or ")
                ));
            }
        }
        if f.provider_failure == ProviderFailure::Allow {
            // A second-factor-only entry (RD Gateway) checks no password: the call is all
            // radmfa asks for, and "the password alone" promised a check that is not made.
            warn(if f.second_factor_only {
                "provider_failure = \"allow\": while the call provider fails, nothing radmfa \
                 checks gets in: the gateway's own check (the password or smart card) is all"
                    .into()
            } else {
                "provider_failure = \"allow\": while the SMS/call provider fails, the password \
                 alone gets in"
                    .into()
            });
        }
        if f.app_passwords {
            warn("app_passwords = true: an app password replaces both factors".into());
        }
        // An app password is checked by radmfa alone: the upstream server is not asked, so
        // its policy's refusals do not apply and its attributes are not passed on.
        if let (true, Primary::Upstream(group)) = (f.app_passwords, &c.primary) {
            if cfg
                .upstream_group(group)
                .is_some_and(|u| !u.pass_through.is_empty())
            {
                warn(
                    "app_passwords = true with an upstream server whose attributes are passed \
                     through (pass_through): a login with an app password does not ask that \
                     server, so its Accept carries none of them (the NAS applies its default \
                     policy) and the server's own refusals do not apply"
                        .into(),
                );
            }
        }
        // An app password login binds no user, so only enabled_filter keeps a disabled
        // directory account from logging in with one (Active Directory refuses a disabled
        // account's bind, and that is all that stops it on the password path). RD Gateway
        // (second_factor_only) checked the password, a disabled account's included, itself.
        let no_enabled_filter = cfg
            .ldap
            .as_ref()
            .is_some_and(|l| l.enabled_filter.is_none());
        if f.app_passwords && no_enabled_filter {
            warn(
                "app_passwords = true without [ldap] enabled_filter: a login with an app \
                 password binds no user, so a disabled directory account keeps logging in \
                 with its app passwords"
                    .into(),
            );
        }
        for (i, net) in c.networks.iter().enumerate() {
            // `0.0.0.0` or `::` alone: no request comes from there, and it reads like a
            // short way to write "everyone".
            if net.addr().is_unspecified() && net.prefix_len() == net.max_prefix_len() {
                warn(format!(
                    "address \"{}\": no request comes from the unspecified address, so this \
                     matches nothing (every address is {}/0, which is seldom meant)",
                    net.addr(),
                    net.addr()
                ));
                // Nothing more to say of an address no NAS has.
                continue;
            }
            // Within one entry (across entries is refused): a repeat, or an address inside
            // a wider network of the entry, adds nothing.
            let covered = c
                .networks
                .iter()
                .enumerate()
                .find(|&(j, n)| j != i && n.contains(net) && (n != net || j < i));
            match covered {
                Some((_, same)) if same == net => {
                    warn(format!("address {net}: listed twice in this entry"))
                }
                Some((_, wider)) => {
                    warn(format!("address {net}: already in {wider}, in this entry"))
                }
                None => {}
            }
            if net.prefix_len() == 0 {
                warn(format!(
                    "address {net}: every address on the internet may use this client's \
                     shared secret"
                ));
            } else if net.prefix_len() < widest_usual_prefix(net) {
                // 0.0.0.0/1 and 128.0.0.0/1 are the internet in two halves. The message
                // names the family's own threshold: fd00::/8 is a /8 and still warned of.
                warn(format!(
                    "address {net}: a network wider than a /{} may use this client's shared \
                     secret",
                    widest_usual_prefix(net)
                ));
            }
            if c.transport.udp() {
                let listen = &cfg.server.listen;
                if let Some(w) = super::review_listen::unreachable("server.listen", listen, net) {
                    warn(w);
                }
            }
            if let (Some(r), true) = (&cfg.radsec, c.transport.radsec()) {
                if let Some(w) = super::review_listen::unreachable("radsec.listen", &r.listen, net)
                {
                    warn(w);
                }
            }
        }
        // An entry for RadSec only does not keep its host off UDP: a UDP request from it
        // finds the broader UDP entry around it (the lookup is per transport), and is
        // served there, with that entry's secret and policy.
        if c.transport == crate::config::Transport::Radsec {
            for net in &c.networks {
                // The entry the lookup would take: the most specific UDP network holding it.
                let around = cfg
                    .clients
                    .iter()
                    .filter(|u| u.name != c.name && u.transport.udp())
                    .flat_map(|u| u.networks.iter().map(move |n| (u, n)))
                    .filter(|(_, n)| n.contains(net))
                    .max_by_key(|(_, n)| n.prefix_len());
                if let Some((u, _)) = around {
                    warn(format!(
                        "address {net} is for RadSec only, but lies within client {:?}'s \
                         UDP range: a UDP request from it is still served, under {:?}'s \
                         secret and policy (split that range to keep it off UDP, or have \
                         that entry require Message-Authenticator)",
                        u.name, u.name
                    ));
                }
            }
        }
        for (attribute, list) in c.accept_attributes.repeated() {
            let list = if list == "accept_attributes" {
                list.to_string()
            } else {
                format!("the group_attributes rule for {list}")
            };
            warn(format!(
                "{list} sets {attribute} twice: an Accept carries one value of it, the first, \
                 and the later one is dropped"
            ));
        }
        if let Some(w) = attributes_may_not_fit(c) {
            warn(w);
        }
        for (attribute, first, later) in c.accept_attributes.contested() {
            warn(format!(
                "group_attributes: {attribute} is set by the rules for both {first} and \
                 {later}: a user in both groups gets only the first rule's ({first})"
            ));
        }
        // On a code-only entry radmfa sees no password: what lets an exempt user in is the
        // NAS's check, and any digits typed here. On a second-factor-only one (RD Gateway)
        // it sees none either, and asks for nothing else: no call is made.
        let alone = if f.second_factor_only {
            "nothing radmfa checks: no call is made, and the gateway's own check (the password \
             or smart card) is all"
        } else if c.otp_mode == crate::config::OtpMode::CodeOnly {
            "their name and any 4 to 10 digits (the NAS checks the password)"
        } else {
            "the password alone"
        };
        if !c.groups.exempt.is_empty() {
            warn(format!(
                "exempt_groups: {} group(s) log in with {alone}",
                c.groups.exempt.len()
            ));
        }
        for n in &f.exempt_networks {
            // A /8 or wider is most of a continent, or everyone: almost surely a mistake.
            let wide = n.prefix_len() <= if n.addr().is_ipv4() { 8 } else { 32 };
            warn(format!(
                "exempt_networks: logins from {n} need {alone}{}",
                if wide {
                    " (that is a very wide network)"
                } else {
                    ""
                }
            ));
        }
        if let Some(p) = f.remember {
            warn(format!(
                "remember_second_factor_secs = {}: after a second factor, {} for that long",
                p.as_secs(),
                if f.second_factor_only {
                    "the user needs no factor at all behind this gateway"
                } else {
                    "the same station needs only the password"
                }
            ));
        }
    }
    out
}

/// The widest client network `config check` takes without a warning: a /8 for IPv4
/// (10.0.0.0/8, all of a private range, is a common choice), a /16 for IPv6, where even a
/// site's own allocation is a /48 and fd00::/8 is every unique-local network there is.
fn widest_usual_prefix(net: &ipnet::IpNet) -> u8 {
    if net.addr().is_ipv4() {
        8
    } else {
        16
    }
}

/// A held login keeps its request, and its `[server] max_in_flight` slot, for as long as its
/// phone rings, up to the client's budget: while they last, the other clients' requests are
/// dropped as overloaded. What bounds the calls of one client at once is its send limit,
/// `max_per_nas` calls within the window (a budget is at most 120 s, the window at least
/// that in practice): said when the clients that hold calls could together take every
/// slot.
fn held_calls_warning(cfg: &Config) -> Option<String> {
    cfg.delivery.voice.as_ref()?;
    let holding = cfg
        .clients
        .iter()
        .filter(|c| {
            c.factors.voice_mode == VoiceMode::Hold && c.factors.methods.contains(&Method::Voice)
        })
        .count();
    let per_nas = cfg.delivery.send_limits.max_per_nas as usize;
    let held = holding.saturating_mul(per_nas);
    (holding > 0 && held >= cfg.server.max_in_flight).then(|| {
        format!(
            "server: max_in_flight = {} while held calls can keep up to {held} requests in \
             flight ({holding} client(s) with voice_mode = \"hold\", each up to its send \
             limit max_per_nas = {per_nas}): ringing phones alone could take every slot, and \
             every other request is then dropped as overloaded; raise max_in_flight above \
             {held}, or lower max_per_nas",
            cfg.server.max_in_flight
        )
    })
}

/// A client whose accept_attributes and group_attributes together may not fit in one
/// Access-Accept: a user in enough of the groups is refused at every login (the Accept is
/// never sent without some of them). An upper bound: all of them, as a user in every
/// group would get them (less the single-valued ones a rule replaces).
fn attributes_may_not_fit(c: &ClientConfig) -> Option<String> {
    use crate::radius::reply::{wire_len, ACCEPT_ROOM};
    let rules = &c.accept_attributes;
    if rules.by_group.is_empty() {
        return None;
    }
    let all = wire_len(&rules.always)
        + rules
            .by_group
            .iter()
            .map(|(_, a)| wire_len(a))
            .sum::<usize>();
    (all > ACCEPT_ROOM).then(|| {
        format!(
            "accept_attributes and group_attributes together take up to {all} octets in a \
             packet, more than the {ACCEPT_ROOM} an Access-Accept has room for: a user in \
             enough of the groups is refused at every login (an Accept is not sent without \
             some of its attributes); shorten them, or split the groups over clients"
        )
    })
}

/// The shared secrets radmfa's own example configs carry (conf/*.toml; a unit test reads
/// them there, so a new sample cannot slip past). Long enough to pass the length check, and
/// published with the source: a sample installed with only the addresses changed lets
/// anyone forge its NAS's requests and read its users' passwords.
const SAMPLE_SECRETS: [&str; 6] = [
    "a-long-random-shared-secret",
    "another-long-random-secret",
    "rd-gateway-long-random-secret",
    "shared-with-the-upstream-server",
    "demo-shared-secret",
    "demo-inline-secret",
];

/// Why a shared secret is weak, if it is: short (RFC 2865 §3 and the BlastRADIUS advice ask
/// for 16 or more random characters; a captured request lets a short one be found offline),
/// a well-known default, or one of radmfa's own samples. `loopback` says the secret is used
/// only by this host (the demo's clients): a published sample is no weaker there than the
/// host's own accounts, so it is not warned about.
fn weak_secret(secret: &[u8], loopback: bool) -> Option<String> {
    if !loopback && SAMPLE_SECRETS.iter().any(|k| k.as_bytes() == secret) {
        return Some(
            "is the one in radmfa's example configs, published with its source: anyone may \
             use it; make one of your own (e.g. `openssl rand -base64 24`)"
                .into(),
        );
    }
    const KNOWN: [&str; 6] = [
        "testing123",
        "changeme",
        "change-me",
        "secret",
        "radius",
        "password",
    ];
    if KNOWN
        .iter()
        .any(|k| k.as_bytes().eq_ignore_ascii_case(secret))
    {
        return Some("is a well-known default: anyone may guess it".into());
    }
    // FreeRADIUS and shells expand these; radmfa takes the text as it is, and every NAS
    // then fails its Message-Authenticator with no word of why.
    if looks_like_a_reference(secret) {
        return Some(
            "looks like a variable reference or a template's placeholder, which radmfa does \
             not expand, in the config or in the file secret_file names: the text itself is \
             the secret (render the template, or put the secret itself in secret_file)"
                .into(),
        );
    }
    (secret.len() < 16).then(|| {
        format!(
            "is {} bytes long: use 16 or more random characters (a captured request lets a \
             short one be found offline)",
            secret.len()
        )
    })
}

/// Whether a secret reads like `${NAS_SECRET}`, `$ENV{X}`, `env:X` or `$LDAP_PW`: a
/// reference that FreeRADIUS or a shell would expand, and radmfa takes as the text itself.
/// Or a template's placeholder left in a file copied instead of rendered: Jinja's
/// (Ansible, Salt) `{{ nas_secret }}`, ERB's `<%= @secret %>`, Puppet's `%{NAS_SECRET}`
/// (the first is 16 bytes, long enough to pass unsaid: red team).
fn looks_like_a_reference(secret: &[u8]) -> bool {
    let trimmed = secret.trim_ascii();
    (trimmed.starts_with(b"{{") && trimmed.ends_with(b"}}"))
        || (trimmed.starts_with(b"<%") && trimmed.ends_with(b"%>"))
        || (trimmed.starts_with(b"%{") && trimmed.ends_with(b"}"))
        || secret.starts_with(b"${")
        || secret.starts_with(b"$ENV{")
        || secret.starts_with(b"env:")
        || (secret.len() > 1
            && secret[0] == b'$'
            && secret[1..]
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_'))
}

/// The SMS is sent (and a call placed) before the Access-Challenge goes out, after the
/// password check: a provider timeout that alone takes the whole time a login has to
/// decide refuses every such login whose provider is slow. (The directory's timeouts come
/// on top; at their defaults the sum is over the deadline already, which is fine: they are
/// bounds for a failing server, not what a working one takes.)
fn delivery_time_warnings(cfg: &Config) -> Vec<String> {
    use crate::config::delivery::SmsProvider;
    let d = &cfg.delivery;
    // Calls go through Twilio; SMS through Twilio or the generic HTTP gateway.
    let twilio = d.twilio.as_ref().map(|t| t.timeout);
    let sms = match d.sms.as_ref().map(|s| s.provider) {
        Some(SmsProvider::Http) => d.http_sms.as_ref().map(|h| h.timeout),
        Some(SmsProvider::Twilio) => twilio,
        None => None,
    };
    let mut out = Vec::new();
    out.extend(d.twilio.as_ref().and_then(placeholder_twilio));
    if let Some(v) = &d.voice {
        out.extend(greeting_warning(&v.greeting, &v.fraud_digits));
    }
    // Answered at the last ring, the callee still hears the greeting and has the keypad's
    // wait to press #: how long a call may need to approve. An approval after the call's
    // lifetime, or a held login's budget, does not count.
    let answer = d
        .voice
        .as_ref()
        .map(|v| v.ring_timeout + Duration::from_secs(crate::mfa::voice::GATHER_TIMEOUT_SECS + 5));
    if let (Some(v), Some(answer)) = (&d.voice, answer) {
        if answer > v.call_lifetime {
            out.push(format!(
                "voice: call_lifetime_secs = {} leaves a call answered at the last ring \
                 (ring_timeout_secs = {}) too little time: the greeting and the keypad's {} s \
                 wait come after it, and a # pressed after the lifetime does not count; make \
                 it at least {}",
                v.call_lifetime.as_secs(),
                v.ring_timeout.as_secs(),
                crate::mfa::voice::GATHER_TIMEOUT_SECS,
                answer.as_secs()
            ));
        }
    }
    for c in &cfg.clients {
        let methods = &c.factors.methods;
        // A held login is refused at its budget: a call answered near the last ring still
        // has the greeting and the keypad's wait ahead, and its # would come too late.
        if let (Some(v), Some(answer)) = (&d.voice, answer) {
            if c.factors.voice_mode == crate::config::delivery::VoiceMode::Hold
                && methods.contains(&Method::Voice)
                && c.factors.voice_budget < answer
            {
                // voice_budget_secs goes up to 120: past that, only a shorter ring helps
                // (asking for a budget over 120 asked for one the config then refused).
                let longest = Duration::from_secs(crate::config::delivery::MAX_VOICE_BUDGET_SECS);
                let fix = if answer <= longest {
                    format!("make it at least {}", answer.as_secs())
                } else {
                    format!(
                        "set voice_budget_secs = {1} (its most) and lower [voice] \
                         ring_timeout_secs to {0} or less",
                        v.ring_timeout
                            .as_secs()
                            .saturating_sub((answer - longest).as_secs()),
                        longest.as_secs()
                    )
                };
                out.push(format!(
                    "client {:?}: voice_budget_secs = {} refuses a held login whose call is \
                     answered at the last ring (ring_timeout_secs = {}) before its # can come \
                     (the greeting and the keypad's {} s wait follow the answer), and the \
                     phone rings on; {fix}",
                    c.name,
                    c.factors.voice_budget.as_secs(),
                    v.ring_timeout.as_secs(),
                    crate::mfa::voice::GATHER_TIMEOUT_SECS,
                ));
            }
        }
        let voice = twilio.filter(|_| methods.contains(&Method::Voice));
        let sms = sms.filter(|_| methods.contains(&Method::Sms));
        let Some(provider) = voice.max(sms) else {
            continue;
        };
        let deadline = c.factors.request_deadline(cfg.server.request_deadline);
        let decide = deadline - audit_reserve(deadline);
        if provider >= decide {
            out.push(format!(
                "client {:?}: the SMS or call goes out before the Access-Challenge, and the \
                 provider's timeout_ms ({} ms) is not less than the {} ms a login has to \
                 decide (request deadline {} ms less {} ms for its audit record): a slow \
                 provider gets the login refused before it is given up on; lower the \
                 provider's timeout_ms",
                c.name,
                provider.as_millis(),
                decide.as_millis(),
                deadline.as_millis(),
                (deadline - decide).as_millis()
            ));
        }
    }
    out
}

/// The sample config's Twilio credentials, left in: every SMS and call fails at the first
/// login (each user refused, or let in on the password with `provider_failure = "allow"`),
/// and nothing said it before.
fn placeholder_twilio(t: &crate::config::delivery::TwilioConfig) -> Option<String> {
    let sid = t.account_sid.trim_start_matches("AC");
    let placeholder_sid = !sid.is_empty() && sid.bytes().all(|b| b == b'0');
    let placeholder_token = t.auth_token.expose_str() == Some("change-me");
    (placeholder_sid || placeholder_token).then(|| {
        "twilio: account_sid or auth_token is still the sample config's placeholder: every \
         SMS and call will fail and such logins be refused; fill in your account's values, \
         or remove [sms], [voice], [twilio] and [callbacks]"
            .to_string()
    })
}

/// A greeting that tells the callee to press keys other than `fraud_digits` (Azure MFA
/// Server's "press zero" kept beside a site's own code, or a greeting copied from an older
/// radmfa.toml): a victim who follows it only declines the call. No block, no fraud record,
/// and the attacker is free to try again. Or one that never names `fraud_digits` at all
/// ("Press pound to approve."): the victim of a fatigue attack is never told how to report
/// it, with the same outcome.
fn greeting_warning(greeting: &str, fraud_digits: &str) -> Option<String> {
    let key = |w: &str| -> Option<char> {
        Some(match w {
            "0" | "zero" => '0',
            "1" | "one" => '1',
            "2" | "two" => '2',
            "3" | "three" => '3',
            "4" | "four" => '4',
            "5" | "five" => '5',
            "6" | "six" => '6',
            "7" | "seven" => '7',
            "8" | "eight" => '8',
            "9" | "nine" => '9',
            "*" | "star" => '*',
            _ => return None,
        })
    };
    // A sentence or clause ends a run of keys ("press 9. One of our staff ..." is 9).
    let lower = greeting
        .to_lowercase()
        .replace(['.', ',', ';', ':', '!', '?'], " | ");
    // Words, and keys written as digits ("press 0", "press 9*"), split apart.
    let words: Vec<String> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '*' || c == '|'))
        .filter(|w| !w.is_empty())
        .flat_map(|w| {
            if w.chars().all(|c| c.is_ascii_digit() || c == '*') {
                w.chars().map(String::from).collect::<Vec<_>>()
            } else {
                vec![w.to_string()]
            }
        })
        .collect();
    // What tells a callee to press keys, and the words that may stand between it and them
    // ("press the zero key", "dial 0", "key in 9").
    const VERBS: [&str; 7] = ["press", "enter", "dial", "type", "hit", "push", "tap"];
    const FILLERS: [&str; 8] = [
        "the", "in", "key", "keys", "button", "buttons", "number", "digit",
    ];
    // The run of keys from `words` on ("zero nine", "9 *", "zero twice").
    let keys_in = |words: &mut dyn Iterator<Item = &String>| {
        let mut keys = String::new();
        for w in words {
            match key(w) {
                Some(k) => keys.push(k),
                // "press zero twice" is 00.
                None if w == "twice" => {
                    if let Some(last) = keys.chars().last() {
                        keys.push(last);
                    }
                    break;
                }
                None => break,
            }
        }
        keys
    };
    let mut told = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let key_in = w == "key" && words.get(i + 1).is_some_and(|n| n == "in");
        if !(VERBS.contains(&w.as_str()) || key_in) {
            continue;
        }
        let keys = keys_in(
            &mut words[i + 1..]
                .iter()
                .skip_while(|w| FILLERS.contains(&w.as_str())),
        );
        if !keys.is_empty() && keys != fraud_digits {
            told.push(keys);
        }
    }
    if !told.is_empty() {
        return Some(format!(
            "voice: greeting tells the callee to press {} but fraud_digits = {fraud_digits:?}: \
             a victim who follows it only declines the call (no block, no fraud record); make \
             the greeting name fraud_digits, or leave greeting out to have them spoken",
            told.join(", ")
        ));
    }
    // Named anywhere, with or without a "press" ("To report it: zero, then pound."), is
    // enough: the callee hears the keys.
    let named = (0..words.len())
        .filter(|&i| i == 0 || key(&words[i - 1]).is_none())
        .any(|i| keys_in(&mut words[i..].iter()) == fraud_digits);
    (!named).then(|| {
        format!(
            "voice: greeting never names fraud_digits = {fraud_digits:?}: the victim of a \
             fatigue attack is not told how to report the call (no block, no fraud record); \
             make the greeting tell the callee to press them (\"press zero, then pound\"), or \
             leave greeting out to have them spoken"
        )
    })
}

/// An `ldap://` URL to another machine: a bind there sends the password as it is.
fn cleartext_off_host(url: &str) -> bool {
    scheme_off_host("ldap://", url)
}

/// Whether a PostgreSQL host (as sqlx gives it back) is this one: a socket directory,
/// `localhost`, or a loopback address, IPv4-mapped ones too. An IPv6 host comes in its
/// brackets (`[::1]`), which no address parses with: `[::1]` and `[::ffff:127.0.0.1]`
/// were warned of as the network.
fn pg_host_is_local(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.starts_with('/')
        || host == "localhost"
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// A URL with `scheme` (`ldap://`, `http://`) to a host other than this one.
fn scheme_off_host(scheme: &str, url: &str) -> bool {
    let Some(rest) = url
        .get(..scheme.len())
        .filter(|s| s.eq_ignore_ascii_case(scheme))
        .map(|_| &url[scheme.len()..])
    else {
        return false;
    };
    // A backslash ends the host too, as URL parsers read http (WHATWG):
    // `http://sms.example.org\@127.0.0.1` goes to sms.example.org.
    let authority = rest.split(['/', '\\', '?', '#']).next().unwrap_or("");
    // `http://user:password@127.0.0.1`: the host is after the user information (read
    // before it, "user" was taken for another host).
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    // IPv4-mapped too: [::ffff:7f00:1] is 127.0.0.1, and was warned of as the network.
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback());
    !loopback
}

/// A shutdown grace shorter than the request deadline: a request still waiting on a
/// stalled directory or upstream when the grace ends is dropped, with no reply and no audit
/// record. A call-holding client's voice_budget_secs does not count: at a stop its wait for
/// the call is cut to half the grace (`pipeline::oob::await_call`), and the request then
/// answers (or, on PostgreSQL, is left to the other nodes, unanswered); what else it waits
/// on is bound by the same backends' timeouts as any request.
fn grace_below_deadline(cfg: &Config) -> Option<String> {
    let (grace, deadline) = (cfg.server.shutdown_grace, cfg.server.request_deadline);
    (grace < deadline).then(|| {
        format!(
            "server: shutdown_grace_ms = {} is shorter than server.request_deadline_ms = {}: \
             a request still running when a stop's grace ends is dropped, with no reply and \
             no audit record; raise shutdown_grace_ms to {} (below the unit's \
             TimeoutStopSec)",
            grace.as_millis(),
            deadline.as_millis(),
            deadline.as_millis()
        )
    })
}

/// The SQLite store made at a first start is 0600; one restored with `cp` (umask 022) or
/// moved out of the unit's private StateDirectory is often 0644, and every account on the
/// host can then read its phone numbers, audit trail and remembered-login addresses (not
/// the seeds: they are sealed under the key file). Warned, not refused: a running
/// service must not stop at its next restart for a mode it has always had.
#[cfg(unix)]
fn store_file_warning(store: &crate::config::StoreConfig) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let crate::config::StoreConfig::Sqlite { path, .. } = store else {
        return None;
    };
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o007 != 0).then(|| {
        format!(
            "store.path {} is open to every account on this host (mode {mode:o}): it holds \
             phone numbers and the audit trail; `chmod 0600` it (radmfa makes its -wal and \
             -shm files with the same mode)",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    /// The ways a greeting tells the callee which keys to press, read as the keys they
    /// name: a greeting whose keys are not fraud_digits is warned about, one that names
    /// them is not.
    #[test]
    fn a_greetings_keys_are_read_however_it_words_them() {
        use super::greeting_warning as warned;
        for (greeting, keys) in [
            ("If this was not you, press zero, then pound.", "0"),
            ("If this was not you, dial 0.", "0"),
            ("Not you? Press the zero key.", "0"),
            ("Not you? Key in 9 star.", "9*"),
            ("Not you? Tap the button 9.", "9"),
            ("Not you? Press zero twice.", "00"),
            ("Fraud? Press 9*. One of our staff will call you.", "9*"),
        ] {
            assert_eq!(warned(greeting, keys), None, "{greeting:?} names {keys}");
            let w = warned(greeting, "1").unwrap_or_else(|| panic!("{greeting:?} vs 1"));
            assert!(
                w.contains(&format!("press {keys} but")),
                "{greeting:?}: {w}"
            );
        }
        // Words that only look like an instruction name no keys; nor do they name
        // fraud_digits, and a greeting that never does is warned about too.
        for (greeting, keys) in [
            ("Press pound to approve.", "0"),
            ("This is your one-time check. Press pound to approve.", "9"),
            ("Press pound to approve, or hang up.", "0"),
        ] {
            let w = warned(greeting, keys).unwrap_or_else(|| panic!("{greeting:?}"));
            assert!(
                w.contains(&format!("never names fraud_digits = \"{keys}\"")),
                "{greeting:?}: {w}"
            );
        }
        // Named without a "press" is named.
        assert_eq!(
            warned("Press pound. To report it: zero, then pound.", "0"),
            None
        );
        assert_eq!(
            warned("Press pound. Fraud? 9 star, then pound.", "9*"),
            None
        );
    }

    /// Every shared secret written in conf/*.toml, commented-out ones too, is a known sample.
    #[test]
    fn every_example_configs_secret_is_a_known_sample() {
        let conf = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
        let mut seen = 0;
        for entry in std::fs::read_dir(&conf).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let line = line.trim_start_matches(['#', ' ']);
                let Some(value) = line.strip_prefix("secret = \"") else {
                    continue;
                };
                let value = &value[..value.find('"').unwrap()];
                seen += 1;
                assert!(
                    SAMPLE_SECRETS.contains(&value),
                    "{}: {value:?} is not in SAMPLE_SECRETS",
                    path.display()
                );
            }
        }
        assert!(seen >= SAMPLE_SECRETS.len(), "read {seen} secrets in conf/");
    }

    #[test]
    fn weak_shared_secrets_are_named() {
        assert!(weak_secret(b"Testing123", true)
            .unwrap()
            .contains("well-known default"));
        assert!(weak_secret(b"short-12", false)
            .unwrap()
            .contains("is 8 bytes long"));
        assert_eq!(
            weak_secret(b"a-long-random-shared-secret-of-ours", false),
            None
        );
        assert!(weak_secret(b"a-long-random-shared-secret", false)
            .unwrap()
            .contains("example configs"));
        assert_eq!(weak_secret(b"demo-shared-secret", true), None);
        for reference in [
            &b"${NAS_SECRET}"[..],
            b"$ENV{RADIUS_SECRET_LONG}",
            b"env:NAS_SECRET_FOR_THE_VPN",
            b"$NAS_SHARED_SECRET",
            b"{{ nas_secret }}",
            b"{{nas_secret_for_the_vpn}}",
            b"<%= @secret %>",
            b"%{NAS_SECRET}",
        ] {
            assert!(
                weak_secret(reference, false)
                    .unwrap()
                    .contains("variable reference"),
                "{reference:?}"
            );
        }
    }

    use super::*;

    #[test]
    fn plain_http_to_a_provider_elsewhere_is_told_apart() {
        assert!(scheme_off_host("http://", "http://sms.example.org/send"));
        assert!(scheme_off_host("http://", "HTTP://10.0.0.9:8080"));
        assert!(!scheme_off_host("http://", "https://api.twilio.com"));
        assert!(!scheme_off_host(
            "http://",
            "http://127.0.0.1:8080/2010-04-01"
        ));
        assert!(!scheme_off_host("http://", "http://localhost/send"));
        // The host comes after the user information.
        assert!(!scheme_off_host("http://", "http://AC01:pw@127.0.0.1:8080"));
        assert!(scheme_off_host(
            "http://",
            "http://127.0.0.1:pw@sms.example.org"
        ));
        assert!(!scheme_off_host(
            "http://",
            "http://localhost?to=x@example.org"
        ));
        assert!(scheme_off_host(
            "http://",
            "http://sms.example.org\\@127.0.0.1/send"
        ));
    }

    /// An `[ldap]` section for the tests' configs.
    const LDAP: &str = "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbind_dn = \"cn=a\"\n\
                        bind_password = \"pw\"\nbase_dn = \"dc=example,dc=org\"\n";

    /// Whether `config check` warns of `what` (a part of the line) for the config `text`.
    fn warns_of(text: &str, what: &str) -> bool {
        let c = Config::parse(text, std::path::Path::new("radmfa.toml")).expect("valid");
        warnings(&c).iter().any(|w| w.contains(what))
    }

    #[test]
    fn a_client_none_of_whose_methods_can_work_is_warned_about() {
        let with = |client_keys: &str, sections: &str| {
            format!(
                "{LDAP}{sections}\n[[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\n\
                 secret = \"0123456789abcdef\"\n{client_keys}\n"
            )
        };
        let none = "none of its methods";
        assert!(warns_of(&with("methods = [\"voice\"]", ""), none));
        assert!(warns_of(&with("methods = [\"sms\", \"voice\"]", ""), none));
        assert!(!warns_of(
            &with("methods = [\"totp\", \"voice\"]", ""),
            none
        ));
        assert!(!warns_of(&with("", ""), none));
        let sms = "[sms]\nprovider = \"http\"\n[http_sms]\nurl = \"http://127.0.0.1:9/send\"\n\
                   body = \"to={phone}&text={message}\"\n";
        let inline = "otp_mode = \"inline\"\ninline_delimiter = \",\"\nmethods = [\"sms\"]";
        assert!(warns_of(&with(inline, sms), none));
        assert!(!warns_of(&with("methods = [\"sms\"]", sms), none));
    }

    #[test]
    fn ldap_timeouts_past_the_time_a_login_has_are_warned_about() {
        let with = |ldap_keys: &str| {
            format!(
                "[server]\nrequest_deadline_ms = 4000\n{LDAP}{ldap_keys}\n\
                 [[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\n\
                 secret = \"0123456789abcdef\"\n"
            )
        };
        let refused = "a directory server that hangs gets logins refused";
        assert!(!warns_of(&with("timeout_ms = 2000"), refused));
        assert!(warns_of(
            &with("timeout_ms = 5000"),
            "ldap: timeout_ms = 5000"
        ));
        assert!(warns_of(
            &with("connect_timeout_ms = 3500"),
            "ldap: connect_timeout_ms = 3500 is not less than the 3500 ms"
        ));
    }

    #[test]
    fn an_upstream_secret_shared_with_a_nas_and_unused_methods_are_warned_about() {
        let config = |upstream_secret: &str, methods: &str| {
            format!(
                "{LDAP}[upstream]\nservers = [\"10.0.0.5:1812\"]\nsecret = \"{upstream_secret}\"\n\
                 [[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\n\
                 secret = \"0123456789abcdef\"\nprimary = \"upstream\"\n\
                 [[client]]\nname = \"rdg\"\naddress = \"127.0.0.2\"\n\
                 secret = \"another-long-secret-for-rdg\"\nsecond_factor_only = true\n\
                 allow_groups = [\"cn=g,dc=example,dc=org\"]\nmethods = {methods}\n\
                 voice_mode = \"hold\"\n"
            )
        };
        let (own, calls, both) = (
            "upstream-only-secret-16",
            "[\"voice\"]",
            "[\"totp\", \"voice\"]",
        );
        let shared = "the same shared secret as client \"nas\"";
        assert!(warns_of(&config("0123456789abcdef", calls), shared));
        assert!(!warns_of(&config(own, calls), shared));
        let only_calls = "methods lists totp beside voice";
        assert!(warns_of(&config(own, both), only_calls));
        assert!(!warns_of(&config(own, calls), only_calls));
    }

    #[test]
    fn client_addresses_that_match_nothing_or_nothing_more_are_warned_about() {
        let with = |address: &str| {
            format!(
                "[server]\nlisten = [\"0.0.0.0:1812\", \"[::]:1812\"]\n{LDAP}\
                 [[client]]\nname = \"nas\"\naddress = {address}\n\
                 secret = \"0123456789abcdef\"\n"
            )
        };
        let nothing = "no request comes from the unspecified address";
        assert!(warns_of(&with("\"0.0.0.0\""), nothing));
        assert!(warns_of(&with("\"::\""), nothing));
        assert!(!warns_of(&with("\"0.0.0.0/0\""), nothing));
        assert!(warns_of(
            &with("[\"10.0.0.1\", \"10.0.0.1/32\"]"),
            "listed twice"
        ));
        let again = "already in";
        for repeated in [
            "[\"10.0.0.1\", \"10.0.0.0/8\"]",
            "[\"10.0.0.0/8\", \"10.1.0.0/16\"]",
        ] {
            assert!(warns_of(&with(repeated), again), "{repeated}");
        }
        assert!(!warns_of(&with("[\"10.0.0.1\", \"10.0.0.2\"]"), again));
        assert!(!warns_of(
            &with("[\"10.0.0.1\", \"10.0.0.2\"]"),
            "listed twice"
        ));
    }

    #[test]
    fn an_upstream_server_at_radmfas_own_address_is_warned_about() {
        let said = |listen: &str, server: &str| {
            let text = format!(
                "[server]\nlisten = [\"{listen}\"]\n{LDAP}\
                 [upstream]\nservers = [\"{server}\"]\nsecret = \"0123456789abcdef\"\n\
                 [[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\n\
                 secret = \"0123456789abcdef\"\nprimary = \"upstream\"\n"
            );
            warns_of(&text, "own [server] listen")
        };
        assert!(said("127.0.0.1:1812", "127.0.0.1:1812"));
        assert!(said("0.0.0.0:1812", "127.0.0.1:1812"));
        assert!(!said("0.0.0.0:1812", "127.0.0.1:1645"));
        assert!(!said("127.0.0.1:1812", "10.0.0.5:1812"));
    }

    #[test]
    fn a_bind_password_like_a_variable_reference_is_warned_about() {
        let said = |pw: &str| {
            let text = format!(
                "{}[[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\n\
                 secret = \"0123456789abcdef\"\n",
                LDAP.replace("\"pw\"", &format!("{pw:?}"))
            );
            warns_of(&text, "bind_password looks like a variable reference")
        };
        assert!(said("${LDAP_BIND_PASSWORD}"));
        assert!(said("$LDAP_PW_ENV"));
        assert!(!said("a real password"));
    }

    #[test]
    fn app_passwords_beside_passed_through_upstream_attributes_are_warned_about() {
        let config = |pass: &str, apps: bool| {
            let text = format!(
                "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbind_dn = \"cn=a\"\n\
                 bind_password = \"pw\"\nbase_dn = \"dc=example,dc=org\"\n\
                 enabled_filter = \"(!(userAccountControl:1.2.840.113556.1.4.803:=2))\"\n\
                 [upstream]\nservers = [\"127.0.0.1:1812\"]\nsecret = \"0123456789abcdef\"\n\
                 {pass}\n[[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\n\
                 secret = \"0123456789abcdef\"\nprimary = \"upstream\"\napp_passwords = {apps}\n"
            );
            Config::parse(&text, std::path::Path::new("radmfa.toml")).expect("valid")
        };
        let said = |c: &Config| warnings(c).iter().any(|w| w.contains("pass_through"));
        assert!(said(&config("pass_through = [\"Class\"]", true)));
        assert!(!said(&config("pass_through = [\"Class\"]", false)));
        assert!(!said(&config("", true)));
    }

    /// With a password checked elsewhere (upstream, or NPS for RD Gateway), the NetBIOS
    /// domain the docs advise listing draws no warning; a UPN suffix is named.
    #[test]
    fn only_upn_suffixes_in_strip_domains_are_warned_about() {
        let config = |domains: &str| {
            let text = format!(
                "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbind_dn = \"cn=a\"\n\
                 bind_password = \"pw\"\nbase_dn = \"dc=example,dc=org\"\n\
                 enabled_filter = \"(!(userAccountControl:1.2.840.113556.1.4.803:=2))\"\n\
                 [users]\nstrip_domains = {domains}\n\
                 [upstream]\nservers = [\"127.0.0.1:1812\"]\nsecret = \"0123456789abcdef\"\n\
                 [[client]]\nname = \"vpn\"\naddress = \"127.0.0.1\"\n\
                 secret = \"0123456789abcdef\"\nprimary = \"upstream\"\n"
            );
            Config::parse(&text, std::path::Path::new("radmfa.toml")).expect("valid")
        };
        let said = |c: &Config| {
            warnings(c)
                .into_iter()
                .filter(|w| w.contains("strip_domains"))
                .collect::<Vec<_>>()
        };
        assert_eq!(said(&config("[\"CORP\"]")), Vec::<String>::new());
        let w = said(&config("[\"CORP\", \"corp.example.org\"]"));
        assert!(
            w.len() == 1 && w[0].contains("UPN suffix(es) corp.example.org with"),
            "{w:?}"
        );
    }

    #[test]
    fn two_group_rules_setting_one_single_valued_attribute_are_warned_about() {
        let config = |second: &str| {
            let text = format!(
                "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbind_dn = \"cn=a\"\n\
                 bind_password = \"pw\"\nbase_dn = \"dc=example,dc=org\"\n\
                 [[client]]\nname = \"vpn\"\naddress = \"127.0.0.1\"\n\
                 secret = \"0123456789abcdef\"\n\
                 accept_attributes = [\"Session-Timeout = 28800\"]\n\
                 [[client.group_attributes]]\ngroup = \"cn=contractors,dc=example,dc=org\"\n\
                 attributes = [\"Session-Timeout = 3600\", \"Class = c\"]\n\
                 [[client.group_attributes]]\ngroup = \"cn=staff,dc=example,dc=org\"\n\
                 attributes = [{second}]\n"
            );
            Config::parse(&text, std::path::Path::new("radmfa.toml")).expect("valid")
        };
        let contested = |c: &Config| -> Vec<String> {
            warnings(c)
                .into_iter()
                .filter(|w| w.contains("group_attributes"))
                .collect()
        };
        let w = contested(&config("\"Session-Timeout = 43200\", \"Class = s\""));
        assert_eq!(w.len(), 1, "{w:?}");
        for says in [
            "client \"vpn\"",
            "Session-Timeout",
            "cn=contractors,dc=example,dc=org",
            "cn=staff,dc=example,dc=org",
        ] {
            assert!(w[0].contains(says), "{says}: {}", w[0]);
        }
        // Attributes that may repeat, and a client-wide value a group replaces: nothing.
        assert!(contested(&config("\"Class = s\", \"Idle-Timeout = 60\"")).is_empty());
        // Both rules giving the same value: no contest (it was warned of all the same).
        assert!(contested(&config("\"Session-Timeout = 3600\", \"Class = s\"")).is_empty());
        // One rule naming a single-valued attribute twice: its second value is dropped.
        let w = contested(&config(
            "\"Idle-Timeout = 60\", \"Class = a\", \"Idle-Timeout = 30\", \"Class = b\"",
        ));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains(
                "the group_attributes rule for cn=staff,dc=example,dc=org sets \
                           Idle-Timeout twice"
            ),
            "{w:?}"
        );
        // A vendor attribute that names one thing (an admin role), by name and by number;
        // a group name may repeat.
        let w = contested(&config(
            "\"Vendor-25461-Attr-1 = ro\", \"Fortinet-Group-Name = s\"",
        ));
        assert!(w.is_empty(), "only one rule names it: {w:?}");
        let text = "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbind_dn = \"cn=a\"\n\
             bind_password = \"pw\"\nbase_dn = \"dc=example,dc=org\"\n\
             [[client]]\nname = \"vpn\"\naddress = \"127.0.0.1\"\n\
             secret = \"0123456789abcdef\"\n\
             [[client.group_attributes]]\ngroup = \"cn=a,dc=example,dc=org\"\n\
             attributes = [\"PaloAlto-Admin-Role = rw\", \"Fortinet-Group-Name = a\"]\n\
             [[client.group_attributes]]\ngroup = \"cn=b,dc=example,dc=org\"\n\
             attributes = [\"Vendor-25461-Attr-1 = ro\", \"Fortinet-Group-Name = b\"]\n";
        let c = Config::parse(text, std::path::Path::new("radmfa.toml")).expect("valid");
        let w = contested(&c);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("PaloAlto-Admin-Role is set by the rules for both"),
            "{w:?}"
        );
    }

    /// `accept_attributes` naming a single-valued attribute twice: only the first is sent.
    #[test]
    fn a_single_valued_attribute_twice_in_one_list_is_warned_about() {
        let text = "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbind_dn = \"cn=a\"\n\
                    bind_password = \"pw\"\nbase_dn = \"dc=example,dc=org\"\n\
                    [[client]]\nname = \"vpn\"\naddress = \"127.0.0.1\"\n\
                    secret = \"0123456789abcdef\"\n\
                    accept_attributes = [\"Session-Timeout = 3600\", \"Session-Timeout = 60\", \
                    \"Class = a\", \"Class = b\"]\n";
        let c = Config::parse(text, std::path::Path::new("radmfa.toml")).expect("valid");
        let w: Vec<String> = warnings(&c)
            .into_iter()
            .filter(|w| w.contains("twice"))
            .collect();
        assert_eq!(w.len(), 1, "Class may repeat: {w:?}");
        assert!(
            w[0].contains("accept_attributes sets Session-Timeout twice"),
            "{w:?}"
        );
    }

    /// A `[radsec]` section whose (empty, private) certificate files are in `dir`.
    fn radsec_section(dir: &std::path::Path) -> String {
        use std::os::unix::fs::PermissionsExt;
        for f in ["cert.pem", "key.pem", "ca.pem"] {
            let path = dir.join(f);
            std::fs::write(&path, "").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        format!(
            "[radsec]\ncert_file = {:?}\nkey_file = {:?}\nca_file = {:?}\n",
            dir.join("cert.pem"),
            dir.join("key.pem"),
            dir.join("ca.pem"),
        )
    }

    /// Over RadSec alone no one in the path can forge a packet: no BlastRADIUS warning for
    /// a client that does not require Message-Authenticator there.
    #[test]
    fn unsigned_requests_are_warned_about_on_udp_only() {
        let dir = tempfile::tempdir().unwrap();
        let radsec = radsec_section(dir.path());
        let config = |transport: &str| {
            let text = format!(
                "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbind_dn = \"cn=a\"\n\
                 bind_password = \"pw\"\nbase_dn = \"dc=example,dc=org\"\n\
                 {radsec}\
                 [[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\n\
                 secret = \"0123456789abcdef\"\nrequire_message_authenticator = false\n\
                 transport = \"{transport}\"\n",
            );
            Config::parse(&text, std::path::Path::new("radmfa.toml")).expect("valid")
        };
        let warned = |t: &str| {
            warnings(&config(t))
                .iter()
                .any(|w| w.contains("not protected against BlastRADIUS"))
        };
        assert!(warned("udp"));
        assert!(warned("both"));
        assert!(!warned("radsec"));
        // Unsigned from a whole range: said, naming it; from one address, not.
        let on = |address: &str| {
            let text = format!(
                "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbind_dn = \"cn=a\"\n\
                 bind_password = \"pw\"\nbase_dn = \"dc=example,dc=org\"\n\
                 [[client]]\nname = \"nas\"\naddress = \"{address}\"\n\
                 secret = \"0123456789abcdef\"\nrequire_message_authenticator = false\n",
            );
            let c = Config::parse(&text, std::path::Path::new("radmfa.toml")).expect("valid");
            warnings(&c).into_iter().find(|w| w.contains("on a range"))
        };
        let w = on("127.0.0.0/24").expect("a range");
        assert!(w.contains("(127.0.0.0/24)"), "{w}");
        assert_eq!(on("127.0.0.7"), None);
        // Unsigned, with settings that go by the request's station: anyone on the path
        // who knows the password rewrites Calling-Station-Id and skips the second factor.
        let by_station = |keys: &str, require: bool| {
            let text = format!(
                "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbind_dn = \"cn=a\"\n\
                 bind_password = \"pw\"\nbase_dn = \"dc=example,dc=org\"\n\
                 [[client]]\nname = \"nas\"\naddress = \"127.0.0.7\"\n\
                 secret = \"0123456789abcdef\"\nrequire_message_authenticator = {require}\n{keys}",
            );
            let c = Config::parse(&text, std::path::Path::new("radmfa.toml")).expect("valid");
            warnings(&c)
                .into_iter()
                .find(|w| w.contains("can be rewritten on the path"))
        };
        let both = "exempt_networks = [\"192.0.2.0/24\"]\nremember_second_factor_secs = 900\n";
        let w = by_station(both, false).expect("warned");
        assert!(
            w.contains("exempt_networks and remember_second_factor_secs with"),
            "{w}"
        );
        assert_eq!(by_station(both, true), None, "signed");
        assert_eq!(by_station("", false), None, "nothing goes by the station");
    }

    #[test]
    fn a_radsec_host_inside_a_udp_range_is_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let radsec = radsec_section(dir.path());
        let config = |wide: &str, transport: &str| {
            let text = format!(
                "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbind_dn = \"cn=a\"\n\
                 bind_password = \"pw\"\nbase_dn = \"dc=example,dc=org\"\n\
                 {radsec}\
                 [[client]]\nname = \"site\"\naddress = \"{wide}\"\n\
                 secret = \"0123456789abcdef\"\ntransport = \"{transport}\"\n\
                 [[client]]\nname = \"vpn1\"\naddress = \"10.1.2.3\"\n\
                 transport = \"radsec\"\n",
            );
            Config::parse(&text, std::path::Path::new("radmfa.toml")).expect("valid")
        };
        let warned = |wide: &str, transport: &str| {
            warnings(&config(wide, transport))
                .iter()
                .any(|w| w.contains("is for RadSec only, but lies within client \"site\""))
        };
        assert!(warned("10.0.0.0/8", "udp"));
        // Named after the entry the lookup takes: the most specific one.
        let mut two = config("10.0.0.0/8", "udp");
        let mut site = two.clients[0].clone();
        site.name = "inner".into();
        site.networks = vec!["10.1.0.0/16".parse().unwrap()];
        two.clients.push(site);
        assert!(
            warnings(&two)
                .iter()
                .any(|w| w.contains("lies within client \"inner\"")),
            "{:?}",
            warnings(&two)
        );
        assert!(warned("10.1.2.0/24", "both"));
        assert!(!warned("10.1.2.0/24", "radsec"), "no UDP there");
        assert!(!warned("10.2.0.0/16", "udp"), "elsewhere");
    }

    #[test]
    fn totp_settings_apps_ignore_are_warned_about() {
        let config = |totp: &str| {
            let text = format!(
                "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbind_dn = \"cn=a\"\n\
                 bind_password = \"pw\"\nbase_dn = \"dc=example,dc=org\"\n[totp]\n{totp}\n\
                 [[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\n\
                 secret = \"0123456789abcdef\"\n"
            );
            Config::parse(&text, std::path::Path::new("radmfa.toml")).expect("valid")
        };
        let warned = |t: &str| {
            warnings(&config(t))
                .iter()
                .any(|w| w.contains("Google Authenticator"))
        };
        assert!(!warned(""));
        assert!(warned("digits = 8"));
        assert!(warned("period = 60"));
        assert!(warned("algorithm = \"SHA256\""));
    }

    #[test]
    fn a_ppolicy_lock_filter_with_the_entry_cache_is_warned_about() {
        let config = |extra: &str| {
            let text = format!(
                "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbind_dn = \"cn=a\"\n\
                 bind_password = \"pw\"\nbase_dn = \"dc=example,dc=org\"\n{extra}\n\
                 [[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\n\
                 secret = \"0123456789abcdef\"\n"
            );
            Config::parse(&text, std::path::Path::new("radmfa.toml")).expect("valid")
        };
        let said = |c: &Config| warnings(c).iter().any(|w| w.contains("pwdLockout: TRUE"));
        let lock = "enabled_filter = \"(!(pwdAccountLockedTime=000001010000Z))\"";
        assert!(said(&config(&format!("{lock}\nentry_cache_seconds = 60"))));
        assert!(!said(&config(lock)));
        let ad = "enabled_filter = \"(!(userAccountControl:1.2.840.113556.1.4.803:=2))\"";
        assert!(!said(&config(&format!("{ad}\nentry_cache_seconds = 60"))));
    }

    #[test]
    fn a_ppolicy_filter_that_outlasts_expired_lockouts_is_warned_about() {
        let config = |filter: &str| {
            let text = format!(
                "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbind_dn = \"cn=a\"\nbind_password = \"pw\"\n\
                 base_dn = \"dc=example,dc=org\"\nenabled_filter = \"{filter}\"\n[[client]]\n\
                 name = \"nas\"\naddress = \"127.0.0.1\"\nsecret = \"0123456789abcdef\"\n"
            );
            Config::parse(&text, std::path::Path::new("radmfa.toml")).expect("valid")
        };
        let warned = |f: &str| {
            warnings(&config(f))
                .iter()
                .any(|w| w.contains("pwdAccountLockedTime=*"))
        };
        assert!(warned("(!(pwdAccountLockedTime=*))"));
        assert!(warned("(&(objectClass=person)(!(pwdaccountlockedtime=*)))"));
        assert!(!warned("(!(pwdAccountLockedTime=000001010000Z))"));
    }

    #[test]
    fn a_lockout_too_short_for_the_code_windows_is_warned_about() {
        let config = |extra: &str| {
            let text = format!(
                "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbind_dn = \"cn=a\"\nbind_password = \"pw\"\n\
                 base_dn = \"dc=example,dc=org\"\n[[client]]\nname = \"nas\"\n\
                 address = \"127.0.0.1\"\nsecret = \"0123456789abcdef\"\n{extra}"
            );
            Config::parse(&text, std::path::Path::new("radmfa.toml")).expect("valid")
        };
        let said = |c: &Config, what: &str| {
            warnings(c)
                .iter()
                .any(|w| w.starts_with(&format!("lockout: {what}")))
        };
        let defaults = config("");
        assert!(!said(&defaults, "[totp]") && !said(&defaults, "[hotp]"));
        // A lock of one second is none: TOTP and HOTP both.
        let no_lock = config("[lockout]\nduration_secs = 1\n");
        assert!(
            said(&no_lock, "[totp] window = 1 "),
            "{:?}",
            warnings(&no_lock)
        );
        assert!(said(&no_lock, "[hotp] window = 10 "));
        // The widest TOTP window against the default lockout: about 1 in 100 a day.
        assert!(said(
            &config("[totp]\nwindow = 10\n"),
            "[totp] window = 10 "
        ));
        // Window 10 against a 20-minute lock: 360 guesses a day against 21 codes is under
        // the bar, but a drifted token is checked at 42, 1.5 % a day.
        let drifted = config("[totp]\nwindow = 10\n[lockout]\nduration_secs = 1200\n");
        assert!(
            said(&drifted, "[totp] window = 10 "),
            "{:?}",
            warnings(&drifted)
        );
        assert!(warnings(&drifted)
            .iter()
            .any(|w| w.contains("up to 42 live six-digit codes per token")));
    }

    #[test]
    fn a_grace_the_unit_cuts_short_and_radsec_names_without_radsec_are_warned_about() {
        let config = |server: &str, client: &str| {
            let text = format!(
                "[server]\n{server}\n[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbind_dn = \"cn=a\"\n\
                 bind_password = \"pw\"\nbase_dn = \"dc=example,dc=org\"\n[[client]]\n\
                 name = \"nas\"\naddress = \"127.0.0.1\"\nsecret = \"0123456789abcdef\"\n{client}\n"
            );
            Config::parse(&text, std::path::Path::new("radmfa.toml")).expect("valid")
        };
        let said = |c: &Config, what: &str| warnings(c).iter().any(|w| w.contains(what));
        assert!(said(
            &config("shutdown_grace_ms = 20000", ""),
            "TimeoutStopSec"
        ));
        assert!(!said(
            &config("shutdown_grace_ms = 5000", ""),
            "TimeoutStopSec"
        ));
        // A grace shorter than the request deadline drops what is still running.
        let short = config("shutdown_grace_ms = 1000", "");
        assert!(
            said(
                &short,
                "shutdown_grace_ms = 1000 is shorter than server.request_deadline_ms = 4000"
            ),
            "{:?}",
            warnings(&short)
        );
        assert!(!said(
            &config("shutdown_grace_ms = 4000", ""),
            "is shorter than"
        ));
        assert!(said(
            &config("", "radsec_name = \"nas.example.org\""),
            "no [radsec] section"
        ));
        assert!(!said(&config("", ""), "no [radsec] section"));
        assert!(said(
            &config("", "transport = \"both\""),
            "it gets requests over UDP only"
        ));
        // With [radsec]: an entry for RadSec without radsec_name lets any CA-signed
        // certificate in from its addresses.
        let dir = tempfile::tempdir().unwrap();
        for f in ["c.pem", "k.pem", "ca.pem"] {
            let path = dir.path().join(f);
            std::fs::write(&path, "").unwrap();
            let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
            std::fs::set_permissions(&path, private).unwrap();
        }
        let radsec = |client: &str| {
            let text = format!(
                "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbind_dn = \"cn=a\"\n\
                 bind_password = \"pw\"\nbase_dn = \"dc=example,dc=org\"\n[radsec]\n\
                 cert_file = \"c.pem\"\nkey_file = \"k.pem\"\nca_file = \"ca.pem\"\n\
                 [[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\n{client}\n"
            );
            Config::parse(&text, &dir.path().join("radmfa.toml")).expect("valid")
        };
        assert!(said(
            &radsec("transport = \"radsec\""),
            "without radsec_name"
        ));
        assert!(!said(
            &radsec("radsec_name = \"nas.example.org\""),
            "without radsec_name"
        ));
        // A UDP entry (a secret, the default transport) is not let in over TLS at all.
        assert!(!said(
            &radsec("secret = \"0123456789abcdef\""),
            "without radsec_name"
        ));
        // A RadSec-only entry's secret is never used: no word about it, alone or shared.
        let two = "transport = \"radsec\"\n[[client]]\nname = \"nas2\"\n\
                   address = \"127.0.0.2\"\ntransport = \"radsec\"";
        let w = warnings(&radsec(two));
        assert!(!w.iter().any(|w| w.contains("shared secret")), "{w:?}");
        let rdg = "second_factor_only = true\nmethods = [\"voice\"]\nvoice_mode = \"hold\"";
        assert!(said(
            &config("", rdg),
            "second_factor_only without a [voice]"
        ));
        assert!(!said(&config("", rdg), "voice_mode = \"hold\" without"));
        assert!(said(
            &config("", rdg),
            "second_factor_only without allow_groups"
        ));
        let rdg_groups = format!("{rdg}\nallow_groups = [\"cn=rdg-users,dc=example,dc=org\"]");
        assert!(!said(
            &config("", &rdg_groups),
            "second_factor_only without allow_groups"
        ));
        // No bind for such a client: without enabled_filter, disabled accounts get calls.
        assert!(said(
            &config("", rdg),
            "no enabled_filter beside second_factor_only"
        ));
        assert!(!said(&config("", ""), "no enabled_filter"));
        // Behind NPS, which forwards with Proxy-State, the flag off cannot help.
        let nps = "second_factor_only with require_message_authenticator = false";
        assert!(!said(&config("", rdg), nps));
        let unsigned = format!("{rdg}\nrequire_message_authenticator = false");
        assert!(said(&config("", &unsigned), nps));
        let held = "voice_mode = \"hold\"\nvoice_budget_secs = 45";
        assert!(said(
            &config("", held),
            "voice_mode = \"hold\" without a [voice] section"
        ));
        assert!(!said(&config("", ""), "voice_mode = \"hold\" without"));
    }

    /// `[ldap] strip_domains`, the setting's older place, is still read, and warned of with
    /// its new place named; the list in `[users]` is not. It was taken without a word.
    #[test]
    fn strip_domains_in_ldap_is_warned_of() {
        let config = |ldap: &str, users: &str| {
            let text = format!(
                "[ldap]\nurls = [\"ldaps://127.0.0.1\"]\nbind_dn = \"cn=a\"\n\
                 bind_password = \"pw\"\nbase_dn = \"dc=example,dc=org\"\n{ldap}\n{users}\n\
                 [[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\n\
                 secret = \"0123456789abcdef\"\n"
            );
            Config::parse(&text, std::path::Path::new("radmfa.toml")).expect("valid")
        };
        let moved = "has moved to [users] strip_domains";
        let old = config("strip_domains = [\"CORP\"]", "");
        assert_eq!(old.user_names.key("CORP\\alice"), "alice", "still read");
        let said = warnings(&old);
        assert!(said.iter().any(|w| w.contains(moved)), "{said:#?}");
        let new = warnings(&config("", "[users]\nstrip_domains = [\"CORP\"]"));
        assert!(!new.iter().any(|w| w.contains("strip_domains")), "{new:#?}");
    }

    /// On a second-factor-only client (RD Gateway) radmfa checks no password: the warnings
    /// about what gets in without a second factor say that nothing radmfa checks does,
    /// not "the password alone".
    #[test]
    fn warnings_on_a_second_factor_only_client_do_not_promise_a_password_check() {
        let config = |client: &str| {
            let text = format!(
                "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbind_dn = \"cn=a\"\n\
                 bind_password = \"pw\"\nbase_dn = \"dc=example,dc=org\"\n[[client]]\n\
                 name = \"nas\"\naddress = \"127.0.0.1\"\nsecret = \"0123456789abcdef\"\n\
                 provider_failure = \"allow\"\nexempt_networks = [\"192.0.2.0/24\"]\n\
                 exempt_groups = [\"cn=x,dc=example,dc=org\"]\n{client}\n"
            );
            Config::parse(&text, std::path::Path::new("radmfa.toml")).expect("valid")
        };
        let rdg = warnings(&config(
            "second_factor_only = true\nmethods = [\"voice\"]\nvoice_mode = \"hold\"",
        ));
        assert!(
            !rdg.iter().any(|w| w.contains("password alone")),
            "{rdg:#?}"
        );
        for what in [
            "provider_failure = \"allow\": while the call provider fails, nothing radmfa \
             checks gets in",
            "exempt_networks: logins from 192.0.2.0/24 need nothing radmfa checks: no call is \
             made",
            "exempt_groups: 1 group(s) log in with nothing radmfa checks: no call is made",
        ] {
            assert!(rdg.iter().any(|w| w.contains(what)), "{what}: {rdg:#?}");
        }
        let vpn = warnings(&config(""));
        for what in [
            "the SMS/call provider fails, the password alone gets in",
            "exempt_networks: logins from 192.0.2.0/24 need the password alone",
            "exempt_groups: 1 group(s) log in with the password alone",
        ] {
            assert!(vpn.iter().any(|w| w.contains(what)), "{what}: {vpn:#?}");
        }
    }

    /// Clients that hold calls keep a request slot per ringing phone, up to their send limit
    /// each: a max_in_flight they could fill is said, one they cannot is not.
    #[test]
    fn a_max_in_flight_that_held_calls_could_fill_is_warned_about() {
        let config = |server: &str, voice: &str| {
            let text = format!(
                "[server]\n{server}\n[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbind_dn = \"cn=a\"\n\
                 bind_password = \"pw\"\nbase_dn = \"dc=example,dc=org\"\n\
                 [voice]\nprovider = \"twilio\"\ncaller_id = \"+15550001111\"\n{voice}\n\
                 [twilio]\naccount_sid = \"AC00000000000000000000000000000000\"\n\
                 auth_token = \"token\"\nfrom = \"+15550001111\"\n\
                 [callbacks]\nlisten = \"127.0.0.1:8443\"\npublic_url = \"https://mfa.example.org\"\n\
                 [[client]]\nname = \"rdg\"\naddress = \"127.0.0.1\"\n\
                 secret = \"0123456789abcdef\"\nsecond_factor_only = true\n\
                 methods = [\"voice\"]\nvoice_mode = \"hold\"\n\
                 allow_groups = [\"cn=x,dc=example,dc=org\"]\n"
            );
            Config::parse(&text, std::path::Path::new("radmfa.toml")).expect("valid")
        };
        let said = |c: &Config| {
            warnings(c)
                .iter()
                .find(|w| w.contains("ringing phones alone could take every slot"))
                .cloned()
        };
        let w = said(&config("max_in_flight = 2", "")).expect("said");
        assert!(
            w.contains("max_in_flight = 2 while held calls can keep up to 200"),
            "{w}"
        );
        assert!(
            w.contains("requests in flight (1 client(s)"),
            "one space between words: {w}"
        );
        assert!(said(&config("max_in_flight = 201", "")).is_none());
        assert!(said(&config("max_in_flight = 20", "max_per_nas = 10")).is_none());
        // The default, 512, against the default send limit of 200 for one gateway.
        assert!(said(&config("", "")).is_none());
    }

    /// A held call's budget too short for its ring time asks for a longer budget while one
    /// within voice_budget_secs' range would do, else for a shorter ring: with a ring of
    /// 101 s it asked for a budget of 121, which the config refuses.
    #[test]
    fn a_held_call_budget_hint_is_one_the_config_takes() {
        let budget = |ring: u32, budget: u32| {
            let text = format!(
                "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbind_dn = \"cn=a\"\n\
                 bind_password = \"pw\"\nbase_dn = \"dc=example,dc=org\"\n\
                 [voice]\nprovider = \"twilio\"\ncaller_id = \"+15550001111\"\n\
                 ring_timeout_secs = {ring}\n\
                 [twilio]\naccount_sid = \"AC00000000000000000000000000000000\"\n\
                 auth_token = \"token\"\nfrom = \"+15550001111\"\n\
                 [callbacks]\nlisten = \"127.0.0.1:8443\"\npublic_url = \"https://mfa.example.org\"\n\
                 [[client]]\nname = \"rdg\"\naddress = \"127.0.0.1\"\n\
                 secret = \"0123456789abcdef\"\nsecond_factor_only = true\n\
                 methods = [\"voice\"]\nvoice_mode = \"hold\"\nvoice_budget_secs = {budget}\n\
                 allow_groups = [\"cn=x,dc=example,dc=org\"]\nno_factor = \"allow\"\n"
            );
            let cfg = Config::parse(&text, std::path::Path::new("radmfa.toml")).expect("valid");
            warnings(&cfg)
        };
        let short = budget(30, 20);
        let w = short
            .iter()
            .find(|w| w.contains("refuses a held login"))
            .expect("said");
        assert!(w.contains("make it at least"), "{w}");
        let long = budget(101, 120);
        let w = long
            .iter()
            .find(|w| w.contains("refuses a held login"))
            .expect("said");
        let hinted: u64 = w
            .split("ring_timeout_secs to ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no ring time asked for: {w}"));
        // The ring asked for, with the longest budget, draws no warning.
        assert!(
            !budget(hinted as u32, 120)
                .iter()
                .any(|w| w.contains("refuses a held login")),
            "ring {hinted}"
        );
        // no_factor = "allow" there: the gateway's own check, not a password.
        assert!(
            short
                .iter()
                .any(|w| w.contains("get in on the gateway's own check alone")),
            "{short:#?}"
        );
    }

    /// A config with a client that may text, and `phone` (a `[phone]` section, or nothing).
    fn sms_config(phone: &str) -> Config {
        let text = format!(
            "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbind_dn = \"cn=a\"\nbind_password = \"pw\"\n\
             base_dn = \"dc=example,dc=org\"\n[[client]]\nname = \"nas\"\n\
             address = \"127.0.0.1\"\nsecret = \"0123456789abcdef\"\n\
             methods = [\"totp\", \"sms\"]\n{phone}\n[sms]\nprovider = \"twilio\"\n\
             [twilio]\naccount_sid = \"AC00000000000000000000000000000000\"\n\
             auth_token = \"token\"\nfrom = \"+15550001111\"\n"
        );
        Config::parse(&text, std::path::Path::new("radmfa.toml")).expect("valid")
    }

    /// A pilot with `no_factor = "allow"` on a client that could text refuses users whose
    /// directory entry has a number the sources leave out: said.
    #[test]
    fn no_factor_allow_with_the_directory_left_out_is_warned_about() {
        let said = |c: &Config| {
            warnings(c)
                .iter()
                .any(|w| w.contains("does not let in a user whose directory entry has"))
        };
        assert!(said(&sms_config("no_factor = \"allow\"\n")));
        // One directory attribute left out is enough: a user with only that one is refused.
        // Named alone: "mobile or telephoneNumber" was said with one of them listed.
        let one =
            sms_config("no_factor = \"allow\"\n[phone]\nsources = [\"store\", \"telephone\"]\n");
        assert!(said(&one));
        assert!(
            warnings(&one)
                .iter()
                .any(|w| w.contains("[phone] sources leaves out (mobile):")),
            "{:?}",
            warnings(&one)
        );
        assert!(!said(&sms_config(
            "no_factor = \"allow\"\n[phone]\nsources = [\"store\", \"mobile\", \"telephone\"]\n"
        )));
        // An inline client cannot prompt for a texted code: such users get in there.
        assert!(!said(&sms_config(
            "otp_mode = \"inline\"\nno_factor = \"allow\"\n"
        )));
        assert!(!said(&sms_config("")));
    }

    /// Texts and calls to any country are warned about until the countries are listed.
    #[test]
    fn countries_not_listed_are_warned_about() {
        let said = |c: &Config| {
            warnings(c)
                .iter()
                .any(|w| w.contains("allowed_country_codes is not set"))
        };
        assert!(said(&sms_config("")));
        assert!(!said(&sms_config(
            "[phone]\nallowed_country_codes = [\"49\"]\n"
        )));
    }

    #[test]
    fn numbers_from_the_directory_are_warned_about() {
        // The sources' warnings (the countries' has a test of its own).
        let phone_warning = |c: &Config| {
            warnings(c)
                .into_iter()
                .find(|w| w.starts_with("phone:") && !w.contains("allowed_country_codes"))
        };
        // Not set: the store only, which earlier releases widened to the directory.
        let w = phone_warning(&sms_config("")).expect("sources not set");
        assert!(w.contains("sources is not set"), "{w}");
        assert_eq!(
            phone_warning(&sms_config("[phone]\nsources = [\"store\"]\n")),
            None,
            "the store only, said so"
        );
        let w = phone_warning(&sms_config("[phone]\nsources = [\"store\", \"mobile\"]\n"))
            .expect("mobile from the directory");
        assert!(
            w.contains("(mobile)") && w.contains("Write Personal Information"),
            "{w}"
        );
    }

    #[test]
    fn short_sms_codes_against_the_lockout_are_warned_about() {
        let config = |length: u32, lock: u32| {
            let text = format!(
                "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbind_dn = \"cn=a\"\nbind_password = \"pw\"\n\
                 base_dn = \"dc=example,dc=org\"\n[[client]]\nname = \"nas\"\n\
                 address = \"127.0.0.1\"\nsecret = \"0123456789abcdef\"\n\
                 methods = [\"totp\", \"sms\"]\n[sms]\nprovider = \"twilio\"\n\
                 code_length = {length}\n[twilio]\naccount_sid = \"AC00000000000000000000000000000000\"\n\
                 auth_token = \"token\"\nfrom = \"+15550001111\"\n[lockout]\n\
                 threshold = 5\nduration_secs = {lock}\n"
            );
            Config::parse(&text, std::path::Path::new("radmfa.toml")).expect("valid")
        };
        let sms_warning = |c: &Config| warnings(c).into_iter().find(|w| w.starts_with("sms:"));
        let w = sms_warning(&config(4, 900)).expect("4 digits, 15-minute locks");
        assert!(
            w.contains("480 guesses a day") && w.contains("1 in 20 chance"),
            "{w}"
        );
        assert!(w.contains("use 6 digits or more"), "{w}");
        assert_eq!(sms_warning(&config(6, 900)), None);
        // Numbers from radmfa's store only, by default: nothing to say about the directory.
        assert!(!warnings(&config(6, 900))
            .iter()
            .any(|w| w.contains("the directory (")));
        // A day-long lock makes even 5 digits acceptable (5 guesses a day).
        assert_eq!(sms_warning(&config(5, 86_400)), None);
    }

    #[test]
    fn local_postgres_hosts_are_told_apart() {
        use super::pg_host_is_local as local;
        for host in [
            "/var/run/postgresql",
            "localhost",
            "127.0.0.1",
            "[::1]",
            "::1",
            "[::ffff:127.0.0.1]",
            "[::ffff:7f00:1]",
        ] {
            assert!(local(host), "{host}");
        }
        for host in [
            "db.example.org",
            "10.0.0.5",
            "[2001:db8::5]",
            "[::ffff:10.0.0.5]",
        ] {
            assert!(!local(host), "{host}");
        }
    }

    #[test]
    fn cleartext_ldap_to_another_host_is_told_apart() {
        for off in [
            "ldap://dc1.example.org",
            "LDAP://10.0.0.5:389/",
            "ldap://[2001:db8::5]",
        ] {
            assert!(cleartext_off_host(off), "{off}");
        }
        for fine in [
            "ldaps://dc1.example.org",
            "ldap://127.0.0.1:3890",
            "ldap://localhost",
            "ldap://[::1]:389",
            "ldap://[::ffff:7f00:1]:389",
            "ldap://[::ffff:127.0.0.1]",
        ] {
            assert!(!cleartext_off_host(fine), "{fine}");
        }
    }
}
