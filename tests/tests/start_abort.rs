//! A signal while the engine starts: the rings not yet opened are not.
//! (Its own test binary: the abort is process-wide.)

use ringwire_tests::{privileged, Pair};

/// After `abort_start` (the signal thread's call on a SIGINT or SIGTERM
/// while starting), `Engine::start` opens no further ring and says it was
/// interrupted: before, a run whose exit was held up went on to allocate
/// the next rings, a 2 GiB one after the signal, and exited 9 s later.
#[test]
fn a_start_aborted_by_a_signal_opens_no_further_ring() {
    if !privileged("a_start_aborted_by_a_signal_opens_no_further_ring") {
        return;
    }
    let Pair { lab: _lab, ns_gen: _, ns_eng: ns_e, if_gen: _, if_eng: ve } = Pair::new();
    let config = ringwire_engine::Config::parse(&format!(
        "[engine]\nworkers = [0]\n[control]\nenabled = false\n[[ports]]\nuri = \"afpacket:{ve}\"\n\
         [[consumers]]\nname = \"c\"\nkind = \"counter\"\n"
    ))
    .unwrap();
    // Without the abort it starts (the same config, so the abort is what refuses it).
    let engine = ringwire_engine::lab::Lab::within(&ns_e, || ringwire_engine::Engine::start(&config)).unwrap().unwrap();
    drop(engine.stop());
    ringwire_engine::engine::abort_start();
    let r = ringwire_engine::lab::Lab::within(&ns_e, || ringwire_engine::Engine::start(&config)).unwrap();
    let e = r.err().expect("an aborted start refuses to open the ring");
    assert!(matches!(e, ringwire_engine::EngineError::Interrupted), "{e}");
    assert_eq!(e.to_string(), "interrupted by a signal while starting");
}
