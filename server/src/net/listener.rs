//! Listening sockets: one per shard on the same address with `SO_REUSEPORT`, so the kernel
//! spreads incoming connections across cores and each connection lives on one shard.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Kernel accept queue per listener: bursts of reconnecting clients (a consumer group
/// restarting) should queue, not be refused.
const ACCEPT_BACKLOG: i32 = 1024;

/// Binds `count` non-blocking listeners sharing one address.
///
/// If `addr` has port 0, the first bind picks the port and the rest join it, so every shard
/// listens on the same, reported port.
pub fn bind_reuseport(addr: SocketAddr, count: usize) -> io::Result<Vec<TcpListener>> {
    let mut listeners = Vec::with_capacity(count);
    let mut target = addr;
    for _ in 0..count.max(1) {
        let listener = bind_one(target)?;
        target = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(ACCEPT_BACKLOG)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ephemeral_port_is_shared_by_every_listener() {
        let listeners = bind_reuseport("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        assert_ne!(ports[0], 0);
        assert!(ports.iter().all(|&p| p == ports[0]));
    }
}
