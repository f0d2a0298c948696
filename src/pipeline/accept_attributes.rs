//! A client's `accept_attributes` and `group_attributes` on an Access-Accept, then what an
//! upstream server granted (`[upstream] pass_through`): how the NAS learns the user's policy
//! or group. Group rules are evaluated at the moment of the accept
//! (one base search per rule), so a user taken out of a group loses its attributes at the
//! next login. A directory failure here refuses the login: an accept without the expected
//! attributes could put the user under a broader default policy on the NAS.

use super::{Fault, RequestContext, Verdict};
use crate::auth::AuthError;
use crate::radius::ReplyCode;
use crate::store::durability;

pub async fn add(ctx: &RequestContext, user: &str, v: &mut Verdict) -> Result<(), Fault> {
    let rules = &ctx.client.accept_attributes;
    if v.reply.code != ReplyCode::Accept {
        return Ok(());
    }
    // The client's own attributes first, then what an upstream server granted at the
    // password check: a NAS that reads the first of a single-valued attribute
    // (Session-Timeout, Service-Type) applies the admin's value, not the upstream's.
    v.reply.attributes.extend(rules.always.iter().cloned());
    if !rules.by_group.is_empty() {
        add_group_attributes(ctx, user, v).await?;
    }
    if v.reply.code == ReplyCode::Accept {
        if let Some(info) = &v.info {
            // One of a single-valued attribute only (RFC 2865 §5.44: 0-1 in an Accept): a
            // NAS that reads the last one would apply the upstream's Session-Timeout or
            // Service-Type over the admin's.
            let admins: Vec<u8> = v.reply.attributes.iter().map(|a| a.typ).collect();
            let granted = info
                .granted
                .iter()
                .filter(|a| !(SINGLE_VALUED.contains(&a.typ) && admins.contains(&a.typ)));
            v.reply.attributes.extend(granted.cloned());
        }
    }
    Ok(())
}

/// Attributes RFC 2865 §5.44 allows at most once in an Access-Accept: Service-Type (6),
/// Framed-Protocol (7), Framed-IP-Address (8), Framed-IP-Netmask (9), Framed-Routing (10),
/// Framed-MTU (12), Session-Timeout (27), Idle-Timeout (28), Termination-Action (29).
const SINGLE_VALUED: [u8; 9] = [6, 7, 8, 9, 10, 12, 27, 28, 29];

/// `group_attributes`: one base search per rule, at the moment of the accept.
async fn add_group_attributes(
    ctx: &RequestContext,
    user: &str,
    v: &mut Verdict,
) -> Result<(), Fault> {
    let rules = &ctx.client.accept_attributes;
    // The login's writes (the code used, the failures cleared, the State consumed) are
    // committed before the directory is asked: on PostgreSQL they are one open transaction
    // holding a pooled connection and the user's row locks, which a slow directory would
    // otherwise keep from every other request and node for as long as these searches take.
    durability::settle().await?;
    // The DN is known from the password check or carried with the challenge; a second
    // factor without either (an older challenge) searches once.
    let primary = ctx.primary.clone();
    let info = match v.info.as_ref().filter(|i| !i.dn.is_empty()) {
        Some(i) => i.clone(),
        None => match primary.lookup(user).await? {
            Some(i) => i,
            None => {
                let info = v.info.take();
                *v = Verdict::reject("not in the directory any more (group_attributes)")
                    .with_info(info);
                return Ok(());
            }
        },
    };
    for (group, attributes) in &rules.by_group {
        match primary.is_member(user, &info, group).await {
            Ok(true) => v.reply.attributes.extend(attributes.iter().cloned()),
            Ok(false) => {}
            // A renamed or moved group whose attributes restrict (a Filter-Id for
            // contractors): accepting without them would put its members under the NAS's
            // broader default. A setting to fix, not a directory outage: a Reject, not a fault.
            Err(AuthError::NoSuchGroup(g)) => {
                tracing::warn!(
                    group = g.as_str(),
                    "group_attributes: group not found in the directory"
                );
                let info = v.info.take();
                *v = Verdict::reject(format!(
                    "group_attributes group {g} is not in the directory (renamed or moved?)"
                ))
                .with_info(info);
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
