//! Writes a tcpdump-readable pcap (Ethernet, IPv4, UDP) of one complete exchange between two
//! peers in 198.18.0.0/15: HELLO, reply, ACK, ten keep-alives each way, a request for n = 3
//! blocks and its video response.
//!
//! ```text
//! cargo run -p soplab-wire --example trace -- OUT.pcap
//! tcpdump -n -r OUT.pcap
//! ```

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use soplab_testkit::udp_frame;
use soplab_wire::{
    BLOCK_LEN, BufferMap, Hello, HelloReply, LinkAck, LinkStatus, Message, PeerSet, Repr, Request, Role, link_token,
    segment,
};

const CHANNEL: u32 = 0x5350_0001;

fn name(m: &Message<'_>) -> String {
    match m {
        Message::Hello(_) => "HELLO".into(),
        Message::HelloReply(r) => format!("HELLO reply, {} peers", r.peers.len()),
        Message::Ack(_) => "ACK".into(),
        Message::KeepAlive(map) => format!("keep-alive, newest block {:?}", map.newest()),
        Message::Request(r) => {
            format!("video request, blocks {}..={}", r.first_block, r.first_block + u32::from(r.count) - 1)
        }
        Message::Video(v) => format!("video {}/{} of request {}", v.index + 1, v.total, v.request),
        other => format!("{other:?}"),
    }
}

fn main() -> Result<()> {
    let Some(out) = std::env::args().nth(1) else {
        bail!("usage: trace OUT.pcap  (writes one soplab exchange as a pcap file)");
    };
    let a = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 11), 3908);
    let b = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 12), 3908);
    let file = File::create(&out).with_context(|| format!("cannot create {out}: check the directory exists"))?;
    let header = PcapHeader { datalink: DataLink::ETHERNET, ..Default::default() };
    let mut w = PcapWriter::with_header(file, header).context("cannot write the pcap header")?;

    // Timestamps from a fixed start so the file is the same on every run.
    let mut t = Duration::from_secs(1_795_000_000);
    let mut ip_id = 0u16;
    let mut seq = [0u32; 2];
    let mut send = |w: &mut PcapWriter<File>, t: Duration, from_a: bool, msg: Message<'_>| -> Result<()> {
        let (src, dst, s) = if from_a { (a, b, &mut seq[0]) } else { (b, a, &mut seq[1]) };
        let repr = Repr::new(*s, msg);
        *s += 1;
        let bytes = repr.to_vec();
        ip_id = ip_id.wrapping_add(1);
        let data = udp_frame(src, dst, &bytes, ip_id);
        // The line tcpdump -n would print, plus what soplab calls the datagram.
        let secs = t.as_secs() % 86_400;
        println!(
            "{:02}:{:02}:{:02}.{:06} IP {}.{} > {}.{}: UDP, length {}  [{}]",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            t.subsec_micros(),
            src.ip(),
            src.port(),
            dst.ip(),
            dst.port(),
            bytes.len(),
            name(&repr.message),
        );
        w.write_packet(&PcapPacket::new(t, data.len() as u32, &data)).context("cannot write a packet")?;
        Ok(())
    };

    let (nonce_a, nonce_b) = (0x1234_5678, 0x9abc_def0);
    send(
        &mut w,
        t,
        true,
        Message::Hello(Hello {
            role: Role::Peer,
            nonce: nonce_a,
            channel: CHANNEL,
            listen_port: a.port(),
            newest: None,
        }),
    )?;
    t += Duration::from_millis(20);
    let peers: PeerSet = (0..3).map(|i| SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 20 + i), 3908)).collect();
    send(
        &mut w,
        t,
        false,
        Message::HelloReply(HelloReply {
            ack: LinkAck { status: LinkStatus::Accepted, echo: nonce_a, nonce: nonce_b, channel: CHANNEL },
            peers,
        }),
    )?;
    t += Duration::from_millis(20);
    send(
        &mut w,
        t,
        true,
        Message::Ack(LinkAck { status: LinkStatus::Accepted, echo: nonce_b, nonce: nonce_a, channel: CHANNEL }),
    )?;

    // B holds blocks 100..=140, A holds 90..=97.
    let map_b = BufferMap::from_fn(140, |id| id >= 100);
    let map_a = BufferMap::from_fn(97, |id| id >= 90);
    for i in 0..10u64 {
        let base = t + Duration::from_millis(1000 * i + 200);
        send(&mut w, base, true, Message::KeepAlive(map_a))?;
        send(&mut w, base + Duration::from_millis(15), false, Message::KeepAlive(map_b))?;
    }
    t += Duration::from_millis(10_500);

    let request =
        Request { request: 1, first_block: 120, count: 3, channel: CHANNEL, token: link_token(nonce_a, nonce_b) };
    send(&mut w, t, true, Message::Request(request))?;
    let blocks: Vec<u8> = (0..3 * BLOCK_LEN).map(|i| (i % 251) as u8).collect();
    for v in segment(request.request, request.first_block, &blocks)? {
        t += Duration::from_micros(150);
        send(&mut w, t, false, Message::Video(v))?;
    }
    eprintln!("wrote {out}: HELLO, reply, ACK, 20 keep-alives, 1 request and a 3-block response");
    Ok(())
}
