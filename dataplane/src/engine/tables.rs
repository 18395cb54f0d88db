//! From the config's `[tables.ELEMENT]` sections to a generated service's `Tables`.
//!
//! `[tables.firewall] rules = { alice = "allow" }` becomes the field `firewall_rules` of
//! the generated `Tables`; a TOML table given for a map-typed field becomes the list of
//! `(key, value)` pairs the generated code expects. Unknown elements or variables are
//! errors naming `tables.ELEMENT.VAR` (generated `Tables` deny unknown fields).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

/// Builds a generated `Tables` from the config's `tables` section.
pub fn tables_from_config<T: DeserializeOwned>(
    tables: &BTreeMap<String, toml::Value>,
) -> Result<T, String> {
    let mut flat = toml::map::Map::new();
    for (element, vars) in tables {
        let toml::Value::Table(vars) = vars else {
            return Err(format!(
                "`tables.{element}`: expected a table of the element's config-loaded variables"
            ));
        };
        for (var, value) in vars {
            let value = match value {
                toml::Value::Table(m) => toml::Value::Array(
                    m.iter()
                        .map(|(k, v)| {
                            toml::Value::Array(vec![toml::Value::String(k.clone()), v.clone()])
                        })
                        .collect(),
                ),
                v => v.clone(),
            };
            flat.insert(format!("{element}_{var}"), value);
        }
    }
    toml::Value::Table(flat)
        .try_into()
        .map_err(|e: toml::de::Error| {
            let msg = e.to_string().trim().replace('\n', " ");
            // Name the config key rather than the generated field.
            let mut out = format!("`tables`: {msg}");
            for (element, vars) in tables {
                if let toml::Value::Table(vars) = vars {
                    for var in vars.keys() {
                        if msg.contains(&format!("{element}_{var}")) {
                            out = format!("`tables.{element}.{var}`: {msg}");
                        }
                    }
                }
            }
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Tables {
        firewall_rules: Vec<(String, String)>,
        limiter_rate: u64,
    }

    fn parse(text: &str) -> Result<Tables, String> {
        let v: BTreeMap<String, toml::Value> = toml::from_str(text).unwrap();
        tables_from_config(&v)
    }

    #[test]
    fn maps_and_scalars_become_generated_fields() {
        let t = parse(
            "[firewall]\nrules = { alice = \"allow\", bob = \"deny\" }\n[limiter]\nrate = 5\n",
        )
        .unwrap();
        assert_eq!(
            t.firewall_rules,
            vec![
                ("alice".into(), "allow".into()),
                ("bob".into(), "deny".into())
            ]
        );
        assert_eq!(t.limiter_rate, 5);
        assert_eq!(parse("").unwrap(), Tables::default());
    }

    #[test]
    fn errors_name_the_config_key() {
        let e = parse("[firewall]\nrulez = {}\n").unwrap_err();
        assert!(e.contains("rulez"), "{e}");
        let e = parse("[limiter]\nrate = \"fast\"\n").unwrap_err();
        assert!(e.contains("tables.limiter.rate"), "{e}");
        let e = parse("[firewall]\nrules = { alice = 3 }\n").unwrap_err();
        assert!(e.contains("tables.firewall.rules"), "{e}");
    }
}
