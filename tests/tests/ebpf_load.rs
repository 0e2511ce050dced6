//! Loading eBPF programs (needs root: CAP_BPF): ringwire's own, the example
//! user filter, and each way a user's object can be wrong, with its own error.

use std::path::Path;

use ringwire_bpf::{Action, BpfError, ClassKey, Classifier, SocketFilter, SymmetricSteer};
use ringwire_tests::privileged;

#[test]
fn the_classifier_table_changes_and_reads_back() {
    if !privileged("the_classifier_table_changes_and_reads_back") {
        return;
    }
    let c = Classifier::load(Action::Pass).unwrap();
    let a = ClassKey { vlan: None, mac: [2, 0, 0, 0, 0, 0xaa] };
    let b = ClassKey { vlan: Some(100), mac: [2, 0, 0, 0, 0, 0xbb] };
    c.insert(a, Action::Drop).unwrap();
    c.insert(b, Action::Pass).unwrap();
    let e = c.entries().unwrap();
    assert_eq!(e.len(), 2);
    assert_eq!((e[0].key, e[0].action, e[0].hits), (a, Action::Drop, 0));
    assert_eq!((e[1].key, e[1].action), (b, Action::Pass));
    c.insert(a, Action::Pass).unwrap();
    assert_eq!(c.entries().unwrap()[0].action, Action::Pass);
    assert!(c.remove(a).unwrap());
    assert!(!c.remove(a).unwrap());
    assert_eq!(c.entries().unwrap().len(), 1);
    assert_eq!(c.filter().counters(), Some((0, 0)));
    SymmetricSteer::load().unwrap();
}

/// A full table refuses a new entry by saying so, naming the entry as a
/// user writes it; an entry already there can still change.
#[test]
fn a_full_classifier_table_says_it_is_full() {
    if !privileged("a_full_classifier_table_says_it_is_full") {
        return;
    }
    let c = Classifier::load(Action::Pass).unwrap();
    let key = |i: usize| ClassKey { vlan: Some((i % 4000) as u16), mac: [2, 0, 0, 0, (i / 4000) as u8, 1] };
    for i in 0..ringwire_bpf::MAX_CLASSES {
        c.insert(key(i), Action::Drop).unwrap();
    }
    let e = c.insert(key(ringwire_bpf::MAX_CLASSES), Action::Drop).unwrap_err();
    assert!(matches!(e, BpfError::TableFull { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "classifier entry vlan 96, mac 02:00:00:00:01:01: the table is full (4096 entries): remove one first"
    );
    c.insert(key(5), Action::Pass).unwrap();
    assert_eq!(c.entries().unwrap().len(), ringwire_bpf::MAX_CLASSES);
    assert_eq!(ClassKey { vlan: None, mac: [2, 0, 0, 0, 0, 0xaa] }.to_string(), "untagged, mac 02:00:00:00:00:aa");
}

#[test]
fn the_example_user_filter_loads_with_its_counters() {
    if !privileged("the_example_user_filter_loads_with_its_counters") {
        return;
    }
    let f = SocketFilter::load_file(Path::new(ringwire_bpf::EXAMPLE_KEEP_UDP), None).unwrap();
    assert_eq!(f.program(), "keep_udp");
    assert_eq!(f.counters(), Some((0, 0)));
    let named = SocketFilter::load_file(Path::new(ringwire_bpf::EXAMPLE_KEEP_UDP), Some("keep_udp")).unwrap();
    assert_eq!(named.program(), "keep_udp");
}

#[test]
fn each_bad_object_gets_its_own_clear_error() {
    if !privileged("each_bad_object_gets_its_own_clear_error") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let load = |p: &Path, prog: Option<&str>| SocketFilter::load_file(p, prog).unwrap_err();

    let missing = dir.path().join("nope.bpf.o");
    let e = load(&missing, None);
    assert!(matches!(e, BpfError::Read { .. }), "{e}");
    // Said once: the message, then its cause (not the cause twice).
    let said = ringwire_engine::consumer::error_chain(&e);
    assert!(said.ends_with("nope.bpf.o: cannot read: No such file or directory (os error 2)"), "{said}");
    assert_eq!(said.matches("os error").count(), 1, "{said}");

    let text = dir.path().join("text.bpf.o");
    std::fs::write(&text, "not an object\n").unwrap();
    let e = load(&text, None);
    assert!(matches!(e, BpfError::NotBpfObject { .. }), "{e}");

    let host_elf = Path::new("/bin/true");
    let e = load(host_elf, None);
    assert!(matches!(e, BpfError::NotBpfObject { .. }), "{e}");

    let e = load(Path::new(ringwire_bpf::FIXTURE_NOT_SOCKET), None);
    assert!(matches!(e, BpfError::NotSocketFilter { .. }), "{e}");
    assert!(e.to_string().contains("Xdp"), "{e}");

    let e = load(Path::new(ringwire_bpf::EXAMPLE_KEEP_UDP), Some("keep_udq"));
    assert!(matches!(e, BpfError::NoSuchProgram { .. }), "{e}");
    assert!(e.to_string().contains("keep_udp"), "the error lists what is there: {e}");

    // ringwire's own classifier given as a user's filter would drop every
    // frame without its table: refused, saying how it is meant to run.
    let e = load(Path::new(ringwire_bpf::FIXTURE_CLASSIFIER), None);
    assert!(matches!(e, BpfError::OwnClassifier { .. }), "{e}");
    assert!(e.to_string().contains("filter = \"classifier\""), "{e}");

    let e = load(Path::new(ringwire_bpf::FIXTURE_REJECTED), None);
    let BpfError::Rejected { log, .. } = &e else { panic!("{e}") };
    // The verifier's own explanation: no direct access to the frame from a socket filter.
    assert!(log.contains("invalid bpf_context access"), "{e}");
}
