//! Each hosted peer serves its played stream over HTTP, as a SopCast client serves its media
//! player (on port 8902): any `GET` gets `HTTP/1.0 200 OK`, `Content-Type: video/mp2t`, then
//! the blocks the peer plays from then on, as they are played, until either side closes.
//!
//! Blocks fan out through a [`broadcast`] channel of [`QUEUE_BLOCKS`] blocks: a client that
//! falls that far behind (or cannot take a block within [`WRITE_TIMEOUT`]) is dropped, so a
//! slow player never makes the peer buffer without bound. At most [`MAX_CLIENTS`] clients are
//! served at once; more get `503 Service Unavailable`. A client takes its slot only once it has
//! sent its request: connections that send nothing are closed after [`REQUEST_TIMEOUT`], and
//! at most [`MAX_PENDING`] of them wait at once (more are closed at once), so idle connections
//! can neither keep a player out nor use up the peer's file descriptors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, broadcast};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

/// Most players served at once by one peer.
pub const MAX_CLIENTS: usize = 8;
/// Blocks queued per client (about 13 s at 500 kbit/s) before it is dropped as too slow.
pub const QUEUE_BLOCKS: usize = 64;
/// Longest a client may take to accept one block.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a client may take to send its request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Most connections waiting for their request head at once.
pub const MAX_PENDING: usize = 32;
/// Longest request head read.
const MAX_HEAD: usize = 8192;

const OK_HEAD: &[u8] =
    b"HTTP/1.0 200 OK\r\nContent-Type: video/mp2t\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";
const BUSY: &[u8] = b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 5\r\n\
Connection: close\r\n\r\nthis peer already serves 8 players; try again later\n";
const NOT_ALLOWED: &[u8] = b"HTTP/1.0 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Type: text/plain\r\n\
Connection: close\r\n\r\nGET / to play the stream\n";

/// Accepts players on `listener` until `stop` is cancelled or the peer's sender (of which this
/// holds only a weak handle) is gone. Clients still connected then are dropped.
pub async fn serve(
    listener: TcpListener,
    blocks: broadcast::WeakSender<Bytes>,
    stop: CancellationToken,
    peer: SocketAddr,
) {
    serve_with(listener, blocks, stop, peer, WRITE_TIMEOUT).await;
}

async fn serve_with(
    listener: TcpListener,
    blocks: broadcast::WeakSender<Bytes>,
    stop: CancellationToken,
    peer: SocketAddr,
    write_timeout: Duration,
) {
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    let pending = Arc::new(Semaphore::new(MAX_PENDING));
    let mut clients = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            Some(_) = clients.join_next(), if !clients.is_empty() => {}
            r = listener.accept() => match r {
                Ok((sock, from)) => {
                    if blocks.strong_count() == 0 {
                        break;
                    }
                    let Ok(waiting) = pending.clone().try_acquire_owned() else {
                        tracing::debug!(%peer, %from, "HTTP connection closed: {MAX_PENDING} already wait to be read");
                        continue;
                    };
                    let room = Room { slots: slots.clone(), blocks: blocks.clone(), waiting };
                    clients.spawn(client(sock, from, room, peer, write_timeout));
                }
                Err(e) => {
                    // Out of file descriptors, most likely: back off instead of spinning.
                    tracing::warn!(%peer, error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
        }
    }
}

/// What a new connection may take once it has sent its request: a player's slot and the
/// stream; meanwhile it holds a place among the [`MAX_PENDING`].
struct Room {
    slots: Arc<Semaphore>,
    blocks: broadcast::WeakSender<Bytes>,
    waiting: tokio::sync::OwnedSemaphorePermit,
}

async fn client(mut sock: TcpStream, from: SocketAddr, room: Room, peer: SocketAddr, write_timeout: Duration) {
    let Ok(Ok(head)) = timeout(REQUEST_TIMEOUT, read_head(&mut sock)).await else {
        return;
    };
    drop(room.waiting);
    let method = head.split(|&b| b == b' ').next().unwrap_or_default();
    let Ok(_slot) = room.slots.try_acquire_owned() else {
        tracing::debug!(%peer, %from, "HTTP client refused: {MAX_CLIENTS} already served");
        let _ = timeout(write_timeout, sock.write_all(BUSY)).await;
        return;
    };
    // Subscribed once the request is in: the client gets the blocks played from then on.
    let Some(mut rx) = room.blocks.upgrade().map(|sender| sender.subscribe()) else { return };
    match method {
        b"GET" | b"HEAD" => {
            if !matches!(timeout(write_timeout, sock.write_all(OK_HEAD)).await, Ok(Ok(()))) || method == b"HEAD" {
                return;
            }
        }
        _ => {
            let _ = timeout(write_timeout, sock.write_all(NOT_ALLOWED)).await;
            return;
        }
    }
    tracing::debug!(%peer, %from, "HTTP player connected");
    loop {
        match rx.recv().await {
            Ok(block) => match timeout(write_timeout, sock.write_all(&block)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(%peer, %from, error = %e, "HTTP player gone");
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, %from, "HTTP player took no data for {write_timeout:?}; dropped");
                    return;
                }
            },
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::info!(%peer, %from, behind = n, "HTTP player too slow; dropped");
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Reads the request head (up to the blank line, [`MAX_HEAD`] bytes, or EOF).
async fn read_head(sock: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            return Ok(head);
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() >= MAX_HEAD || head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n")
        {
            return Ok(head);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    async fn get(addr: SocketAddr, request: &[u8]) -> TcpStream {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        s
    }

    async fn read_exact_timeout(s: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        timeout(Duration::from_secs(2), s.read_exact(&mut buf)).await.expect("data in time").unwrap();
        buf
    }

    #[tokio::test]
    async fn streams_new_blocks_refuses_ninth_and_other_methods() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, _) = broadcast::channel::<Bytes>(QUEUE_BLOCKS);
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(listener, tx.downgrade(), stop.clone(), addr));

        let _ = tx.send(Bytes::from_static(b"old")); // before anyone listens: never seen
        let mut c = get(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let head = read_exact_timeout(&mut c, OK_HEAD.len()).await;
        assert_eq!(head, OK_HEAD);
        tx.send(Bytes::from_static(b"block-1")).unwrap();
        tx.send(Bytes::from_static(b"block-2")).unwrap();
        assert_eq!(read_exact_timeout(&mut c, 14).await, b"block-1block-2");

        let mut post = get(addr, b"POST / HTTP/1.0\r\n\r\n").await;
        let mut text = Vec::new();
        timeout(Duration::from_secs(2), post.read_to_end(&mut text)).await.unwrap().unwrap();
        assert!(text.starts_with(b"HTTP/1.0 405"), "{}", String::from_utf8_lossy(&text));

        let mut more = Vec::new();
        for _ in 1..MAX_CLIENTS {
            let mut s = get(addr, b"GET / HTTP/1.0\r\n\r\n").await;
            read_exact_timeout(&mut s, OK_HEAD.len()).await;
            more.push(s);
        }
        let mut ninth = get(addr, b"GET / HTTP/1.0\r\n\r\n").await;
        let mut text = Vec::new();
        timeout(Duration::from_secs(2), ninth.read_to_end(&mut text)).await.unwrap().unwrap();
        assert!(text.starts_with(b"HTTP/1.0 503"), "{}", String::from_utf8_lossy(&text));

        stop.cancel();
        timeout(Duration::from_secs(2), server).await.expect("server stops").unwrap();
        // The server's clients were dropped with it: the stream ends.
        let mut rest = Vec::new();
        timeout(Duration::from_secs(2), c.read_to_end(&mut rest)).await.unwrap().unwrap();
        assert!(rest.is_empty());
    }

    /// Connections that send nothing take no player's slot: with more idle connections open
    /// than there are slots, a real player still gets the stream, and the idle ones are closed
    /// after [`REQUEST_TIMEOUT`].
    #[tokio::test]
    async fn idle_connections_do_not_block_a_player() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, _) = broadcast::channel::<Bytes>(QUEUE_BLOCKS);
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, tx.downgrade(), stop.clone(), addr));
        let started = tokio::time::Instant::now();
        let mut idle = Vec::new();
        for _ in 0..MAX_CLIENTS + 4 {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut player = get(addr, b"GET / HTTP/1.0\r\n\r\n").await;
        assert_eq!(read_exact_timeout(&mut player, OK_HEAD.len()).await, OK_HEAD, "the player was refused");
        tx.send(Bytes::from_static(b"block-1")).unwrap();
        assert_eq!(read_exact_timeout(&mut player, 7).await, b"block-1");
        for mut s in idle {
            let mut rest = Vec::new();
            let read = timeout(REQUEST_TIMEOUT + Duration::from_secs(2), s.read_to_end(&mut rest)).await;
            assert!(matches!(read, Ok(Ok(0))), "an idle connection was kept open: {read:?}");
        }
        assert!(started.elapsed() < REQUEST_TIMEOUT + Duration::from_secs(2));
        stop.cancel();
    }

    #[tokio::test]
    async fn slow_client_is_dropped() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, _) = broadcast::channel::<Bytes>(QUEUE_BLOCKS);
        tokio::spawn(serve_with(listener, tx.downgrade(), CancellationToken::new(), addr, Duration::from_millis(500)));
        let mut c = get(addr, b"GET / HTTP/1.0\r\n\r\n").await;
        read_exact_timeout(&mut c, OK_HEAD.len()).await;
        // Never read: after the kernel buffers fill, the queue overflows and the client goes.
        let block = Bytes::from(vec![7u8; 10_240]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while tx.receiver_count() > 0 {
            assert!(tokio::time::Instant::now() < deadline, "slow client still subscribed");
            let _ = tx.send(block.clone());
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
}
