//! The control socket's parser and dispatcher together, against a running
//! engine (one worker replaying a small pcap file, a counter and a pcap
//! consumer): any request line gets exactly one answer line, never a panic
//! or a hang, and afterwards the engine's counters still reconcile. What a
//! request added (ports, consumers, named filters) is removed again, so
//! every input meets the same engine.
//!
//! Inputs that would reach outside the harness's directory or load code
//! (`/`, `..`, `plugin:`, `ebpf:`, `afpacket`) or size queues (`queue_mb`)
//! are skipped: the fuzzer exercises the dispatcher, not the filesystem.
#![no_main]

use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use ringwire_engine::{
    control::{protocol::parse, server::{ClientRef, Peer}, Handler},
    live::Target,
    Config, Engine,
};

struct Harness {
    engine: Engine,
    handler: Handler,
    base_ports: Vec<String>,
    base_consumers: Vec<String>,
    _dir: std::path::PathBuf,
}

fn harness() -> &'static Mutex<Harness> {
    static H: OnceLock<Mutex<Harness>> = OnceLock::new();
    H.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ringwire-fuzz-dispatch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("harness directory");
        std::env::set_current_dir(&dir).expect("chdir into the harness directory");
        // A pcap file of three Ethernet frames.
        let mut pcap = vec![];
        pcap.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        pcap.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        pcap.extend_from_slice(&65535u32.to_le_bytes());
        pcap.extend_from_slice(&1u32.to_le_bytes());
        for i in 0..3u8 {
            let frame = [[0xffu8; 6].as_slice(), &[2, 0, 0, 0, 0, i], &[0x08, 0x06], &[0u8; 46]].concat();
            pcap.extend_from_slice(&u32::from(i).to_le_bytes());
            pcap.extend_from_slice(&0u32.to_le_bytes());
            pcap.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            pcap.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            pcap.extend_from_slice(&frame);
        }
        std::fs::write("in.pcap", pcap).expect("writing in.pcap");
        let config: Config = Config::parse(
            "[engine]\nworkers = [0]\nprogress_ms = 0\n\
             [[ports]]\nname = \"file\"\nuri = \"pcap:in.pcap\"\n\
             [[consumers]]\nname = \"count\"\nkind = \"counter\"\n\
             [[consumers]]\nname = \"cap\"\nkind = \"pcap\"\npath = \"out.pcap\"\nqueue_mb = 1\n",
        )
        .expect("the harness config parses");
        let engine = Engine::start(&config).expect("the harness engine starts");
        Mutex::new(Harness {
            engine,
            handler: Handler::new(Box::new(|_| Ok(()))),
            base_ports: vec!["file".into()],
            base_consumers: vec!["count".into(), "cap".into()],
            _dir: dir,
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if ["/", "..", "plugin:", "ebpf:", "afpacket", "queue_mb"].iter().any(|s| text.contains(s)) {
        return;
    }
    let mut h = harness().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let Harness { engine, handler, base_ports, base_consumers, .. } = &mut *h;
    let answer = match parse(data) {
        Ok(req) => handler.handle_request(engine, &req, Peer::default(), ClientRef::default()).0,
        Err((id, e)) => ringwire_engine::control::protocol::Response::new(id, Err(e)),
    };
    let line = answer.line();
    assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'), "one line: {line}");
    serde_json::from_str::<serde_json::Value>(&line).expect("an answer is JSON");

    // Put the engine back as it was.
    for (name, f) in engine.named_filters() {
        for t in &f.attached {
            engine.filter_detach(t).expect("detaching a named filter");
        }
        engine.filter_unload(&name).expect("unloading a named filter");
    }
    let config = engine.current_config();
    for c in config.consumers.iter().filter(|c| !base_consumers.contains(&c.name)) {
        let _ = engine.remove_consumer(&c.name).expect("removing an added consumer");
    }
    for p in config.ports.iter().filter(|p| !base_ports.contains(&p.display_name().to_owned())) {
        engine.remove_port(p.display_name()).expect("removing an added port");
    }
    for c in config.consumers.iter().filter(|c| base_consumers.contains(&c.name) && c.filter.is_some()) {
        engine.filter_detach(&Target::Consumer(c.name.clone())).expect("detaching a base filter");
    }
    let _ = engine.set_forwarding(true);
    let snap = engine.snapshot();
    assert!(snap.reconcile(&[]).is_empty(), "counters reconcile: {:?}", snap.reconcile(&[]));
});
