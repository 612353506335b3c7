//! A connection's TCP stream, whose `TCP_NODELAY` a request may turn off for the rest of the
//! connection.
//!
//! Every connection starts with `TCP_NODELAY` on, so an HTTP answer leaves at once. A
//! WebSocket that streams subscription changes turns it off when it upgrades
//! ([`Coalescing::request`]): a message written while an earlier one is still unacknowledged
//! then waits to share a segment with the ones after it (Nagle's algorithm) instead of costing
//! a segment, an acknowledgement and their kernel work of its own. A message written when
//! nothing is in flight still leaves at once. With a thousand subscribers of one touchpoint
//! receiving 200 changes a second, that took the server from 1.33 to 1.05 cores and the p99
//! from 172 to 113 ms (`hookplane-bench fanout`, bench/RESULTS.md).

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

/// What a request holds (as an extension) to turn its connection's `TCP_NODELAY` off.
#[derive(Clone, Debug, Default)]
pub struct Coalescing(Arc<AtomicBool>);

impl Coalescing {
    /// Coalesce this connection's writes from its next write on.
    pub fn request(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A TCP stream that turns `TCP_NODELAY` off before its first write after
/// [`Coalescing::request`].
pub struct CoalescingStream {
    stream: TcpStream,
    requested: Coalescing,
    applied: bool,
}

impl CoalescingStream {
    /// `stream` with `TCP_NODELAY` on, and the switch that turns it off.
    pub fn new(stream: TcpStream) -> (Self, Coalescing) {
        // An error leaves the stream as the kernel made it; nothing depends on the option.
        let _ = stream.set_nodelay(true);
        let requested = Coalescing::default();
        let stream = Self {
            stream,
            requested: requested.clone(),
            applied: false,
        };
        (stream, requested)
    }

    fn apply_request(&mut self) {
        if !self.applied && self.requested.0.load(Ordering::Acquire) {
            let _ = self.stream.set_nodelay(false);
            self.applied = true;
        }
    }
}

impl AsyncRead for CoalescingStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CoalescingStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.apply_request();
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.apply_request();
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    async fn pair() -> (CoalescingStream, Coalescing, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (client, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
        let (stream, switch) = CoalescingStream::new(accepted.expect("accept").0);
        (stream, switch, client.expect("connect"))
    }

    #[tokio::test]
    async fn nodelay_stays_on_until_requested_then_goes_off_at_the_next_write() {
        let (mut stream, switch, mut client) = pair().await;
        stream.write_all(b"answer").await.expect("write");
        assert!(
            stream.stream.nodelay().expect("read the option"),
            "on for HTTP"
        );

        switch.request();
        assert!(
            stream.stream.nodelay().expect("read the option"),
            "unchanged until the connection writes"
        );
        stream.write_all(b" and a stream").await.expect("write");
        assert!(!stream.stream.nodelay().expect("read the option"));

        let mut received = vec![0; b"answer and a stream".len()];
        client.read_exact(&mut received).await.expect("read");
        assert_eq!(
            received, b"answer and a stream",
            "bytes pass through unchanged"
        );
        client.write_all(b"ping").await.expect("write back");
        let mut back = [0; 4];
        stream.read_exact(&mut back).await.expect("read back");
        assert_eq!(&back, b"ping");
    }
}
