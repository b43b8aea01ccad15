//! `Repr::parse` on arbitrary bytes must not panic, and whatever it accepts must re-encode to
//! exactly the same bytes (one encoding per datagram).

#![no_main]

use libfuzzer_sys::fuzz_target;
use soplab_wire::Repr;

fuzz_target!(|data: &[u8]| {
    let Ok(repr) = Repr::parse(data) else { return };
    assert_eq!(repr.buffer_len(), data.len(), "buffer_len of {repr:?}");
    // Start from junk so that a byte `emit` forgets to write shows up.
    let mut out = vec![0xa5; data.len()];
    assert_eq!(repr.emit(&mut out), data.len());
    assert_eq!(out, data, "re-emitting {repr:?}");
    assert_eq!(Repr::parse(&out).as_ref(), Ok(&repr));
});
