//! `radmfa config check --connect`: every group the clients name (allow_groups,
//! exempt_groups, group_attributes), read with the service account as logins read it. A
//! membership check that cannot read the attribute it compares (an ACL that hides `member`
//! from the bind_dn, a groupOfUniqueNames under the default `(member={dn})`) answers "not a
//! member" for everyone: allow_groups then let nobody in and group_attributes are silently
//! never sent, with nothing at login to tell that from a real "no". Here it can be told.

use crate::auth::ldap::LdapSettings;
use crate::auth::ldap_hints::who;
use crate::auth::{membership_attributes, AuthError, GroupView, LdapAuth};
use crate::config::Config;

/// Where each object class keeps its members, and the filter that compares them.
const MEMBERS_BY_CLASS: &[(&str, &str, &str)] = &[
    ("groupOfNames", "member", "(member={dn})"),
    ("group", "member", "(member={dn})"),
    ("groupOfUniqueNames", "uniqueMember", "(uniqueMember={dn})"),
    ("posixGroup", "memberUid", "(memberUid={user})"),
];

/// One line per configured group (each once, with every client and key naming it).
pub(super) async fn check(
    cfg: &Config,
    settings: &LdapSettings,
    ldap: &LdapAuth,
    line: &mut impl FnMut(bool, String),
) {
    for (group, uses) in configured_groups(cfg) {
        let uses = uses.join(", ");
        match ldap.read_group(&group).await {
            Ok(view) => match finding(settings, &view) {
                None if view.visible.is_empty() => {
                    line(true, format!("group {group}: found ({uses})"))
                }
                None => line(
                    true,
                    format!(
                        "group {group}: found, {} readable ({uses})",
                        view.visible.join(", ")
                    ),
                ),
                Some(why) => warn(&format!("group {group} ({uses}): {why}")),
            },
            Err(AuthError::NoSuchGroup(_)) => warn(&format!(
                "group {group} ({uses}): not in the directory, or hidden from {}: nobody is \
                 its member (renamed or moved? a group_attributes group missing refuses the \
                 client's logins)",
                who(settings)
            )),
            Err(e) => line(false, format!("group {group}: {e}")),
        }
    }
}

fn warn(what: &str) {
    println!("WARN {}", super::printable(what));
}

/// Each group DN the clients name, in config order, with where it is named
/// (`client "vpn" allow_groups`).
fn configured_groups(cfg: &Config) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for c in &cfg.clients {
        let attribute_groups = c.accept_attributes.by_group.iter().map(|(g, _)| g);
        let named = c
            .groups
            .allow
            .iter()
            .map(|g| (g, "allow_groups"))
            .chain(c.groups.exempt.iter().map(|g| (g, "exempt_groups")))
            .chain(attribute_groups.map(|g| (g, "group_attributes")));
        for (group, kind) in named {
            let used = format!("client {:?} {kind}", c.name);
            match out
                .iter_mut()
                .find(|(g, _)| crate::auth::ldap::same_dn(g, group))
            {
                Some((_, uses)) if !uses.contains(&used) => uses.push(used),
                Some(_) => {}
                None => out.push((group.clone(), vec![used])),
            }
        }
    }
    out
}

/// Why every membership check of this group would say "not a member", if it would.
fn finding(settings: &LdapSettings, view: &GroupView) -> Option<String> {
    let compared = membership_attributes(&settings.group_filter);
    if compared.is_empty() {
        // A filter whose terms are not plain (attr={dn}): nothing to go by.
        return None;
    }
    let is_compared = |attr: &str| compared.iter().any(|c| c.eq_ignore_ascii_case(attr));
    let classes: Vec<&(&str, &str, &str)> = MEMBERS_BY_CLASS
        .iter()
        .filter(|(class, _, _)| {
            view.object_classes
                .iter()
                .any(|c| c.eq_ignore_ascii_case(class))
        })
        .collect();
    // A groupOfUniqueNames under the default filter: its members are in an attribute the
    // filter never compares.
    if !classes.is_empty() && !classes.iter().any(|(_, attr, _)| is_compared(attr)) {
        let (class, attr, filter) = classes[0];
        return Some(format!(
            "a {class} lists its members in {attr}, which [ldap] group_filter {:?} does not \
             compare: every membership check says \"not a member\"; set group_filter = \
             {filter:?} (or one that compares both)",
            settings.group_filter
        ));
    }
    if view.visible.is_empty() {
        return Some(format!(
            "the entry is read, but none of {} (what [ldap] group_filter compares) is shown \
             to {}: every membership check says \"not a member\" (allow_groups let nobody \
             in, exempt_groups exempt nobody, group_attributes are never sent). Most likely \
             the directory's ACL hides it from the bind_dn: grant the bind_dn read access to \
             it (or the group has no members)",
            compared.join(", "),
            who(settings)
        ));
    }
    None
}
