//! The audit queries both stores build the same way: `radmfa audit`'s filters and the
//! report's grouping (`--count-by`). The dialects differ only in the user column's name and
//! the date function, which [`Dialect`] supplies.

use sqlx::{ColumnIndex, Database, Decode, Encode, QueryBuilder, Row, Type};

use super::columns::to_u64;
use super::{AuditCount, AuditFilter, AuditGroup, StoreError};

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
    if let Some(nas) = &f.nas {
        q.push(" AND nas_name = ").push_bind(nas.clone());
    }
    if let Some(token) = &f.token {
        q.push(" AND token_serial = ").push_bind(token.clone());
    }
    if let Some(ip) = &f.client_ip {
        q.push(" AND client_ip = ").push_bind(ip.clone());
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
