//! Decoding arbitrary bytes never panics, and anything that decodes is canonical: re-encoding
//! gives back the very same bytes.

mod common;

use common::valid_encoding;
use proptest::prelude::*;
use proptest::sample::Index;
use soplab_wire::{HEADER_LEN, MSG_HEADER_LEN, Packet, Repr};

/// Parses `bytes`; if they decode, the re-encoding must be byte-identical.
fn check_canonical(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(repr) = Repr::parse(bytes) {
        prop_assert_eq!(repr.buffer_len(), bytes.len());
        prop_assert_eq!(repr.to_vec(), bytes.to_vec(), "{:?} re-encodes differently", repr);
    }
    Ok(())
}

/// Walks the unchecked message iterator; it must end, and only yield messages inside the buffer.
fn check_messages(bytes: &[u8]) -> Result<(), TestCaseError> {
    let p = Packet::new_unchecked(bytes);
    let mut end = HEADER_LEN;
    for m in p.messages() {
        prop_assert_eq!(m.offset, end);
        prop_assert!(m.offset + MSG_HEADER_LEN + m.body.len() <= bytes.len());
        prop_assert_eq!(m.kind, bytes[m.offset]);
        prop_assert_eq!(m.flag, bytes[m.offset + 1]);
        end = m.offset + (MSG_HEADER_LEN + m.body.len()).max(MSG_HEADER_LEN);
    }
    // A datagram that passes the framing check has exactly `count` messages filling it.
    if let Ok(p) = Packet::new_checked(bytes) {
        let msgs: Vec<_> = p.messages().collect();
        prop_assert_eq!(msgs.len(), usize::from(p.count()));
        let filled: usize = msgs.iter().map(|m| MSG_HEADER_LEN + m.body.len()).sum();
        prop_assert_eq!(HEADER_LEN + filled, bytes.len());
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Mutation {
    /// XOR one byte with a non-zero mask.
    Flip(Index, u8),
    /// Overwrite one byte.
    Set(Index, u8),
    /// Keep only a prefix.
    Truncate(Index),
    /// Append bytes.
    Extend(Vec<u8>),
    /// Insert one byte.
    Insert(Index, u8),
    /// Remove one byte.
    Remove(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), 1u8..=255).prop_map(|(i, m)| Mutation::Flip(i, m)),
        4 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => proptest::collection::vec(any::<u8>(), 1..16).prop_map(Mutation::Extend),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => any::<Index>().prop_map(Mutation::Remove),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::Flip(i, mask) if !bytes.is_empty() => {
            let i = i.index(bytes.len());
            bytes[i] ^= mask;
        }
        Mutation::Set(i, b) if !bytes.is_empty() => {
            let i = i.index(bytes.len());
            bytes[i] = *b;
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len() + 1)),
        Mutation::Extend(tail) => bytes.extend_from_slice(tail),
        Mutation::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), *b),
        Mutation::Remove(i) if !bytes.is_empty() => {
            bytes.remove(i.index(bytes.len()));
        }
        _ => {}
    }
}

/// Arbitrary bytes with a plausible header (a known class, version 7, a small count), so that
/// random input gets past the first checks more often than pure noise does.
fn plausible() -> impl Strategy<Value = Vec<u8>> {
    let class = prop_oneof![
        Just(0xffffu16),
        Just(0x0001),
        Just(0x000c),
        Just(0x0002),
        Just(0x0004),
        Just(0x0010),
        Just(0x0020),
        Just(0x0021),
        Just(0x0022),
        Just(0x0023),
    ];
    (class, 0u8..3, 0u8..4, proptest::collection::vec(any::<u8>(), 4..1400)).prop_map(|(class, count, flags, rest)| {
        let mut v = Vec::with_capacity(rest.len() + 5);
        v.extend_from_slice(&class.to_be_bytes());
        v.extend_from_slice(&[count, 0x07, flags]);
        v.extend_from_slice(&rest);
        if v.len() >= 12 {
            // A length field that often frames the whole datagram as one message.
            let len = (v.len() - 8) as u16;
            v[10..12].copy_from_slice(&len.to_be_bytes());
        }
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
        check_canonical(&bytes)?;
        check_messages(&bytes)?;
    }

    #[test]
    fn plausible_headers_never_panic(bytes in plausible()) {
        check_canonical(&bytes)?;
        check_messages(&bytes)?;
    }

    #[test]
    fn mutated_encodings_never_panic(
        valid in valid_encoding(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut bytes = valid.clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        check_canonical(&bytes)?;
        check_messages(&bytes)?;
    }

    /// Every single-byte change to a valid datagram either is rejected or decodes to a value
    /// that re-encodes to the changed bytes (so no two encodings share a value).
    #[test]
    fn every_single_byte_change_is_canonical(valid in valid_encoding(), at in any::<Index>(), mask in 1u8..=255) {
        let mut bytes = valid.clone();
        let i = at.index(bytes.len());
        bytes[i] ^= mask;
        check_canonical(&bytes)?;
        if let Ok(r) = Repr::parse(&bytes) {
            // Still valid, so it must decode to something else than the original.
            prop_assert_ne!(Repr::parse(&valid).unwrap(), r);
        }
    }
}

#[test]
fn short_inputs_are_errors() {
    for len in 0..12 {
        let bytes = vec![0u8; len];
        assert!(Repr::parse(&bytes).is_err());
        assert_eq!(Packet::new_unchecked(&bytes[..]).messages().count(), 0);
    }
}

/// Zero-length messages in unchecked input: the iterator must still finish.
#[test]
fn zero_length_messages_terminate() {
    let bytes = vec![0u8; 1500];
    let n = Packet::new_unchecked(&bytes[..]).messages().count();
    assert!(n <= (1500 - HEADER_LEN) / MSG_HEADER_LEN);
    assert!(Packet::new_checked(&bytes[..]).is_err());
}
