//! Reading captures: [`reader`] turns one pcap or pcapng file into UDP datagrams, [`decode`]
//! reads the link, IP and UDP headers, [`merge`] makes several files one time-ordered stream
//! with every datagram once.

pub mod decode;
pub mod merge;
pub mod reader;

pub use decode::{Datagram, Endpoint, Frame, HEAD, Link};
pub use merge::{Dedup, Inputs, MergeStats};
pub use reader::{CaptureFile, FileStats, Format};
