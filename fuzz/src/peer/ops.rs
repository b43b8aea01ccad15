//! The operations a `peer` program is made of, decoded from the fuzz input with `arbitrary`.

use arbitrary::Arbitrary;

pub use crate::drive::Patch;

/// The header's sequence number of a datagram the harness sends.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Seq {
    Zero,
    /// One more than the last this address sent.
    Next,
    /// The sequence number of the last datagram the core sent to this address.
    Echo,
    Lit(u32),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Chan {
    Ours,
    Lit(u32),
}

/// A nonce a reply or an ACK carries.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Echo {
    /// The one the handshake calls for: in an echo, the one the core sent this address last
    /// (in its HELLO, or in its reply); in an ACK's nonce, this address's last HELLO to the
    /// core.
    Right,
    Lit(u32),
}

/// The link token a request carries.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Token {
    /// The token of this address's link with the core (0 if there is none).
    Right,
    /// The right one with bit `n % 32` flipped: a request the core must drop (`bad_token`).
    Wrong(u8),
    Lit(u32),
}

/// A block id.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Block {
    /// This far from the live edge of a stream that started with the program.
    Edge(i16),
    /// This far below the newest block the core announced.
    Theirs(u8),
    Lit(u32),
    /// The largest id a buffer map may announce.
    Last,
}

/// Which blocks up to the newest a buffer map says are present.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Bits {
    All,
    Pattern([u8; 24]),
}

/// A message built with the wire crate, so that it decodes and reaches the core's logic.
#[derive(Arbitrary, Debug)]
pub enum Msg {
    Hello {
        source: bool,
        nonce: u32,
        channel: Chan,
        port: Option<u16>,
        newest: Option<Block>,
    },
    Reply {
        echo: Echo,
        nonce: u32,
        status: u8,
        channel: Chan,
        peers: Vec<u8>,
    },
    Ack {
        echo: Echo,
        nonce: Echo,
        status: u8,
        channel: Chan,
    },
    KeepAlive {
        newest: Option<Block>,
        bits: Bits,
    },
    Request {
        request: u32,
        first: Block,
        count: u8,
        channel: Chan,
        token: Token,
    },
    /// One packet of an answer to the `pick`-th newest request the core sent this address.
    Video {
        pick: u8,
        index: u16,
        fill: u8,
    },
    /// `fresh` addresses never seen before follow those of the pool. The core takes it only
    /// from the tracker with the query id of its outstanding register as `seq` (`Seq::Echo`).
    PeerList {
        channel: Chan,
        verified: bool,
        cookie: u32,
        peers: Vec<u8>,
        fresh: u8,
    },
    /// A register, query or leave, which only a tracker takes.
    Tracker {
        kind: u8,
        channel: Chan,
        port: u16,
        want: u16,
    },
}

#[derive(Arbitrary, Debug)]
pub enum Op {
    /// A datagram from pool address `from`.
    Send {
        from: u8,
        seq: Seq,
        msg: Msg,
        patch: Option<Patch>,
    },
    Raw {
        from: u8,
        bytes: Vec<u8>,
    },
    /// The whole handshake with `from`: answers the core's HELLO, or greets it and ACKs.
    Link {
        from: u8,
    },
    /// Every packet of the answer to the `pick`-th newest request the core sent `from`, except every
    /// `skip`-th (0: none), each sent `twice` or once.
    Respond {
        from: u8,
        pick: u8,
        skip: u8,
        twice: bool,
    },
    /// `n` datagrams of one kind, each from an address never seen before.
    Flood {
        kind: u8,
        n: u16,
    },
    /// Lets `ms` milliseconds pass, running every timer due on the way.
    Advance {
        ms: u16,
    },
    /// The clock jumps `secs` seconds at once (a suspended host): one wake-up at the end.
    Jump {
        secs: u32,
    },
    /// Runs the next timer.
    Timeout,
    Shutdown {
        graceful: bool,
    },
}
