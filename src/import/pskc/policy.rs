//! A key's `<Policy>` (RFC 6030 §5). A recipient that does not understand one of its
//! elements or values MUST treat the key as unusable: a rule radmfa does not enforce (a PIN
//! the server must check, a limit on the number of uses) would otherwise be dropped without
//! a word and the key imported as a plain token. So only what radmfa keeps or what needs
//! nothing of the server is accepted; anything else refuses the key, naming the element.

use roxmltree::Node;

use super::envelope::ValueError;
use super::xml::{text, Lines};
use crate::import::shown;

/// `PINPolicy` attributes that say nothing the server must do when the device checks the
/// PIN itself (`PINUsageMode="Local"`, RFC 6030 Figure 5).
const LOCAL_PIN_ATTRIBUTES: &[&str] = &[
    "PINKeyId",
    "PINUsageMode",
    "MaxFailedAttempts",
    "MinLength",
    "MaxLength",
    "PINEncoding",
];

/// Accepts StartDate and ExpiryDate (kept as the token's validity), KeyUsage when one of
/// them is OTP, and a PINPolicy whose PIN the device checks; refuses the key otherwise.
pub(super) fn check(policy: Node<'_, '_>, lines: &Lines) -> Result<(), ValueError> {
    let refuse = |elem: Node<'_, '_>, why: String| {
        Err(ValueError::Other(format!(
            "<{}> in <Policy> (line {}) {why}; RFC 6030 §5 makes a key with a policy the \
             server does not enforce unusable, so it is not imported",
            elem.tag_name().name(),
            lines.line(elem)
        )))
    };
    let mut first_usage = None;
    let mut otp = false;
    for elem in policy.children().filter(Node::is_element) {
        match elem.tag_name().name() {
            "StartDate" | "ExpiryDate" => {}
            "KeyUsage" => {
                first_usage.get_or_insert(elem);
                // Several usages may be listed; the key may be used for the one named.
                otp |= text(elem, &[]).as_deref() == Some("OTP");
            }
            "PINPolicy" => {
                let mode = elem.attribute("PINUsageMode");
                if mode != Some("Local") {
                    let mode = mode.map_or("no PINUsageMode".into(), |m| {
                        format!("PINUsageMode={}", shown(m))
                    });
                    return refuse(
                        elem,
                        format!(
                            "has {mode}: only a PIN the device checks itself (\"Local\") \
                             needs nothing of radmfa"
                        ),
                    );
                }
                if let Some(a) = elem
                    .attributes()
                    .find(|a| !LOCAL_PIN_ATTRIBUTES.contains(&a.name()))
                {
                    return refuse(elem, format!("has an unknown attribute {}", a.name()));
                }
                if let Some(c) = elem.children().find(Node::is_element) {
                    return refuse(
                        elem,
                        format!("has an element <{}> inside", c.tag_name().name()),
                    );
                }
            }
            _ => return refuse(elem, "is a rule radmfa does not enforce".into()),
        }
    }
    match first_usage {
        Some(usage) if !otp => refuse(
            usage,
            "does not allow OTP (no KeyUsage of the key is OTP)".into(),
        ),
        _ => Ok(()),
    }
}
