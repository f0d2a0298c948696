//! A client's `accept_attributes` and `group_attributes` on an Access-Accept, then what an
//! upstream server granted (`[upstream] pass_through`): how the NAS learns the user's policy
//! or group. Of an attribute an Accept carries at most once, a matching group rule's value
//! replaces the client-wide one (`merge`). Group rules are evaluated at the moment of the
//! accept (one base search per rule; for an answer to a code prompt, just before its code is
//! checked), so a user taken out of a group loses its attributes at the next login. A directory failure here refuses the login: an accept without the
//! expected attributes could put the user under a broader default policy on the NAS.

use super::{Fault, RequestContext, Verdict};
use crate::auth::{AuthError, UserInfo};
use crate::radius::reply_attr::{AttrKey, ReplyAttr};
use crate::radius::ReplyCode;
use crate::store::durability;

pub async fn add(ctx: &RequestContext, user: &str, v: &mut Verdict) -> Result<(), Fault> {
    let rules = &ctx.client.accept_attributes;
    if v.reply.code != ReplyCode::Accept {
        return Ok(());
    }
    let found = match v.groups.take() {
        Some(found) => *found,
        None => search(ctx, user, v.info.as_ref()).await?,
    };
    let matched: Vec<&[ReplyAttr]> = match found {
        GroupMatch::Rules(indices) => indices
            .iter()
            .filter_map(|&i| rules.by_group.get(i))
            .map(|(_, attributes)| attributes.as_slice())
            .collect(),
        GroupMatch::Refused(reason) => {
            // The factor that passed stays in the record: the code was right.
            v.refuse(reason);
            return Ok(());
        }
    };
    // The admin's attributes first, then what an upstream server granted at the password
    // check: a NAS that reads the first of a single-valued attribute (Session-Timeout,
    // Service-Type) applies the admin's value, not the upstream's.
    v.reply.attributes.extend(merge(&rules.always, &matched));
    if let Some(info) = &v.info {
        // One of a single-valued attribute only (RFC 2865 §5.44: 0-1 in an Accept): a
        // NAS that reads the last one would apply the upstream's Session-Timeout or
        // Service-Type over the admin's.
        let admins: Vec<AttrKey> = v.reply.attributes.iter().map(|a| a.key()).collect();
        let granted = info
            .granted
            .iter()
            .filter(|a| !(a.single() && admins.contains(&a.key())));
        v.reply.attributes.extend(granted.cloned());
    }
    Ok(())
}

/// The client's `accept_attributes`, then the attributes of each group rule the user
/// matched (in config order), with one of each single-valued attribute (RFC 2865 §5.44:
/// 0-1 in an Accept): a matching group rule's over the client-wide one, and the first
/// matching rule's over a later one's. Sent twice, the NAS would pick one by its own rule,
/// often the first: the client-wide 8-hour Session-Timeout over the contractors' group's
/// hour, or the everyone's NAS-Prompt-User over the admins' Administrative-User.
fn merge(always: &[ReplyAttr], matched: &[&[ReplyAttr]]) -> Vec<ReplyAttr> {
    let mut taken: Vec<AttrKey> = Vec::new();
    let mut first = |a: &&ReplyAttr| {
        let dup = a.single() && taken.contains(&a.key());
        taken.push(a.key());
        !dup
    };
    // The groups choose first, so that theirs win; the client's still go out first.
    let groups: Vec<&ReplyAttr> = matched
        .iter()
        .flat_map(|r| r.iter())
        .filter(&mut first)
        .collect();
    let client = always.iter().filter(&mut first);
    client.chain(groups).cloned().collect()
}

/// What the directory said of the user's `group_attributes` groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupMatch {
    /// The rules whose group the user is in (indices into `by_group`, config order).
    Rules(Vec<usize>),
    /// The login is refused for this reason instead (the user or a group gone from the
    /// directory), though its factor passed.
    Refused(String),
}

/// The `group_attributes` rules whose group the user is in: one base search per rule, at
/// the moment of the accept, or, for an answer to a code prompt, before its code is checked
/// ([`before_the_code`]). `info`: the entry found at the password check, if any.
pub async fn search(
    ctx: &RequestContext,
    user: &str,
    info: Option<&UserInfo>,
) -> Result<GroupMatch, Fault> {
    let rules = &ctx.client.accept_attributes;
    if rules.by_group.is_empty() {
        return Ok(GroupMatch::Rules(Vec::new()));
    }
    // The login's writes (the code used, the failures cleared, the State consumed) are
    // committed before the directory is asked: on PostgreSQL they are one open transaction
    // holding a pooled connection and the user's row locks, which a slow directory would
    // otherwise keep from every other request and node for as long as these searches take.
    durability::settle().await?;
    // The DN is known from the password check or carried with the challenge; a second
    // factor without either (an older challenge) searches once.
    let primary = ctx.primary.clone();
    let info = match info.filter(|i| !i.dn.is_empty()) {
        Some(i) => i.clone(),
        None => match primary.lookup(user).await? {
            Some(i) => i,
            None => {
                return Ok(GroupMatch::Refused(
                    "not in the directory any more (group_attributes)".into(),
                ))
            }
        },
    };
    let mut matched = Vec::new();
    for (i, (group, _)) in rules.by_group.iter().enumerate() {
        match primary.is_member(user, &info, group).await {
            Ok(true) => matched.push(i),
            Ok(false) => {}
            // A renamed or moved group whose attributes restrict (a Filter-Id for
            // contractors): accepting without them would put its members under the NAS's
            // broader default. A setting to fix, not a directory outage: a Reject, not a fault.
            Err(AuthError::NoSuchGroup(g)) => {
                crate::warn_once!(
                    &format!("group_attributes group {g}"),
                    group = g.as_str(),
                    "group_attributes: group not found in the directory"
                );
                return Ok(GroupMatch::Refused(format!(
                    "group_attributes group {g} is not in the directory (renamed or moved?)"
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(GroupMatch::Rules(matched))
}

/// For an answer to a code prompt on a client with `group_attributes`: the group searches
/// its Accept needs, made before the code is checked. A code that passes is used up and its
/// prompt closed; searched after that, a directory that timed out refused a right code and
/// left the user nothing to retry with (the prompt gone, the code "already used") until the
/// next code. Searched first, a directory failure leaves the code unused and the prompt
/// open: the user's retry, or the NAS's retransmit, goes through. Each answer, right or
/// wrong, costs the searches; wrong ones are bounded by `[lockout]`.
pub async fn before_the_code(
    ctx: &RequestContext,
    user: &str,
    info: &UserInfo,
) -> Result<Option<Box<GroupMatch>>, Fault> {
    if ctx.client.accept_attributes.by_group.is_empty() {
        return Ok(None);
    }
    let found = search(ctx, user, Some(info)).await?;
    Ok(Some(Box::new(found)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::reply_attr::single_valued;

    fn attrs(specs: &[&str]) -> Vec<ReplyAttr> {
        specs.iter().map(|s| ReplyAttr::parse(s).unwrap()).collect()
    }

    #[test]
    fn a_groups_single_valued_attribute_replaces_the_clients() {
        let always = attrs(&["Session-Timeout = 28800", "Service-Type = NAS-Prompt-User"]);
        let admins = attrs(&[
            "Service-Type = Administrative-User",
            "Session-Timeout = 3600",
        ]);
        let sent = merge(&always, &[&admins]);
        assert_eq!(sent, admins, "the group's values alone");
        // Not in the group: the client's.
        assert_eq!(merge(&always, &[]), always);
    }

    #[test]
    fn of_two_matching_groups_the_first_rules_value_wins() {
        let always = attrs(&["Session-Timeout = 28800"]);
        let contractors = attrs(&["Session-Timeout = 3600", "Idle-Timeout = 300"]);
        let staff = attrs(&["Session-Timeout = 43200", "Idle-Timeout = 1800"]);
        assert_eq!(merge(&always, &[&contractors, &staff]), contractors);
        assert_eq!(merge(&always, &[&staff, &contractors]), staff);
        // One rule naming it twice: its first, as for two rules.
        let twice = attrs(&["Idle-Timeout = 60", "Idle-Timeout = 120"]);
        assert_eq!(merge(&[], &[&twice]), twice[..1]);
    }

    #[test]
    fn attributes_that_may_repeat_are_all_sent_in_order() {
        // Class, Filter-Id and Vendor-Specific are 0+ in an Access-Accept (RFC 2865 §5.44).
        let always = attrs(&[
            "Class = everyone",
            "Filter-Id = base",
            "Fortinet-Group-Name = vpn",
        ]);
        let admins = attrs(&[
            "Class = admins",
            "Filter-Id = admin-acl",
            "Fortinet-Group-Name = admins",
        ]);
        let contractors = attrs(&["Class = contractors", "Filter-Id = restricted"]);
        let sent = merge(&always, &[&admins, &contractors]);
        let want: Vec<ReplyAttr> = [always, admins, contractors].concat();
        assert_eq!(sent, want);
    }

    #[test]
    fn a_vendor_attribute_naming_one_thing_is_replaced_and_a_group_name_repeats() {
        let always = attrs(&[
            "CP-Gaia-SuperUser-Access = 0",
            "Vendor-12356-Attr-6 = read-only",
            "Fortinet-Group-Name = everyone",
        ]);
        let admins = attrs(&[
            "CP-Gaia-SuperUser-Access = 1",
            "Fortinet-Access-Profile = super_admin",
            "Fortinet-Group-Name = admins",
        ]);
        let sent = merge(&always, &[&admins]);
        let want = attrs(&[
            "Fortinet-Group-Name = everyone",
            "CP-Gaia-SuperUser-Access = 1",
            "Fortinet-Access-Profile = super_admin",
            "Fortinet-Group-Name = admins",
        ]);
        assert_eq!(sent, want);
    }

    #[test]
    fn vendor_attributes_are_told_apart_by_vendor_and_type() {
        let a = |s: &str| ReplyAttr::parse(s).unwrap();
        assert_eq!(a("Aruba-User-Role = x").key(), AttrKey::Vendor(14823, 1));
        assert_eq!(a("Vendor-14823-Attr-1 = x").name(), "Aruba-User-Role");
        assert_eq!(a("Vendor-9999-Attr-7 = x").name(), "Vendor-9999-Attr-7");
        assert_eq!(a("Class = x").key(), AttrKey::Standard(25));
        for once in [
            "CP-Gaia-SuperUser-Access = 1",
            "Fortinet-Access-Profile = p",
            "PaloAlto-Admin-Role = r",
            "Aruba-User-Role = r",
            "Aruba-Admin-Role = r",
            "Juniper-Local-User-Name = u",
        ] {
            assert!(a(once).single(), "{once}");
        }
        for many in [
            "Fortinet-Group-Name = g",
            "PaloAlto-User-Group = g",
            "Cisco-AVPair = a=b",
            "SonicWall-User-Privilege = 1",
            "Vendor-9999-Attr-7 = x",
        ] {
            assert!(!a(many).single(), "{many}");
        }
    }

    #[test]
    fn single_valued_is_the_accept_column_of_the_rfc_tables() {
        let single =
            |name: &str| single_valued(ReplyAttr::parse(&format!("{name} = 1")).unwrap().typ);
        for name in [
            "Service-Type",
            "Session-Timeout",
            "Idle-Timeout",
            "Framed-Pool",
        ] {
            assert!(single(name), "{name}");
        }
        for name in ["Class", "Filter-Id", "Fortinet-Group-Name"] {
            assert!(!single(name), "{name}");
        }
        // Termination-Action (29), Framed-IP-Address (8): 0-1; Reply-Message (18),
        // Framed-Route (22), Framed-Compression (13): 0+.
        assert!(single_valued(29) && single_valued(8));
        assert!(!single_valued(18) && !single_valued(22) && !single_valued(13));
        // RFC 3162, 4818, 6911: the interface id and the pools once; prefixes, routes and
        // addresses may repeat.
        for typ in [96, 100, 171, 172] {
            assert!(single_valued(typ), "{typ}");
        }
        for typ in [97, 99, 123, 168, 169] {
            assert!(!single_valued(typ), "{typ}");
        }
    }
}
