//! [`Balancer`]: a round-robin TCP load balancer on a loopback port, as a
//! Kubernetes Service spreads connections over a Deployment's pods. Each new
//! connection goes to the next backend in turn and is piped both ways until
//! either side closes; backends can be added while it runs (a scale-up).

use anyhow::Result;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A running balancer; stops accepting when dropped (connections already
/// piped run until either side closes them).
#[derive(Debug)]
pub struct Balancer {
    /// Where clients connect.
    pub addr: SocketAddr,
    backends: Arc<Mutex<Vec<SocketAddr>>>,
    accept: JoinHandle<()>,
    /// The connections being piped, for [`Balancer::cut`].
    piped: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Balancer {
    /// Starts one on a free loopback port in front of `backends`.
    pub async fn start(backends: Vec<SocketAddr>) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let backends = Arc::new(Mutex::new(backends));
        let piped = Arc::new(Mutex::new(Vec::new()));
        let accept = tokio::spawn(accept(listener, Arc::clone(&backends), Arc::clone(&piped)));
        Ok(Self {
            addr,
            backends,
            accept,
            piped,
        })
    }

    /// Drops every connection piped so far, both sockets at once, as a
    /// crash or a network partition ends them: whatever was in flight (an
    /// HTTP/2 stream's end, say) never arrives.
    pub fn cut(&self) {
        for task in self
            .piped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
    }

    /// Adds `backend` to the rotation for new connections.
    pub fn add(&self, backend: SocketAddr) {
        self.backends
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(backend);
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept(
    listener: TcpListener,
    backends: Arc<Mutex<Vec<SocketAddr>>>,
    piped: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    let next = AtomicUsize::new(0);
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        let backend = {
            let backends = backends.lock().unwrap_or_else(PoisonError::into_inner);
            if backends.is_empty() {
                continue;
            }
            backends[next.fetch_add(1, Ordering::Relaxed) % backends.len()]
        };
        let task = tokio::spawn(async move {
            // A backend that refuses closes the client's connection, as a
            // Service with an unready pod would reset it.
            if let Ok(mut server) = TcpStream::connect(backend).await {
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
        let mut piped = piped.lock().unwrap_or_else(PoisonError::into_inner);
        piped.retain(|t| !t.is_finished());
        piped.push(task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A backend that answers every connection with its own name.
    async fn named(name: &'static [u8]) -> Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let _ = s.write_all(name).await;
            }
        });
        Ok(addr)
    }

    async fn first_byte(addr: SocketAddr) -> Result<u8> {
        let mut s = TcpStream::connect(addr).await?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await?;
        Ok(b[0])
    }

    #[tokio::test]
    async fn round_robin_over_backends_added_while_running() -> Result<()> {
        let balancer = Balancer::start(vec![named(b"a").await?]).await?;
        assert_eq!(first_byte(balancer.addr).await?, b'a');
        assert_eq!(first_byte(balancer.addr).await?, b'a');
        balancer.add(named(b"b").await?);
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(first_byte(balancer.addr).await?);
        }
        seen.sort();
        assert_eq!(seen, b"aabb");
        Ok(())
    }
}
