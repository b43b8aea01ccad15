//! Typed view over one datagram's bytes: the 8-byte header and the messages behind it.
//!
//! ```text
//!  0       1       2       3       4       5       6       7
//! +-------+-------+-------+-------+-------+-------+-------+-------+
//! |     class     | count |version| flags |     seq (24 bits)     |
//! +-------+-------+-------+-------+-------+-------+-------+-------+
//! | type  | flag  |    length     |  body ...  (length - 4 bytes)
//! +-------+-------+-------+-------+----
//! ```
//!
//! `length` counts the message's bytes from its own first byte, as the public classifiers
//! describe, so a datagram holding one message has `length == payload - 8`.

use crate::{Error, Result};

/// Length of the datagram header.
pub const HEADER_LEN: usize = 8;
/// Length of each message's `type, flag, length` header.
pub const MSG_HEADER_LEN: usize = 4;
/// Protocol version carried in byte 3. Both sides of a flow carry the same byte 3, which is
/// what libprotoident checks; 7 is the value seen in captured SopCast keep-alives.
pub const VERSION: u8 = 0x07;

/// Header field offsets.
mod field {
    pub const CLASS: core::ops::Range<usize> = 0..2;
    pub const COUNT: usize = 2;
    pub const VERSION: usize = 3;
    pub const FLAGS: usize = 4;
    pub const SEQ: core::ops::Range<usize> = 5..8;
}

/// Largest value of the 24-bit sequence number.
pub const SEQ_MASK: u32 = 0x00ff_ffff;

/// A read (and, with a mutable buffer, write) view of one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors may then panic on short input.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer after [`Packet::check`] passed, so that no accessor can panic.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Packet::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    /// Checks the header (length, version) and the message framing: every message length fits
    /// in what remains, the messages fill the datagram exactly, and their number is byte 2.
    pub fn check(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN + MSG_HEADER_LEN {
            return Err(Error::TooShort { len: data.len(), need: HEADER_LEN + MSG_HEADER_LEN });
        }
        if data[field::VERSION] != VERSION {
            return Err(Error::BadVersion { found: data[field::VERSION], expected: VERSION });
        }
        let declared = data[field::COUNT];
        let mut offset = HEADER_LEN;
        let mut found: usize = 0;
        while offset < data.len() {
            let room = data.len() - offset;
            if room < MSG_HEADER_LEN {
                return Err(Error::BadLength { offset, found: room, room });
            }
            let len = u16::from_be_bytes([data[offset + 2], data[offset + 3]]) as usize;
            if !(MSG_HEADER_LEN..=room).contains(&len) {
                return Err(Error::BadLength { offset, found: len, room });
            }
            offset += len;
            found += 1;
        }
        if found != usize::from(declared) {
            return Err(Error::BadCount { declared, found: found.min(255) as u8 });
        }
        Ok(())
    }

    /// Consumes the view and returns the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole datagram.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Bytes 0-1: the datagram class ([`crate::class`]).
    pub fn class(&self) -> u16 {
        let d = self.buffer.as_ref();
        u16::from_be_bytes([d[field::CLASS.start], d[field::CLASS.start + 1]])
    }

    /// Byte 2: how many messages follow the header.
    pub fn count(&self) -> u8 {
        self.buffer.as_ref()[field::COUNT]
    }

    /// Byte 3: the protocol version.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    /// Byte 4: header flags ([`crate::flags`]).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// Bytes 5-7: the sender's 24-bit datagram sequence number on this link.
    pub fn seq(&self) -> u32 {
        let d = &self.buffer.as_ref()[field::SEQ];
        u32::from_be_bytes([0, d[0], d[1], d[2]])
    }

    /// The messages after the header, in order. On an unchecked buffer the iterator stops at
    /// the first malformed message instead of panicking.
    pub fn messages(&self) -> Messages<'_> {
        let d = self.buffer.as_ref();
        Messages { data: d, offset: HEADER_LEN.min(d.len()) }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes the whole header. Panics if the buffer is shorter than [`HEADER_LEN`].
    pub fn set_header(&mut self, class: u16, count: u8, flags: u8, seq: u32) {
        let d = self.buffer.as_mut();
        d[field::CLASS].copy_from_slice(&class.to_be_bytes());
        d[field::COUNT] = count;
        d[field::VERSION] = VERSION;
        d[field::FLAGS] = flags;
        d[field::SEQ].copy_from_slice(&(seq & SEQ_MASK).to_be_bytes()[1..]);
    }
}

/// One message inside a datagram: absolute offset, type, flag and the bytes after its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRef<'a> {
    /// Offset of the message's first byte in the datagram.
    pub offset: usize,
    /// Message type ([`crate::msg`]).
    pub kind: u8,
    /// Message flag byte.
    pub flag: u8,
    /// The message body: `length - 4` bytes.
    pub body: &'a [u8],
}

/// Iterator over a datagram's messages; see [`Packet::messages`].
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    data: &'a [u8],
    offset: usize,
}

impl<'a> Iterator for Messages<'a> {
    type Item = MessageRef<'a>;

    fn next(&mut self) -> Option<MessageRef<'a>> {
        let rest = self.data.get(self.offset..)?;
        let head = rest.get(..MSG_HEADER_LEN)?;
        let len = u16::from_be_bytes([head[2], head[3]]) as usize;
        if len < MSG_HEADER_LEN {
            return None;
        }
        let body = rest.get(MSG_HEADER_LEN..len)?;
        let item = MessageRef { offset: self.offset, kind: head[0], flag: head[1], body };
        self.offset += len;
        Some(item)
    }
}

/// Writes a message header (`type, flag, length`) at `at`. Panics if it does not fit.
pub(crate) fn put_msg_header(buf: &mut [u8], at: usize, kind: u8, flag: u8, len: usize) {
    debug_assert!(len <= u16::MAX as usize);
    buf[at] = kind;
    buf[at + 1] = flag;
    buf[at + 2..at + 4].copy_from_slice(&(len as u16).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_rejects_short_and_bad_version() {
        assert_eq!(Packet::new_checked(&[0u8; 11][..]).unwrap_err(), Error::TooShort { len: 11, need: 12 });
        let mut d = [0u8; 12];
        d[3] = 6;
        assert!(matches!(Packet::new_checked(&d[..]), Err(Error::BadVersion { found: 6, .. })));
    }

    #[test]
    fn check_walks_messages() {
        // Two messages of 4 and 6 bytes.
        let mut d = vec![0u8; 8 + 4 + 6];
        Packet::new_unchecked(&mut d[..]).set_header(0x0001, 2, 0, 0x12_3456);
        put_msg_header(&mut d, 8, 1, 0, 4);
        put_msg_header(&mut d, 12, 2, 0, 6);
        let p = Packet::new_checked(&d[..]).unwrap();
        assert_eq!(p.seq(), 0x12_3456);
        let kinds: Vec<u8> = p.messages().map(|m| m.kind).collect();
        assert_eq!(kinds, [1, 2]);
        // Wrong count.
        d[2] = 1;
        assert_eq!(Packet::new_checked(&d[..]).unwrap_err(), Error::BadCount { declared: 1, found: 2 });
        // Length running past the end.
        d[2] = 2;
        d[15] = 7;
        assert!(matches!(Packet::new_checked(&d[..]), Err(Error::BadLength { offset: 12, .. })));
    }
}
