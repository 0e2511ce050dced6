//! `ringctl`: drive a running ringwire engine through its control socket.
//!
//! Exit codes: 0 done, 1 the engine refused (its message on stderr), 2 usage,
//! 3 the engine cannot be reached.

use std::{io::IsTerminal, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use ringwire_tools::Client;
use serde_json::{json, Value};

#[derive(Parser)]
#[command(version, about = "Control a running ringwire engine")]
struct Cli {
    /// The engine's control socket.
    #[arg(long, global = true, default_value = ringwire_engine::config::DEFAULT_CONTROL_SOCKET)]
    socket: PathBuf,
    /// Print the engine's JSON result instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// Seconds to wait for an answer.
    #[arg(long, global = true, default_value_t = 10)]
    timeout: u64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Version, uptime, workers, ports, consumers and their filters.
    Status,
    /// Counters, with rates since the previous read.
    Stats {
        /// Refresh in place every --interval seconds (until Ctrl-C, or --count times).
        #[arg(long)]
        watch: bool,
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// With --watch: stop after this many reads.
        #[arg(long)]
        count: Option<u64>,
    },
    /// The eBPF classifier table.
    #[command(subcommand)]
    Classifier(ClassCmd),
    /// Set the log filter (tracing directives, e.g. `info,ringwire_engine::ring=debug`).
    Log {
        /// The directives.
        filter: String,
    },
    /// Stop the engine gracefully (as SIGTERM: queues drained, files flushed).
    Shutdown,
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
    let mut client = match Client::connect(&cli.socket, Duration::from_secs(cli.timeout.max(1))) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringctl: {}: {e}", cli.socket.display());
            return ExitCode::from(3);
        }
    };
    let (cmd, args) = match &cli.cmd {
        Cmd::Status => ("status", json!({})),
        Cmd::Stats { .. } => ("stats", json!({})),
        Cmd::Classifier(ClassCmd::List) => ("classifier.list", json!({})),
        Cmd::Classifier(ClassCmd::Add { mac, vlan, action }) => {
            ("classifier.add", json!({ "mac": mac, "vlan": vlan, "action": action }))
        }
        Cmd::Classifier(ClassCmd::Del { mac, vlan }) => ("classifier.del", json!({ "mac": mac, "vlan": vlan })),
        Cmd::Log { filter } => ("log.level", json!({ "filter": filter })),
        Cmd::Shutdown => ("shutdown", json!({})),
    };
    let reads = match &cli.cmd {
        Cmd::Stats { watch: true, count, .. } => count.unwrap_or(u64::MAX),
        _ => 1,
    };
    let interval = match &cli.cmd {
        Cmd::Stats { interval, .. } if interval.is_finite() && *interval > 0.0 => Duration::from_secs_f64(*interval),
        _ => Duration::from_secs(1),
    };
    let watching = reads > 1;
    for i in 0..reads {
        if i > 0 {
            std::thread::sleep(interval);
        }
        let answer = match client.call(cmd, args.clone()) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("ringctl: {}: {e}", cli.socket.display());
                return ExitCode::from(3);
            }
        };
        if !answer.ok {
            match answer.error {
                Some(e) => eprintln!("ringctl: {cmd}: {e}"),
                None => eprintln!("ringctl: {cmd}: the engine refused without a reason"),
            }
            return ExitCode::from(1);
        }
        let result = answer.result.unwrap_or(Value::Null);
        if cli.json {
            println!("{result}");
            continue;
        }
        if watching && std::io::stdout().is_terminal() {
            // Redraw in place.
            print!("\x1b[H\x1b[2J");
        }
        print!("{}", render(cmd, &result));
    }
    ExitCode::SUCCESS
}

fn render(cmd: &str, v: &Value) -> String {
    match cmd {
        "status" => render_status(v),
        "stats" => render_stats(v),
        "classifier.list" => render_classifier(v),
        "classifier.add" | "classifier.del" => format!("ok: ports {}\n", list(&v["ports"])),
        "log.level" => format!("ok: log filter now {}\n", v["filter"].as_str().unwrap_or("")),
        "shutdown" => "ok: the engine is stopping\n".into(),
        _ => format!("{v}\n"),
    }
}

fn list(v: &Value) -> String {
    v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default()
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn render_status(v: &Value) -> String {
    let mut s = format!(
        "ringwire {}  pid {}  up {:.0} s  fanout {}\n",
        text(&v["version"]),
        text(&v["pid"]),
        v["uptime_s"].as_f64().unwrap_or(0.0),
        text(&v["fanout"])
    );
    let arr = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    s.push_str("workers:\n");
    for w in arr("workers") {
        s.push_str(&format!("  {:<6} core {}\n", text(&w["index"]), text(&w["core"])));
    }
    s.push_str(&format!("ports:\n  {:<20} {:<28} {}\n", "name", "uri", "filter"));
    for p in arr("ports") {
        s.push_str(&format!("  {:<20} {:<28} {}\n", text(&p["name"]), text(&p["uri"]), text(&p["filter"])));
    }
    s.push_str(&format!("consumers:\n  {:<20} {:<10} {}\n", "name", "kind", "filter"));
    for c in arr("consumers") {
        s.push_str(&format!("  {:<20} {:<10} {}\n", text(&c["name"]), text(&c["kind"]), text(&c["filter"])));
    }
    s
}

fn render_stats(v: &Value) -> String {
    let c = &v["counters"];
    let rate = |section: &str, name: &Value, key: &str| {
        v["rates"][section]
            .as_array()
            .and_then(|a| a.iter().find(|r| &r["name"] == name))
            .and_then(|r| r[key].as_f64())
            .map_or_else(|| "-".to_owned(), |x| format!("{x:.0}"))
    };
    let n = |x: &Value| x.as_u64().unwrap_or(0);
    let mut s = format!("elapsed {:.1} s\n", c["elapsed_s"].as_f64().unwrap_or(0.0));
    s.push_str(&format!(
        "ports:\n  {:<20} {:>12} {:>12} {:>10} {:>10} {:>10}\n",
        "name", "received", "frames/s", "filtered", "k_drops", "drops/s"
    ));
    for p in c["ports"].as_array().cloned().unwrap_or_default() {
        s.push_str(&format!(
            "  {:<20} {:>12} {:>12} {:>10} {:>10} {:>10}\n",
            text(&p["name"]),
            n(&p["received"]),
            rate("ports", &p["name"], "received_per_s"),
            n(&p["filtered"]) + p["ebpf"]["filtered"].as_u64().unwrap_or(0),
            n(&p["kernel_drops"]),
            rate("ports", &p["name"], "kernel_drops_per_s"),
        ));
    }
    s.push_str(&format!(
        "consumers:\n  {:<20} {:>12} {:>12} {:>12} {:>10} {:>12}\n",
        "name", "seen", "passed", "delivered", "q_dropped", "delivered/s"
    ));
    for k in c["consumers"].as_array().cloned().unwrap_or_default() {
        s.push_str(&format!(
            "  {:<20} {:>12} {:>12} {:>12} {:>10} {:>12}\n",
            text(&k["name"]),
            n(&k["seen"]),
            n(&k["passed"]),
            n(&k["delivered"]),
            n(&k["queue_dropped"]),
            rate("consumers", &k["name"], "delivered_per_s"),
        ));
    }
    s
}

fn render_classifier(v: &Value) -> String {
    let mut s = format!(
        "default {}\n  {:<20} {:>9} {:<17} {:<6} {:>12}\n",
        text(&v["default"]),
        "port",
        "vlan",
        "mac",
        "action",
        "hits"
    );
    for p in v["ports"].as_array().cloned().unwrap_or_default() {
        for e in p["entries"].as_array().cloned().unwrap_or_default() {
            let vlan = e["vlan"].as_u64().map_or_else(|| "untagged".to_owned(), |x| x.to_string());
            s.push_str(&format!(
                "  {:<20} {:>9} {:<17} {:<6} {:>12}\n",
                text(&p["name"]),
                vlan,
                text(&e["mac"]),
                text(&e["action"]),
                text(&e["hits"])
            ));
        }
    }
    s
}
