//! `ringctl`: drive a running ringwire engine through its control socket.
//!
//! Exit codes: 0 done, 1 the engine refused (its message on stderr), 2 usage,
//! 3 the engine cannot be reached or did not answer within `--timeout`, 4
//! done, but frames were lost doing it (a removed consumer's writes failed).

use std::{
    io::IsTerminal,
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

use clap::{Parser, Subcommand};
use ringwire_engine::control::protocol::{ErrorClass, Response};
use ringwire_engine::{out, out_raw, say};
use ringwire_tools::{Client, ClientError};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(version, about = "Control a running ringwire engine")]
struct Cli {
    /// The engine's control socket.
    #[arg(long, global = true, default_value = ringwire_engine::config::DEFAULT_CONTROL_SOCKET)]
    socket: PathBuf,
    /// Print the engine's JSON result instead of a table (a refusal:
    /// `{"error": {"class": ..., "message": ...}}`, exit status 1).
    #[arg(long, global = true)]
    json: bool,
    /// Seconds to wait for an answer (a removal waits for every worker and
    /// for its queue to be written out: up to 20 s).
    #[arg(long, global = true, default_value_t = 30)]
    timeout: u64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Version, uptime, workers, ports, consumers and their filters.
    Status,
    /// Counters, with rates since the previous read (`stats reset`: count from zero).
    Stats {
        /// Refresh in place every --interval seconds (until Ctrl-C, or --count times).
        #[arg(long)]
        watch: bool,
        /// Seconds between refreshes (0.01 to 86400).
        #[arg(long, default_value_t = 1.0, value_parser = parse_interval)]
        interval: f64,
        /// With --watch: stop after this many reads (at least 1).
        #[arg(long, requires = "watch", value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
        /// Print the counters in Prometheus' text format (for a scraper, or
        /// node_exporter's textfile collector).
        #[arg(long, conflicts_with = "watch")]
        prometheus: bool,
        #[command(subcommand)]
        action: Option<StatsCmd>,
    },
    /// Ports: list, add, del.
    #[command(subcommand)]
    Ports(PortsCmd),
    /// Consumers: list, add, del.
    #[command(subcommand)]
    Consumers(ConsumersCmd),
    /// Filters: list, load, unload, attach, detach, swap.
    #[command(subcommand)]
    Filters(FiltersCmd),
    /// Patches (frames forwarded from ports to a port): list, add, del, reset.
    #[command(subcommand)]
    Patches(PatchesCmd),
    /// Start or stop forwarding on every patch.
    Forwarding {
        /// start or stop.
        #[arg(value_parser = ["start", "stop"])]
        action: String,
    },
    /// The eBPF classifier table.
    #[command(subcommand)]
    Classifier(ClassCmd),
    /// Set the log filter (tracing directives, e.g. `info,ringwire_engine::ring=debug`).
    Log {
        /// The directives.
        filter: String,
    },
    /// The configuration in force (the file's, with every change made since), as a config file
    /// for `ringwire run`: `ringctl config show > saved.toml`.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Stop the engine gracefully (as SIGTERM: queues drained, files
    /// flushed), and wait until it has (at most --timeout): then its socket
    /// is gone and another engine may take it.
    Shutdown {
        /// Return once the engine has begun to stop.
        #[arg(long)]
        no_wait: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Print it as TOML.
    Show,
}

#[derive(Subcommand)]
enum StatsCmd {
    /// Zero the counters `stats` reports (the engine's final report still counts the whole run).
    Reset,
}

#[derive(Subcommand)]
enum PortsCmd {
    /// The ports in force.
    List,
    /// Add a port while the engine runs.
    Add {
        /// `afpacket:IFACE` or `pcap:FILE`.
        uri: String,
        /// Its name (default: the URI).
        #[arg(long)]
        name: Option<String>,
        /// Its filter (on an interface: pcap-filter text, `ebpf:FILE.o[:PROG]` or `classifier`).
        #[arg(long)]
        filter: Option<String>,
        /// Leave the interface's promiscuous mode alone.
        #[arg(long)]
        no_promisc: bool,
        /// A forwarding target only: do not receive on it.
        #[arg(long)]
        no_rx: bool,
        /// pcap: replay at the recorded pace.
        #[arg(long)]
        recorded: bool,
    },
    /// Remove a port (its ring is read empty first).
    Del {
        /// The port's name.
        name: String,
    },
}

// Parsed once per run: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum ConsumersCmd {
    /// The consumers in force.
    List,
    /// Add a consumer while the engine runs.
    Add {
        /// Its name.
        name: String,
        /// pcap, counter, forward, print or latency.
        #[arg(long, value_parser = ["pcap", "counter", "forward", "print", "latency"])]
        kind: String,
        /// A port it takes frames from (repeat; default: every receiving port).
        #[arg(long = "port")]
        ports: Vec<String>,
        /// Its filter (pcap-filter text, `builtin:...`, `plugin:FILE.so[:CONFIG]`).
        #[arg(long)]
        filter: Option<String>,
        /// pcap: the output file.
        #[arg(long)]
        path: Option<PathBuf>,
        /// forward: the port to send out of.
        #[arg(long)]
        to: Option<String>,
        /// pcap, print: bytes kept per frame.
        #[arg(long)]
        snaplen: Option<u32>,
        /// pcap, print: stop the engine after this many frames.
        #[arg(long)]
        limit: Option<u64>,
        /// Queued consumers: MiB of buffer per worker.
        #[arg(long)]
        queue_mb: Option<u32>,
        /// pcap: start a new file after this many MiB.
        #[arg(long)]
        rotate_mb: Option<u64>,
        /// pcap, with --rotate-mb: keep at most this many files, removing the
        /// oldest; with --rotate-s: stop after this many files.
        #[arg(long)]
        rotate_files: Option<u32>,
        /// pcap: start a new file every this many seconds, named by --path's
        /// strftime pattern (as tcpdump's -G).
        #[arg(long)]
        rotate_s: Option<u64>,
        /// pcap: one file per worker.
        #[arg(long)]
        split_by_worker: bool,
        /// pcap, print: what a failed write (a full disk) does: stop the
        /// engine (the default), or continue, counting the frames not written.
        #[arg(long, value_parser = ["stop", "continue"])]
        on_write_error: Option<String>,
    },
    /// Remove a consumer (its queue is written out and its files closed first).
    Del {
        /// The consumer's name.
        name: String,
    },
}

#[derive(Subcommand)]
enum FiltersCmd {
    /// Named filters, and the filter in force on each port and consumer.
    List,
    /// Load (compile, or load and verify) a filter under a name.
    Load {
        /// Its name.
        name: String,
        /// The filter, as in a config file.
        filter: String,
    },
    /// Unload a named filter attached nowhere.
    Unload {
        /// Its name.
        name: String,
    },
    /// Put a named filter in force on a port or a consumer.
    Attach {
        /// The filter's name.
        name: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Take a port's or consumer's filter away.
    Detach {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Replace a named filter by a new version wherever it is attached.
    Swap {
        /// The filter's name.
        name: String,
        /// The new version.
        filter: String,
    },
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct TargetArgs {
    /// A port.
    #[arg(long)]
    port: Option<String>,
    /// A consumer.
    #[arg(long)]
    consumer: Option<String>,
}

#[derive(Subcommand)]
enum PatchesCmd {
    /// The patches and whether forwarding runs.
    List,
    /// Forward frames from ports to a port.
    Add {
        /// The patch's name.
        name: String,
        /// A port to take frames from (repeat).
        #[arg(long = "from", required = true)]
        from: Vec<String>,
        /// The port to send them out of.
        #[arg(long)]
        to: String,
        /// Forward only the frames this filter passes.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Remove a patch.
    Del {
        /// The patch's name.
        name: String,
    },
    /// Remove every patch.
    Reset,
}

#[derive(Subcommand)]
enum ClassCmd {
    /// Every entry and its hits, per port.
    List,
    /// Add or change an entry.
    Add {
        /// Destination MAC.
        #[arg(long)]
        mac: String,
        /// VLAN id (omit for untagged frames).
        #[arg(long)]
        vlan: Option<u16>,
        /// pass or drop.
        #[arg(long, value_parser = ["pass", "drop"])]
        action: String,
    },
    /// Remove an entry.
    Del {
        /// Destination MAC.
        #[arg(long)]
        mac: String,
        /// VLAN id (omit for untagged frames).
        #[arg(long)]
        vlan: Option<u16>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // (`--json` is global: clap cannot tell it apart from a subcommand's.)
    if cli.json && matches!(cli.cmd, Cmd::Stats { prometheus: true, .. }) {
        say!("ringctl: --prometheus and --json are two output formats: give one");
        return ExitCode::from(2);
    }
    let timeout = Duration::from_secs(cli.timeout.max(1));
    let (cmd, args) = request(&cli.cmd);
    let reads = match &cli.cmd {
        Cmd::Stats { watch: true, count, action: None, .. } => count.unwrap_or(u64::MAX),
        _ => 1,
    };
    let interval = match &cli.cmd {
        Cmd::Stats { interval, .. } => Duration::from_secs_f64(*interval),
        _ => Duration::from_secs(1),
    };
    let watching = reads > 1;
    let mut conn = None;
    for i in 0..reads {
        if i > 0 {
            std::thread::sleep(interval);
        }
        let answer = match call(&mut conn, &cli.socket, timeout, cmd, &args) {
            Ok(a) => a,
            Err(e) => {
                say!("ringctl: {e}");
                return ExitCode::from(3);
            }
        };
        if !answer.ok {
            match &answer.error {
                Some(e) => say!("ringctl: {cmd}: {e}"),
                None => say!("ringctl: {cmd}: the engine refused without a reason"),
            }
            // A script reads the refusal's class and message as JSON too.
            if cli.json {
                out!("{}", json!({ "error": answer.error }));
            }
            return ExitCode::from(1);
        }
        let result = answer.result.unwrap_or(Value::Null);
        // A reader that left (`ringctl stats --watch | head`) ends the
        // command quietly, as it would a tool killed by SIGPIPE, but with 0.
        let written = if matches!(cli.cmd, Cmd::Stats { prometheus: true, action: None, .. }) {
            out_raw!("{}", ringwire_tools::prometheus::render(&result["counters"]))
        } else if cli.json {
            out!("{result}")
        } else {
            if watching && std::io::stdout().is_terminal() {
                // Redraw in place.
                let _ = out_raw!("\x1b[H\x1b[2J");
            }
            out_raw!("{}", render(cmd, &result))
        };
        // Done, but frames were lost doing it: said on stderr too, and in the status.
        if let Some(e) = result["error"].as_str() {
            say!("ringctl: {cmd}: done, but {e}");
            return ExitCode::from(4);
        }
        if !written {
            break;
        }
    }
    if let (Cmd::Shutdown { no_wait: false }, Some(client)) = (&cli.cmd, conn.as_mut()) {
        if let Err(e) = client.wait_closed() {
            match e {
                ClientError::Timeout(t) => say!(
                    "ringctl: {}: the engine has not stopped within {} s (--timeout); it goes on stopping",
                    cli.socket.display(),
                    t.as_secs()
                ),
                e => say!("ringctl: {}: {e}", cli.socket.display()),
            }
            return ExitCode::from(3);
        }
        if !cli.json {
            let _ = out!("ok: the engine has stopped");
        }
    }
    ExitCode::SUCCESS
}

/// Send a request on `conn` (connecting first if there is none) and read
/// its answer. An engine with no room for another client refuses it with a
/// `conflict` that has no id: asked again, on a new connection, until
/// `timeout`. A connection used before that fails (the engine closed it:
/// idle longer than its `idle_timeout_s` between two reads of `--watch`)
/// is made again once.
fn call(
    conn: &mut Option<Client>,
    socket: &Path,
    timeout: Duration,
    cmd: &str,
    args: &Value,
) -> Result<Response, String> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(20);
    let mut fresh = conn.is_none();
    loop {
        let client = match conn {
            Some(c) => c,
            None => conn.insert(Client::connect(socket, timeout).map_err(|e| connect_failure(socket, &e))?),
        };
        match client.call(cmd, args.clone()) {
            Ok(r) if r.id.is_none() && r.error.as_ref().is_some_and(|e| e.class == ErrorClass::Conflict) => {
                // No room for another client: the engine cannot be reached (exit 3), not a refusal.
                if Instant::now() + pause >= deadline {
                    let why = r.error.map(|e| e.message).unwrap_or_default();
                    return Err(format!(
                        "{}: {why}: no room within {} s (--timeout)",
                        socket.display(),
                        timeout.as_secs()
                    ));
                }
                *conn = None;
                fresh = true;
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            Ok(r) => return Ok(r),
            Err(ClientError::Io(_)) if !fresh => {
                *conn = None;
                fresh = true;
            }
            Err(e) => return Err(call_failure(socket, &e)),
        }
    }
}

/// Why the socket could not be reached, and what to try: no engine there
/// (none runs, or it listens elsewhere: `--socket`), or no permission.
fn connect_failure(socket: &Path, e: &ClientError) -> String {
    let hint = match e {
        ClientError::Connect(io) => match io.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                " (is an engine running with this control socket? `ringwire run` listens where \
                 [control] socket or --control-socket says; give that path with --socket)"
            }
            std::io::ErrorKind::PermissionDenied => {
                " (the socket is mode 0660: run as root or as a member of its group)"
            }
            _ => "",
        },
        _ => "",
    };
    format!("{}: {e}{hint}", socket.display())
}

/// A path for the engine, resolved against this command's working
/// directory: the engine runs in its own, where a relative path would lead
/// elsewhere. `-` (the engine's standard output) stays as it is.
fn path_from_here(path: &std::path::Path) -> PathBuf {
    if path.is_absolute() || path.as_os_str() == "-" {
        return path.to_path_buf();
    }
    std::env::current_dir().map_or_else(|_| path.to_path_buf(), |d| d.join(path))
}

/// A port URI or filter with a file (`pcap:FILE`, `plugin:FILE.so[:CONFIG]`,
/// `ebpf:FILE.o[:PROGRAM]`) whose relative path is resolved as by
/// [`path_from_here`]; any other text as it is.
fn from_here(text: &str) -> String {
    for prefix in ["pcap:", "plugin:", "ebpf:"] {
        if let Some(rest) = text.trim_start().strip_prefix(prefix) {
            if rest.is_empty() || rest.starts_with('/') {
                break;
            }
            // The directory goes in front: what follows the file (a config, a program) stays as written.
            return format!("{prefix}{}", path_from_here(std::path::Path::new(rest)).display());
        }
    }
    text.to_owned()
}

/// `--interval`: seconds, from a hundredth to a day.
fn parse_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.01..=86_400.0).contains(&v) => Ok(v),
        Ok(_) => Err("between 0.01 and 86400 seconds".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Why a request got no answer, as one line.
fn call_failure(socket: &std::path::Path, e: &ringwire_tools::ClientError) -> String {
    match e {
        ringwire_tools::ClientError::Timeout(t) => {
            format!(
                "no answer from {} within {} s (--timeout); a change asked for may still be made: `ringctl status` shows",
                socket.display(),
                t.as_secs()
            )
        }
        e => format!("{}: {e}", socket.display()),
    }
}

/// The request a command line makes: (command, arguments).
fn request(cmd: &Cmd) -> (&'static str, Value) {
    let target = |t: &TargetArgs| match (&t.port, &t.consumer) {
        (Some(p), _) => json!({ "port": p }),
        (None, c) => json!({ "consumer": c }),
    };
    let drop_nulls = |mut v: Value| {
        if let Value::Object(m) = &mut v {
            m.retain(|_, x| !x.is_null());
        }
        v
    };
    match cmd {
        Cmd::Status => ("status", json!({})),
        Cmd::Stats { action: Some(StatsCmd::Reset), .. } => ("stats.reset", json!({})),
        Cmd::Stats { .. } => ("stats", json!({})),
        Cmd::Ports(PortsCmd::List) => ("ports.list", json!({})),
        Cmd::Ports(PortsCmd::Add { uri, name, filter, no_promisc, no_rx, recorded }) => (
            "ports.add",
            drop_nulls(json!({
                "uri": from_here(uri), "name": name, "filter": filter.as_deref().map(from_here),
                "promisc": !no_promisc, "rx": !no_rx,
                "pace": if *recorded { "recorded" } else { "fast" },
            })),
        ),
        Cmd::Ports(PortsCmd::Del { name }) => ("ports.del", json!({ "name": name })),
        Cmd::Consumers(ConsumersCmd::List) => ("consumers.list", json!({})),
        Cmd::Consumers(ConsumersCmd::Add {
            name,
            kind,
            ports,
            filter,
            path,
            to,
            snaplen,
            limit,
            queue_mb,
            rotate_mb,
            rotate_files,
            rotate_s,
            split_by_worker,
            on_write_error,
        }) => (
            "consumers.add",
            drop_nulls(json!({
                "name": name, "kind": kind, "ports": ports, "filter": filter.as_deref().map(from_here),
                "path": path.as_deref().map(path_from_here), "to": to,
                "snaplen": snaplen, "limit": limit, "queue_mb": queue_mb, "rotate_mb": rotate_mb,
                "rotate_files": rotate_files, "rotate_s": rotate_s, "split_by_worker": split_by_worker,
                "on_write_error": on_write_error,
            })),
        ),
        Cmd::Consumers(ConsumersCmd::Del { name }) => ("consumers.del", json!({ "name": name })),
        Cmd::Filters(FiltersCmd::List) => ("filters.list", json!({})),
        Cmd::Filters(FiltersCmd::Load { name, filter }) => {
            ("filters.load", json!({ "name": name, "filter": from_here(filter) }))
        }
        Cmd::Filters(FiltersCmd::Unload { name }) => ("filters.unload", json!({ "name": name })),
        Cmd::Filters(FiltersCmd::Attach { name, target: t }) => {
            let mut args = target(t);
            args["name"] = json!(name);
            ("filters.attach", args)
        }
        Cmd::Filters(FiltersCmd::Detach { target: t }) => ("filters.detach", target(t)),
        Cmd::Filters(FiltersCmd::Swap { name, filter }) => {
            ("filters.swap", json!({ "name": name, "filter": from_here(filter) }))
        }
        Cmd::Patches(PatchesCmd::List) => ("patches.list", json!({})),
        Cmd::Patches(PatchesCmd::Add { name, from, to, filter }) => {
            let filter = filter.as_deref().map(from_here);
            ("patches.add", drop_nulls(json!({ "name": name, "from": from, "to": to, "filter": filter })))
        }
        Cmd::Patches(PatchesCmd::Del { name }) => ("patches.del", json!({ "name": name })),
        Cmd::Patches(PatchesCmd::Reset) => ("patches.reset", json!({})),
        Cmd::Forwarding { action } if action == "start" => ("forwarding.start", json!({})),
        Cmd::Forwarding { .. } => ("forwarding.stop", json!({})),
        Cmd::Classifier(ClassCmd::List) => ("classifier.list", json!({})),
        Cmd::Classifier(ClassCmd::Add { mac, vlan, action }) => {
            ("classifier.add", json!({ "mac": mac, "vlan": vlan, "action": action }))
        }
        Cmd::Classifier(ClassCmd::Del { mac, vlan }) => ("classifier.del", json!({ "mac": mac, "vlan": vlan })),
        Cmd::Log { filter } => ("log.level", json!({ "filter": filter })),
        Cmd::Config(ConfigCmd::Show) => ("config.show", json!({})),
        Cmd::Shutdown { .. } => ("shutdown", json!({})),
    }
}

fn render(cmd: &str, v: &Value) -> String {
    match cmd {
        "status" => render_status(v),
        "stats" => render_stats(v),
        "classifier.list" => render_classifier(v),
        "classifier.add" if v["replaced"].is_string() => format!(
            "ok: ports {} (the entry was there: its action was {}, its hits go on)\n",
            list(&v["ports"]),
            v["replaced"].as_str().unwrap_or_default()
        ),
        "classifier.add" | "classifier.del" => format!("ok: ports {}\n", list(&v["ports"])),
        "log.level" => format!("ok: log filter now {}\n", v["filter"].as_str().unwrap_or("")),
        "shutdown" => "ok: the engine is stopping\n".into(),
        "config.show" => text(&v["toml"]),
        "stats.reset" => "ok: counters reset\n".into(),
        "ports.list" => {
            let mut s = table(
                &v["ports"],
                &[
                    ("name", 20),
                    ("uri", 28),
                    ("rx", 5),
                    ("link", 10),
                    ("received", 12),
                    ("kernel_drops", 12),
                    ("filter", 0),
                ],
            );
            s.push_str(&source_errors(&v["ports"]));
            s
        }
        "consumers.list" => table(
            &v["consumers"],
            &[("name", 16), ("kind", 8), ("ports", 16), ("seen", 12), ("delivered", 12), ("filter", 0)],
        ),
        "patches.list" => format!(
            "forwarding {}\n{}",
            if v["forwarding"] == json!(true) { "on" } else { "stopped" },
            table(
                &v["patches"],
                &[
                    ("name", 16),
                    ("ports", 20),
                    ("to", 12),
                    ("to_link", 10),
                    ("seen", 12),
                    ("delivered", 12),
                    ("paused", 10),
                    ("to_unsent", 10),
                    ("filter", 0)
                ]
            )
        ),
        "filters.list" => render_filters(v),
        "ports.add" | "consumers.add" | "patches.add" => {
            let notes = v["notes"].as_array().into_iter().flatten().filter_map(Value::as_str);
            notes.fold(format!("ok: added {}\n", text(&v["added"])), |s, n| s + "note: " + n + "\n")
        }
        "ports.del" | "consumers.del" | "patches.del" => {
            let files = list(&v["files"]);
            let mut s = format!("ok: removed {}\n", text(&v["removed"]));
            if !files.is_empty() {
                s.push_str(&format!("wrote {files}\n"));
            }
            for n in v["notes"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                s.push_str(&format!("note: {n}\n"));
            }
            if let Some(e) = v["error"].as_str() {
                s.push_str(&format!("its writer failed: {e}\n"));
            }
            s
        }
        "patches.reset" => format!("ok: removed {}\n", list(&v["removed"])),
        "forwarding.start" | "forwarding.stop" => {
            let state = if v["forwarding"] == json!(true) { "on" } else { "stopped" };
            // A start or stop that changed nothing says so (a script reads `was` in the JSON).
            let already = if v["was"] == v["forwarding"] { " already" } else { "" };
            format!("ok: forwarding{already} {state}\n")
        }
        "filters.load" => format!("ok: loaded {}\n", text(&v["loaded"])),
        "filters.unload" => format!("ok: unloaded {}\n", text(&v["unloaded"])),
        "filters.attach" | "filters.detach" => format!("ok: {}\n", text(&v["note"])),
        "filters.swap" => format!("ok: {}\n", list(&v["notes"])),
        _ => format!("{v}\n"),
    }
}

fn list(v: &Value) -> String {
    v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default()
}

fn text(v: &Value) -> String {
    ringwire_tools::value_text(v, "-")
}

fn render_status(v: &Value) -> String {
    let mut s = format!(
        "ringwire {}  pid {}  up {:.0} s  fanout {}\n",
        text(&v["version"]),
        text(&v["pid"]),
        v["uptime_s"].as_f64().unwrap_or(0.0),
        text(&v["fanout"])
    );
    s.push_str("workers:\n");
    s.push_str(&table(&v["workers"], &[("index", 6), ("core", 0)]));
    s.push_str("ports:\n");
    s.push_str(&table(&v["ports"], &[("name", 20), ("uri", 28), ("filter", 0)]));
    s.push_str("consumers:\n");
    s.push_str(&table(&v["consumers"], &[("name", 20), ("kind", 10), ("filter", 0)]));
    s
}

/// A port's or consumer's name, marked when it was removed at run time.
fn removed(item: &Value) -> String {
    ringwire_engine::stats::removed_mark(&text(&item["name"]), item["removed"] == json!(true))
}

fn render_stats(v: &Value) -> String {
    let c = &v["counters"];
    // Rates are listed in the counters' order (a name removed and added
    // again has two entries: the removed one and the live one).
    let rate_of = |section: &str, i: usize, key: &str| v["rates"][section][i][key].as_f64();
    let rate = |section: &str, i: usize, key: &str| {
        rate_of(section, i, key).map_or_else(|| "-".to_owned(), |x| format!("{x:.0}"))
    };
    let mbits = |section: &str, i: usize, key: &str| {
        rate_of(section, i, key).map_or_else(|| "-".to_owned(), |x| format!("{:.1}", x / 1e6))
    };
    let n = |x: &Value| x.as_u64().unwrap_or(0).to_string();
    let list = |x: &Value| x.as_array().cloned().unwrap_or_default();
    let mut s = format!("elapsed {:.1} s", c["elapsed_s"].as_f64().unwrap_or(0.0));
    // What the rates are over: a short interval gives rough rates.
    match v["rates"]["interval_s"].as_f64() {
        Some(dt) => s.push_str(&format!("; rates over the last {dt:.2} s\n")),
        None => s.push_str("; no rates yet (they are over the interval since an earlier read)\n"),
    }
    s.push_str("ports:\n");
    s.push_str(&grid(
        &[
            ("name", 20, false),
            ("received", 12, true),
            ("frames/s", 12, true),
            ("filtered", 10, true),
            ("k_drops", 10, true),
            ("drops/s", 10, true),
            ("if_drops", 10, true),
            ("tx", 12, true),
            ("tx_unsent", 10, true),
            ("link", 10, false),
        ],
        list(&c["ports"]).iter().enumerate().map(|(i, p)| {
            // A kernel filter that does not count its drops: not known.
            let filtered = if p["filtered_uncounted"] == Value::Bool(true) {
                "-".to_owned()
            } else {
                let count = |v: &Value| v.as_u64().unwrap_or(0);
                (count(&p["filtered"]) + count(&p["past_filtered"]) + count(&p["ebpf"]["filtered"])).to_string()
            };
            // The interface's own drops, for interface ports (see the README's counters).
            let if_drops = p["if_dropped"]
                .as_u64()
                .map_or_else(|| "-".to_owned(), |d| (d + p["if_missed"].as_u64().unwrap_or(0)).to_string());
            vec![
                removed(p),
                n(&p["received"]),
                rate("ports", i, "received_per_s"),
                filtered,
                n(&p["kernel_drops"]),
                rate("ports", i, "kernel_drops_per_s"),
                if_drops,
                n(&p["tx_frames"]),
                n(&p["tx_unsent"]),
                text(&p["link"]),
            ]
        }),
    ));
    // How each worker was scheduled (off the core: busy-poll workers only).
    let ms = |x: &Value| x.as_f64().map_or_else(|| "-".to_owned(), |ns| format!("{:.1}", ns / 1e6));
    s.push_str("workers:\n");
    s.push_str(&grid(
        &[
            ("worker", 6, false),
            ("core", 6, true),
            ("received", 12, true),
            ("k_drops", 10, true),
            ("cpu_ms", 10, true),
            ("waited_ms", 10, true),
            ("off_core_ms", 11, true),
        ],
        list(&c["workers"]).iter().map(|w| {
            vec![
                n(&w["index"]),
                n(&w["core"]),
                n(&w["received"]),
                n(&w["kernel_drops"]),
                ms(&w["cpu_ns"]),
                ms(&w["waited_ns"]),
                ms(&w["off_core_ns"]),
            ]
        }),
    ));
    s.push_str("consumers:\n");
    s.push_str(&grid(
        &[
            ("name", 20, false),
            ("seen", 12, true),
            ("passed", 12, true),
            ("delivered", 12, true),
            ("bytes", 14, true),
            ("q_dropped", 10, true),
            ("paused", 10, true),
            ("delivered/s", 12, true),
            ("Mbit/s", 10, true),
            ("written", 12, true),
            ("write_err", 10, true),
        ],
        list(&c["consumers"]).iter().enumerate().map(|(i, k)| {
            vec![
                removed(k),
                n(&k["seen"]),
                n(&k["passed"]),
                n(&k["delivered"]),
                n(&k["delivered_bytes"]),
                n(&k["queue_dropped"]),
                n(&k["paused"]),
                rate("consumers", i, "delivered_per_s"),
                mbits("consumers", i, "delivered_bits_per_s"),
                n(&k["written"]),
                n(&k["write_errors"]),
            ]
        }),
    ));
    s.push_str(&source_errors(&c["ports"]));
    // Plugins that failed: the grids have no room for why.
    for (kind, item) in [("port", "ports"), ("consumer", "consumers")] {
        for k in list(&c[item]) {
            let quarantined = k["filter_quarantined"].as_str();
            let quarantines = k["filter_quarantines"].as_u64().unwrap_or(u64::from(quarantined.is_some()));
            let what = format!("{kind} `{}`", removed(&k));
            let errors = k["filter_errors"].as_u64().unwrap_or(0);
            if let Some(l) = ringwire_engine::stats::quarantine_line(&what, errors, quarantined, quarantines) {
                s.push_str(&format!("{l}\n"));
            }
            let count = |key: &str| k[key].as_u64().unwrap_or(0);
            for l in [
                ringwire_engine::stats::unfit_line(&what, count("unfit")),
                ringwire_engine::stats::egress_down_line(&what, count("egress_down")),
            ]
            .into_iter()
            .flatten()
            {
                s.push_str(&format!("{l}\n"));
            }
        }
    }
    let probes: Vec<Value> = list(&c["consumers"]).into_iter().filter(|k| !k["latency"].is_null()).collect();
    if !probes.is_empty() {
        s.push_str("latency (microseconds, since each consumer was added or the last `stats reset`):\n");
        s.push_str(&grid(
            &[
                ("consumer", 20, false),
                ("to", 9, false),
                ("frames", 10, true),
                ("p50", 9, true),
                ("p99", 9, true),
                ("p99.9", 9, true),
                ("max", 9, true),
                ("lost", 9, true),
                ("dups", 9, true),
                ("reordered", 9, true),
                ("restarts", 9, true),
            ],
            probes.iter().flat_map(|k| {
                ["kernel", "consumer"].map(|to| {
                    let (l, h) = (&k["latency"], &k["latency"][to]);
                    let c = &l["counters"];
                    // No frame timed (a file's, unstamped ones): no percentile, not 0.
                    let timed = h["count"].as_u64().unwrap_or(0) > 0;
                    let us = |x: &Value| {
                        if timed {
                            format!("{:.1}", x.as_f64().unwrap_or(0.0) / 1e3)
                        } else {
                            "-".to_owned()
                        }
                    };
                    vec![
                        removed(k),
                        to.to_owned(),
                        n(&h["count"]),
                        us(&h["p50"]),
                        us(&h["p99"]),
                        us(&h["p999"]),
                        us(&h["max"]),
                        n(&c["lost"]),
                        n(&c["duplicates"]),
                        n(&c["reordered"]),
                        n(&c["restarts"]),
                    ]
                })
            }),
        ));
        // What the grid has no room for, when there is any: frames the
        // probe could not time or sequence-check as asked, and a hint when
        // the streams keep starting over.
        for k in &probes {
            let c = &k["latency"]["counters"];
            let odd = [("too old", "too_old"), ("untracked", "untracked"), ("negative", "negative")]
                .map(|(label, key)| (label, c[key].as_u64().unwrap_or(0)));
            if odd.iter().any(|(_, v)| *v > 0) {
                let parts: Vec<String> = odd.iter().map(|(label, v)| format!("{label} {v}")).collect();
                s.push_str(&format!(" {}: {}\n", removed(k), parts.join(", ")));
            }
            let count = |key: &str| c[key].as_u64().unwrap_or(0);
            if let Some(hint) =
                ringwire_engine::probe::restart_hint(count("restarts"), count("flows"), count("stamped"))
            {
                s.push_str(&format!(" {}: {hint}\n", removed(k)));
            }
        }
        let streams: Vec<Vec<String>> = probes
            .iter()
            .flat_map(|k| {
                list(&k["latency"]["streams"]).into_iter().map(move |st| {
                    let dir = if st["reverse"] == Value::Bool(true) { " reverse" } else { "" };
                    vec![
                        removed(k),
                        text(&st["port"]),
                        format!("{}{dir}", n(&st["flow"])),
                        n(&st["lost"]),
                        n(&st["duplicates"]),
                        n(&st["reordered"]),
                        n(&st["too_old"]),
                    ]
                })
            })
            .collect();
        if !streams.is_empty() {
            s.push_str("flows that lost, repeated or reordered frames (most lost first):\n");
            s.push_str(&grid(
                &[
                    ("consumer", 20, false),
                    ("port", 16, false),
                    ("flow", 12, false),
                    ("lost", 9, true),
                    ("duplicates", 10, true),
                    ("reordered", 9, true),
                    ("too_old", 9, true),
                ],
                streams,
            ));
        }
    }
    s
}

fn render_classifier(v: &Value) -> String {
    let ports = v["ports"].as_array().cloned().unwrap_or_default();
    let rows = ports.iter().flat_map(|p| {
        p["entries"].as_array().cloned().unwrap_or_default().into_iter().map(|e| {
            let vlan = e["vlan"].as_u64().map_or_else(|| "untagged".to_owned(), |x| x.to_string());
            vec![text(&p["name"]), vlan, text(&e["mac"]), text(&e["action"]), text(&e["hits"])]
        })
    });
    format!(
        "default {}\n{}",
        text(&v["default"]),
        grid(
            &[("port", 20, false), ("vlan", 9, true), ("mac", 17, false), ("action", 6, false), ("hits", 12, true)],
            rows
        )
    )
}

/// Rows of cells under their headings, each column `(heading, width,
/// right-aligned)`; a width of 0 is the last column, unpadded.
fn grid(cols: &[(&str, usize, bool)], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let line = |cells: Vec<String>| {
        let mut l = String::from(" ");
        for (&(_, w, right), c) in cols.iter().zip(cells) {
            l.push(' ');
            l.push_str(&match (w, right) {
                (0, _) => c,
                (_, true) => format!("{c:>w$}"),
                (_, false) => format!("{c:<w$}"),
            });
        }
        l.trim_end().to_owned() + "\n"
    };
    let mut s = line(cols.iter().map(|(h, _, _)| (*h).to_owned()).collect());
    for r in rows {
        s.push_str(&line(r));
    }
    s
}

/// Rows of objects as a table of the given (key, width) columns; a width
/// of 0 is the last column, unpadded. Lists are joined with commas.
/// A line for each port whose file ended badly (the `error` of `ports`):
/// the port reads nothing more, and the grids have no room for why.
fn source_errors(ports: &Value) -> String {
    let list = ports.as_array().cloned().unwrap_or_default();
    list.iter()
        .filter_map(|p| {
            p["error"].as_str().map(|e| format!("port `{}`: its file ended badly: {e}\n", text(&p["name"])))
        })
        .collect()
}

fn table(rows: &Value, cols: &[(&str, usize)]) -> String {
    let cell = |v: &Value| match v {
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(","),
        other => text(other),
    };
    let left: Vec<(&str, usize, bool)> = cols.iter().map(|&(k, w)| (k, w, false)).collect();
    grid(
        &left,
        rows.as_array().cloned().unwrap_or_default().iter().map(|r| cols.iter().map(|(k, _)| cell(&r[*k])).collect()),
    )
}

fn render_filters(v: &Value) -> String {
    let loaded = v["loaded"].as_object().cloned().unwrap_or_default();
    let loaded = loaded.iter().map(|(name, f)| {
        let attached: Vec<String> = f["attached"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|t| format!("{}:{}", text(&t["kind"]), text(&t["name"])))
            .collect();
        let attached = if attached.is_empty() { "-".to_owned() } else { attached.join(",") };
        vec![name.clone(), attached, text(&f["text"])]
    });
    let in_force = v["in_force"].as_array().cloned().unwrap_or_default();
    let in_force = in_force.iter().map(|f| {
        let on = match (&f["port"], &f["consumer"]) {
            (Value::String(p), _) => format!("port:{p}"),
            (_, c) => format!("consumer:{}", text(c)),
        };
        let counts = if f["ebpf"].is_object() { &f["ebpf"] } else { f };
        vec![on, text(&f["name"]), text(&counts["seen"]), text(&counts["filtered"]), text(&f["filter"])]
    });
    format!(
        "loaded:\n{}in force:\n{}",
        grid(&[("name", 16, false), ("attached", 32, false), ("filter", 0, false)], loaded),
        grid(
            &[("on", 24, false), ("name", 16, false), ("seen", 12, true), ("filtered", 12, true), ("filter", 0, false)],
            in_force
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_files_are_resolved_from_the_callers_directory() {
        let here = std::env::current_dir().unwrap();
        let at = |f: &str| here.join(f).display().to_string();
        assert_eq!(from_here("plugin:lib/x.so:k=v"), format!("plugin:{}", at("lib/x.so:k=v")));
        assert_eq!(from_here("ebpf:keep.bpf.o:prog"), format!("ebpf:{}", at("keep.bpf.o:prog")));
        assert_eq!(from_here("pcap:in.pcap"), format!("pcap:{}", at("in.pcap")));
        for same in ["plugin:/abs/x.so", "udp port 53", "afpacket:eth1", "builtin:vlan 10", "pcap:/x.pcap"] {
            assert_eq!(from_here(same), same);
        }
        assert_eq!(path_from_here(std::path::Path::new("out.pcap")), here.join("out.pcap"));
        assert_eq!(path_from_here(std::path::Path::new("-")), PathBuf::from("-"));
    }

    #[test]
    fn a_forwarding_change_that_changes_nothing_says_so() {
        let said = |cmd, on: bool, was: bool| render(cmd, &json!({ "forwarding": on, "was": was }));
        assert_eq!(said("forwarding.stop", false, true), "ok: forwarding stopped\n");
        assert_eq!(said("forwarding.stop", false, false), "ok: forwarding already stopped\n");
        assert_eq!(said("forwarding.start", true, false), "ok: forwarding on\n");
        assert_eq!(said("forwarding.start", true, true), "ok: forwarding already on\n");
    }

    #[test]
    fn watch_intervals_are_checked_not_trusted() {
        assert_eq!(parse_interval("0.2"), Ok(0.2));
        for bad in ["0", "-1", "1e300", "inf", "NaN", "86401"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
        assert!(parse_interval("soon").is_err());
    }

    #[test]
    fn a_request_that_outlasts_the_timeout_says_no_answer_in_time() {
        let sock = std::path::Path::new("/run/x.sock");
        let e = ringwire_tools::ClientError::Timeout(Duration::from_secs(2));
        assert_eq!(
            call_failure(sock, &e),
            "no answer from /run/x.sock within 2 s (--timeout); a change asked for may still be made: `ringctl status` shows"
        );
        let closed = ringwire_tools::ClientError::Io("the engine closed the connection".into());
        assert_eq!(call_failure(sock, &closed), "/run/x.sock: the engine closed the connection");
    }

    #[test]
    fn stats_name_the_flows_a_probe_saw_lose_repeat_or_reorder() {
        let v = serde_json::json!({"counters": {"elapsed_s": 1.0, "ports": [], "workers": [], "consumers": [
        {"name": "lat", "kind": "latency", "latency": {
            "kernel": {"count": 10}, "consumer": {"count": 10},
            "counters": {"lost": 5, "irregular": 2, "flows": 2, "restarts": 40, "too_old": 1, "stamped": 300},
            "streams": [
                {"port": "a", "flow": 3, "reverse": false, "lost": 5, "duplicates": 0, "reordered": 0, "too_old": 1},
                {"port": "b", "flow": 9, "reverse": true, "lost": 0, "duplicates": 2, "reordered": 1, "too_old": 0}
            ]}}]}});
        let s = render_stats(&v);
        assert!(s.contains("flows that lost, repeated or reordered frames"), "{s}");
        let rows: Vec<Vec<&str>> = s
            .lines()
            .skip_while(|l| !l.starts_with("flows that lost"))
            .skip(2)
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows,
            [vec!["lat", "a", "3", "5", "0", "0", "1"], vec!["lat", "b", "9", "reverse", "0", "2", "1", "0"]],
            "{s}"
        );
        // What the grid has no column for, and the hint of streams that keep starting over.
        assert!(s.contains(" lat: too old 1, untracked 0, negative 0\n"), "{s}");
        assert!(s.contains(" lat: streams started over 40 times in 300 frames"), "{s}");
        // No irregular stream: no such section, nor notes for counts that are all 0.
        let mut quiet = v.clone();
        quiet["counters"]["consumers"][0]["latency"]["streams"] = serde_json::json!([]);
        quiet["counters"]["consumers"][0]["latency"]["counters"] = serde_json::json!({"flows": 2, "restarts": 2});
        let q = render_stats(&quiet);
        assert!(!q.contains("flows that lost") && !q.contains("too old") && !q.contains("started over"), "{q}");
    }

    /// A port without a carrier keeps the columns after its link in place.
    #[test]
    fn lists_keep_their_columns_for_every_link_state() {
        let v = serde_json::json!({"ports": [
            {"name": "p", "uri": "afpacket:veth0", "rx": true, "link": "no-carrier", "received": 5, "kernel_drops": 0,
             "filter": "udp"}
        ]});
        let s = render("ports.list", &v);
        let mut lines = s.lines();
        let (header, row) = (lines.next().unwrap(), lines.next().unwrap());
        assert_eq!(header.find("filter"), row.find("udp"), "{s}");
        let v = serde_json::json!({"forwarding": true, "patches": [
            {"name": "fw", "ports": ["a"], "to": "b", "to_link": "no-carrier", "seen": 9, "delivered": 1,
             "paused": 8, "to_unsent": 0, "filter": "udp"}
        ]});
        let s = render("patches.list", &v);
        let mut lines = s.lines().skip(1);
        let (header, row) = (lines.next().unwrap(), lines.next().unwrap());
        assert_eq!(header.find("filter"), row.find("udp"), "{s}");
        // Frames passed while forwarding was stopped: seen = delivered + paused on the row.
        let cols: Vec<&str> = row.split_whitespace().collect();
        let at = header.split_whitespace().position(|h| h == "paused").expect("a paused column");
        assert_eq!(cols[at], "8", "{s}");
    }

    #[test]
    fn stats_show_what_a_port_sent_and_never_sent_its_link_and_what_was_removed() {
        let v = serde_json::json!({"counters": {"elapsed_s": 1.0, "workers": [
            {"index": 0, "core": 1, "received": 3000, "kernel_drops": 0, "cpu_ns": 2_500_000, "waited_ns": 500_000,
             "off_core_ns": 12_500_000},
            {"index": 1, "core": 0, "received": 0, "kernel_drops": 0, "cpu_ns": 1_000_000, "waited_ns": 0, "off_core_ns": null}
        ],
        "ports": [
            {"name": "a", "received": 3000, "kernel_drops": 0, "tx_frames": 0, "tx_unsent": 0, "link": "up"},
            {"name": "b", "received": 0, "kernel_drops": 0, "tx_frames": 2048, "tx_unsent": 2048, "link": "down"},
            {"name": "e1", "removed": true, "received": 7, "tx_frames": 0, "tx_unsent": 0}
        ],
        "consumers": [
            {"name": "lat", "removed": true, "kind": "latency", "seen": 9, "passed": 9, "delivered": 9, "queue_dropped": 0,
             "latency": {"kernel": {"count": 9}, "consumer": {"count": 9},
                         "counters": {"lost": 1, "duplicates": 2, "reordered": 3, "restarts": 4}, "streams": []}},
            {"name": "fw", "kind": "forward", "seen": 10, "passed": 10, "delivered": 4, "delivered_bytes": 400,
             "queue_dropped": 0, "paused": 6}
        ]}});
        let s = render_stats(&v);
        // The cells of the first row that begins with `first` and holds `with`.
        let row = |first: &str, with: &str| -> Vec<String> {
            s.lines()
                .find(|l| l.trim_start().starts_with(first) && l.contains(with))
                .unwrap_or_else(|| panic!("no row {first} … {with}:\n{s}"))
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        };
        let last = |cells: Vec<String>, n: usize| cells[cells.len() - n..].to_vec();
        assert_eq!(last(row("name", ""), 3), ["tx", "tx_unsent", "link"], "{s}");
        assert_eq!(last(row("b", ""), 3), ["2048", "2048", "down"], "{s}");
        assert_eq!(row("e1", "")[..2], ["e1", "(removed)"], "{s}");
        assert_eq!(last(row("lat (removed)", "kernel"), 4), ["1", "2", "3", "4"], "lost, dups, late, restarts: {s}");
        assert!(s.contains("restarts"), "{s}");
        // A patch while forwarding is stopped: passed = delivered + paused, on its row.
        let header = row("name", "q_dropped");
        let paused = header.iter().position(|h| h == "paused").expect("a paused column");
        assert_eq!(row("fw", "")[paused], "6", "{s}");
        // Workers: how each was scheduled; off the core only for a busy-poll one.
        assert_eq!(last(row("worker", "cpu_ms"), 3), ["cpu_ms", "waited_ms", "off_core_ms"], "{s}");
        assert_eq!(row("0", "12.5"), ["0", "1", "3000", "0", "2.5", "0.5", "12.5"], "{s}");
        assert_eq!(row("1", "1.0"), ["1", "0", "0", "0", "1.0", "0.0", "-"], "{s}");
    }
}
