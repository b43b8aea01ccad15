//! `soplab-wire`: bytes <-> messages for soplab's reconstructed SopCast wire format, and nothing
//! else (no sockets, no clocks).
//!
//! Every datagram is an 8-byte header followed by messages of `type, flag, length` (see
//! [`packet`]); the peer control packets have exactly the UDP payload sizes of Table 1 of Tang
//! et al. (HELLO 52, reply 80, ACK 28, keep-alive 42, request 46), and their first bytes follow
//! what public classifiers (nDPI, libprotoident) match, so that real tools label soplab flows
//! SopCast. Video responses of n 10,240-byte blocks are cut into packets of at most 1320 bytes
//! ([`video`]). `docs/PROTOCOL.md` has the byte-layout tables.
//!
//! The design follows smoltcp's `wire` module: [`Packet`] is a typed view over a byte slice,
//! [`Repr`] an owned representation with `parse` and `emit`, and decoding any byte string
//! returns a typed [`Error`] instead of panicking.

mod error;
pub mod packet;
mod repr;
pub mod video;

pub use error::{Error, Result};
pub use packet::{HEADER_LEN, MSG_HEADER_LEN, Packet, VERSION};
pub use repr::{
    ADDR_LEN, BufferMap, COOKIE_MASK, Hello, HelloReply, Leave, LinkAck, LinkStatus, MAP_BLOCKS, MAX_PEER_LIST,
    Message, PeerList, PeerSet, Query, Register, Repr, Request, Role, link_token,
};
pub use video::{BLOCK_LEN, MAX_BLOCKS_PER_REQUEST, Reassembler, Video, segment};

/// Datagram classes (bytes 0-1 of the header). Link-opening datagrams carry `ff ff` ("no link
/// yet"); the ACK's `00 0c` and the keep-alive's `00 02` are the codes the classifiers match;
/// the other codes are soplab's own.
pub mod class {
    pub const HELLO: u16 = 0xffff;
    pub const HELLO_REPLY: u16 = 0x0001;
    pub const ACK: u16 = 0x000c;
    pub const KEEPALIVE: u16 = 0x0002;
    pub const REQUEST: u16 = 0x0004;
    pub const VIDEO: u16 = 0x0010;
    pub const REGISTER: u16 = 0x0020;
    pub const QUERY: u16 = 0x0021;
    pub const PEER_LIST: u16 = 0x0022;
    pub const LEAVE: u16 = 0x0023;
}

/// Message types (first byte of each message).
pub mod msg {
    pub const ACK: u8 = 0x01;
    pub const HELLO: u8 = 0x02;
    pub const KEEPALIVE: u8 = 0x06;
    pub const PEER_EXCHANGE: u8 = 0x07;
    pub const REQUEST: u8 = 0x09;
    pub const VIDEO: u8 = 0x0a;
    pub const REGISTER: u8 = 0x10;
    pub const QUERY: u8 = 0x11;
    pub const PEER_LIST: u8 = 0x12;
    pub const LEAVE: u8 = 0x13;
}

/// Header flag bits (byte 4).
pub mod flags {
    /// The datagram carries the sender's buffer map.
    pub const BUFFER_MAP: u8 = 0x01;
    /// The datagram travels on an established link (after HELLO, reply, ACK).
    pub const LINKED: u8 = 0x02;
}

/// UDP payload sizes (what `tcpdump` prints as `UDP, length N`).
pub mod size {
    /// Table 1: HELLO packet to initiate link connections.
    pub const HELLO: usize = 52;
    /// Table 1: confirmation on receiving the HELLO packet.
    pub const HELLO_REPLY: usize = 80;
    /// Table 1: acknowledgement.
    pub const ACK: usize = 28;
    /// Table 1: keep-alive message with neighbours.
    pub const KEEPALIVE: usize = 42;
    /// Table 1: video requesting packet.
    pub const REQUEST: usize = 46;
    /// Table 1: maximum size of the video packets.
    pub const VIDEO_MAX: usize = 1320;
    /// Tracker register, query and leave (sizes of tracker messages are soplab's own).
    pub const TRACKER_REQUEST: usize = 20;
    /// The peer-to-peer control sizes, which no video tail or tracker message may take.
    pub const CONTROL: [usize; 5] = [HELLO, HELLO_REPLY, ACK, KEEPALIVE, REQUEST];
}
