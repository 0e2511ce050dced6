//! ringwire-tools: `ringctl`, the command-line client of a running engine's
//! control socket, and the small client library it is built on.
//!
//! [`Client`] sends one request line and reads its answer; the protocol's
//! types come from `ringwire_engine::control::protocol`. [`prometheus`]
//! renders the engine's counters for a Prometheus scraper.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

pub mod prometheus;

use ringwire_engine::control::protocol::Response;
use serde_json::Value;

/// A JSON value as text: a string without its quotes, `null` as `null_as`,
/// anything else as JSON.
#[must_use]
pub fn value_text(v: &Value, null_as: &str) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => null_as.to_owned(),
        other => other.to_string(),
    }
}

/// An I/O failure on the connection: a socket timeout (EAGAIN or
/// ETIMEDOUT) is [`ClientError::Timeout`], anything else says `what` failed.
fn io_error(timeout: Duration, what: &str, e: std::io::Error) -> ClientError {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => ClientError::Timeout(timeout),
        _ => ClientError::Io(format!("{what}: {e}")),
    }
}

/// A connection to an engine's control socket.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    timeout: Duration,
}

/// Why a request did not get an answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The socket could not be reached.
    #[error("cannot connect: {0}")]
    Connect(#[source] std::io::Error),
    /// The connection failed or the answer was not one.
    #[error("{0}")]
    Io(String),
    /// No answer (or the request could not be sent) within the timeout.
    #[error("no answer within {} s", .0.as_secs_f64())]
    Timeout(Duration),
}

impl Client {
    /// Connect to the socket at `path`; answers are awaited at most `timeout`.
    ///
    /// # Errors
    /// [`ClientError::Connect`].
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self, ClientError> {
        // (The kernel's own words for it are "path must be shorter than SUN_LEN".)
        let (len, max) = (path.as_os_str().len(), ringwire_engine::control::server::SOCKET_PATH_MAX);
        if len > max {
            return Err(ClientError::Connect(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("a socket's path holds at most {max} bytes: this one has {len}"),
            )));
        }
        let s = UnixStream::connect(path).map_err(ClientError::Connect)?;
        s.set_read_timeout(Some(timeout)).map_err(ClientError::Connect)?;
        s.set_write_timeout(Some(timeout)).map_err(ClientError::Connect)?;
        let writer = s.try_clone().map_err(ClientError::Connect)?;
        Ok(Self { reader: BufReader::new(s), writer, next_id: 1, timeout })
    }

    /// Send `cmd` with `args` and wait for its answer.
    ///
    /// # Errors
    /// [`ClientError::Timeout`] when the engine does not answer in time,
    /// [`ClientError::Io`] when the connection fails or the answer is not one.
    pub fn call(&mut self, cmd: &str, args: Value) -> Result<Response, ClientError> {
        let timeout = self.timeout;
        let io = move |what: &str, e: std::io::Error| io_error(timeout, what, e);
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::json!({ "id": id, "cmd": cmd, "args": args }).to_string();
        line.push('\n');
        if let Err(e) = self.writer.write_all(line.as_bytes()) {
            // An engine with no room for another client answers with a
            // refusal and ends the connection, maybe before the request
            // went: that refusal is the answer.
            if matches!(e.kind(), std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset) {
                if let Ok(r @ Response { id: None, .. }) = self.next_answer(&io) {
                    return Ok(r);
                }
            }
            return Err(io("sending", e));
        }
        loop {
            let r = self.next_answer(&io)?;
            // An answer without our id (a refusal when the engine is full) is ours too.
            if r.id == Some(id) || r.id.is_none() {
                return Ok(r);
            }
        }
    }

    /// Wait until the engine ends the connection (it does once it has
    /// stopped: queues drained, files closed, its socket removed).
    ///
    /// # Errors
    /// [`ClientError::Timeout`] when it has not within the timeout,
    /// [`ClientError::Io`] when the connection fails otherwise.
    pub fn wait_closed(&mut self) -> Result<(), ClientError> {
        let mut line = String::new();
        loop {
            line.clear();
            match self.reader.read_line(&mut line) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
                Err(e) => return Err(io_error(self.timeout, "waiting for the engine to stop", e)),
            }
        }
    }

    /// The next answer line on the connection.
    fn next_answer(&mut self, io: &impl Fn(&str, std::io::Error) -> ClientError) -> Result<Response, ClientError> {
        let mut answer = String::new();
        match self.reader.read_line(&mut answer) {
            Ok(0) => return Err(ClientError::Io("the engine closed the connection".into())),
            Ok(_) => {}
            Err(e) => return Err(io("reading the answer", e)),
        }
        serde_json::from_str(&answer).map_err(|e| ClientError::Io(format!("not an answer ({e}): {}", answer.trim())))
    }
}
