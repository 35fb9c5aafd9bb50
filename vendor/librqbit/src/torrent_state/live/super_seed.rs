// pactor: super-seeding (after BEP 16) for a seeder whose upload is the scarce resource.
//
// A seedbox that announces all it has is asked for whatever each client lacks, and uploads at
// its cap for as long as the fleet runs, although the clients could trade most of it among
// themselves: origin bytes grow with the fleet's duration. A super-seeder announces nothing
// (an all-zero bitfield) and offers each peer, with Have messages, a few pieces that no peer
// it knows holds and that it has not just offered to someone else. Every piece thus leaves
// the seeder about once; the clients' Haves spread it from there. A peer that gains nothing
// for a while (it is connected to no one who holds what it lacks) is offered what it lacks
// regardless, so a super-seeder never stalls a client, and alone with one client it serves
// it the whole torrent as an ordinary seeder would.

use std::{
    collections::HashMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use peer_binary_protocol::Message;
use tokio::sync::Notify;

use super::{TorrentStateLive, make_piece_bitfield, peer::LivePeerState};
use crate::peer_connection::WriterRequest;
use crate::type_aliases::BF;
use crate::type_aliases::PeerHandle;
use librqbit_core::lengths::ChunkInfo;

/// Bytes of offered pieces a peer may hold outstanding: enough to keep one client's pipe full
/// between its Haves, little enough that a fleet's clients get different pieces.
const WINDOW_BYTES: u64 = 2 << 20;
/// An offer not taken up by then (the peer is slow or gone) may be made to another peer.
const STALE_OFFER: Duration = Duration::from_secs(5);
/// A peer that gained no piece for this long is offered what it lacks, whoever else holds it.
const STARVING: Duration = Duration::from_secs(1);
/// How often every peer's offers are topped up (stale offers, starving peers).
pub(crate) const TICK: Duration = Duration::from_millis(500);

pub(crate) struct SuperSeed {
    window: usize,
    offers: Mutex<Offers>,
    /// Wakes the tick when a peer says it is interested.
    interest: std::sync::Arc<Notify>,
}

struct Offers {
    /// When each piece was last offered to a peer that lacked it.
    at: Vec<Option<Instant>>,
    /// Where the next search for pieces to offer starts: consecutive offers go to the same
    /// peer, which keeps the seeder's reads sequential.
    cursor: usize,
}

/// What the seeder knows of one peer for super-seeding.
#[derive(Debug)]
pub(crate) struct PeerOffers {
    /// The pieces offered to this peer so far.
    offered: BF,
    /// Bytes of each piece sent to this peer, until the whole piece is.
    sending: HashMap<u32, u32>,
    /// It sent Interested.
    interested: bool,
    /// When this peer last gained a piece (or connected).
    last_gain: Instant,
}

impl Default for PeerOffers {
    fn default() -> Self {
        PeerOffers {
            offered: BF::default(),
            sending: HashMap::new(),
            interested: false,
            last_gain: Instant::now(),
        }
    }
}

impl PeerOffers {
    pub(crate) fn gained(&mut self) {
        self.last_gain = Instant::now();
    }
}

impl SuperSeed {
    pub(crate) fn new(total_pieces: usize, piece_length: u64) -> Self {
        SuperSeed {
            window: usize::try_from(WINDOW_BYTES / piece_length.max(1))
                .unwrap_or(usize::MAX)
                .max(2),
            offers: Mutex::new(Offers {
                at: vec![None; total_pieces],
                cursor: 0,
            }),
            interest: Default::default(),
        }
    }
}

impl TorrentStateLive {
    /// Whether this torrent hides what it has and offers pieces one peer at a time.
    pub(crate) fn is_super_seeding(&self) -> bool {
        self.super_seed.is_some() && self.is_finished()
    }

    /// `addr` said it is interested: it is offered pieces from now on.
    pub(crate) fn super_seed_interested(&self, addr: PeerHandle) {
        if self.super_seed.is_none() {
            return;
        }
        self.peers
            .with_live_mut(addr, "super_seed_interested", |live| {
                live.super_seed.interested = true;
            });
        self.super_seed_offer(addr);
        if let Some(super_seed) = self.super_seed.as_ref() {
            super_seed.interest.notify_waiters();
        }
    }

    /// With no live peer, what the tick awaits instead: the next interested peer.
    pub(crate) fn super_seed_idle(&self) -> Option<impl Future<Output = ()> + use<>> {
        // Taken before the check, so that a peer coming in between still wakes it.
        let interest = self.super_seed.as_ref()?.interest.clone().notified_owned();
        if self.peers.stats().live > 0 {
            return None;
        }
        Some(interest)
    }

    /// Offers `addr` pieces until it holds a window of offered pieces it lacks.
    pub(crate) fn super_seed_offer(&self, addr: PeerHandle) {
        let Some(super_seed) = self.super_seed.as_ref() else {
            return;
        };
        if !self.is_finished() {
            return;
        }
        let availability = self.availability();
        let total = self.lengths.total_pieces() as usize;
        let now = Instant::now();
        self.peers.with_live_mut(addr, "super_seed_offer", |live| {
            // librqbit counts every peer as interested from the start; offers wait for the
            // peer to say it.
            if !live.super_seed.interested {
                return;
            }
            // Always taken inside a peer's entry, never the other way round: a dying peer's
            // entry is held while its offers are withdrawn.
            let mut offers = super_seed.offers.lock();
            if live.bitfield.is_empty() {
                live.bitfield = make_piece_bitfield(&self.lengths);
            }
            let peer = &mut live.super_seed;
            if peer.offered.is_empty() {
                peer.offered = make_piece_bitfield(&self.lengths);
            }
            let lacks = |p: usize| live.bitfield.get(p).is_some_and(|b| !*b);
            let outstanding = peer.offered.iter_ones().filter(|&p| lacks(p)).count();
            let mut room = super_seed.window.saturating_sub(outstanding);
            if room == 0 {
                return;
            }
            let start = offers.cursor.min(total);
            let order = (start..total).chain(0..start);
            let fresh = |p: usize, offers: &Offers| {
                availability.get(p).copied().unwrap_or(0) == 0
                    && offers.at[p].is_none_or(|at| now - at >= STALE_OFFER)
            };
            let starving = outstanding == 0 && peer.last_gain.elapsed() >= STARVING;
            let mut chosen = Vec::new();
            for p in order.clone() {
                if room == 0 {
                    break;
                }
                if lacks(p) && !peer.offered[p] && fresh(p, &offers) {
                    chosen.push(p);
                    room -= 1;
                }
            }
            if chosen.is_empty() && starving {
                // Nobody it knows serves it what it lacks: serve it ourselves.
                for p in order {
                    if room == 0 {
                        break;
                    }
                    if lacks(p) {
                        chosen.push(p);
                        room -= 1;
                    }
                }
                peer.gained();
            }
            if let Some(&last) = chosen.last() {
                offers.cursor = (last + 1) % total.max(1);
            }
            for p in chosen {
                peer.offered.set(p, true);
                offers.at[p] = Some(now);
                let index = u32::try_from(p).expect("piece index fits a u32");
                let _ = live.tx.send(WriterRequest::Message(Message::Have(index)));
            }
        });
    }

    /// Counts a chunk handed to `addr`'s connection. A peer never tells a seeder that it got a
    /// piece the seeder offered (a Have goes only to peers that lack the piece), so the seeder
    /// counts what it sent: once all of a piece is sent, the peer holds it, and is offered more.
    pub(crate) fn super_seed_sent(&self, addr: PeerHandle, chunk: &ChunkInfo) {
        let piece = chunk.piece_index;
        let length = self.lengths.piece_length(piece);
        let delivered = self
            .peers
            .with_live_mut(addr, "super_seed_sent", |live| {
                let sent = live.super_seed.sending.entry(piece.get()).or_default();
                *sent = sent.saturating_add(chunk.size);
                if *sent < length {
                    return false;
                }
                live.super_seed.sending.remove(&piece.get());
                if live.bitfield.is_empty() {
                    live.bitfield = make_piece_bitfield(&self.lengths);
                }
                live.bitfield.set(piece.get_usize(), true);
                self.peers
                    .update_seeder_flag(live, self.lengths.total_pieces() as usize);
                live.super_seed.gained();
                true
            })
            .unwrap_or(false);
        if delivered {
            self.super_seed_offer(addr);
        }
    }

    /// Frees the offers a departed peer did not take up. Called with the peer's entry held.
    pub(crate) fn super_seed_withdraw(&self, live: &LivePeerState) {
        let Some(super_seed) = self.super_seed.as_ref() else {
            return;
        };
        let mut offers = super_seed.offers.lock();
        for p in live.super_seed.offered.iter_ones() {
            if live.bitfield.get(p).is_some_and(|b| !*b)
                && let Some(at) = offers.at.get_mut(p)
            {
                *at = None;
            }
        }
    }

    /// Tops up every live peer's offers.
    pub(crate) fn super_seed_tick(&self) {
        let live: Vec<SocketAddr> = self
            .peers
            .states
            .iter()
            .filter(|p| p.value().get_live().is_some())
            .map(|p| *p.key())
            .collect();
        for addr in live {
            self.super_seed_offer(addr);
        }
    }
}
