//! A search result entry read from its BER, in place of ldap3's `SearchEntry::construct`.
//!
//! Why: `construct` panics on a malformed entry (a DN or attribute type that is not UTF-8,
//! an entry without its attribute list), which a broken or hostile directory, or anyone
//! able to rewrite a plain `ldap://` connection, can send: the request's task died with no
//! reply and no audit record, and a backtrace went to the log for each. And it keeps only
//! the last of an attribute listed twice in one entry (slapd sends `uid` twice for an entry
//! loaded with its values apart), so a name of the entry was lost, and with it the check
//! that a login under one of an entry's names does not skip the second factor enrolled
//! under another. Hand-written: it is a few lines over ldap3's own BER types, and no crate
//! reads entries without these flaws.

use std::collections::HashMap;

use ldap3::asn1::StructureTag;
use ldap3::SearchEntry;

/// The entry (a `ResultEntry`'s tag), with the values of an attribute listed more than once gathered under its
/// first spelling (attribute types compared without case, as LDAP does). Values that are
/// not UTF-8 go to `bin_attrs`, as `construct` puts them; a DN or attribute type that is
/// not UTF-8, or a missing part, is an error naming what was wrong.
pub fn read(entry: StructureTag) -> Result<SearchEntry, String> {
    let mut parts = entry
        .match_id(4)
        .and_then(StructureTag::expect_constructed)
        .ok_or("not a search result entry")?
        .into_iter();
    let dn = utf8(parts.next(), "the DN")?;
    let list = parts
        .next()
        .and_then(StructureTag::expect_constructed)
        .ok_or("no attribute list")?;
    let mut attrs: HashMap<String, Vec<String>> = HashMap::new();
    let mut bin_attrs: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    for attribute in list {
        let mut attribute = attribute
            .expect_constructed()
            .ok_or("an attribute that is not a sequence")?
            .into_iter();
        let kind = utf8(attribute.next(), "an attribute type")?;
        let values = attribute
            .next()
            .and_then(StructureTag::expect_constructed)
            .ok_or_else(|| format!("attribute {kind:?} without its values"))?;
        // Listed with no values (a types-only search, as `config check` reads a group's
        // attributes): present all the same, as `construct` has it.
        if values.is_empty() && !bin_attrs.keys().any(|k| k.eq_ignore_ascii_case(&kind)) {
            gathered(&mut attrs, &kind);
        }
        for value in values {
            let bytes = value
                .expect_primitive()
                .ok_or_else(|| format!("a value of attribute {kind:?} that is not a string"))?;
            match String::from_utf8(bytes) {
                Ok(text) => gathered(&mut attrs, &kind).push(text),
                Err(e) => gathered(&mut bin_attrs, &kind).push(e.into_bytes()),
            }
        }
    }
    Ok(SearchEntry {
        dn,
        attrs,
        bin_attrs,
    })
}

/// The values already gathered under `kind` in any spelling, else a new list.
fn gathered<'a, V>(map: &'a mut HashMap<String, Vec<V>>, kind: &str) -> &'a mut Vec<V> {
    let key = map
        .keys()
        .find(|k| k.eq_ignore_ascii_case(kind))
        .cloned()
        .unwrap_or_else(|| kind.to_string());
    map.entry(key).or_default()
}

fn utf8(tag: Option<StructureTag>, what: &str) -> Result<String, String> {
    let bytes = tag
        .and_then(StructureTag::expect_primitive)
        .ok_or_else(|| format!("{what} is missing"))?;
    String::from_utf8(bytes).map_err(|_| format!("{what} is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3::asn1::{TagClass, PL};

    fn octets(bytes: &[u8]) -> StructureTag {
        StructureTag {
            class: TagClass::Universal,
            id: 4,
            payload: PL::P(bytes.to_vec()),
        }
    }

    fn seq(inner: Vec<StructureTag>) -> StructureTag {
        StructureTag {
            class: TagClass::Universal,
            id: 16,
            payload: PL::C(inner),
        }
    }

    fn entry(dn: &[u8], attrs: Option<Vec<StructureTag>>) -> StructureTag {
        let mut parts = vec![octets(dn)];
        parts.extend(attrs.map(seq));
        StructureTag {
            class: TagClass::Application,
            id: 4,
            payload: PL::C(parts),
        }
    }

    fn attribute(kind: &[u8], values: &[&[u8]]) -> StructureTag {
        seq(vec![
            octets(kind),
            StructureTag {
                class: TagClass::Universal,
                id: 17,
                payload: PL::C(values.iter().map(|v| octets(v)).collect()),
            },
        ])
    }

    #[test]
    fn an_attribute_listed_twice_keeps_every_value() {
        let e = read(entry(
            b"uid=carol,dc=example",
            Some(vec![
                attribute(b"uid", &[b"carol"]),
                attribute(b"mail", &[b"carol@example.org"]),
                attribute(b"UID", &[b"carol.x"]),
                attribute(b"jpegPhoto", &[b"\xff\xd8"]),
            ]),
        ))
        .unwrap();
        assert_eq!(e.dn, "uid=carol,dc=example");
        assert_eq!(e.attrs["uid"], ["carol", "carol.x"]);
        assert_eq!(e.attrs["mail"], ["carol@example.org"]);
        assert_eq!(e.bin_attrs["jpegPhoto"], [b"\xff\xd8".to_vec()]);
        assert_eq!(e.attrs.len(), 2);
    }

    /// A types-only read lists attributes without values: each is present, as ldap3's
    /// `construct` has it (`config check` tells a hidden `member` from a shown one so).
    #[test]
    fn attributes_listed_without_values_are_present() {
        let e = read(entry(
            b"cn=staff,dc=example",
            Some(vec![
                attribute(b"member", &[]),
                attribute(b"objectClass", &[]),
            ]),
        ))
        .unwrap();
        assert!(e.attrs["member"].is_empty() && e.attrs["objectClass"].is_empty());
        assert_eq!(e.attrs.len(), 2);
    }

    /// What made ldap3's `construct` panic is an error naming the part.
    #[test]
    fn a_malformed_entry_is_an_error_not_a_panic() {
        let cases = [
            (entry(b"uid=\xff", Some(vec![])), "the DN is not UTF-8"),
            (
                entry(b"uid=a", Some(vec![attribute(b"u\xffid", &[b"a"])])),
                "an attribute type is not UTF-8",
            ),
            (entry(b"uid=a", None), "no attribute list"),
            (
                entry(b"uid=a", Some(vec![seq(vec![octets(b"uid")])])),
                "attribute \"uid\" without its values",
            ),
            (
                entry(b"uid=a", Some(vec![octets(b"uid")])),
                "an attribute that is not a sequence",
            ),
        ];
        for (e, said) in cases {
            assert_eq!(read(e).unwrap_err(), said);
        }
        assert_eq!(read(octets(b"x")).unwrap_err(), "not a search result entry");
    }
}
