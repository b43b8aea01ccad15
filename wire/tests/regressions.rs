//! Regressions: bugs found in review, each pinned by the test that first failed on it.

use soplab_wire::packet::{HEADER_LEN, Packet};
use soplab_wire::video::{fragment_count, fragment_payload_len};
use soplab_wire::{Reassembler, Video};

/// `fragment_payload_len` is documented to return 0 for an out-of-range index, but
/// `index + 1` overflows for `u16::MAX`: a panic in debug builds, and in release the wrapped
/// `0 < total` returns a full 1295 bytes.
#[test]
fn fragment_payload_len_out_of_range_is_zero() {
    assert_eq!(fragment_payload_len(3, fragment_count(3)), 0);
    assert_eq!(fragment_payload_len(3, u16::MAX), 0);
}

/// `Reassembler::insert` returns `Err` for packets it cannot take, but a `Video` (its fields are
/// public) with a count above `MAX_BLOCKS_PER_REQUEST` passes its checks and then shifts a
/// `u128` by the fragment index: a panic for index >= 128 in debug builds, and aliasing of
/// fragment bits in release. `Video::parse` rejects such counts, so this needs a hand-built
/// `Video`; `insert` should apply the same `check_count` / `check_range`.
#[test]
fn reassembler_rejects_count_above_maximum() {
    let count = 17u8;
    let total = fragment_count(count);
    assert!(total > 128);
    let payload = vec![0u8; fragment_payload_len(count, 130)];
    let v = Video { request: 1, first_block: 0, count, index: 130, total, payload: &payload };
    let mut r: Reassembler<u8> = Reassembler::new(1);
    assert!(r.insert(1, 0, &v).is_err());
}

/// The same missing range check: a hand-built `Video` whose blocks run past `u32::MAX` is
/// accepted, and the `Incomplete` report then overflows computing block ids.
#[test]
fn reassembler_rejects_block_range_past_u32_max() {
    let count = 2u8;
    let payload = vec![0u8; fragment_payload_len(count, 0)];
    let v =
        Video { request: 1, first_block: u32::MAX, count, index: 0, total: fragment_count(count), payload: &payload };
    let mut r: Reassembler<u8> = Reassembler::new(1);
    assert!(r.insert(1, 0, &v).is_err(), "first_block + count - 1 overflows u32");
}

/// `Packet::check` promises that "their number is byte 2", but counts messages with
/// `saturating_add` in a `u8`: 256 four-byte messages declared as 255 pass the check.
/// (`Repr::parse` is not affected: every class then requires a count of 1 or 2.)
#[test]
fn packet_check_counts_past_255() {
    let mut d = vec![0u8; HEADER_LEN + 256 * 4];
    d[2] = 255;
    d[3] = 0x07;
    for m in 0..256 {
        let at = HEADER_LEN + 4 * m;
        d[at + 3] = 4; // type 0, flag 0, length 4
    }
    let n = Packet::new_unchecked(&d[..]).messages().count();
    assert_eq!(n, 256);
    assert!(Packet::new_checked(&d[..]).is_err(), "256 messages accepted with a count byte of 255");
}
