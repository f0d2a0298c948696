//! Sections read from tables only. serde's derived structs also take a list, filling the
//! fields in order: `attributes = ["Service-Type = Administrative-User"]` pasted under
//! `[ldap]` set the display-name attribute to that string, and `config check` said ok.
//! `deny_unknown_fields` does not cover it. The fields of `raw*.rs` that hold a section
//! are read through these functions (`#[serde(deserialize_with = ...)]`), which refuse a
//! list with the section's key in the message.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// What a list in a section's place is told, after "invalid type: sequence, expected".
const EXPECTED: &str = "a table of settings ([section], [[section]] or key = { ... }), not a list";

/// A section that must be a table.
pub fn table<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(TableOnly(d))
}

/// An optional section: absent is `None` (with `#[serde(default)]`), present must be a table.
pub fn optional_table<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Table<T>>::deserialize(d)?.map(|t| t.0))
}

/// `[[section]]`: a list whose every item must be a table. One table in its place is
/// `[section]` written for `[[section]]`, told so ([`super::parse_words::ONE_TABLE`]): "invalid
/// type: map, expected a sequence" did not say which brackets.
pub fn tables<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    d.deserialize_seq(Tables(std::marker::PhantomData))
}

struct Tables<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for Tables<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of tables ([[section]] before each)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out = Vec::new();
        while let Some(Table(t)) = seq.next_element::<Table<T>>()? {
            out.push(t);
        }
        Ok(out)
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Vec<T>, A::Error> {
        Err(serde::de::Error::custom(super::parse_words::ONE_TABLE))
    }
}

/// `[name.NAME]`: named sections, each a table.
pub fn named_tables<'de, D, T>(d: D) -> Result<std::collections::BTreeMap<String, T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(
        std::collections::BTreeMap::<String, Table<T>>::deserialize(TableOnly(d))?
            .into_iter()
            .map(|(k, t)| (k, t.0))
            .collect(),
    )
}

struct Table<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Table<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        table(d).map(Table)
    }
}

/// Hands a derived struct's visitor on, refusing the list it would also take. Everything
/// else goes to the wrapped deserializer unchanged, so serde_path_to_error still names the
/// key of an error inside the section.
struct TableOnly<D>(D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for TableOnly<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(MapOnly(v))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_struct(name, fields, MapOnly(v))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// A visitor that takes a map only; anything else is refused with [`EXPECTED`].
struct MapOnly<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for MapOnly<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(map)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every section of the complete sample, given as a list instead: each is refused, and
    /// the message names its key. New sections are covered as the sample gains them.
    #[test]
    fn a_list_in_place_of_any_section_is_refused() {
        let sample = include_str!("../../conf/radmfa.toml");
        let parsed: toml::Table = sample.parse().unwrap();
        crate::config::Config::parse(sample, Path::new("radmfa.toml")).unwrap();
        let mut checked = 0;
        let mut check = |broken: toml::Table, key: &str| {
            let text = toml::to_string(&broken).unwrap();
            let err = match crate::config::Config::parse(&text, Path::new("radmfa.toml")) {
                Ok(_) => panic!("{key} as a list was taken"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(key), "{key}: {err}");
            assert!(err.contains("not a list"), "{key}: {err}");
            checked += 1;
        };
        // The sample's sections, and those it leaves out (a list fails before any check of
        // what else the section needs).
        let absent = ["metrics", "radsec", "http_sms", "upstream", "upstreams"];
        for name in absent {
            assert!(!parsed.contains_key(name), "{name} is in the sample now");
            let mut broken = parsed.clone();
            broken.insert(name.into(), toml::Value::Array(vec!["x".into()]));
            check(broken, name);
        }
        let mut broken = parsed.clone();
        broken.insert(
            "upstreams".into(),
            toml::Value::Table(toml::Table::from_iter([(
                "branch".to_string(),
                toml::Value::Array(vec!["x".into()]),
            )])),
        );
        check(broken, "upstreams.branch");
        let mut broken = parsed.clone();
        broken["client"].as_array_mut().unwrap()[0]
            .as_table_mut()
            .unwrap()
            .insert(
                "group_attributes".into(),
                toml::Value::Array(vec![toml::Value::Array(vec!["cn=x".into()])]),
            );
        check(broken, "client[0].group_attributes[0]");
        for (name, value) in &parsed {
            let toml::Value::Table(section) = value else {
                continue;
            };
            let mut broken = parsed.clone();
            broken.insert(name.clone(), toml::Value::Array(vec!["x".into()]));
            check(broken, name);
            // And each table inside a section (`[ldap.attributes]`).
            for (inner, v) in section {
                if v.is_table() {
                    let mut broken = parsed.clone();
                    let s = broken[name].as_table_mut().unwrap();
                    s.insert(inner.clone(), toml::Value::Array(vec!["x".into()]));
                    check(broken, &format!("{name}.{inner}"));
                }
            }
        }
        // `[[client]]` items, and the case that started this.
        let mut broken = parsed.clone();
        broken.insert(
            "client".into(),
            toml::Value::Array(vec![toml::Value::Array(vec!["vpn".into()])]),
        );
        check(broken, "client");
        let mut broken = parsed.clone();
        broken["ldap"].as_table_mut().unwrap().insert(
            "attributes".into(),
            toml::Value::Array(vec!["Service-Type = Administrative-User".into()]),
        );
        check(broken, "ldap.attributes");
        assert!(checked >= 16, "only {checked} sections checked");
    }
}
