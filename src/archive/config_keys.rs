//! Configuration files flattened into dotted keys (`import.sftp_host`,
//! `backoff.base_ms`), so that one grep over `diff`'s output finds a renamed or
//! removed setting: INI and `.conf`/`.cfg`, TOML, YAML, JSON, Java `.properties` and
//! `.env`, recognised by file name.
//!
//! It reads bytes already in memory, at most [`CONFIG_SCAN_LIMIT`] per file (the
//! summary stops copying there), keeps at most the number of keys it is given room
//! for, cuts values at [`MAX_CONFIG_VALUE`] characters and nesting at
//! [`MAX_CONFIG_DEPTH`], and says so in the [`Flat`] it returns. YAML is read as a
//! stream of parser events and never built into a tree, so an alias is recorded as
//! `*alias`, never expanded (no "billion laughs"). It decides nothing about what a key
//! means; escaping for terminals is the renderer's job.

use crate::policy::{CONFIG_SCAN_LIMIT, MAX_CONFIG_DEPTH, MAX_CONFIG_VALUE};

/// The configuration formats we flatten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFormat {
    Ini,
    Toml,
    Yaml,
    Json,
    Properties,
    Env,
}

/// The format a file name says, if it is a configuration file we flatten.
pub fn format_of(path: &str) -> Option<ConfigFormat> {
    let base = path.rsplit('/').next().unwrap_or(path);
    let ext = base.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    if base == ".env" || base.starts_with(".env.") {
        return Some(ConfigFormat::Env);
    }
    match ext.as_deref()? {
        "ini" | "conf" | "cfg" => Some(ConfigFormat::Ini),
        "toml" => Some(ConfigFormat::Toml),
        "yaml" | "yml" => Some(ConfigFormat::Yaml),
        "json" => Some(ConfigFormat::Json),
        "properties" => Some(ConfigFormat::Properties),
        "env" => Some(ConfigFormat::Env),
        _ => None,
    }
}

/// The keys of one file, in file order, and what was left out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Flat {
    pub keys: Vec<(String, String)>,
    /// Keys were dropped for want of room.
    pub capped: bool,
    /// Why the file (or the rest of it) could not be read for keys.
    pub problem: Option<String>,
}

impl Flat {
    fn push(&mut self, room: usize, key: String, value: &str) {
        if self.keys.len() >= room {
            self.capped = true;
            return;
        }
        self.keys.push((key, cut(value)));
    }
}

fn cut(value: &str) -> String {
    if value.chars().count() <= MAX_CONFIG_VALUE {
        value.to_string()
    } else {
        let mut v: String = value.chars().take(MAX_CONFIG_VALUE).collect();
        v.push('…');
        v
    }
}

/// Flattens `bytes` (a file's first bytes; `truncated` when the file was longer) into
/// at most `room` keys.
pub fn flatten(format: ConfigFormat, bytes: &[u8], truncated: bool, room: usize) -> Flat {
    let text = String::from_utf8_lossy(bytes);
    let mut flat = Flat::default();
    let line_based = matches!(
        format,
        ConfigFormat::Ini | ConfigFormat::Properties | ConfigFormat::Env
    );
    if truncated && !line_based {
        flat.problem = Some(format!(
            "larger than {} MiB: not read for keys",
            CONFIG_SCAN_LIMIT >> 20
        ));
        return flat;
    }
    match format {
        ConfigFormat::Ini => ini(&text, &mut flat, room),
        ConfigFormat::Properties => properties(&text, &mut flat, room),
        ConfigFormat::Env => env(&text, &mut flat, room),
        ConfigFormat::Json => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) => json_value(&v, String::new(), 0, &mut flat, room),
            Err(e) => flat.problem = Some(format!("not valid JSON: {e}")),
        },
        ConfigFormat::Toml => match text.parse::<toml::Table>() {
            Ok(t) => toml_table(&t, String::new(), 0, &mut flat, room),
            Err(e) => flat.problem = Some(format!("not valid TOML: {}", e.message())),
        },
        ConfigFormat::Yaml => yaml(&text, &mut flat, room),
    }
    if truncated && line_based {
        flat.problem = Some(format!(
            "only the first {} MiB were read for keys",
            CONFIG_SCAN_LIMIT >> 20
        ));
    }
    flat
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// `[section]` and `key = value` (or `key: value`); `#` and `;` start comments.
fn ini(text: &str, flat: &mut Flat, room: usize) {
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
            continue;
        }
        let Some((k, v)) = line.split_once(['=', ':']) else {
            continue;
        };
        let k = k.trim();
        if !k.is_empty() {
            flat.push(room, join(&section, k), unquote(v.trim()));
        }
    }
}

/// Java `.properties`: `key=value`, `key: value` or `key value`; `#` and `!` start
/// comments; a line ending in a backslash goes on.
fn properties(text: &str, flat: &mut Flat, room: usize) {
    let mut logical = String::new();
    for raw in text.lines() {
        let line = raw.trim_start();
        if logical.is_empty() && (line.is_empty() || line.starts_with(['#', '!'])) {
            continue;
        }
        if let Some(more) = line.strip_suffix('\\') {
            logical.push_str(more);
            continue;
        }
        logical.push_str(line);
        let entry = std::mem::take(&mut logical);
        let split = entry.find(['=', ':', ' ', '\t']).unwrap_or(entry.len());
        let (k, v) = entry.split_at(split);
        let v = v.trim_start().trim_start_matches(['=', ':']).trim();
        if !k.is_empty() {
            flat.push(room, k.to_string(), v);
        }
    }
}

/// `.env`: `KEY=value`, optionally after `export`, values optionally quoted.
fn env(text: &str, flat: &mut Flat, room: usize) {
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        if let Some((k, v)) = line.split_once('=') {
            let k = k.trim();
            if !k.is_empty() && !k.contains(char::is_whitespace) {
                flat.push(room, k.to_string(), unquote(v.trim()));
            }
        }
    }
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

fn too_deep(prefix: &str, depth: usize, flat: &mut Flat) -> bool {
    if depth >= MAX_CONFIG_DEPTH {
        flat.problem = Some(format!(
            "nested deeper than {MAX_CONFIG_DEPTH} levels at {prefix}: not read further"
        ));
        return true;
    }
    false
}

fn json_value(v: &serde_json::Value, prefix: String, depth: usize, flat: &mut Flat, room: usize) {
    use serde_json::Value;
    if flat.capped || too_deep(&prefix, depth, flat) {
        return;
    }
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                json_value(v, join(&prefix, k), depth + 1, flat, room);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                json_value(v, join(&prefix, &i.to_string()), depth + 1, flat, room);
            }
        }
        Value::String(s) => flat.push(room, prefix, s),
        other => flat.push(room, prefix, &other.to_string()),
    }
}

fn toml_table(t: &toml::Table, prefix: String, depth: usize, flat: &mut Flat, room: usize) {
    for (k, v) in t {
        toml_value(v, join(&prefix, k), depth + 1, flat, room);
    }
}

fn toml_value(v: &toml::Value, prefix: String, depth: usize, flat: &mut Flat, room: usize) {
    use toml::Value;
    if flat.capped || too_deep(&prefix, depth, flat) {
        return;
    }
    match v {
        Value::Table(t) => toml_table(t, prefix, depth, flat, room),
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                toml_value(v, join(&prefix, &i.to_string()), depth + 1, flat, room);
            }
        }
        Value::String(s) => flat.push(room, prefix, s),
        other => flat.push(room, prefix, &other.to_string()),
    }
}

/// Where the YAML event stream is: inside a mapping (expecting a key or a value) or a
/// sequence (with the next index).
enum Frame {
    Map { prefix: String, key: Option<String> },
    Seq { prefix: String, next: usize },
}

/// YAML as parser events: scalars become values under the path of mapping keys and
/// sequence indexes above them; an alias is the value `*alias`, never expanded.
fn yaml(text: &str, flat: &mut Flat, room: usize) {
    use yaml_rust2::parser::{Event, Parser};
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    loop {
        let event = match parser.next_token() {
            Ok((event, _)) => event,
            Err(e) => {
                flat.problem = Some(format!("not valid YAML: {e}"));
                return;
            }
        };
        let leaf = match event {
            Event::StreamEnd => return,
            Event::Scalar(s, ..) => Some(s),
            Event::Alias(_) => Some("*alias".to_string()),
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let Some(prefix) = yaml_slot(&mut stack) else {
                    flat.problem = Some("a mapping used as a key: not read further".into());
                    return;
                };
                if too_deep(&prefix, stack.len(), flat) {
                    return;
                }
                stack.push(if matches!(event, Event::MappingStart(..)) {
                    Frame::Map { prefix, key: None }
                } else {
                    Frame::Seq { prefix, next: 0 }
                });
                None
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                None
            }
            _ => None,
        };
        let Some(value) = leaf else { continue };
        if let Some(Frame::Map {
            key: key @ None, ..
        }) = stack.last_mut()
        {
            *key = Some(value);
            continue;
        }
        if let Some(path) = yaml_slot(&mut stack) {
            flat.push(room, path, &value);
        }
        if flat.capped {
            return;
        }
    }
}

/// The path of the value that comes next, advancing the frame; `None` when a mapping
/// expects a key (a complex key we do not flatten).
fn yaml_slot(stack: &mut [Frame]) -> Option<String> {
    match stack.last_mut() {
        None => Some(String::new()),
        Some(Frame::Map { prefix, key }) => key.take().map(|k| join(prefix, &k)),
        Some(Frame::Seq { prefix, next }) => {
            *next += 1;
            Some(join(prefix, &(*next - 1).to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, body: &str, want: &[(&str, &str)], problem: Option<&str>) {
        let format = format_of(path).expect(path);
        let flat = flatten(format, body.as_bytes(), false, 100);
        let got: Vec<(&str, &str)> = flat
            .keys
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, want, "{path}");
        match problem {
            Some(p) => assert!(
                flat.problem.as_deref().unwrap_or("").contains(p),
                "{path}: {:?}",
                flat.problem
            ),
            None => assert_eq!(flat.problem, None, "{path}"),
        }
    }

    #[test]
    fn every_format_flattens_to_dotted_keys() {
        check(
            "etc/acme/import.ini",
            "; c\n[import]\nsftp_host = sftp.example\nmode: \"push\"\nnonsense\n",
            &[
                ("import.sftp_host", "sftp.example"),
                ("import.mode", "push"),
            ],
            None,
        );
        check(
            "a.toml",
            "[backoff]\nbase_ms = 250\nhosts = [\"a\", \"b\"]\n",
            &[
                ("backoff.base_ms", "250"),
                ("backoff.hosts.0", "a"),
                ("backoff.hosts.1", "b"),
            ],
            None,
        );
        check(
            "a.yml",
            "db:\n  pool: 5\n  replicas: [r1, r2]\n  opts: {a: 1}\n",
            &[
                ("db.pool", "5"),
                ("db.replicas.0", "r1"),
                ("db.replicas.1", "r2"),
                ("db.opts.a", "1"),
            ],
            None,
        );
        check(
            "a.json",
            "{\"feature\": {\"new_ui\": true, \"name\": \"x\"}}",
            &[("feature.name", "x"), ("feature.new_ui", "true")],
            None,
        );
        check(
            "app.properties",
            "# c\n! c\nserver.port=8080\nname: a \\\n  b\nflag on\n",
            &[("server.port", "8080"), ("name", "a b"), ("flag", "on")],
            None,
        );
        check(
            "opt/.env",
            "# c\nexport TOKEN='abc'\nURL=http://x\n",
            &[("TOKEN", "abc"), ("URL", "http://x")],
            None,
        );
        assert_eq!(format_of("bin/agent"), None);
        assert_eq!(format_of("etc/prod.env"), Some(ConfigFormat::Env));
    }

    #[test]
    fn hostile_configuration_is_bounded() {
        // A billion-laughs alias bomb: aliases are never expanded.
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            bomb.push_str(&format!(
                "l{i}: &l{i} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n",
                p = if i == 1 {
                    "a".to_string()
                } else {
                    format!("l{}", i - 1)
                }
            ));
        }
        let flat = flatten(ConfigFormat::Yaml, bomb.as_bytes(), false, 1000);
        assert_eq!(flat.keys.len(), 9 * 10, "{:?}", flat.problem);
        assert!(flat.keys.iter().any(|(k, v)| k == "l9.8" && v == "*alias"));
        // Nesting past the cap stops, with the reason; JSON's own parser refuses first.
        let deep = "[".repeat(100_000);
        let flat = flatten(ConfigFormat::Yaml, deep.as_bytes(), false, 10);
        assert!(flat.problem.is_some());
        let deep_json = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
        let flat = flatten(ConfigFormat::Json, deep_json.as_bytes(), false, 10);
        assert!(flat.problem.unwrap().contains("not valid JSON"));
        let deep_toml = format!("a = {}1{}", "[".repeat(5000), "]".repeat(5000));
        assert!(flatten(ConfigFormat::Toml, deep_toml.as_bytes(), false, 10)
            .problem
            .is_some());
        // Room runs out: the rest is dropped and that is said.
        let many: String = (0..50).map(|i| format!("k{i}=v\n")).collect();
        let flat = flatten(ConfigFormat::Env, many.as_bytes(), false, 10);
        assert_eq!((flat.keys.len(), flat.capped), (10, true));
        // A truncated structured file is not half-read.
        let flat = flatten(ConfigFormat::Json, b"{\"a\": 1", true, 10);
        assert!(flat.keys.is_empty() && flat.problem.unwrap().contains("larger than"));
        let long = format!("k={}", "v".repeat(10_000));
        let flat = flatten(ConfigFormat::Env, long.as_bytes(), false, 10);
        assert_eq!(flat.keys[0].1.chars().count(), MAX_CONFIG_VALUE + 1);
    }
}
