//! Typed decode errors: each variant says what is wrong with the bytes, so a daemon can count
//! drops by reason and a user reading a log knows which field to look at.

/// Why a byte string is not a valid soplab datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Fewer bytes than the smallest valid form of what was being read.
    #[error("datagram too short: {len} bytes, need at least {need}")]
    TooShort { len: usize, need: usize },
    /// Byte 3 is not [`crate::VERSION`]: another protocol, or a future soplab.
    #[error("bad version {found:#04x} at byte 3 (soplab speaks version {expected:#04x})")]
    BadVersion { found: u8, expected: u8 },
    /// Bytes 0-1 name no datagram class soplab knows.
    #[error("unknown datagram class {0:#06x} in bytes 0-1")]
    UnknownClass(u16),
    /// A message type that is not allowed where it stands.
    #[error("unknown or misplaced message type {found:#04x} (expected {expected:#04x})")]
    UnknownType { found: u8, expected: u8 },
    /// A message's length field disagrees with the bytes that are there.
    #[error("bad message length {found} at byte {offset} (must be 4..={room} here)")]
    BadLength { offset: usize, found: usize, room: usize },
    /// A message of a fixed-size kind has another length.
    #[error("message at byte {offset} is {found} bytes long; its type is always {expected}")]
    BadMessageLength { offset: usize, found: usize, expected: usize },
    /// Byte 2 (message count) disagrees with the messages in the datagram.
    #[error("header says {declared} messages, datagram holds (or its class needs) {found}")]
    BadCount { declared: u8, found: u8 },
    /// The datagram's total size is not the one its class has.
    #[error("{what} must be {expected} bytes, got {len}")]
    BadSize { what: &'static str, len: usize, expected: usize },
    /// A header or message flag byte that the class does not use.
    #[error("bad flag {found:#04x} at byte {offset} (expected {expected:#04x})")]
    BadFlag { offset: usize, found: u8, expected: u8 },
    /// A reserved byte is not zero: soplab emits zeros there and rejects anything else so that
    /// every valid datagram has exactly one encoding.
    #[error("reserved byte at offset {0} is not zero")]
    Reserved(usize),
    /// A field holds a value outside its range (a block count of 0, a fragment index past the
    /// fragment count, ...).
    #[error("field `{field}` out of range: {value}")]
    BadField { field: &'static str, value: u32 },
}

/// Result alias for wire decoding.
pub type Result<T> = core::result::Result<T, Error>;
