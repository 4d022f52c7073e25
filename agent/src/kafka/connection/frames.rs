//! Reading frames under the request budget (`queued.max.request.bytes`): the
//! budget shared by connections, and the reader that takes a frame's share
//! after its length prefix and before its body.

use std::io;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::kafka::codec::{self, LENGTH_PREFIX_BYTES, ProtocolError};

/// `queued.max.request.bytes`: request bytes read and not yet answered, shared
/// by every connection of a [`serve`](crate::kafka::serve) (a connection served alone
/// has a budget of its own).
///
/// A frame takes its share once its length prefix is read and before any of
/// its body is ([`FrameReader`]), and holds it until its response is written
/// or it is dropped, whatever it does meanwhile (a produce awaiting its
/// commit, a fetch long-polling). A frame larger than the
/// whole budget waits for all of it. Shares are granted first come, first
/// served, so a large frame is not overtaken by smaller ones forever.
#[derive(Debug, Clone)]
pub(in crate::kafka) struct RequestBudget {
    pub(super) bytes: Arc<Semaphore>,
    capacity: usize,
}

impl RequestBudget {
    /// A budget of `capacity` bytes (at least one; at most what a semaphore
    /// counts).
    pub(in crate::kafka) fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            bytes: Arc::new(Semaphore::new(capacity)),
            capacity,
        }
    }

    /// Waits for the share of a frame of `length` bytes. Cancel-safe as a
    /// future kept across polls (dropping it gives up its place in line).
    fn acquire(&self, length: usize) -> Acquire {
        let share = u32::try_from(length.min(self.capacity)).unwrap_or(u32::MAX);
        Box::pin(self.bytes.clone().acquire_many_owned(share))
    }
}

type Acquire = BoxFuture<'static, Result<OwnedSemaphorePermit, AcquireError>>;

/// Why no frame was read.
#[derive(Debug)]
pub(super) enum ReadError {
    Io(io::Error),
    Protocol(ProtocolError),
}

impl From<io::Error> for ReadError {
    fn from(error: io::Error) -> Self {
        ReadError::Io(error)
    }
}

impl From<ProtocolError> for ReadError {
    fn from(error: ProtocolError) -> Self {
        ReadError::Protocol(error)
    }
}

/// A frame's body and its share of the request budget.
#[derive(Debug)]
pub(super) struct Frame {
    pub(super) body: Bytes,
    pub(super) share: OwnedSemaphorePermit,
}

/// Where a [`FrameReader`] is in the frame it reads.
enum ReadState {
    /// Reading the length prefix.
    Length {
        prefix: [u8; LENGTH_PREFIX_BYTES],
        filled: usize,
    },
    /// Waiting for the share of the request budget a body of `length` bytes
    /// needs.
    Budget { length: usize, acquire: Acquire },
    /// Reading a body of `length` bytes, its share held since `granted_at`.
    Body {
        body: BytesMut,
        length: usize,
        share: OwnedSemaphorePermit,
        granted_at: Instant,
    },
}

impl ReadState {
    fn start() -> Self {
        ReadState::Length {
            prefix: [0; LENGTH_PREFIX_BYTES],
            filled: 0,
        }
    }
}

/// Reads frames: the length prefix, checked ([`codec::frame_length`]); then
/// the frame's share of the request budget; then, and only then, the body.
///
/// [`FrameReader::next`] is cancel-safe: what it has read, and its place in
/// line for the budget, are kept in its state, so a `select!` may drop the
/// call and the next one goes on.
pub(super) struct FrameReader<R> {
    reader: R,
    max_request_bytes: usize,
    budget: RequestBudget,
    state: ReadState,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(super) fn new(reader: R, max_request_bytes: usize, budget: RequestBudget) -> Self {
        Self {
            reader,
            max_request_bytes,
            budget,
            state: ReadState::start(),
        }
    }

    /// Whether the next frame waits for its share of the request budget.
    pub(super) fn waiting_for_budget(&self) -> bool {
        matches!(self.state, ReadState::Budget { .. })
    }

    /// When the frame being read got its share of the budget.
    pub(super) fn share_granted_at(&self) -> Option<Instant> {
        match &self.state {
            ReadState::Body { granted_at, .. } => Some(*granted_at),
            ReadState::Length { .. } | ReadState::Budget { .. } => None,
        }
    }

    /// The next frame; `None` if the peer closed the stream between frames.
    /// Cancel-safe.
    pub(super) async fn next(&mut self) -> Result<Option<Frame>, ReadError> {
        loop {
            match &mut self.state {
                ReadState::Length { prefix, filled } => {
                    let read = self.reader.read(&mut prefix[*filled..]).await?;
                    if read == 0 {
                        if *filled == 0 {
                            return Ok(None);
                        }
                        return Err(truncated().into());
                    }
                    *filled += read;
                    if *filled == LENGTH_PREFIX_BYTES {
                        let length = codec::frame_length(*prefix, self.max_request_bytes)?;
                        self.state = ReadState::Budget {
                            length,
                            acquire: self.budget.acquire(length),
                        };
                    }
                }
                ReadState::Budget { length, acquire } => {
                    let share = acquire
                        .await
                        .map_err(|_| io::Error::other("the request budget was closed"))?;
                    self.state = ReadState::Body {
                        body: BytesMut::with_capacity(*length),
                        length: *length,
                        share,
                        granted_at: Instant::now(),
                    };
                }
                ReadState::Body { body, length, .. } => {
                    let missing = *length - body.len();
                    if missing > 0 {
                        let mut room = (&mut *body).limit(missing);
                        if self.reader.read_buf(&mut room).await? == 0 {
                            return Err(truncated().into());
                        }
                    }
                    if body.len() == *length
                        && let ReadState::Body { body, share, .. } =
                            std::mem::replace(&mut self.state, ReadState::start())
                    {
                        return Ok(Some(Frame {
                            body: body.freeze(),
                            share,
                        }));
                    }
                }
            }
        }
    }
}

fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the peer closed the connection in the middle of a frame",
    )
}
