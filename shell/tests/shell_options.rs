//! The shell's options: seeded loss and delay on the way out, the pcap tap, and a silent stop.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use soplab_node::impair::{Impairer, Impairment};
use soplab_node::{Event, Micros, Node, Transmit};
use soplab_shell::{self as shell, Options, Stop};

/// Sends `count` numbered datagrams to `dst` at start, then idles; records whether it vanished.
struct Blaster {
    addr: SocketAddr,
    dst: SocketAddr,
    count: u32,
    sent: u32,
    vanished: bool,
    events: Vec<Event>,
}

impl Blaster {
    fn new(tx: &tokio::net::UdpSocket, rx: &tokio::net::UdpSocket, count: u32) -> Blaster {
        Blaster {
            addr: tx.local_addr().unwrap(),
            dst: rx.local_addr().unwrap(),
            count,
            sent: 0,
            vanished: false,
            events: vec![],
        }
    }
}

impl Node for Blaster {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }
    fn handle_datagram(&mut self, _now: Micros, _from: SocketAddr, _data: &[u8]) {}
    fn handle_timeout(&mut self, _now: Micros) {}
    fn poll_transmit(&mut self, _now: Micros) -> Option<Transmit> {
        if self.vanished || self.sent == self.count {
            return None;
        }
        self.sent += 1;
        Some(Transmit { dst: self.dst, payload: self.sent.to_be_bytes().repeat(11) })
    }
    fn poll_timeout(&self) -> Option<Micros> {
        None
    }
    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }
    fn handle_vanish(&mut self, _now: Micros) {
        self.vanished = true;
        self.events.push(Event::SessionEnd { graceful: false });
    }
}

type Arrivals = Vec<(Instant, Vec<u8>)>;

async fn receive_all(sock: &tokio::net::UdpSocket, quiet: Duration) -> Arrivals {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(Ok((n, _))) = tokio::time::timeout(quiet, sock.recv_from(&mut buf)).await {
        got.push((Instant::now(), buf[..n].to_vec()));
    }
    got
}

/// Runs a blaster of `count` datagrams with `impairment` for 400 ms; returns what arrived, when
/// it started and how many datagrams the impairment dropped.
async fn blast(impairment: Impairer, count: u32, tap: Option<&std::path::Path>) -> (Arrivals, Instant, u64) {
    let rx = shell::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let tx = shell::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut node = Blaster::new(&tx, &rx, count);
    let mut opts = Options {
        impairment: Some(impairment),
        tap: tap.map(|p| soplab_shell::tap::PcapTap::create(p).unwrap()),
        ..Options::default()
    };
    let start = Instant::now();
    let (got, how) = tokio::join!(receive_all(&rx, Duration::from_millis(500)), async {
        shell::run_with_options(
            &mut node,
            &tx,
            tokio::time::sleep(Duration::from_millis(400)),
            &mut std::io::sink(),
            &mut |_| {},
            &mut opts,
        )
        .await
        .unwrap()
    });
    assert_eq!(how, Stop::Graceful);
    drop(opts.tap.take());
    (got, start, opts.impaired_drops)
}

fn ids(v: &Arrivals) -> Vec<Vec<u8>> {
    let mut ids: Vec<Vec<u8>> = v.iter().map(|(_, d)| d[..4].to_vec()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn loss_drops_about_the_share_asked_and_the_seed_fixes_which() {
    let imp = Impairment { loss: 0.3, ..Impairment::default() };
    let (a, _, drops_a) = blast(Impairer::new(imp, 7), 2000, None).await;
    let (b, _, _) = blast(Impairer::new(imp, 7), 2000, None).await;
    let (c, _, _) = blast(Impairer::new(imp, 8), 2000, None).await;
    // 2000 trials at p = 0.3: sd ~ 20.5, so ±100 is about 5 sd.
    assert!((1300..=1500).contains(&a.len()), "received {}", a.len());
    assert_eq!(a.len() as u64 + drops_a, 2000);
    assert_eq!(ids(&a), ids(&b), "same seed, same losses");
    assert_ne!(ids(&a), ids(&c), "another seed, other losses");
}

#[tokio::test]
async fn burst_loss_drops_the_share_asked_in_runs_of_the_length_asked() {
    let imp = Impairment { loss: 0.2, loss_burst: Some(5.0), ..Impairment::default() };
    let (got, _, drops) = blast(Impairer::new(imp, 3), 3000, None).await;
    assert_eq!(got.len() as u64 + drops, 3000);
    let mut arrived = vec![false; 3000];
    for (_, d) in &got {
        // Datagrams are numbered from 1.
        arrived[u32::from_be_bytes(d[..4].try_into().unwrap()) as usize - 1] = true;
    }
    // Runs of consecutive missing numbers are the bursts: about 600 lost in about 120 runs.
    let runs = arrived.windows(2).filter(|w| w[0] && !w[1]).count() + usize::from(!arrived[0]);
    let mean_run = drops as f64 / runs as f64;
    assert!((450..=750).contains(&drops), "lost {drops} of 3000");
    assert!((3.5..=6.5).contains(&mean_run), "{runs} bursts of {mean_run:.2} on average");
}

#[tokio::test]
async fn delay_and_jitter_hold_datagrams_back() {
    let imp = Impairment { delay: 80_000, jitter: 40_000, loss: 0.0, loss_burst: None };
    let (got, start, _) = blast(Impairer::new(imp, 1), 50, None).await;
    assert_eq!(got.len(), 50, "no loss asked, none expected on loopback");
    let waits: Vec<Duration> = got.iter().map(|(t, _)| *t - start).collect();
    assert!(waits.iter().all(|w| *w >= Duration::from_millis(80)), "{waits:?}");
    assert!(waits.iter().all(|w| *w < Duration::from_millis(300)), "{waits:?}");
    let spread = *waits.iter().max().unwrap() - *waits.iter().min().unwrap();
    assert!(spread >= Duration::from_millis(10), "jitter spreads arrivals: {spread:?}");
}

#[tokio::test]
async fn the_tap_records_what_was_sent() {
    let path = std::env::temp_dir().join(format!("soplab-shell-tap-{}.pcap", std::process::id()));
    let (got, _, drops) =
        blast(Impairer::new(Impairment { loss: 0.5, ..Impairment::default() }, 3), 200, Some(&path)).await;
    let mut r = pcap_file::pcap::PcapReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    let mut n = 0;
    while let Some(p) = r.next_packet() {
        assert_eq!(p.unwrap().data.len(), 28 + 44);
        n += 1;
    }
    assert_eq!(n, got.len(), "the tap shows what left, not what the impairment dropped");
    assert_eq!(n as u64 + drops, 200);
    std::fs::remove_file(&path).ok();
}

#[tokio::test]
async fn a_silent_stop_vanishes_and_sends_nothing_more() {
    let rx = shell::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let tx = shell::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut node = Blaster::new(&tx, &rx, 5);
    let mut truth = Vec::new();
    let how = shell::run_with_options(
        &mut node,
        &tx,
        async { Stop::Silent },
        &mut truth,
        &mut |_| {},
        &mut Options::default(),
    )
    .await
    .unwrap();
    assert_eq!(how, Stop::Silent);
    assert!(node.vanished);
    let text = String::from_utf8(truth).unwrap();
    assert!(text.contains("\"event\":\"session_end\"") && text.contains("\"graceful\":false"), "{text}");
}
