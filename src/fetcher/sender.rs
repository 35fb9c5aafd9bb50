//! The root process's messages to the download process, on its stdin.
//!
//! Whoever has a message writes it at once: the pipe is nonblocking and a verdict is a few
//! dozen bytes, so no thread has to be woken for it (a thread that wrote every message cost two
//! context switches per file: 1,000 files of 50 KB, 2,000 of them). What the pipe cannot take
//! now, when the child is slow to read or has stopped, goes to a thread that waits until it
//! can, and so does every message after it: the order holds, and the root process never
//! blocks on the child.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use super::protocol::{self, ToChild};

/// A handle on the child's stdin, cheap to clone into every task that answers the child. The
/// child reads the end of its input once every handle is gone and all that was sent is written.
#[derive(Clone)]
pub struct ChildSender(Arc<Mutex<Lane>>);

struct Lane {
    pipe: File,
    /// Bytes the pipe has not taken yet; while there are any, the backlog thread runs and
    /// new messages queue behind them.
    backlog: Vec<u8>,
    /// The child no longer reads (a write failed): nothing more is written.
    broken: bool,
}

impl ChildSender {
    /// Takes the child's stdin, which from now on is written without blocking.
    pub fn new(pipe: impl Into<OwnedFd>) -> std::io::Result<ChildSender> {
        let pipe = File::from(pipe.into());
        set_nonblocking(&pipe)?;
        Ok(ChildSender(Arc::new(Mutex::new(Lane {
            pipe,
            backlog: Vec::new(),
            broken: false,
        }))))
    }

    /// Sends `message`; a child gone is noticed on its output, not here.
    pub fn send(&self, message: &ToChild) {
        let mut frame = Vec::new();
        protocol::write_frame(&mut frame, message).expect("a Vec takes every byte");
        let mut lane = self.0.lock().expect("no poisoning");
        if lane.broken {
            return;
        }
        if !lane.backlog.is_empty() {
            lane.backlog.extend_from_slice(&frame);
            return;
        }
        match lane.write_some(&frame) {
            Ok(n) if n == frame.len() => {}
            Ok(n) => {
                lane.backlog.extend_from_slice(&frame[n..]);
                let lane = self.0.clone();
                std::thread::spawn(move || drain(&lane));
            }
            Err(_) => lane.broken = true,
        }
    }
}

impl Lane {
    /// Writes what the pipe takes now of `bytes`, and how much that was.
    fn write_some(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut written = 0;
        while written < bytes.len() {
            match self.pipe.write(&bytes[written..]) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }
}

/// The backlog thread: writes the backlog as the child reads, and ends with it (or with the
/// child gone).
fn drain(lane: &Mutex<Lane>) {
    loop {
        let fd = {
            let lane = lane.lock().expect("no poisoning");
            lane.pipe.as_fd().as_raw_fd()
        };
        let mut ready = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd; the pipe it names lives as long as this thread's handle.
        // Any wake-up (writable, the child gone, a signal) is followed by a write attempt.
        unsafe { libc::poll(&mut ready, 1, -1) };
        let mut lane = lane.lock().expect("no poisoning");
        let backlog = std::mem::take(&mut lane.backlog);
        match lane.write_some(&backlog) {
            Ok(n) if n == backlog.len() => return,
            Ok(n) => lane.backlog = backlog[n..].to_vec(),
            Err(_) => {
                lane.broken = true;
                return;
            }
        }
    }
}

fn set_nonblocking(file: &File) -> std::io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this file owns.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetcher::protocol::{Refusal, Staged};

    fn verdict(file: u32) -> ToChild {
        ToChild::Verdict {
            file,
            staged: Staged::Mirror,
            placed: Err(Refusal::Failed("x".repeat(2000))),
        }
    }

    fn file_of(message: ToChild) -> u32 {
        match message {
            ToChild::Verdict { file, .. } => file,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_child_that_stops_reading_blocks_no_sender_and_gets_everything_in_order() {
        let (mut reader, writer) = std::io::pipe().unwrap();
        let sender = ChildSender::new(writer).unwrap();
        // Far more than a pipe holds (64 KiB), sent while nobody reads: each send returns.
        for file in 0..200 {
            sender.send(&verdict(file));
        }
        assert!(
            !sender.0.lock().unwrap().backlog.is_empty(),
            "the pipe should be full"
        );
        // The reader sees every message, in order, and the end once the sender is gone.
        let reading = std::thread::spawn(move || {
            let mut files = Vec::new();
            while let Ok(message) = protocol::read_frame::<ToChild>(&mut reader, 1 << 20) {
                files.push(file_of(message));
            }
            files
        });
        sender.send(&verdict(200));
        drop(sender);
        assert_eq!(reading.join().unwrap(), (0..=200).collect::<Vec<_>>());
    }

    #[test]
    fn a_child_gone_is_not_written_to_again() {
        let (reader, writer) = std::io::pipe().unwrap();
        let sender = ChildSender::new(writer).unwrap();
        drop(reader);
        sender.send(&verdict(1));
        assert!(sender.0.lock().unwrap().broken);
        sender.send(&verdict(2));
    }
}
