//! `[ldap]` → `LdapSettings`: servers, TLS, the service account, search and attributes.

use std::path::Path;
use std::time::Duration;

use super::raw::*;
use super::validate::{resolve, secret_value};
use super::*;
use crate::auth::ldap::{AttributeNames, LdapSettings};

pub(super) fn ldap_settings(raw: RawLdap, base: &Path) -> Result<LdapSettings, ConfigError> {
    let RawLdap {
        urls,
        starttls,
        ca_file,
        tls_insecure_skip_verify,
        bind_dn,
        bind_password,
        bind_password_file,
        base_dn,
        user_filter,
        enabled_filter,
        group_filter,
        connect_timeout_ms,
        timeout_ms,
        pool_size,
        max_concurrent_binds,
        idle_close_secs,
        entry_cache_seconds,
        entry_cache_size,
        // Not the directory client's business: validate() makes it Config::user_names.
        strip_domains: _,
        attributes,
    } = raw;
    if urls.is_empty() {
        return Err(ConfigError::invalid("ldap.urls", "needs at least one URL"));
    }
    for (i, u) in urls.iter().enumerate() {
        // `ldap://svc:password@dc1`: the directory client ignores user information (the
        // service account is bind_dn and bind_password), so all it did was print the
        // password in config check, the start line and every connection's debug line.
        // Refused, and the messages below never show it.
        // Anywhere after the scheme, not only before the first '/': a password holding a
        // '/' or '?' (`svc:Se/cret@dc1`) ends what a parser takes for the host early, and
        // the host check below then quoted the URL, password and all. A directory URL has
        // no other use for an '@' ([ldap] takes no DN or filter from it).
        let rest = u.split_once("://").map_or(u.as_str(), |(_, rest)| rest);
        if rest.contains('@') {
            return Err(ConfigError::invalid(
                format!("ldap.urls[{i}]"),
                "carries a user name or password (user:password@): remove it; radmfa binds \
                 as bind_dn with bind_password",
            ));
        }
        if !(u.starts_with("ldap://") || u.starts_with("ldaps://")) {
            return Err(ConfigError::invalid(
                format!("ldap.urls[{i}]"),
                format!("{u:?} must start with ldap:// or ldaps://"),
            ));
        }
        if starttls && u.starts_with("ldaps://") {
            return Err(ConfigError::invalid(
                "ldap.starttls",
                format!("StartTLS cannot be used with {u:?}, which is already TLS"),
            ));
        }
        // ldap3 names the TLS server after the URL's host as written, brackets and all, and
        // "[2001:db8::5]" is no name rustls takes: every connection would fail as a TLS
        // error while the file looked fine.
        let tls = starttls || u.starts_with("ldaps://");
        let host = u.split_once("://").map_or("", |(_, rest)| rest);
        if let Some(why) = url_host_problem(host) {
            return Err(ConfigError::invalid(
                format!("ldap.urls[{i}]"),
                format!("{u:?}: {why}"),
            ));
        }
        // An LDAP URL may carry a base DN, attributes, a scope and a filter (RFC 4516);
        // the directory client takes only the host and port from it, so all of that was
        // dropped without a word while the admin thought it searched there.
        if let Some(extra) = url_path(host) {
            return Err(ConfigError::invalid(
                format!("ldap.urls[{i}]"),
                format!(
                    "{u:?} has {extra:?} after the host, which radmfa does not use: remove \
                     it, and set the search base in [ldap] base_dn (the filter in \
                     user_filter)"
                ),
            ));
        }
        // The directory client parses the URL with the url crate at each connection: one
        // it refuses failed every login, logged as an unreachable server (in a failover
        // list, one that looked down). Whatever the checks above miss is refused here, so
        // what passes load is what the client can use.
        if let Err(e) = url::Url::parse(u) {
            return Err(ConfigError::invalid(
                format!("ldap.urls[{i}]"),
                format!("{u:?} is not a URL the directory client can use: {e}"),
            ));
        }
        // The same server twice (`ldap://dc1` and `LDAP://DC1:389/`): a failover list that
        // waits out its timeout twice for it when it is down, while the admin thought it
        // named a second server.
        let same = |v: &str| {
            url::Url::parse(v).ok().map(|p| {
                let scheme = p.scheme().to_ascii_lowercase();
                let port = p
                    .port()
                    .unwrap_or(if scheme == "ldaps" { 636 } else { 389 });
                let host = p.host_str().unwrap_or("").to_ascii_lowercase();
                (scheme, host.trim_end_matches('.').to_owned(), port)
            })
        };
        if let Some(j) = urls[..i].iter().position(|v| same(v) == same(u)) {
            return Err(ConfigError::invalid(
                format!("ldap.urls[{i}]"),
                format!(
                    "{u:?} is the server ldap.urls[{j}] ({:?}) names already: list each \
                     directory server once",
                    urls[j]
                ),
            ));
        }
        if tls && host.starts_with('[') {
            return Err(ConfigError::invalid(
                format!("ldap.urls[{i}]"),
                format!(
                    "{u:?}: TLS to an IPv6 address literal cannot connect (the directory \
                     client cannot check a certificate for it); use the server's DNS name"
                ),
            ));
        }
    }
    let ca_file = ca_file
        .map(|p| resolve("ldap.ca_file", base, p))
        .transpose()?;
    if let Some(ca) = &ca_file {
        if !ca.is_file() {
            return Err(ConfigError::invalid(
                "ldap.ca_file",
                format!("{} does not exist", ca.display()),
            ));
        }
        super::validate::not_writable_by_everyone("ldap.ca_file", ca)?;
    }
    if !user_filter.contains("{user}") {
        return Err(ConfigError::invalid(
            "ldap.user_filter",
            "must contain the {user} placeholder, e.g. \"(uid={user})\"",
        ));
    }
    // Sent as it is, any other {...} matches no entry, and every login is refused as an
    // unknown user, silently: AD's expiry clause from the sample belongs in enabled_filter,
    // the only filter whose time placeholders are filled in.
    for (key, filter, known) in [
        ("ldap.user_filter", &user_filter, &["{user}"][..]),
        ("ldap.group_filter", &group_filter, &["{dn}", "{user}"][..]),
    ] {
        if let Some(word) = crate::auth::ldap_now::placeholder_other_than(filter, known) {
            let time = [
                crate::auth::ldap_now::NOW_FILETIME,
                crate::auth::ldap_now::NOW_GENERALIZED,
            ]
            .contains(&word);
            let hint = if time {
                "; time placeholders are filled in enabled_filter only: move that term there"
            } else {
                "; write a literal brace as \\7b or \\7d (\\\\7b inside a TOML \"...\" string)"
            };
            return Err(ConfigError::invalid(
                key,
                format!(
                    "{filter:?} has {word}, which is not one of its placeholders ({}){hint}",
                    known.join(", ")
                ),
            ));
        }
    }
    if let Some(f) = &enabled_filter {
        if let Some(word) = crate::auth::ldap_now::unknown_placeholder(f) {
            return Err(ConfigError::invalid(
                "ldap.enabled_filter",
                format!(
                    "{f:?} has {word}, which is not one of its placeholders {{now_filetime}} \
                     (Active Directory's accountExpires) and {{now_generalized}} (an LDAP \
                     GeneralizedTime); write a literal brace as \\7b or \\7d (\\\\7b inside a \
                     TOML \"...\" string)"
                ),
            ));
        }
        let sample = crate::auth::ldap_now::fill(f, std::time::SystemTime::now());
        if !(f.starts_with('(') && f.ends_with(')')) || ldap3::parse_filter(&sample).is_err() {
            return Err(ConfigError::invalid(
                "ldap.enabled_filter",
                format!("{f:?} is not an LDAP filter in parentheses"),
            ));
        }
    }
    // Checked with sample values in place of the placeholders: the filter must parse.
    let sample = group_filter.replace("{dn}", "cn=x").replace("{user}", "x");
    if !(group_filter.contains("{dn}") || group_filter.contains("{user}"))
        || !(group_filter.starts_with('(') && group_filter.ends_with(')'))
        || ldap3::parse_filter(&sample).is_err()
    {
        return Err(ConfigError::invalid(
            "ldap.group_filter",
            format!(
                "{group_filter:?} must be an LDAP filter in parentheses with {{dn}} or {{user}}, \
                 e.g. \"(member={{dn}})\""
            ),
        ));
    }
    if !(user_filter.starts_with('(') && user_filter.ends_with(')'))
        || ldap3::parse_filter(user_filter.replace("{user}", "x")).is_err()
    {
        return Err(ConfigError::invalid(
            "ldap.user_filter",
            format!("{user_filter:?} is not an LDAP filter in parentheses"),
        ));
    }
    // {user} in the group filter is the name as the entry spells it, read back from the
    // attribute user_filter compares with the name. A user_filter without a plain
    // (attribute={user}) term has none to read, and the name as typed would stand in: with
    // (mail={user}@corp), bob's entry found by an alias "alice" would be checked as alice.
    if group_filter.contains("{user}")
        && crate::auth::ldap::naming_attributes(&user_filter).is_empty()
    {
        return Err(ConfigError::invalid(
            "ldap.group_filter",
            format!(
                "uses {{user}}, but user_filter {user_filter:?} has no (attribute={{user}}) term \
                 to read the entry's own name from; use {{dn}} (e.g. \"(member={{dn}})\"), or \
                 a user_filter such as \"(uid={{user}})\""
            ),
        ));
    }
    if base_dn.trim().is_empty() {
        return Err(ConfigError::invalid("ldap.base_dn", "must not be empty"));
    }
    // bind_dn = "" (or blanks): anonymous searches, which need no password; blanks are not
    // a name to bind with (a bind with a name and no password is unauthenticated).
    let anonymous = bind_dn.trim().is_empty();
    let bind_dn = if anonymous { String::new() } else { bind_dn };
    let bind_password = if anonymous && bind_password.is_none() && bind_password_file.is_none() {
        crate::secret::Secret::default()
    } else {
        secret_value(
            "ldap.bind_password",
            bind_password,
            bind_password_file,
            base,
        )?
    };
    // A password with no name to bind as: most likely bind_dn was forgotten, and every
    // search would run anonymously, unnoticed, with whatever an anonymous bind may read.
    if anonymous && !bind_password.is_empty() {
        return Err(ConfigError::invalid(
            "ldap.bind_password",
            "is set, but bind_dn is empty, which asks for anonymous searches: set bind_dn to \
             the service account, or remove the password to search anonymously",
        ));
    }
    if !anonymous && bind_password.is_empty() {
        return Err(ConfigError::invalid(
            "ldap.bind_password",
            "is empty: a bind with bind_dn and no password is an unauthenticated bind \
             (RFC 4513 §5.1.2), which some directories let through as anonymous; set the \
             service account's password (bind_dn = \"\" asks for anonymous searches)",
        ));
    }
    if !(100..=30_000).contains(&connect_timeout_ms) {
        return Err(ConfigError::invalid(
            "ldap.connect_timeout_ms",
            "must be between 100 and 30000",
        ));
    }
    if !(100..=30_000).contains(&timeout_ms) {
        return Err(ConfigError::invalid(
            "ldap.timeout_ms",
            "must be between 100 and 30000",
        ));
    }
    if pool_size == 0 || pool_size > 256 {
        return Err(ConfigError::invalid(
            "ldap.pool_size",
            "must be between 1 and 256",
        ));
    }
    if !(1..=4096).contains(&max_concurrent_binds) {
        return Err(ConfigError::invalid(
            "ldap.max_concurrent_binds",
            "must be between 1 and 4096",
        ));
    }
    // An hour at most: a connection idle that long has crossed most firewalls' idle
    // timeouts (and Active Directory's own MaxConnIdleTime, 15 minutes by default).
    if !(1..=3600).contains(&idle_close_secs) {
        return Err(ConfigError::invalid(
            "ldap.idle_close_secs",
            "must be between 1 and 3600 (keep it below the idle timeout of the firewalls \
             between radmfa and the directory, and of the directory itself)",
        ));
    }
    // A quarter of an hour at most: what the cache keeps (the search's attributes, the
    // name → DN mapping) is that old on a login whose bind succeeds.
    if entry_cache_seconds > 900 {
        return Err(ConfigError::invalid(
            "ldap.entry_cache_seconds",
            "must be between 0 (off) and 900",
        ));
    }
    if entry_cache_seconds > 0 {
        if let Some(extra) = filter_condition_besides_name(&user_filter) {
            return Err(ConfigError::invalid(
                "ldap.entry_cache_seconds",
                format!(
                    "cannot be used with a user_filter that tests more than the name and the \
                     object class ({extra}): a remembered entry is bound without searching, so \
                     that test would not be made again; use a client's allow_groups instead"
                ),
            ));
        }
        if let Some(f) = enabled_filter.as_deref().filter(|f| !bind_enforces(f)) {
            return Err(ConfigError::invalid(
                "ldap.entry_cache_seconds",
                format!(
                    "cannot be used with enabled_filter {f:?}: a remembered entry is bound \
                     without searching, so only what the bind itself refuses is checked \
                     again; allowed are Active Directory's disabled bit \
                     \"(!(userAccountControl:1.2.840.113556.1.4.803:=2))\" and ppolicy's \
                     \"(!(pwdAccountLockedTime=000001010000Z))\" (or =*), which the directory's \
                     bind enforces too (slapd's where the policy has pwdLockout: TRUE)"
                ),
            ));
        }
    }
    if !(1..=1_000_000).contains(&entry_cache_size) {
        return Err(ConfigError::invalid(
            "ldap.entry_cache_size",
            "must be between 1 and 1000000",
        ));
    }
    let RawLdapAttributes {
        display_name,
        given_name,
        surname,
        mail,
        mobile,
        telephone,
    } = attributes;
    for (key, name) in [
        ("display_name", &display_name),
        ("given_name", &given_name),
        ("surname", &surname),
        ("mail", &mail),
        ("mobile", &mobile),
        ("telephone", &telephone),
    ] {
        // Empty: not read (the attribute stays out of the search and the audit record).
        if !name.is_empty() && !attribute_description(name) {
            return Err(ConfigError::invalid(
                format!("ldap.attributes.{key}"),
                format!(
                    "{name:?} is not an LDAP attribute name (letters, digits and hyphens, \
                     starting with a letter; the name the directory returns, not an OID): \
                     the directory would return nothing under it, without a word (\"\" \
                     leaves the attribute unread)"
                ),
            ));
        }
    }
    Ok(LdapSettings {
        urls,
        starttls,
        ca_file,
        tls_insecure_skip_verify,
        bind_dn,
        bind_password,
        base_dn,
        user_filter,
        enabled_filter,
        group_filter,
        attributes: AttributeNames {
            display_name,
            given_name,
            surname,
            mail,
            mobile,
            telephone,
        },
        connect_timeout: Duration::from_millis(connect_timeout_ms),
        op_timeout: Duration::from_millis(timeout_ms),
        pool_size,
        user_bind_concurrency: max_concurrent_binds,
        idle_close: Duration::from_secs(idle_close_secs),
        entry_cache_ttl: Duration::from_secs(entry_cache_seconds),
        entry_cache_size,
    })
}

/// Whether `name` is an attribute description as RFC 4512 §2.5 writes one with a
/// descriptor (`mobile`, `msDS-cloudExtensionAttribute1`), with options (`;lang-en`). Not
/// a numeric OID: a directory returns the attribute under its name, and radmfa looks for
/// the name it asked for, so an OID found nothing.
fn attribute_description(name: &str) -> bool {
    let keystring = |s: &str| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    name.split(';').all(keystring)
}

/// The first condition of `user_filter` other than the name (`(attr={user})`) and the
/// object class or category, e.g. `(memberOf=cn=vpn,...)`; None for `(uid={user})` or
/// `(&(objectClass=user)(sAMAccountName={user}))`.
fn filter_condition_besides_name(filter: &str) -> Option<String> {
    let f = filter.trim();
    let terms: Vec<&str> = match f.strip_prefix("(&").and_then(|r| r.strip_suffix(')')) {
        Some(inner) => match split_terms(inner) {
            Some(terms) => terms,
            None => return Some(f.to_string()),
        },
        None => vec![f],
    };
    terms
        .into_iter()
        .find(|t| {
            let Some(body) = t.strip_prefix('(').and_then(|b| b.strip_suffix(')')) else {
                return true;
            };
            let Some((attr, value)) = body.split_once('=') else {
                return true;
            };
            let plain = |s: &str| !s.is_empty() && !s.contains(['(', ')', '*', '&', '|', '!']);
            let is_name = value == "{user}" && plain(attr) && !attr.ends_with([':', '~', '<', '>']);
            let is_class = ["objectclass", "objectcategory"]
                .contains(&attr.to_ascii_lowercase().as_str())
                && plain(value)
                && !value.contains("{user}");
            !(is_name || is_class)
        })
        .map(str::to_string)
}

/// An `enabled_filter` that only says what the directory's own bind refuses as well: AD's
/// "account disabled" bit (a bind answers 49 / data 533) or OpenLDAP ppolicy's lock (a bind
/// answers 49), so a remembered entry's bind keeps it.
fn bind_enforces(enabled_filter: &str) -> bool {
    let f: String = enabled_filter
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    [
        "(!(useraccountcontrol:1.2.840.113556.1.4.803:=2))",
        "(!(pwdaccountlockedtime=000001010000z))",
        "(!(pwdaccountlockedtime=*))",
    ]
    .contains(&f.as_str())
}

/// `(a)(b)(c)` → `["(a)", "(b)", "(c)"]`; None when the parentheses do not pair up.
fn split_terms(s: &str) -> Option<Vec<&str>> {
    let (mut terms, mut depth, mut start) = (Vec::new(), 0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => {
                if depth == 0 {
                    start = i;
                }
                depth += 1;
            }
            ')' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    terms.push(&s[start..=i]);
                }
            }
            _ if depth == 0 && !c.is_whitespace() => return None,
            _ => {}
        }
    }
    (depth == 0 && !terms.is_empty()).then_some(terms)
}

/// What is wrong with the `host[:port][/…]` of an LDAP URL, checked here because the
/// directory client finds it only at the first login (every one then fails), or not at all:
/// a host the system resolver takes for another IPv4 address (`10.0.0.010` is 10.0.0.8 to
/// it), a port that is no port.
fn url_host_problem(rest: &str) -> Option<String> {
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    // `ldap:///`: the directory client connects to localhost.
    if authority.is_empty() {
        return None;
    }
    if let Some(bracketed) = authority.strip_prefix('[') {
        return bracketed_host_problem(bracketed);
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if host.is_empty() {
        return Some("has no host".into());
    }
    // `ldap://::1:389`: splitting at the last ':' would take `::1` for the host, but the
    // directory client's URL parser reads up to the first ':' and finds no host at all, so
    // every login failed as "server unreachable". RFC 3986 writes IPv6 hosts in brackets.
    if host.contains(':') {
        return Some(
            "an IPv6 address in a URL must be in brackets, with the port after them \
             (e.g. ldap://[2001:db8::5]:389)"
                .into(),
        );
    }
    if super::upstream::looks_like_ipv4(host) {
        return Some(format!(
            "{host:?} looks like an IPv4 address but is not one (four numbers 0-255, no \
             leading zeros)"
        ));
    }
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        if let Some(why) = not_one_server(ip) {
            return Some(why);
        }
    }
    port.and_then(port_problem)
}

/// A wildcard, broadcast or multicast address names no one directory server (upstream
/// servers are refused these too). Linux connects a wildcard to the local host, so
/// `ldap://0.0.0.0` worked, while `config check` warned that passwords crossed the
/// network in clear text.
fn not_one_server(ip: std::net::IpAddr) -> Option<String> {
    // IPv4-mapped too: [::ffff:0.0.0.0] connected to the local host as 0.0.0.0 does.
    let ip = ip.to_canonical();
    let broadcast = matches!(ip, std::net::IpAddr::V4(v4) if v4.is_broadcast());
    let what = if ip.is_unspecified() {
        "wildcard (unspecified)"
    } else if broadcast {
        "broadcast"
    } else if ip.is_multicast() {
        "multicast"
    } else {
        return None;
    };
    Some(format!(
        "{ip} is a {what} address, not one server's: give the directory server's address or \
         name (127.0.0.1 or [::1] for this host)"
    ))
}

/// What is wrong with the `IPv6]:port` after an authority's `[`: the inside must be an IPv6
/// address (the directory client connects to nothing else there), and only `:port` may
/// follow the `]`.
fn bracketed_host_problem(bracketed: &str) -> Option<String> {
    let Some((inside, after)) = bracketed.split_once(']') else {
        return Some("has a '[' without its closing ']'".into());
    };
    // A link-local address needs its interface (`fe80::1%eth0`), and the directory
    // client's URL parser takes no zone id (every connection would fail to parse); without
    // one, every connect fails (the kernel cannot tell which link is meant).
    let instead = "use a global or unique-local address of the server, or its DNS name";
    if inside.contains('%') {
        return Some(format!(
            "[{inside}] has a zone id (%…), which the directory client cannot connect \
             with; {instead}"
        ));
    }
    let Ok(ip) = inside.parse::<std::net::Ipv6Addr>() else {
        return Some(format!("[{inside}] is not an IPv6 address"));
    };
    if let Some(why) = not_one_server(std::net::IpAddr::V6(ip)) {
        return Some(why);
    }
    if ip.is_unicast_link_local() {
        return Some(format!(
            "[{inside}] is link-local, which the directory client cannot reach (it takes \
             no zone id); {instead}"
        ));
    }
    if after.is_empty() {
        return None;
    }
    match after.strip_prefix(':') {
        Some(port) => port_problem(port),
        None => Some(format!(
            "{after:?} after [{inside}] is not a port (write [{inside}]:PORT)"
        )),
    }
}

/// What follows the host and port in `rest` (the URL after `scheme://`), other than a
/// lone `/`: a DN, `?attributes?scope?filter`, a fragment.
fn url_path(rest: &str) -> Option<&str> {
    let after = &rest[rest.find(['/', '?', '#'])?..];
    (after != "/").then_some(after)
}

fn port_problem(port: &str) -> Option<String> {
    match port.parse::<u16>() {
        Ok(p) if p > 0 => None,
        _ => Some(format!("{port:?} is not a port")),
    }
}

#[cfg(test)]
mod tests {
    use super::bind_enforces;
    use super::url_host_problem;

    #[test]
    fn ldap_url_hosts_the_resolver_would_misread_and_bad_ports_are_refused() {
        for fine in [
            "dc1.corp.example",
            "dc1.corp.example:636",
            "10.0.0.10:389/",
            "[2001:db8::5]:389",
            "[::1]",
            "[::ffff:10.0.0.5]:389/",
            "localhost",
            "/",
            "/dc=example,dc=com??sub?",
        ] {
            assert_eq!(url_host_problem(fine), None, "{fine}");
        }
        for (bad, says) in [
            ("10.0.0.010", "looks like an IPv4 address"),
            ("192.168.110:389", "looks like an IPv4 address"),
            ("dc1:63a6", "is not a port"),
            ("dc1:0", "is not a port"),
            ("[2001:db8::5]:x", "is not a port"),
            (":389", "has no host"),
            // The directory client's parser finds no host in these: every login failed.
            ("::1:29389", "must be in brackets"),
            ("2001:db8::5", "must be in brackets"),
            ("[::1:29389", "without its closing ']'"),
            ("[::1:29389]", "is not an IPv6 address"),
            ("[dc1.corp.example]:389", "is not an IPv6 address"),
            ("[fe80::fc:ff:fe00:1%eth0]:29389", "has a zone id"),
            ("[fe80::1%25eth0]", "has a zone id"),
            ("[fe80::fc:ff:fe00:1]:29389", "is link-local"),
            ("[::1]389", "is not a port"),
            ("0.0.0.0:389", "wildcard (unspecified)"),
            ("[::]:389", "wildcard (unspecified)"),
            ("255.255.255.255", "broadcast"),
            ("[ff02::1]:389", "multicast"),
            ("[::ffff:0.0.0.0]:389", "wildcard (unspecified)"),
            ("[::ffff:255.255.255.255]", "broadcast"),
        ] {
            let why = url_host_problem(bad).unwrap_or_default();
            assert!(why.contains(says), "{bad}: {why:?}");
        }
    }
    use super::filter_condition_besides_name as extra;

    /// Attribute names as a directory takes them; an empty or spaced one returned
    /// nothing, and the user's number or name went missing without a word.
    #[test]
    fn only_attribute_names_may_name_attributes() {
        for fine in [
            "mobile",
            "msDS-cloudExtensionAttribute1",
            "extensionAttribute1",
            "cn;lang-en",
        ] {
            assert!(super::attribute_description(fine), "{fine}");
        }
        for bad in [
            "", " ", "bad attr", "1mobile", "mobile;", "2.5.4.20", "mo_bile", "mobile ",
        ] {
            assert!(!super::attribute_description(bad), "{bad:?}");
        }
    }

    #[test]
    fn only_a_lone_slash_may_follow_an_ldap_urls_host() {
        for fine in ["dc1", "dc1:389", "dc1:389/", "[::1]:389/", "/"] {
            assert_eq!(super::url_path(fine), None, "{fine}");
        }
        assert_eq!(
            super::url_path("dc1:389/dc=example,dc=com??sub"),
            Some("/dc=example,dc=com??sub")
        );
        assert_eq!(super::url_path("dc1?uid"), Some("?uid"));
        assert_eq!(super::url_path("[::1]/x"), Some("/x"));
    }

    #[test]
    fn only_what_the_bind_refuses_too_may_stand_in_enabled_filter() {
        assert!(bind_enforces(
            "(!(userAccountControl:1.2.840.113556.1.4.803:=2))"
        ));
        assert!(bind_enforces(" (!(pwdAccountLockedTime=*)) "));
        assert!(bind_enforces("(!(pwdAccountLockedTime=000001010000Z))"));
        assert!(!bind_enforces("(memberOf=cn=vpn,dc=corp)"));
        assert!(!bind_enforces("(employeeStatus=active)"));
    }

    #[test]
    fn only_the_name_and_the_object_class_may_be_remembered() {
        assert_eq!(extra("(uid={user})"), None);
        assert_eq!(extra("(&(objectClass=inetOrgPerson)(uid={user}))"), None);
        assert_eq!(
            extra("(&(objectClass=user)(objectCategory=person)(sAMAccountName={user}))"),
            None
        );
        assert_eq!(
            extra("(&(sAMAccountName={user})(memberOf=cn=vpn,dc=corp))").as_deref(),
            Some("(memberOf=cn=vpn,dc=corp)")
        );
        assert!(extra("(|(uid={user})(mail={user}))").is_some());
        assert!(extra("(&(uid={user})(!(pwdAccountLockedTime=*)))").is_some());
        assert!(extra("(&(uid={user})(objectClass=*))").is_some());
        assert!(extra("(&(uid={user})").is_some(), "unbalanced");
    }
}
