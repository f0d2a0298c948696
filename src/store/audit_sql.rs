//! The audit queries both stores build the same way: `radmfa audit`'s filters and the
//! report's grouping (`--count-by`). The dialects differ only in the user column's name and
//! the date function, which [`Dialect`] supplies.

use sqlx::{ColumnIndex, Database, Decode, Encode, QueryBuilder, Row, Type};

use super::columns::to_u64;
use super::{AuditCount, AuditFilter, AuditGroup, StoreError};
use crate::pipeline::networks::STATION_SPACE;

#[derive(Debug, Clone, Copy)]
pub(super) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    fn user_column(self) -> &'static str {
        match self {
            Dialect::Sqlite => "user",
            Dialect::Postgres => "username",
        }
    }

    /// `client_ip` in lower case without the whitespace around it, as `--count-by
    /// client-ip` folds it in Rust (`networks::station_key`: its `STATION_SPACE`, a tab or
    /// a line break as well as spaces): `trim()` alone took only spaces, and `--client-ip`
    /// missed records the count put under the address. ASCII only, by code point: chr()
    /// above 127 fails on a SQL_ASCII or LATIN1 PostgreSQL database.
    fn client_ip_folded(self) -> String {
        let points = STATION_SPACE.map(|c| (c as u32).to_string());
        match self {
            Dialect::Sqlite => format!("lower(trim(client_ip, char({})))", points.join(", ")),
            Dialect::Postgres => format!(
                "lower(btrim(client_ip, {}))",
                points.map(|p| format!("chr({p})")).join(" || ")
            ),
        }
    }

    /// The expression records are grouped by; `-` where the column is empty.
    fn group_key(self, by: AuditGroup) -> &'static str {
        match (by, self) {
            (AuditGroup::User, d) => d.user_column(),
            (AuditGroup::Nas, _) => "COALESCE(nas_name, '-')",
            (AuditGroup::Mode, _) => "mode",
            (AuditGroup::Result, _) => "result",
            (AuditGroup::Reason, _) => "COALESCE(reason, '-')",
            (AuditGroup::Server, _) => "server_name",
            (AuditGroup::ClientIp, _) => "COALESCE(client_ip, '-')",
            (AuditGroup::Day, Dialect::Sqlite) => "strftime('%Y-%m-%d', time, 'unixepoch')",
            (AuditGroup::Day, Dialect::Postgres) => {
                "to_char(to_timestamp(time) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
            }
        }
    }
}

/// `radmfa audit`'s filters, after a `WHERE` clause.
pub(super) fn push_filter<'a, DB>(q: &mut QueryBuilder<'a, DB>, d: Dialect, f: &AuditFilter)
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB> + 'a,
    i64: Encode<'a, DB> + Type<DB> + 'a,
{
    if let Some(user) = &f.user {
        q.push(format!(" AND {} = ", d.user_column()))
            .push_bind(user.clone());
    }
    if let Some(result) = &f.result {
        q.push(" AND result = ").push_bind(result.clone());
    }
    if let Some(mode) = &f.mode {
        q.push(" AND mode = ").push_bind(mode.clone());
    }
    if let Some(server) = &f.server {
        q.push(" AND server_name = ").push_bind(server.clone());
    }
    // A client's name in any case: the config holds one client per name, case aside, and
    // a client renamed only in case keeps its records under the old spelling (no index on
    // the column to lose).
    if let Some(nas) = &f.nas {
        q.push(" AND lower(nas_name) = lower(")
            .push_bind(nas.clone())
            .push(")");
    }
    if let Some(token) = &f.token {
        q.push(" AND token_serial = ").push_bind(token.clone());
    }
    if let Some(given) = &f.client_ip {
        match address_forms(given) {
            Some(forms) => {
                q.push(" AND (");
                for (i, (op, form)) in forms.into_iter().enumerate() {
                    if i > 0 {
                        q.push(" OR ");
                    }
                    q.push(format!("{} {op} ", d.client_ip_folded()))
                        .push_bind(form);
                }
                q.push(")");
            }
            None => {
                q.push(" AND client_ip = ").push_bind(given.clone());
            }
        }
    }
    if let Some(since) = f.since {
        q.push(" AND time >= ").push_bind(since);
    }
    // Exclusive, so that consecutive windows do not both count a record on their boundary.
    if let Some(until) = f.until {
        q.push(" AND time < ").push_bind(until);
    }
    if let Some(id) = f.after_id {
        q.push(" AND id > ").push_bind(id);
    }
    // Written so the time index bounds the scan (an OR of the two cases would not).
    if let Some((time, id)) = f.before {
        q.push(" AND time <= ")
            .push_bind(time)
            .push(" AND (time < ")
            .push_bind(time)
            .push(" OR id < ")
            .push_bind(id)
            .push(")");
    }
}

/// The ways a NAS writes the address `given` names in a Calling-Station-Id, as comparisons
/// with the stored text in lower case: bare, with a port (`a.b.c.d:port`, `[v6]:port`,
/// strongSwan's `addr[port]`), in brackets, IPv4-mapped (also in hex, `::ffff:a09:101`,
/// padded or written out in full),
/// an IPv4 address with every part padded to three digits (`010.009.001.001`), an IPv6
/// one written out in full (`2001:0db8:0:…`, with or without the leading zeros), with
/// spaces, tabs or line breaks around. As exempt networks and remembered logins read it
/// (`pipeline::networks`): compared as text, `--client-ip 2001:db8::21` found 1 of a
/// user's 4 logins from there, the others written with ports. Other spellings (some parts
/// padded, some groups compressed) are not found (`--count-by client-ip` counts them under
/// the address; a zero-padded IPv4 address it lists apart, as written, since exempt
/// networks do not read it as an address: some systems read its parts as octal). `None`
/// for what is no address (a MAC, a phone number): matched as given.
fn address_forms(given: &str) -> Option<Vec<(&'static str, String)>> {
    let key = crate::pipeline::networks::station_key(given);
    let ip: std::net::IpAddr = key.parse().ok().or_else(|| padded_v4(&key))?;
    // Bare spellings, then each with what a NAS puts around it.
    let (plain, mapped, v6): (Vec<String>, Vec<String>, Vec<String>) = match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            let (hi, lo) = (u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]));
            (
                vec![v4.to_string(), format!("{a:03}.{b:03}.{c:03}.{d:03}")],
                vec![
                    format!("::ffff:{v4}"),
                    format!("::ffff:{hi:x}:{lo:x}"),
                    format!("::ffff:{hi:04x}:{lo:04x}"),
                    format!("0:0:0:0:0:ffff:{hi:x}:{lo:x}"),
                    format!("0000:0000:0000:0000:0000:ffff:{hi:04x}:{lo:04x}"),
                ],
                Vec::new(),
            )
        }
        std::net::IpAddr::V6(v6) => {
            let groups = v6.segments();
            let join = |f: &dyn Fn(u16) -> String| {
                groups.iter().map(|g| f(*g)).collect::<Vec<_>>().join(":")
            };
            (
                Vec::new(),
                Vec::new(),
                vec![
                    v6.to_string(),
                    join(&|g| format!("{g:x}")),
                    join(&|g| format!("{g:04x}")),
                ],
            )
        }
    };
    // The text given, too, as typed (`01.2.3.4`, which no spelling below is).
    let mut forms: Vec<(&'static str, String)> = vec![("=", key.to_lowercase())];
    for a in plain {
        forms.extend([
            ("=", a.clone()),
            ("LIKE", format!("{a}:%")),
            ("LIKE", format!("{a}[%")),
        ]);
    }
    for a in mapped.into_iter().chain(v6) {
        forms.extend([
            ("=", a.clone()),
            ("LIKE", format!("[{a}]%")),
            ("LIKE", format!("{a}[%")),
        ]);
    }
    forms.sort();
    forms.dedup();
    Some(forms)
}

/// An IPv4 address given with its parts padded with zeros (`010.009.001.001`, as a record
/// may show it), read as decimal: only to search the audit, where reading it is harmless
/// (exempt networks do not read it at all).
fn padded_v4(given: &str) -> Option<std::net::IpAddr> {
    let parts: Vec<u8> = given
        .split('.')
        .map(|p| {
            (!p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse::<u8>().ok())
                .flatten()
        })
        .collect::<Option<_>>()?;
    let [a, b, c, d] = parts[..] else {
        return None;
    };
    Some(std::net::Ipv4Addr::new(a, b, c, d).into())
}

/// Records returned when the filter's limit is 0.
const DEFAULT_LIMIT: u32 = 100;

/// [`super::Store::audit`]'s query: the filtered records in the order
/// [`AuditFilter::after_id`] asks for, at most `limit` (0: 100).
pub(super) fn records_query<'a, DB>(
    d: Dialect,
    columns: &str,
    f: &AuditFilter,
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB> + 'a,
    i64: Encode<'a, DB> + Type<DB> + 'a,
{
    let mut q = QueryBuilder::new(format!("SELECT {columns} FROM audit WHERE 1 = 1"));
    push_filter(&mut q, d, f);
    q.push(if f.after_id.is_some() {
        " ORDER BY id LIMIT "
    } else if f.newest_by_id {
        " ORDER BY id DESC LIMIT "
    } else {
        " ORDER BY time DESC, id DESC LIMIT "
    });
    let limit = if f.limit == 0 { DEFAULT_LIMIT } else { f.limit };
    q.push_bind(i64::from(limit));
    q
}

/// [`super::Store::audit_counts`]'s query: one row per group and result.
pub(super) fn counts_query<'a, DB>(
    d: Dialect,
    f: &AuditFilter,
    by: AuditGroup,
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB> + 'a,
    i64: Encode<'a, DB> + Type<DB> + 'a,
{
    let mut q = QueryBuilder::new(format!(
        "SELECT {} AS k, result, COUNT(*) AS n FROM audit WHERE 1 = 1",
        d.group_key(by)
    ));
    push_filter(&mut q, d, f);
    q.push(" GROUP BY k, result");
    q
}

/// A row of [`counts_query`].
pub(super) fn count_from_row<R>(r: &R) -> Result<AuditCount, StoreError>
where
    R: Row,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    &'static str: ColumnIndex<R>,
{
    Ok(AuditCount {
        key: r.try_get("k")?,
        result: r.try_get("result")?,
        count: to_u64(r.try_get("n")?, "audit count")?,
    })
}

#[cfg(test)]
mod white_space_tests {
    use crate::pipeline::networks::station_key;

    /// What `--count-by` folds (station_key) is what the SQL trims: ASCII's whitespace,
    /// and no other.
    #[test]
    fn stations_are_trimmed_of_ascii_whitespace_only() {
        assert_eq!(station_key(" \t10.0.0.1:5\r\n\u{b}\u{c}"), "10.0.0.1");
        for other in ['\u{a0}', '\u{3000}', '\u{2028}', '\u{85}'] {
            assert_ne!(
                station_key(&format!("10.0.0.1{other}")),
                "10.0.0.1",
                "{other:?}"
            );
        }
        assert!(super::STATION_SPACE.iter().all(|c| c.is_ascii()));
    }
}
