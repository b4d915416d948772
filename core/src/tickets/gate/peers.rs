//! Station peers: the gates of one station tell each other about every accepted tap over the
//! station LAN, so a code shown at two gates inside its slot is caught even though each gate
//! decides alone. UDP datagrams, one per tap, to each configured peer: no connection to set
//! up or lose, nothing to wait for. A peer that is down costs a lost datagram, never a delay:
//! the gate keeps deciding on what it knows.
//!
//! Each message is authenticated with HMAC-SHA256 (truncated to 16 bytes) under the station
//! key all gates of the station are provisioned with: a MAC costs well under a microsecond,
//! where a signature per tap would cost as much as the validation itself. A message from
//! outside the station (no key) is dropped; a replayed one only repeats a tap already known,
//! and one with a time far from the gate's clock is ignored.
//!
//! Message (version 1), big-endian integers:
//!
//! | size | content |
//! |---|---|
//! | 4 | magic `CDGP` |
//! | 1 | version `01` |
//! | 1 | direction: `01` entry, `02` exit |
//! | 16 | ticket id |
//! | 8 | tapped at (unix seconds) |
//! | 8 | slot start |
//! | 8 | consumed until (0: not a consumed single journey) |
//! | 1 | gate id length *g* (1..=64) |
//! | *g* | gate id (UTF-8) |
//! | 16 | HMAC-SHA256 over every byte before it, first 16 bytes |

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ring::hmac;

use super::state::Tap;
use super::Direction;

const MAGIC: &[u8; 4] = b"CDGP";
const VERSION: u8 = 1;
const MAC_LEN: usize = 16;
const MAX_GATE_ID: usize = 64;
const FIXED_LEN: usize = 4 + 1 + 1 + 16 + 8 + 8 + 8 + 1;
/// Messages whose time is further than this from the receiving gate's clock are ignored.
const MAX_AGE_S: u64 = 3_600;

/// A tap heard from a peer gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerTap {
    pub gate_id: String,
    pub tap: Tap,
}

/// The key shared by the gates of one station (32 random bytes, provisioned with the gate).
#[derive(Clone)]
pub struct StationKey(hmac::Key);

impl StationKey {
    pub fn new(secret: &[u8; 32]) -> StationKey {
        StationKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }
}

impl std::fmt::Debug for StationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StationKey(…)")
    }
}

pub fn encode(gate_id: &str, tap: &Tap, key: &StationKey) -> Option<Vec<u8>> {
    if gate_id.is_empty() || gate_id.len() > MAX_GATE_ID {
        return None;
    }
    let mut out = Vec::with_capacity(FIXED_LEN + gate_id.len() + MAC_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(tap.direction.byte());
    out.extend_from_slice(&tap.ticket_id);
    out.extend_from_slice(&tap.at.to_be_bytes());
    out.extend_from_slice(&tap.slot_start.to_be_bytes());
    out.extend_from_slice(&tap.consumed_until.unwrap_or(0).to_be_bytes());
    out.push(gate_id.len() as u8);
    out.extend_from_slice(gate_id.as_bytes());
    let tag = hmac::sign(&key.0, &out);
    out.extend_from_slice(&tag.as_ref()[..MAC_LEN]);
    Some(out)
}

/// Reads and authenticates a message; `None` for anything not from a gate of this station.
pub fn decode(bytes: &[u8], key: &StationKey) -> Option<PeerTap> {
    if bytes.len() < FIXED_LEN + 1 + MAC_LEN || &bytes[..4] != MAGIC || bytes[4] != VERSION {
        return None;
    }
    let (signed, mac) = bytes.split_at(bytes.len() - MAC_LEN);
    // Constant-time comparison of the truncated tag.
    let expected = hmac::sign(&key.0, signed);
    if !ring_constant_time_eq(&expected.as_ref()[..MAC_LEN], mac) {
        return None;
    }
    let direction = Direction::from_byte(signed[5])?;
    let ticket_id: [u8; 16] = signed[6..22].try_into().ok()?;
    let u64_at = |i: usize| u64::from_be_bytes(signed[i..i + 8].try_into().expect("8 bytes"));
    let (at, slot_start, consumed) = (u64_at(22), u64_at(30), u64_at(38));
    let gate_len = signed[46] as usize;
    if gate_len == 0 || gate_len > MAX_GATE_ID || signed.len() != FIXED_LEN + gate_len {
        return None;
    }
    let gate_id = std::str::from_utf8(&signed[47..]).ok()?.to_string();
    let consumed_until = (consumed != 0).then_some(consumed);
    Some(PeerTap { gate_id, tap: Tap { ticket_id, direction, at, slot_start, consumed_until } })
}

fn ring_constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The UDP link of one gate to its station peers.
pub struct PeerLink {
    socket: UdpSocket,
    peers: Vec<SocketAddr>,
    key: StationKey,
    gate_id: String,
    stop: Arc<AtomicBool>,
    sent: AtomicU64,
    send_failures: AtomicU64,
}

impl PeerLink {
    /// Binds `listen` (e.g. `0.0.0.0:47800` on the station LAN, `127.0.0.1:0` in tests).
    pub fn bind(listen: SocketAddr, peers: Vec<SocketAddr>, key: StationKey, gate_id: &str) -> std::io::Result<PeerLink> {
        let socket = UdpSocket::bind(listen)?;
        // The receiver wakes this often to notice it should stop.
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        Ok(PeerLink {
            socket,
            peers,
            key,
            gate_id: gate_id.to_string(),
            stop: Arc::new(AtomicBool::new(false)),
            sent: AtomicU64::new(0),
            send_failures: AtomicU64::new(0),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Tells every peer about an accepted tap. Never blocks on a peer and never fails the tap:
    /// an unreachable peer is counted and forgotten.
    pub fn announce(&self, tap: &Tap) {
        let Some(message) = encode(&self.gate_id, tap, &self.key) else { return };
        for peer in &self.peers {
            match self.socket.send_to(&message, peer) {
                Ok(_) => self.sent.fetch_add(1, Ordering::Relaxed),
                Err(_) => self.send_failures.fetch_add(1, Ordering::Relaxed),
            };
        }
    }

    /// (datagrams sent, sends that failed).
    pub fn counters(&self) -> (u64, u64) {
        (self.sent.load(Ordering::Relaxed), self.send_failures.load(Ordering::Relaxed))
    }

    /// Receives peer taps on a thread of its own until [`PeerLink::stop`]; each authenticated
    /// one from another gate, recent by `clock`, goes to `on_tap`.
    pub fn spawn_receiver(
        self: &Arc<Self>,
        clock: impl Fn() -> u64 + Send + 'static,
        on_tap: impl Fn(PeerTap) + Send + 'static,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let link = self.clone();
        std::thread::Builder::new().name("gate-peers".into()).spawn(move || {
            let mut buf = [0u8; 512];
            while !link.stop.load(Ordering::Relaxed) {
                let n = match link.socket.recv_from(&mut buf) {
                    Ok((n, _)) => n,
                    // Timeouts, and ICMP "port unreachable" echoes of our own sends to a peer
                    // that is down: neither is a reason to stop listening.
                    Err(_) => continue,
                };
                let Some(peer_tap) = decode(&buf[..n], &link.key) else { continue };
                if peer_tap.gate_id == link.gate_id || clock().abs_diff(peer_tap.tap.at) > MAX_AGE_S {
                    continue;
                }
                on_tap(peer_tap);
            }
        })
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Drop for PeerLink {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tap() -> Tap {
        Tap { ticket_id: [5; 16], direction: Direction::Entry, at: 1_700_000_000, slot_start: 1_699_999_980, consumed_until: None }
    }

    #[test]
    fn a_message_round_trips_and_any_change_or_other_key_is_dropped() {
        let key = StationKey::new(&[1; 32]);
        let message = encode("gate-2", &tap(), &key).unwrap();
        assert_eq!(decode(&message, &key), Some(PeerTap { gate_id: "gate-2".into(), tap: tap() }));
        for i in 0..message.len() {
            for bit in 0..8 {
                let mut bad = message.clone();
                bad[i] ^= 1 << bit;
                assert_eq!(decode(&bad, &key), None, "byte {i} bit {bit}");
            }
        }
        for len in 0..message.len() {
            assert_eq!(decode(&message[..len], &key), None);
        }
        assert_eq!(decode(&message, &StationKey::new(&[2; 32])), None);
        let consumed = Tap { direction: Direction::Exit, consumed_until: Some(1_700_086_400), ..tap() };
        assert_eq!(decode(&encode("g", &consumed, &key).unwrap(), &key).unwrap().tap, consumed);
    }
}
