//! The control socket's request parser on arbitrary bytes: every line gives
//! a request or an `invalid` error, never a panic; every answer built from
//! it is one line of JSON that parses back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringwire_engine::control::protocol::{parse, ErrorClass, Response};

fuzz_target!(|data: &[u8]| {
    let outcome = match parse(data) {
        Ok(req) => {
            let _ = req.cmd.changes_state();
            Response::new(Some(req.id), Ok(serde_json::Value::Null))
        }
        Err((id, e)) => {
            assert_eq!(e.class, ErrorClass::Invalid);
            Response::new(id, Err(e))
        }
    };
    let line = outcome.line();
    assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
    let back: Response = serde_json::from_str(&line).expect("an answer parses back");
    assert_eq!(back, outcome);
});
