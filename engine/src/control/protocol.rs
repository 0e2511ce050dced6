//! The control protocol: one JSON object per line each way.
//!
//! A request is `{"id": 7, "cmd": "stats", "args": {...}}`; the answer is
//! `{"id": 7, "ok": true, "result": ...}` or `{"id": 7, "ok": false,
//! "error": {"class": "invalid", "message": "..."}}`. Parsing is total: any
//! line (not UTF-8, not JSON, nested 10 000 deep, a wrong type) gives an
//! [`ErrorClass::Invalid`] answer naming the field, never a panic.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    config::{ConsumerConfig, ConsumerKind, FilterList, PortConfig},
    live::Target,
};

/// The longest request line accepted, newline excluded.
pub const MAX_REQUEST: usize = 64 << 10;

/// Why a request failed (shown as `invalid`, `not_found`, `conflict`, `internal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The request is malformed or names something impossible.
    Invalid,
    /// It names something that does not exist.
    NotFound,
    /// It conflicts with the engine's state.
    Conflict,
    /// The engine failed to do it.
    Internal,
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Invalid => "invalid",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Internal => "internal",
        })
    }
}

/// A failed request's error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{class}: {message}")]
pub struct ControlError {
    /// The class.
    pub class: ErrorClass,
    /// What is wrong, naming the field.
    pub message: String,
}

impl ControlError {
    /// An [`ErrorClass::Invalid`] error.
    #[must_use]
    pub fn invalid(message: impl Into<String>) -> Self {
        Self { class: ErrorClass::Invalid, message: message.into() }
    }

    /// An [`ErrorClass::NotFound`] error.
    #[must_use]
    pub fn not_found(message: impl Into<String>) -> Self {
        Self { class: ErrorClass::NotFound, message: message.into() }
    }

    /// An [`ErrorClass::Conflict`] error.
    #[must_use]
    pub fn conflict(message: impl Into<String>) -> Self {
        Self { class: ErrorClass::Conflict, message: message.into() }
    }

    /// An [`ErrorClass::Internal`] error.
    #[must_use]
    pub fn internal(message: impl Into<String>) -> Self {
        Self { class: ErrorClass::Internal, message: message.into() }
    }
}

/// One answer line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id (`null` when the request had none readable).
    pub id: Option<u64>,
    /// Whether it succeeded.
    pub ok: bool,
    /// The result, when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ControlError>,
}

impl Response {
    /// The answer to request `id`.
    #[must_use]
    pub fn new(id: Option<u64>, outcome: Result<Value, ControlError>) -> Self {
        match outcome {
            Ok(v) => Self { id, ok: true, result: Some(v), error: None },
            Err(e) => Self { id, ok: false, result: None, error: Some(e) },
        }
    }

    /// The line to send, newline included.
    #[must_use]
    pub fn line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"id":null,"ok":false,"error":{"class":"internal","message":"unserializable answer"}}"#.into()
        });
        s.push('\n');
        s
    }
}

/// A request whose frame and types have been checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The client's id, echoed in the answer.
    pub id: u64,
    /// The command.
    pub cmd: Command,
}

/// Every command the engine takes.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Version, uptime, workers, ports, consumers, filters.
    Status,
    /// Counters, with rates since the previous `stats`.
    Stats,
    /// The classifier table of every port running it.
    ClassifierList,
    /// Add or change an entry.
    ClassifierAdd {
        /// VLAN id, or `None` for untagged.
        vlan: Option<u16>,
        /// Destination MAC.
        mac: [u8; 6],
        /// `true` to pass.
        pass: bool,
    },
    /// Remove an entry.
    ClassifierDel {
        /// VLAN id, or `None` for untagged.
        vlan: Option<u16>,
        /// Destination MAC.
        mac: [u8; 6],
    },
    /// Replace the log filter (`tracing` directives, e.g. `ringwire_engine::ring=debug`).
    LogLevel {
        /// The directives.
        filter: String,
    },
    /// Stop the engine as SIGTERM does.
    Shutdown,
    /// Zero the counters `stats` reports (the final report still counts the whole run).
    StatsReset,
    /// The ports in force.
    PortsList,
    /// Add a port (a `[[ports]]` table).
    PortsAdd(PortConfig),
    /// Remove a port.
    PortsDel {
        /// Its name.
        name: String,
    },
    /// The consumers in force.
    ConsumersList,
    /// Add a consumer (a `[[consumers]]` table).
    ConsumersAdd(ConsumerConfig),
    /// Remove a consumer.
    ConsumersDel {
        /// Its name.
        name: String,
    },
    /// Named filters and the filters in force on every port and consumer.
    FiltersList,
    /// Load a filter under a name.
    FiltersLoad {
        /// Its name.
        name: String,
        /// The filter, as in a config file.
        filter: String,
    },
    /// Unload a named filter attached nowhere.
    FiltersUnload {
        /// Its name.
        name: String,
    },
    /// Put a named filter in force on a port or consumer.
    FiltersAttach {
        /// The filter's name.
        name: String,
        /// Where.
        target: Target,
    },
    /// Take a port's or consumer's filter away.
    FiltersDetach {
        /// Where.
        target: Target,
    },
    /// Replace a named filter by a new version wherever it is attached.
    FiltersSwap {
        /// The filter's name.
        name: String,
        /// The new version.
        filter: String,
    },
    /// The patches (forward consumers) and whether forwarding runs.
    PatchesList,
    /// Forward frames from ports to a port.
    PatchesAdd(ConsumerConfig),
    /// Remove a patch.
    PatchesDel {
        /// Its name.
        name: String,
    },
    /// Remove every patch.
    PatchesReset,
    /// Start (`true`) or stop forwarding on every patch.
    Forwarding(bool),
    /// The configuration in force, as a TOML config file.
    ConfigShow,
}

impl Command {
    /// Whether the command changes the engine's state (logged with the peer).
    #[must_use]
    pub fn changes_state(&self) -> bool {
        !matches!(
            self,
            Self::Status
                | Self::Stats
                | Self::ClassifierList
                | Self::PortsList
                | Self::ConsumersList
                | Self::FiltersList
                | Self::PatchesList
                | Self::ConfigShow
        )
    }
}

/// The commands, for `invalid` answers and `ringctl`.
pub const COMMANDS: &[&str] = &[
    "status",
    "stats",
    "stats.reset",
    "ports.list",
    "ports.add",
    "ports.del",
    "consumers.list",
    "consumers.add",
    "consumers.del",
    "filters.list",
    "filters.load",
    "filters.unload",
    "filters.attach",
    "filters.detach",
    "filters.swap",
    "patches.list",
    "patches.add",
    "patches.del",
    "patches.reset",
    "forwarding.start",
    "forwarding.stop",
    "classifier.list",
    "classifier.add",
    "classifier.del",
    "log.level",
    "config.show",
    "shutdown",
];

/// Parse one request line (without its newline). On failure the error
/// comes with whatever id could be read, so the client can match it.
///
/// # Errors
/// An [`ErrorClass::Invalid`] error naming what is wrong.
pub fn parse(line: &[u8]) -> Result<Request, (Option<u64>, ControlError)> {
    let text = std::str::from_utf8(line).map_err(|e| (None, ControlError::invalid(format!("not UTF-8: {e}"))))?;
    let Strict(value) = serde_json::from_str(text).map_err(|e| {
        let message = match e.classify() {
            // A key given twice (JSON, but not a request to guess at).
            serde_json::error::Category::Data => e.to_string(),
            _ => format!("not JSON: {e}"),
        };
        (None, ControlError::invalid(message))
    })?;
    let Value::Object(obj) = value else {
        return Err((None, ControlError::invalid("a request is a JSON object")));
    };
    let id = match obj.get("id") {
        Some(Value::Number(n)) => {
            n.as_u64().ok_or_else(|| (None, ControlError::invalid("id: not an unsigned integer")))?
        }
        Some(_) => return Err((None, ControlError::invalid("id: not an unsigned integer"))),
        None => return Err((None, ControlError::invalid("id: missing"))),
    };
    let fail = |m: String| (Some(id), ControlError::invalid(m));
    for k in obj.keys() {
        if !["id", "cmd", "args"].contains(&k.as_str()) {
            return Err(fail(format!("{k}: unknown field (a request has id, cmd, args)")));
        }
    }
    let cmd = match obj.get("cmd") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(fail("cmd: not a string".into())),
        None => return Err(fail("cmd: missing".into())),
    };
    let empty = Map::new();
    let args = match obj.get("args") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err(fail("args: not an object".into())),
    };
    let cmd = parse_command(cmd, &Args(args)).map_err(fail)?;
    Ok(Request { id, cmd })
}

/// A JSON value as serde_json reads one, except that an object with a key
/// given twice is refused: serde_json keeps the last one silently, and a
/// request `{"cmd": "ports.list", "cmd": "status"}` would run one of two.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

/// Builds a [`Strict`] value.
struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Strict::deserialize(d).map(|Strict(v)| v)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        use serde::de::Error as _;
        let mut m = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if m.contains_key(&k) {
                return Err(A::Error::custom(format!("`{k}` given twice in one object")));
            }
            let Strict(v) = map.next_value()?;
            m.insert(k, v);
        }
        Ok(Value::Object(m))
    }
}

/// A command's arguments, read with messages naming the field.
struct Args<'a>(&'a Map<String, Value>);

impl Args<'_> {
    fn only(&self, cmd: &str, allowed: &[&str]) -> Result<(), String> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) if allowed.is_empty() => Err(format!("args.{k}: `{cmd}` takes no arguments")),
            Some(k) => Err(format!("args.{k}: unknown argument of `{cmd}` (takes {})", allowed.join(", "))),
            None => Ok(()),
        }
    }

    fn str(&self, name: &str) -> Result<&str, String> {
        match self.0.get(name) {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(format!("args.{name}: not a string")),
            None => Err(format!("args.{name}: missing")),
        }
    }

    fn vlan(&self) -> Result<Option<u16>, String> {
        match self.0.get("vlan") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) if v <= 4095 => Ok(Some(v as u16)),
                _ => Err(format!("args.vlan: {n} is out of range (0-4095; omit it for untagged frames)")),
            },
            Some(_) => Err("args.vlan: not a number".into()),
        }
    }

    fn mac(&self) -> Result<[u8; 6], String> {
        ringwire_filters::parse_mac(self.str("mac")?).map_err(|m| format!("args.mac: {m}"))
    }

    /// A non-empty name of at most 64 printable characters.
    fn name(&self, field: &str) -> Result<String, String> {
        let n = self.str(field)?;
        crate::config::check_name(n).map_err(|_| format!("args.{field}: 1 to 64 printable characters"))?;
        Ok(n.to_owned())
    }

    /// A filter text (at most 16 KiB).
    fn filter(&self, field: &str) -> Result<String, String> {
        let f = self.str(field)?.trim();
        if f.is_empty() || f.len() > 16 << 10 {
            return Err(format!("args.{field}: 1 byte to 16 KiB"));
        }
        Ok(f.to_owned())
    }

    /// The whole object as a config table, errors naming the field.
    fn table<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        serde_path_to_error::deserialize(Value::Object(self.0.clone())).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                format!("args: {}", e.inner())
            } else {
                format!("args.{path}: {}", e.inner())
            }
        })
    }

    /// `port` or `consumer` (exactly one).
    fn target(&self) -> Result<Target, String> {
        match (self.0.contains_key("port"), self.0.contains_key("consumer")) {
            (true, false) => Ok(Target::Port(self.name("port")?)),
            (false, true) => Ok(Target::Consumer(self.name("consumer")?)),
            _ => Err("args: give one of port, consumer".into()),
        }
    }
}

/// A forward consumer with every other field at its default.
fn patch_defaults() -> ConsumerConfig {
    toml::from_str("name = \"\"\nkind = \"forward\"").expect("a valid consumer table")
}

fn parse_command(cmd: &str, a: &Args<'_>) -> Result<Command, String> {
    Ok(match cmd {
        "status" | "stats" | "stats.reset" | "ports.list" | "consumers.list" | "filters.list" | "patches.list"
        | "patches.reset" | "forwarding.start" | "forwarding.stop" | "classifier.list" | "config.show" | "shutdown" => {
            a.only(cmd, &[])?;
            match cmd {
                "status" => Command::Status,
                "stats" => Command::Stats,
                "stats.reset" => Command::StatsReset,
                "ports.list" => Command::PortsList,
                "consumers.list" => Command::ConsumersList,
                "filters.list" => Command::FiltersList,
                "patches.list" => Command::PatchesList,
                "patches.reset" => Command::PatchesReset,
                "forwarding.start" => Command::Forwarding(true),
                "forwarding.stop" => Command::Forwarding(false),
                "classifier.list" => Command::ClassifierList,
                "config.show" => Command::ConfigShow,
                _ => Command::Shutdown,
            }
        }
        "ports.add" => {
            let p: PortConfig = a.table()?;
            p.kind().map_err(|m| format!("args.uri: {m}"))?;
            Command::PortsAdd(p)
        }
        "consumers.add" => Command::ConsumersAdd(a.table()?),
        "ports.del" | "consumers.del" | "patches.del" | "filters.unload" => {
            a.only(cmd, &["name"])?;
            let name = a.name("name")?;
            match cmd {
                "ports.del" => Command::PortsDel { name },
                "consumers.del" => Command::ConsumersDel { name },
                "patches.del" => Command::PatchesDel { name },
                _ => Command::FiltersUnload { name },
            }
        }
        "filters.load" | "filters.swap" => {
            a.only(cmd, &["name", "filter"])?;
            let (name, filter) = (a.name("name")?, a.filter("filter")?);
            if cmd == "filters.load" {
                Command::FiltersLoad { name, filter }
            } else {
                Command::FiltersSwap { name, filter }
            }
        }
        "filters.attach" => {
            a.only(cmd, &["name", "port", "consumer"])?;
            Command::FiltersAttach { name: a.name("name")?, target: a.target()? }
        }
        "filters.detach" => {
            a.only(cmd, &["port", "consumer"])?;
            Command::FiltersDetach { target: a.target()? }
        }
        "patches.add" => {
            a.only(cmd, &["name", "from", "to", "filter"])?;
            let from = match a.0.get("from") {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(v)) => v
                    .iter()
                    .map(|p| {
                        p.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| "args.from: a port name or a list of them".to_owned())
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err("args.from: a port name or a list of them".into()),
                None => return Err("args.from: missing".into()),
            };
            if from.is_empty() {
                return Err("args.from: at least one port".into());
            }
            let filter = a.0.contains_key("filter").then(|| a.filter("filter")).transpose()?;
            Command::PatchesAdd(ConsumerConfig {
                name: a.name("name")?,
                kind: ConsumerKind::Forward,
                ports: from,
                filter: filter.map(FilterList::One),
                to: Some(a.name("to")?),
                ..patch_defaults()
            })
        }
        "classifier.add" => {
            a.only(cmd, &["vlan", "mac", "action"])?;
            let pass = match a.str("action")? {
                "pass" => true,
                "drop" => false,
                other => return Err(format!("args.action: `{other}` is not pass or drop")),
            };
            Command::ClassifierAdd { vlan: a.vlan()?, mac: a.mac()?, pass }
        }
        "classifier.del" => {
            a.only(cmd, &["vlan", "mac"])?;
            Command::ClassifierDel { vlan: a.vlan()?, mac: a.mac()? }
        }
        "log.level" => {
            a.only(cmd, &["filter"])?;
            let filter = a.str("filter")?.trim();
            if filter.is_empty() {
                return Err("args.filter: empty".into());
            }
            // Checked here so a bad directive is `invalid`, not a failed reload.
            super::parse_log_filter(filter).map_err(|e| format!("args.filter: `{filter}`: {e}"))?;
            Command::LogLevel { filter: filter.to_owned() }
        }
        other => return Err(format!("cmd: unknown command `{other}` (commands: {})", COMMANDS.join(", "))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(line: &str) -> (Option<u64>, String) {
        let (id, e) = parse(line.as_bytes()).unwrap_err();
        assert_eq!(e.class, ErrorClass::Invalid);
        (id, e.message)
    }

    #[test]
    fn a_key_given_twice_is_refused() {
        let (id, m) = err(r#"{"id":8,"cmd":"ports.list","cmd":"status"}"#);
        assert_eq!(id, None);
        assert!(m.starts_with("`cmd` given twice in one object"), "{m}");
        let (_, m) = err(r#"{"id":8,"cmd":"ports.add","args":{"uri":"afpacket:a","uri":"afpacket:b"}}"#);
        assert!(m.starts_with("`uri` given twice in one object"), "{m}");
        // The same key in two objects is two keys; numbers, nesting and nulls read as before.
        let r = parse(br#"{"id":9,"cmd":"stats","args":null}"#).unwrap();
        assert_eq!(r.id, 9);
        let (_, m) = err(r#"{"id":1,"cmd":"status""#);
        assert!(m.starts_with("not JSON: "), "{m}");
    }

    #[test]
    fn good_requests_parse() {
        assert_eq!(parse(br#"{"id":1,"cmd":"status"}"#).unwrap(), Request { id: 1, cmd: Command::Status });
        assert_eq!(
            parse(br#"{"id":2,"cmd":"classifier.add","args":{"vlan":100,"mac":"02:00:00:00:00:0a","action":"drop"}}"#)
                .unwrap()
                .cmd,
            Command::ClassifierAdd { vlan: Some(100), mac: [2, 0, 0, 0, 0, 10], pass: false }
        );
        assert_eq!(
            parse(br#"{"id":3,"cmd":"log.level","args":{"filter":"ringwire_engine::ring=debug"}}"#).unwrap().cmd,
            Command::LogLevel { filter: "ringwire_engine::ring=debug".into() }
        );
    }

    #[test]
    fn each_mistake_is_invalid_and_names_the_field() {
        assert!(err("\u{1}").1.starts_with("not JSON"));
        assert_eq!(parse(&[0xff, 0xfe]).unwrap_err().1.message.split(':').next(), Some("not UTF-8"));
        assert!(err("[1,2]").1.contains("JSON object"));
        assert_eq!(err(r#"{"cmd":"status"}"#).1, "id: missing");
        assert_eq!(err(r#"{"id":-1,"cmd":"status"}"#).1, "id: not an unsigned integer");
        assert_eq!(err(r#"{"id":"7","cmd":"status"}"#).1, "id: not an unsigned integer");
        assert_eq!(err(r#"{"id":7}"#), (Some(7), "cmd: missing".into()));
        assert_eq!(err(r#"{"id":7,"cmd":5}"#).1, "cmd: not a string");
        assert!(err(r#"{"id":7,"cmd":"frobnicate"}"#).1.starts_with("cmd: unknown command `frobnicate`"));
        assert_eq!(err(r#"{"id":7,"cmd":"status","args":[]}"#).1, "args: not an object");
        assert!(err(r#"{"id":7,"cmd":"status","argz":{}}"#).1.starts_with("argz: unknown field"));
        assert!(err(r#"{"id":7,"cmd":"status","args":{"x":1}}"#).1.starts_with("args.x:"));
        let add = |args: &str| err(&format!(r#"{{"id":7,"cmd":"classifier.add","args":{args}}}"#)).1;
        assert_eq!(add(r#"{"mac":"02:00:00:00:00:01"}"#), "args.action: missing");
        assert!(add(r#"{"mac":"02:00:00:00:00:01","action":"keep"}"#).starts_with("args.action: `keep`"));
        assert!(add(r#"{"mac":"02:00:00:00:00:01","action":"pass","vlan":4096}"#)
            .starts_with("args.vlan: 4096 is out of range"));
        assert_eq!(add(r#"{"mac":"02:00:00:00:00:01","action":"pass","vlan":"3"}"#), "args.vlan: not a number");
        assert!(add(r#"{"mac":"zz","action":"pass"}"#).starts_with("args.mac:"));
        assert!(add(r#"{"mac":7,"action":"pass"}"#).starts_with("args.mac: not a string"));
        assert!(err(r#"{"id":7,"cmd":"log.level","args":{"filter":"=[{"}}"#).1.starts_with("args.filter: `=[{`:"));
        // Found by the fuzzer: a directive with leading spaces and a
        // multi-byte character made tracing-subscriber's parser panic.
        for filter in [",  0        \u{FFFD}[88[         ,! ,,,anfo", "  \u{e9}[x", " \u{FFFD}=a"] {
            let line = serde_json::json!({"id": 7, "cmd": "log.level", "args": {"filter": filter}}).to_string();
            let _ = parse(line.as_bytes());
        }
        assert!(parse(br#"{"id":7,"cmd":"log.level","args":{"filter":" info , ringwire_engine=debug"}}"#).is_ok());
        // Deep nesting: serde_json's recursion limit, not a stack overflow.
        let deep =
            format!(r#"{{"id":7,"cmd":"status","args":{{"a":{}{}}}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        assert!(err(&deep).1.starts_with("not JSON"));
    }

    #[test]
    fn reconfiguration_requests_parse_and_name_the_bad_field() {
        let cmd = |line: &str| parse(line.as_bytes()).unwrap().cmd;
        let Command::PortsAdd(p) = cmd(r#"{"id":1,"cmd":"ports.add","args":{"uri":"afpacket:eth1","name":"q"}}"#)
        else {
            panic!("ports.add")
        };
        assert_eq!((p.display_name(), p.rx, p.promisc), ("q", true, true));
        let Command::ConsumersAdd(c) = cmd(
            r#"{"id":1,"cmd":"consumers.add","args":{"name":"t","kind":"pcap","path":"/tmp/t.pcap","ports":["q"]}}"#,
        ) else {
            panic!("consumers.add")
        };
        assert_eq!((c.kind, c.ports.clone(), c.snaplen), (ConsumerKind::Pcap, vec!["q".to_owned()], 262_144));
        let Command::PatchesAdd(fw) = cmd(r#"{"id":1,"cmd":"patches.add","args":{"name":"fw","from":"a","to":"b"}}"#)
        else {
            panic!("patches.add")
        };
        assert_eq!((fw.kind, fw.ports, fw.to), (ConsumerKind::Forward, vec!["a".to_owned()], Some("b".to_owned())));
        assert_eq!(
            cmd(r#"{"id":1,"cmd":"filters.attach","args":{"name":"f","consumer":"t"}}"#),
            Command::FiltersAttach { name: "f".into(), target: Target::Consumer("t".into()) }
        );
        assert_eq!(cmd(r#"{"id":1,"cmd":"forwarding.stop"}"#), Command::Forwarding(false));
        assert!(cmd(r#"{"id":1,"cmd":"stats.reset"}"#).changes_state());
        assert!(!cmd(r#"{"id":1,"cmd":"ports.list"}"#).changes_state());

        let bad = |cmd: &str, args: &str| err(&format!(r#"{{"id":7,"cmd":"{cmd}","args":{args}}}"#)).1;
        assert!(
            bad("ports.add", r#"{"name":"q"}"#).starts_with("args: missing field `uri`"),
            "{}",
            bad("ports.add", r#"{"name":"q"}"#)
        );
        assert!(bad("ports.add", r#"{"uri":"eth1"}"#).starts_with("args.uri:"));
        assert!(bad("ports.add", r#"{"uri":"afpacket:x","promisc":"yes"}"#).starts_with("args.promisc:"));
        assert!(bad("consumers.add", r#"{"name":"t","kind":"pcap","snaplen":-1}"#).starts_with("args.snaplen:"));
        assert!(bad("consumers.add", r#"{"name":"t","kind":"tap"}"#).starts_with("args.kind:"));
        assert!(bad("consumers.add", r#"{"name":"t","kind":"counter","colour":1}"#).contains("colour"));
        assert_eq!(bad("consumers.del", r#"{"name":""}"#), "args.name: 1 to 64 printable characters");
        assert_eq!(
            bad("filters.attach", r#"{"name":"f","port":"p","consumer":"c"}"#),
            "args: give one of port, consumer"
        );
        assert_eq!(bad("filters.detach", r#"{}"#), "args: give one of port, consumer");
        assert_eq!(bad("filters.load", r#"{"name":"f","filter":"  "}"#), "args.filter: 1 byte to 16 KiB");
        assert_eq!(bad("patches.add", r#"{"name":"fw","from":[],"to":"b"}"#), "args.from: at least one port");
        assert_eq!(
            bad("patches.add", r#"{"name":"fw","from":[1],"to":"b"}"#),
            "args.from: a port name or a list of them"
        );
        assert_eq!(bad("patches.add", r#"{"name":"fw","to":"b"}"#), "args.from: missing");
    }

    #[test]
    fn answers_are_one_line() {
        let ok = Response::new(Some(3), Ok(serde_json::json!({"a": "x\ny"})));
        let line = ok.line();
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let back: Response = serde_json::from_str(&line).unwrap();
        assert_eq!(back, ok);
        let bad = Response::new(None, Err(ControlError::not_found("no entry"))).line();
        assert_eq!(bad, "{\"id\":null,\"ok\":false,\"error\":{\"class\":\"not_found\",\"message\":\"no entry\"}}\n");
    }
}
