//! The control socket's server: one thread, one io_uring (accept, recv,
//! send, a one-second tick), many clients. It frames and parses requests,
//! answers malformed ones itself, and hands the rest to the engine's main
//! thread, which applies them in order and answers through [`Server::answer`].
//!
//! Limits: a bounded number of clients (the next is refused with a
//! message), requests of at most [`MAX_REQUEST`] bytes, idle clients closed
//! after a timeout, at most [`MAX_IN_FLIGHT`] requests of one client with
//! the engine at a time (its further lines wait in the socket: a client
//! that pipelines thousands cannot queue up the engine's main thread ahead
//! of the others), and at most [`MAX_PENDING_OUT`] bytes of answers waiting
//! for a client that does not read (it is then closed): no client can stall
//! the server or the others. A client that shuts down its sending side
//! (`socat`, `nc -N`) gets its answers before it is closed; a last request
//! without its newline then counts too.

use std::{
    collections::VecDeque,
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
        unix::net::{UnixListener, UnixStream},
    },
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc, Mutex, PoisonError,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use io_uring::{opcode, types, IoUring};

use super::protocol::{parse, Command, ControlError, Request, Response, MAX_REQUEST};
use crate::sys;

/// Answers queued for a client that is not reading, before it is closed.
pub const MAX_PENDING_OUT: usize = 4 << 20;

/// Requests of one client handed to the engine and not yet answered; its
/// further lines are read as answers go out.
pub const MAX_IN_FLIGHT: usize = 16;

/// Bytes read per receive.
const READ_CHUNK: usize = 16 << 10;

/// Why the control socket could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlStartError {
    /// Another engine answers on the path.
    #[error("control socket {0}: an engine is already listening there")]
    InUse(PathBuf),
    /// Something other than a socket is at the path (it is left alone).
    #[error("control socket {0}: the path exists and is not a socket (it is left as it is: choose another path)")]
    NotSocket(PathBuf),
    /// A system call failed.
    #[error("control socket {path}: {what}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Socket path.
    pub path: PathBuf,
    /// Clients served at once.
    pub max_clients: usize,
    /// A client that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// A thread to unpark whenever a request arrives: the one that calls
    /// [`Server::poll`], so it can sleep until there is work.
    pub notify: Option<std::thread::Thread>,
    /// Make the socket's directory (the engine's default path, a service's
    /// runtime directory); otherwise it must exist, as a path the user named
    /// (a typo in it would leave a socket nobody looks for).
    pub create_dir: bool,
}

/// Who sent a request (`SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Peer {
    /// User id.
    pub uid: u32,
    /// Process id.
    pub pid: i32,
}

/// Which client to answer: its slot and the slot's generation (a reused
/// slot does not get an earlier client's answers). The default is no
/// client of a server's (none is given generation 0): for requests made
/// outside one, as by a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientRef {
    slot: usize,
    generation: u64,
}

impl ClientRef {
    /// Whether `other` is a client in the same slot (the same one, or one
    /// that came after it).
    #[must_use]
    pub fn same_slot(&self, other: &Self) -> bool {
        self.slot == other.slot
    }
}

/// A request for the main thread.
#[derive(Debug)]
pub struct Incoming {
    /// Where the answer goes.
    pub client: ClientRef,
    /// Who sent it.
    pub peer: Peer,
    /// The request.
    pub request: Request,
}

/// The running server.
pub struct Server {
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    wake: Arc<OwnedFd>,
    /// Shared with the server's thread, which answers what is left in it
    /// once the engine stops.
    requests: Arc<Mutex<mpsc::Receiver<Incoming>>>,
    answers: mpsc::Sender<(ClientRef, String)>,
    path: PathBuf,
    /// The socket file's device and inode: removed at the end only if the
    /// path still leads to it.
    file_id: (u64, u64),
    stopping: Arc<AtomicBool>,
}

/// A file's device and inode.
fn file_id(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

/// The longest path a Unix socket can be bound at or connected to: its
/// address holds 108 bytes, a NUL included.
pub const SOCKET_PATH_MAX: usize = 107;

/// Bind a listening socket at `path` with mode 0660 from the start: it is
/// bound in a new directory only this process may enter, given its mode
/// there, then moved into place (whatever the umask, nobody can connect to
/// it with the mode bind gave it). Where that directory's path would be too
/// long for a socket and `path` is not, it is bound at `path` and given its
/// mode at once.
fn bind_private(path: &Path) -> Result<UnixListener, (&'static str, io::Error)> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = crate::sys::dir_of(path);
    let private = dir.join(format!(".rw{}", std::process::id()));
    if private.join("s").as_os_str().len() > SOCKET_PATH_MAX {
        let l = UnixListener::bind(path).map_err(|e| ("binding", e))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(|e| ("setting mode 0660", e))?;
        return Ok(l);
    }
    // One left by a process of this pid that was killed here.
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new().mode(0o700).create(&private).map_err(|e| ("making a private directory beside it", e))?;
    let tmp = private.join("s");
    let bound = UnixListener::bind(&tmp).map_err(|e| ("binding", e)).and_then(|l| {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o660)).map_err(|e| ("setting mode 0660", e))?;
        std::fs::rename(&tmp, path).map_err(|e| ("moving it into place", e))?;
        Ok(l)
    });
    let _ = std::fs::remove_dir_all(&private);
    bound
}

impl Server {
    /// Bind the socket (mode 0660; a stale socket is replaced, a live
    /// engine's or a file that is no socket refused) and start the server thread.
    ///
    /// # Errors
    /// [`ControlStartError`] naming the path.
    pub fn start(opts: &ServerOptions) -> Result<Self, ControlStartError> {
        let path = opts.path.clone();
        let io_err = |what: &'static str| {
            let path = path.clone();
            move |source| ControlStartError::Io { path, what, source }
        };
        // Bound there, nobody could connect to it.
        let len = path.as_os_str().len();
        if len > SOCKET_PATH_MAX {
            return Err(io_err("a socket's path holds at most 107 bytes")(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("this one has {len}"),
            )));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if opts.create_dir {
                std::fs::create_dir_all(dir).map_err(io_err("creating its directory"))?;
            } else if !dir.is_dir() {
                return Err(io_err("its directory does not exist")(io::ErrorKind::NotFound.into()));
            }
        }
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            // Only a socket is replaced: any other file there is somebody's.
            if !std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) {
                return Err(ControlStartError::NotSocket(path));
            }
            if UnixStream::connect(&path).is_ok() {
                return Err(ControlStartError::InUse(path));
            }
            std::fs::remove_file(&path).map_err(io_err("removing a stale socket"))?;
        }
        let listener = bind_private(&path).map_err(|(what, e)| io_err(what)(e))?;
        let file_id = file_id(&std::fs::symlink_metadata(&path).map_err(io_err("reading it back"))?);
        let ring = IoUring::new(256).map_err(io_err("io_uring setup"))?;
        let wake = Arc::new(sys::eventfd().map_err(|e| ControlStartError::Io {
            path: path.clone(),
            what: "eventfd",
            source: io::Error::other(e),
        })?);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::new(AtomicBool::new(false));
        let (req_tx, requests) = mpsc::channel();
        let requests = Arc::new(Mutex::new(requests));
        let (answers, ans_rx) = mpsc::channel();
        let mut looper = Loop {
            ring,
            listener,
            wake: wake.clone(),
            stop: stop.clone(),
            requests: req_tx,
            notify: opts.notify.clone(),
            answers: ans_rx,
            clients: Vec::new(),
            generation: 0,
            max_clients: opts.max_clients.max(1),
            idle_timeout: opts.idle_timeout,
            wake_buf: Box::new(0),
            tick: Box::new(types::Timespec::new().sec(1)),
            inflight_fixed: 0,
            refused: VecDeque::new(),
            stopping: stopping.clone(),
            asked: requests.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("rw-control".into())
            .spawn(move || looper.run())
            .map_err(io_err("starting its thread"))?;
        Ok(Self { thread: Some(thread), stop, wake, requests, answers, path: opts.path.clone(), file_id, stopping })
    }

    /// The engine stops: every request waiting, and every one that comes
    /// from now on, is answered at once by the server's thread (a
    /// `conflict` saying so; `shutdown`: done), not left unanswered while
    /// the engine drains its queues.
    pub fn refuse_from_now(&self) {
        self.stopping.store(true, Ordering::Release);
        sys::eventfd_signal(self.wake.as_raw_fd());
    }

    /// The next request, if one is waiting.
    #[must_use]
    pub fn poll(&self) -> Option<Incoming> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).try_recv().ok()
    }

    /// Send `response` to `client` (dropped if it has gone).
    pub fn answer(&self, client: ClientRef, response: &Response) {
        if self.answers.send((client, response.line())).is_ok() {
            sys::eventfd_signal(self.wake.as_raw_fd());
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The path goes first, then the clients' connections: a client that
        // waits for the end of its connection (`ringctl shutdown`) may start
        // another engine on the path at once. A path that no longer leads to
        // this socket (another engine's by now) is left alone.
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| file_id(&m) == self.file_id) {
            let _ = std::fs::remove_file(&self.path);
        }
        self.stop.store(true, Ordering::Release);
        sys::eventfd_signal(self.wake.as_raw_fd());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Client {
    fd: OwnedFd,
    generation: u64,
    peer: Peer,
    rbuf: Box<[u8]>,
    inbuf: Vec<u8>,
    /// Discarding an oversized request until its newline.
    skipping: bool,
    /// Requests handed to the engine and not yet answered.
    awaiting: usize,
    /// The peer sends no more (it shut down its side): closed once answered.
    read_done: bool,
    /// Bytes being sent (not touched while a send is in flight).
    sending: Vec<u8>,
    /// Bytes waiting for the next send.
    pending: Vec<u8>,
    send_inflight: bool,
    recv_inflight: bool,
    closing: bool,
    last_active: Instant,
}

// user_data: kind in the low 8 bits, slot above.
const ACCEPT: u64 = 1;
const WAKE: u64 = 2;
const TICK: u64 = 3;
const RECV: u64 = 4;
const SEND: u64 = 5;

struct Loop {
    ring: IoUring,
    listener: UnixListener,
    wake: Arc<OwnedFd>,
    stop: Arc<AtomicBool>,
    requests: mpsc::Sender<Incoming>,
    notify: Option<std::thread::Thread>,
    answers: mpsc::Receiver<(ClientRef, String)>,
    clients: Vec<Option<Box<Client>>>,
    generation: u64,
    max_clients: usize,
    idle_timeout: Duration,
    /// The eventfd read's buffer and the tick's timespec: live as long as the loop.
    wake_buf: Box<u64>,
    tick: Box<types::Timespec>,
    /// Accept, wake and tick operations in flight.
    inflight_fixed: usize,
    /// Clients refused (too many), held a while with their refusal sent
    /// and their sending side shut, and when: closed at once, a client
    /// whose request is on its way would meet a broken pipe or a reset
    /// instead of the refusal.
    refused: VecDeque<(OwnedFd, Instant)>,
    /// Set once the engine stops ([`Server::refuse_from_now`]): requests
    /// are answered here, with a refusal.
    stopping: Arc<AtomicBool>,
    /// The other end of `requests`: what the engine has not taken yet.
    asked: Arc<Mutex<mpsc::Receiver<Incoming>>>,
}

/// The answer to a request that comes while the engine stops: `shutdown`
/// is done already, anything else is refused.
fn while_stopping(request: &Request) -> String {
    let outcome = match request.cmd {
        Command::Shutdown => Ok(serde_json::json!({ "stopping": true })),
        _ => Err(ControlError::conflict("the engine is stopping: it takes no more requests")),
    };
    Response::new(Some(request.id), outcome).line()
}

/// How long a refused client is held before its socket is closed.
const REFUSED_HOLD: Duration = Duration::from_secs(1);
/// The most refused clients held at once (the oldest is closed first).
const MAX_REFUSED_HELD: usize = 256;
/// How long the answers given before a stop may take to go out.
const FLUSH_AT_STOP: Duration = Duration::from_millis(500);

impl Loop {
    /// Queue `entry`, submitting first if the queue is full. Every buffer an
    /// entry points to (a client's boxed `rbuf` or `sending`, `wake_buf`,
    /// `tick`) stays alive and unmoved until its completion is reaped:
    /// clients are freed only with no operation in flight, and the loop's own
    /// buffers outlive the ring's use (see `run`).
    fn push(&mut self, entry: &io_uring::squeue::Entry) {
        loop {
            // SAFETY: the entry's buffers outlive the operation (see above).
            let queued = unsafe { self.ring.submission().push(entry) };
            if queued.is_ok() {
                return;
            }
            let _ = self.ring.submit();
        }
    }

    fn arm_accept(&mut self) {
        let e = opcode::Accept::new(types::Fd(self.listener.as_raw_fd()), std::ptr::null_mut(), std::ptr::null_mut())
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(ACCEPT);
        self.push(&e);
        self.inflight_fixed += 1;
    }

    fn arm_wake(&mut self) {
        let buf: *mut u64 = &mut *self.wake_buf;
        let e = opcode::Read::new(types::Fd(self.wake.as_raw_fd()), buf.cast(), 8).build().user_data(WAKE);
        self.push(&e);
        self.inflight_fixed += 1;
    }

    fn arm_tick(&mut self) {
        let ts: *const types::Timespec = &*self.tick;
        let e = opcode::Timeout::new(ts).build().user_data(TICK);
        self.push(&e);
        self.inflight_fixed += 1;
    }

    fn arm_recv(&mut self, slot: usize) {
        let Some(c) = self.clients[slot].as_mut() else { return };
        if c.recv_inflight || c.closing || c.read_done || c.awaiting >= MAX_IN_FLIGHT {
            return;
        }
        c.recv_inflight = true;
        let e = opcode::Recv::new(types::Fd(c.fd.as_raw_fd()), c.rbuf.as_mut_ptr(), c.rbuf.len() as u32)
            .build()
            .user_data(RECV | (slot as u64) << 8);
        self.push(&e);
    }

    fn arm_send(&mut self, slot: usize) {
        let Some(c) = self.clients[slot].as_mut() else { return };
        if c.send_inflight || c.closing {
            return;
        }
        if c.sending.is_empty() {
            std::mem::swap(&mut c.sending, &mut c.pending);
        }
        if c.sending.is_empty() {
            return;
        }
        c.send_inflight = true;
        let e = opcode::Send::new(types::Fd(c.fd.as_raw_fd()), c.sending.as_ptr(), c.sending.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(SEND | (slot as u64) << 8);
        self.push(&e);
    }

    /// Queue `line` for a client; close it if it has stopped reading.
    fn queue(&mut self, slot: usize, line: &str) {
        let Some(c) = self.clients[slot].as_mut() else { return };
        if c.closing {
            return;
        }
        // One answer of any size goes to a client that has read the ones before.
        let waiting = c.pending.len() + c.sending.len();
        if waiting > 0 && waiting + line.len() > MAX_PENDING_OUT {
            tracing::warn!(pid = c.peer.pid, "control client does not read its answers; closing it");
            self.close(slot);
            return;
        }
        c.pending.extend_from_slice(line.as_bytes());
        self.arm_send(slot);
    }

    /// Close a client: shut the socket so operations in flight end; the
    /// slot is freed once none is left.
    fn close(&mut self, slot: usize) {
        if let Some(c) = self.clients[slot].as_mut() {
            c.closing = true;
            // SAFETY: shutdown(2) on a socket we own.
            unsafe { libc::shutdown(c.fd.as_raw_fd(), libc::SHUT_RDWR) };
        }
        self.reap(slot);
    }

    fn reap(&mut self, slot: usize) {
        if self.clients[slot].as_ref().is_some_and(|c| c.closing && !c.recv_inflight && !c.send_inflight) {
            self.clients[slot] = None;
        }
    }

    fn accepted(&mut self, fd: RawFd) {
        // SAFETY: the kernel just handed us this descriptor; we own it now.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let live = self.clients.iter().filter(|c| c.is_some()).count();
        if live >= self.max_clients {
            let refusal =
                ControlError::conflict(format!("too many control clients ({}); try again later", self.max_clients));
            let line = Response::new(None, Err(refusal)).line();
            // SAFETY: a non-blocking send of a local buffer on our own
            // socket, then shutdown(2) of its sending side: the client reads
            // the refusal, then the end of the stream.
            unsafe {
                libc::send(fd.as_raw_fd(), line.as_ptr().cast(), line.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
                libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR);
            };
            if self.refused.len() >= MAX_REFUSED_HELD {
                self.refused.pop_front();
            }
            self.refused.push_back((fd, Instant::now()));
            return;
        }
        let peer = peer_cred(&fd);
        self.generation += 1;
        let client = Box::new(Client {
            fd,
            generation: self.generation,
            peer,
            rbuf: vec![0u8; READ_CHUNK].into_boxed_slice(),
            inbuf: Vec::new(),
            skipping: false,
            awaiting: 0,
            read_done: false,
            sending: Vec::new(),
            pending: Vec::new(),
            send_inflight: false,
            recv_inflight: false,
            closing: false,
            last_active: Instant::now(),
        });
        let slot = match self.clients.iter().position(Option::is_none) {
            Some(s) => {
                self.clients[s] = Some(client);
                s
            }
            None => {
                self.clients.push(Some(client));
                self.clients.len() - 1
            }
        };
        self.arm_recv(slot);
    }

    fn received(&mut self, slot: usize, n: usize) {
        if let Some(c) = self.clients[slot].as_mut() {
            c.last_active = Instant::now();
            c.inbuf.extend_from_slice(&c.rbuf[..n]);
        }
        self.take_lines(slot);
        self.arm_recv(slot);
    }

    /// The peer shut down its sending side: what it sent is all there is.
    fn half_closed(&mut self, slot: usize) {
        if let Some(c) = self.clients[slot].as_mut() {
            c.read_done = true;
        }
        self.take_lines(slot);
        self.finish_if_done(slot);
    }

    /// Hand a client's complete request lines to the engine, up to
    /// [`MAX_IN_FLIGHT`] unanswered (the rest stay buffered), and answer
    /// malformed ones. Once the peer sends no more, a last line without its
    /// newline is a request too.
    fn take_lines(&mut self, slot: usize) {
        let mut replies = Vec::new();
        {
            let Some(c) = self.clients[slot].as_mut().filter(|c| !c.closing) else { return };
            let mut start = 0;
            while c.awaiting < MAX_IN_FLIGHT {
                let rest = &c.inbuf[start..];
                let (len, used) = match rest.iter().position(|&b| b == b'\n') {
                    Some(nl) => (nl, nl + 1),
                    None if c.read_done && !rest.is_empty() => (rest.len(), rest.len()),
                    None => break,
                };
                let mut line = &c.inbuf[start..start + len];
                start += used;
                if std::mem::take(&mut c.skipping) {
                    continue;
                }
                if line.last() == Some(&b'\r') {
                    line = &line[..line.len() - 1];
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if line.len() > MAX_REQUEST {
                    replies.push(too_long());
                    continue;
                }
                match parse(line) {
                    Ok(request) if self.stopping.load(Ordering::Acquire) => replies.push(while_stopping(&request)),
                    Ok(request) => {
                        let client = ClientRef { slot, generation: c.generation };
                        c.awaiting += 1;
                        let _ = self.requests.send(Incoming { client, peer: c.peer, request });
                        if let Some(t) = &self.notify {
                            t.unpark();
                        }
                    }
                    Err((id, e)) => replies.push(Response::new(id, Err(e)).line()),
                }
            }
            c.inbuf.drain(..start);
            if c.inbuf.len() > MAX_REQUEST && !c.inbuf.contains(&b'\n') {
                // No newline within the limit: answer once, drop the rest of the line.
                c.inbuf.clear();
                if !std::mem::replace(&mut c.skipping, true) {
                    replies.push(too_long());
                }
            }
        }
        for r in replies {
            self.queue(slot, &r);
        }
    }

    /// Close a client that sends no more once its answers are out.
    fn finish_if_done(&mut self, slot: usize) {
        if self.clients[slot].as_ref().is_some_and(|c| {
            c.read_done && !c.closing && c.awaiting == 0 && c.pending.is_empty() && c.sending.is_empty()
        }) {
            self.close(slot);
        }
    }

    /// Send the engine's answers; once it stops, refuse what it left
    /// (this thread alone hands requests over, and it refuses them from
    /// the moment it sees the engine stop: none is left unanswered).
    fn deliver_answers(&mut self) {
        while let Ok((client, line)) = self.answers.try_recv() {
            self.deliver(client, &line);
        }
        if self.stopping.load(Ordering::Acquire) {
            let left: Vec<Incoming> =
                std::iter::from_fn(|| self.asked.lock().unwrap_or_else(PoisonError::into_inner).try_recv().ok())
                    .collect();
            for inc in left {
                self.deliver(inc.client, &while_stopping(&inc.request));
            }
        }
    }

    fn deliver(&mut self, client: ClientRef, line: &str) {
        let Some(c) = self.clients.get_mut(client.slot).and_then(Option::as_mut) else { return };
        if c.generation != client.generation {
            return;
        }
        c.awaiting = c.awaiting.saturating_sub(1);
        // An answer after a long change is activity: the idle clock starts again.
        c.last_active = Instant::now();
        self.queue(client.slot, line);
        // Room for its next requests.
        self.take_lines(client.slot);
        self.arm_recv(client.slot);
        self.finish_if_done(client.slot);
    }

    fn close_idle(&mut self) {
        // A stopping engine keeps its clients to the end: `ringctl shutdown`
        // waits for the end of its connection to know the engine stopped.
        if self.stopping.load(Ordering::Acquire) {
            return;
        }
        let now = Instant::now();
        for slot in 0..self.clients.len() {
            if self.clients[slot]
                .as_ref()
                .is_some_and(|c| !c.closing && c.awaiting == 0 && now.duration_since(c.last_active) > self.idle_timeout)
            {
                tracing::info!("control client idle; closing it");
                self.close(slot);
            }
        }
    }

    fn run(&mut self) {
        self.arm_accept();
        self.arm_wake();
        self.arm_tick();
        while !self.stop.load(Ordering::Acquire) {
            if let Err(e) = self.ring.submit_and_wait(1) {
                if e.raw_os_error() != Some(libc::EINTR) {
                    tracing::error!(error = %e, "control socket: io_uring failed; the control socket stops");
                    break;
                }
            }
            self.reap_completions();
        }
        self.flush_answers();
        // Stop: end every client's operations, then wait (bounded) for their
        // completions, so no buffer is freed under the kernel.
        for slot in 0..self.clients.len() {
            self.close(slot);
        }
        // SAFETY: shutdown(2) on our listening socket: a pending accept ends.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        let _ = self
            .ring
            .submitter()
            .register_sync_cancel(Some(types::Timespec::new().nsec(100_000_000)), types::CancelBuilder::any());
        let deadline = Instant::now() + Duration::from_secs(1);
        while (self.inflight_fixed > 0 || self.clients.iter().any(Option::is_some)) && Instant::now() < deadline {
            let ts = types::Timespec::new().nsec(50_000_000);
            let _ = self.ring.submitter().submit_with_args(1, &types::SubmitArgs::new().timespec(&ts));
            self.reap_completions();
        }
        if self.inflight_fixed > 0 || self.clients.iter().any(Option::is_some) {
            // Operations the kernel never ended: leak their buffers rather
            // than free them under it (the process is ending anyway).
            std::mem::forget(std::mem::take(&mut self.clients));
            std::mem::forget(std::mem::replace(&mut self.wake_buf, Box::new(0)));
            std::mem::forget(std::mem::replace(&mut self.tick, Box::new(types::Timespec::new())));
        }
    }

    /// At the stop, send the answers the engine gave before it (a
    /// `shutdown`'s among them, which may come just before the end): closed
    /// at once, a connection lost an answer still in the channel or not yet
    /// sent. Bounded: a client that does not read is not waited for.
    fn flush_answers(&mut self) {
        self.deliver_answers();
        let deadline = Instant::now() + FLUSH_AT_STOP;
        while self.clients.iter().flatten().any(|c| !c.closing && (c.send_inflight || !c.pending.is_empty()))
            && Instant::now() < deadline
        {
            let ts = types::Timespec::new().nsec(20_000_000);
            let _ = self.ring.submitter().submit_with_args(1, &types::SubmitArgs::new().timespec(&ts));
            self.reap_completions();
        }
    }

    fn reap_completions(&mut self) {
        let done: Vec<(u64, i32)> = self.ring.completion().map(|c| (c.user_data(), c.result())).collect();
        let stopping = self.stop.load(Ordering::Acquire);
        for (data, res) in done {
            let slot = (data >> 8) as usize;
            match data & 0xff {
                ACCEPT => {
                    self.inflight_fixed -= 1;
                    if res >= 0 {
                        self.accepted(res);
                    } else if res != -libc::EINTR && res != -libc::ECANCELED && !stopping {
                        tracing::warn!(error = %io::Error::from_raw_os_error(-res), "control socket: accept failed");
                    }
                    if !stopping {
                        self.arm_accept();
                    }
                }
                WAKE => {
                    self.inflight_fixed -= 1;
                    self.deliver_answers();
                    if !stopping {
                        self.arm_wake();
                    }
                }
                TICK => {
                    self.inflight_fixed -= 1;
                    if !stopping {
                        self.close_idle();
                        let now = Instant::now();
                        while self.refused.front().is_some_and(|(_, at)| now.duration_since(*at) >= REFUSED_HOLD) {
                            self.refused.pop_front();
                        }
                        self.arm_tick();
                    }
                }
                RECV => {
                    if let Some(c) = self.clients.get_mut(slot).and_then(Option::as_mut) {
                        c.recv_inflight = false;
                    }
                    let open = self.clients.get(slot).and_then(Option::as_ref).is_some_and(|c| !c.closing);
                    match res {
                        _ if stopping || !open => self.close(slot),
                        1.. => self.received(slot, res as usize),
                        0 => self.half_closed(slot),
                        _ => self.close(slot),
                    }
                }
                SEND => {
                    let Some(c) = self.clients.get_mut(slot).and_then(Option::as_mut) else { continue };
                    c.send_inflight = false;
                    if res < 0 {
                        self.close(slot);
                    } else {
                        c.sending.drain(..(res as usize).min(c.sending.len()));
                        c.last_active = Instant::now();
                        self.arm_send(slot);
                        self.finish_if_done(slot);
                        self.reap(slot);
                    }
                }
                _ => {}
            }
        }
    }
}

fn too_long() -> String {
    Response::new(
        None,
        Err(ControlError::invalid(format!("request over {MAX_REQUEST} bytes (one JSON object per line)"))),
    )
    .line()
}

fn peer_cred(fd: &OwnedFd) -> Peer {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt(SO_PEERCRED) writes at most `len` bytes into `cred`.
    let rc = unsafe {
        libc::getsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_PEERCRED, (&raw mut cred).cast(), &raw mut len)
    };
    if rc == 0 {
        Peer { uid: cred.uid, pid: cred.pid }
    } else {
        Peer::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};

    /// An answer given just before the engine stops reaches its client: the
    /// server used to close every connection at once, losing a `shutdown`'s
    /// answer still in the channel or not yet sent (`ringctl shutdown`:
    /// "the engine closed the connection", about once in 50 stops).
    #[test]
    fn an_answer_given_just_before_the_stop_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..40 {
            let path = dir.path().join(format!("s{round}.sock"));
            let opts = ServerOptions {
                path: path.clone(),
                max_clients: 4,
                idle_timeout: Duration::from_secs(60),
                notify: None,
                create_dir: false,
            };
            let server = Server::start(&opts).unwrap();
            let mut client = UnixStream::connect(&path).unwrap();
            client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            client.write_all(b"{\"id\":7,\"cmd\":\"shutdown\"}\n").unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            let incoming = loop {
                if let Some(i) = server.poll() {
                    break i;
                }
                assert!(Instant::now() < deadline, "the request never came");
                std::thread::sleep(Duration::from_millis(1));
            };
            server.answer(incoming.client, &Response::new(Some(7), Ok(serde_json::json!({ "stopping": true }))));
            drop(server);
            let mut line = String::new();
            BufReader::new(&client).read_line(&mut line).unwrap();
            assert_eq!(line, "{\"id\":7,\"ok\":true,\"result\":{\"stopping\":true}}\n", "round {round}");
        }
    }
}
