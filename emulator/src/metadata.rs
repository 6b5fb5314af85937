//! The metadata tree under `/computeMetadata/v1/`, with Google's answer shapes: directory
//! listings (one entry a line, directories ending in `/`), `?recursive=true` (JSON whose keys
//! are camelCase, as Google's: `serviceAccounts`, `numericProjectId`), `alt=json|text`.
//!
//! Only what Google's client libraries read is here: the service accounts (`default` and the
//! email alias: `aliases`, `email`, `scopes`, `token`, `identity`), `project/project-id`,
//! `project/numeric-project-id`, `instance/id`, `instance/zone`, `instance/region` and
//! `universe/universe-domain`.

use serde_json::{Map, Value, json};

use super::EmulatorConfig;

/// The scopes of the emulated default service account (Cloud Run's).
const SCOPES: &[&str] = &["https://www.googleapis.com/auth/cloud-platform"];

/// A node of the metadata tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Entry {
    /// A directory: `(path name, recursive-JSON key, child)`, in listing order.
    Dir(Vec<(String, String, Entry)>),
    /// A string value.
    Text(String),
    /// A number (JSON number in `alt=json` and recursive answers).
    Number(u64),
    /// A list (one item a line as text, a JSON array as JSON).
    List(Vec<String>),
    /// A value computed per request; listed, never part of a recursive answer.
    Endpoint(Endpoint),
}

/// The computed values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `…/service-accounts/*/token`: an access token.
    Token,
    /// `…/service-accounts/*/identity`: an ID token.
    Identity,
}

/// How an answer is rendered (`alt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alt {
    /// Google's default: text, except JSON for recursive directory answers.
    Default,
    /// `alt=json`.
    Json,
    /// `alt=text`.
    Text,
}

/// A rendered answer: body and whether it is JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rendered {
    pub(crate) body: String,
    pub(crate) json: bool,
}

fn dir(entries: Vec<(&str, &str, Entry)>) -> Entry {
    Entry::Dir(
        entries
            .into_iter()
            .map(|(name, key, e)| (name.to_owned(), key.to_owned(), e))
            .collect(),
    )
}

fn account(email: &str) -> Entry {
    dir(vec![
        (
            "aliases",
            "aliases",
            Entry::List(vec!["default".to_owned()]),
        ),
        ("email", "email", Entry::Text(email.to_owned())),
        ("identity", "identity", Entry::Endpoint(Endpoint::Identity)),
        (
            "scopes",
            "scopes",
            Entry::List(SCOPES.iter().map(|s| (*s).to_owned()).collect()),
        ),
        ("token", "token", Entry::Endpoint(Endpoint::Token)),
    ])
}

/// A stable numeric instance id (19 digits, below 2^63 like GCE's) for this configuration.
fn instance_id(cfg: &EmulatorConfig) -> u64 {
    let hash = format!("{}/{}", cfg.project_id, cfg.service_account)
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    1_000_000_000_000_000_000 + hash % 8_000_000_000_000_000_000
}

/// The tree `/computeMetadata/v1/` answers from.
pub(crate) fn tree(cfg: &EmulatorConfig) -> Entry {
    let number = cfg.project_number;
    let region = &cfg.region;
    let email = &cfg.service_account;
    let accounts = Entry::Dir(vec![
        ("default".to_owned(), "default".to_owned(), account(email)),
        (email.clone(), email.clone(), account(email)),
    ]);
    dir(vec![
        (
            "instance",
            "instance",
            dir(vec![
                ("id", "id", Entry::Number(instance_id(cfg))),
                (
                    "region",
                    "region",
                    Entry::Text(format!("projects/{number}/regions/{region}")),
                ),
                ("service-accounts", "serviceAccounts", accounts),
                (
                    "zone",
                    "zone",
                    Entry::Text(format!("projects/{number}/zones/{region}-1")),
                ),
            ]),
        ),
        (
            "project",
            "project",
            dir(vec![
                (
                    "numeric-project-id",
                    "numericProjectId",
                    Entry::Number(number),
                ),
                (
                    "project-id",
                    "projectId",
                    Entry::Text(cfg.project_id.clone()),
                ),
            ]),
        ),
        (
            "universe",
            "universe",
            dir(vec![(
                "universe-domain",
                "universeDomain",
                Entry::Text("googleapis.com".to_owned()),
            )]),
        ),
    ])
}

/// The entry at `segments` (empty segments are not allowed). A service-account email matches
/// case-insensitively, every other name exactly.
pub(crate) fn lookup<'a>(root: &'a Entry, segments: &[&str]) -> Option<&'a Entry> {
    segments.iter().try_fold(root, |node, segment| match node {
        Entry::Dir(children) => children.iter().find_map(|(name, _, child)| {
            let hit = if name.contains('@') {
                name.eq_ignore_ascii_case(segment)
            } else {
                name == segment
            };
            hit.then_some(child)
        }),
        _ => None,
    })
}

/// A directory or value rendered as Google renders it.
pub(crate) fn render(entry: &Entry, recursive: bool, alt: Alt) -> Rendered {
    let text = |body: String| Rendered { body, json: false };
    let json = |v: Value| Rendered {
        body: v.to_string(),
        json: true,
    };
    match (entry, recursive, alt) {
        (Entry::Dir(_), true, Alt::Default | Alt::Json) => json(to_json(entry)),
        (Entry::Dir(_), true, Alt::Text) => {
            let mut out = String::new();
            flatten(entry, "", &mut out);
            text(out)
        }
        (Entry::Dir(children), false, Alt::Json) => {
            json(Value::from(children.iter().map(listed).collect::<Vec<_>>()))
        }
        (Entry::Dir(children), false, _) => {
            text(children.iter().map(|c| listed(c) + "\n").collect())
        }
        (Entry::Text(s), _, Alt::Json) => json(Value::from(s.as_str())),
        (Entry::Text(s), _, _) => text(s.clone()),
        (Entry::Number(n), _, Alt::Json) => json(Value::from(*n)),
        (Entry::Number(n), _, _) => text(n.to_string()),
        (Entry::List(items), _, Alt::Json) => json(json!(items)),
        (Entry::List(items), _, _) => text(items.iter().map(|i| format!("{i}\n")).collect()),
        (Entry::Endpoint(_), _, _) => text(String::new()),
    }
}

fn listed((name, _, child): &(String, String, Entry)) -> String {
    if matches!(child, Entry::Dir(_)) {
        format!("{name}/")
    } else {
        name.clone()
    }
}

fn to_json(entry: &Entry) -> Value {
    match entry {
        Entry::Dir(children) => Value::Object(
            children
                .iter()
                .filter(|(_, _, c)| !matches!(c, Entry::Endpoint(_)))
                .map(|(_, key, c)| (key.clone(), to_json(c)))
                .collect::<Map<_, _>>(),
        ),
        Entry::Text(s) => Value::from(s.as_str()),
        Entry::Number(n) => Value::from(*n),
        Entry::List(items) => json!(items),
        Entry::Endpoint(_) => Value::Null,
    }
}

/// `recursive=true&alt=text`: one `path value` line per value, list items as `path/INDEX`.
fn flatten(entry: &Entry, prefix: &str, out: &mut String) {
    let join = |name: &str| {
        if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}/{name}")
        }
    };
    match entry {
        Entry::Dir(children) => {
            for (name, _, child) in children {
                flatten(child, &join(name), out);
            }
        }
        Entry::Text(s) => out.push_str(&format!("{prefix} {s}\n")),
        Entry::Number(n) => out.push_str(&format!("{prefix} {n}\n")),
        Entry::List(items) => {
            for (i, item) in items.iter().enumerate() {
                out.push_str(&format!("{prefix}/{i} {item}\n"));
            }
        }
        Entry::Endpoint(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> Entry {
        tree(&EmulatorConfig::default())
    }

    #[test]
    fn listings_recursive_json_and_alt() {
        let root = root();
        let sa = lookup(&root, &["instance", "service-accounts"]).expect("accounts");
        assert_eq!(
            render(sa, false, Alt::Default).body,
            "default/\ncaller@invoker-local.iam.gserviceaccount.com/\n"
        );
        let r = render(sa, true, Alt::Default);
        assert!(r.json);
        let v: Value = serde_json::from_str(&r.body).expect("json");
        assert_eq!(
            v["default"],
            json!({
                "aliases": ["default"],
                "email": "caller@invoker-local.iam.gserviceaccount.com",
                "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
            })
        );
        assert_eq!(
            v["caller@invoker-local.iam.gserviceaccount.com"],
            v["default"]
        );
        let default = lookup(&root, &["instance", "service-accounts", "default"]).expect("sa");
        assert_eq!(
            render(default, false, Alt::Default).body,
            "aliases\nemail\nidentity\nscopes\ntoken\n"
        );
        assert_eq!(
            render(default, false, Alt::Json).body,
            r#"["aliases","email","identity","scopes","token"]"#
        );
        assert!(
            render(default, true, Alt::Text)
                .body
                .contains("aliases/0 default\nemail caller@")
        );
        let project = lookup(&root, &["project"]).expect("project");
        assert_eq!(
            render(project, true, Alt::Default).body,
            r#"{"numericProjectId":123456789012,"projectId":"invoker-local"}"#
        );
        let id = lookup(&root, &["project", "project-id"]).expect("id");
        assert_eq!(render(id, false, Alt::Default).body, "invoker-local");
        assert_eq!(render(id, false, Alt::Json).body, r#""invoker-local""#);
        let num = lookup(&root, &["project", "numeric-project-id"]).expect("num");
        assert_eq!(render(num, false, Alt::Json).body, "123456789012");
        let zone = lookup(&root, &["instance", "zone"]).expect("zone");
        assert_eq!(
            render(zone, false, Alt::Default).body,
            "projects/123456789012/zones/us-central1-1"
        );
        assert!(lookup(&root, &["instance", "nope"]).is_none());
        assert!(lookup(&root, &["project", "project-id", "x"]).is_none());
        let upper = [
            "instance",
            "service-accounts",
            "CALLER@invoker-local.iam.gserviceaccount.com",
        ];
        assert!(lookup(&root, &upper).is_some());
        let instance = render(lookup(&root, &["instance"]).expect("i"), true, Alt::Default);
        let v: Value = serde_json::from_str(&instance.body).expect("json");
        assert!(
            v["id"]
                .as_u64()
                .is_some_and(|n| n > 1_000_000_000_000_000_000)
        );
        assert!(v["serviceAccounts"]["default"]["token"].is_null());
    }
}
