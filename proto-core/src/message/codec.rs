//! Primitive wire types: big-endian integers, `bool`, `bytes32`, `str` (u16
//! length + UTF-8) and `list<T>` (u16 count + items).
//!
//! The reader never indexes, never trusts a length before comparing it with
//! both the field's limit and the bytes left, and so never allocates more than
//! the input could fill.

use crate::message::error::MessageError;

/// A cursor over one message's bytes.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// Takes exactly `n` bytes.
    fn take(&mut self, n: usize) -> Result<&'a [u8], MessageError> {
        if n > self.rest.len() {
            return Err(MessageError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], MessageError> {
        let (head, tail) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(MessageError::Truncated)?;
        self.rest = tail;
        Ok(*head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, MessageError> {
        self.array::<1>().map(|[b]| b)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, MessageError> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, MessageError> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, MessageError> {
        self.array().map(u64::from_be_bytes)
    }

    pub(crate) fn bytes32(&mut self) -> Result<[u8; 32], MessageError> {
        self.array()
    }

    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, MessageError> {
        match self.u8()? {
            0x00 => Ok(false),
            0x01 => Ok(true),
            value => Err(MessageError::InvalidBool { field, value }),
        }
    }

    /// A `str` of at most `max` bytes. The length is checked against `max`
    /// before the bytes are looked at; UTF-8 is checked strictly.
    pub(crate) fn str(&mut self, field: &'static str, max: usize) -> Result<&'a str, MessageError> {
        let len = usize::from(self.u16()?);
        if len > max {
            return Err(MessageError::TooLong { field, max });
        }
        let raw = self.take(len)?;
        core::str::from_utf8(raw).map_err(|_| MessageError::InvalidUtf8 { field })
    }

    /// A `list<T>` count, checked against `max` and against the bytes left
    /// (each item needs at least `min_item_bytes`), so the caller may
    /// pre-allocate `count` items.
    pub(crate) fn count(
        &mut self,
        field: &'static str,
        max: usize,
        min_item_bytes: usize,
    ) -> Result<usize, MessageError> {
        let count = usize::from(self.u16()?);
        if count > max {
            return Err(MessageError::TooManyItems { field, max });
        }
        if count.saturating_mul(min_item_bytes) > self.rest.len() {
            return Err(MessageError::Truncated);
        }
        Ok(count)
    }

    /// Succeeds only if every byte was consumed.
    pub(crate) fn finish(self) -> Result<(), MessageError> {
        match self.rest.len() {
            0 => Ok(()),
            count => Err(MessageError::TrailingBytes { count }),
        }
    }
}

/// Where encoded bytes go: a buffer, or a counter used to size one exactly
/// (so a buffer holding a password never reallocates and leaves copies).
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);

    fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }
    fn u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.put(&v.to_be_bytes());
    }
    fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    /// Callers pass only validated strings, all far below 65 535 bytes.
    fn str(&mut self, s: &str) {
        self.len16(s.len());
        self.put(s.as_bytes());
    }
    /// A u16 length or count. Every caller's value is bounded by a validated
    /// type's limit (all < 65 535), so saturation never happens in practice;
    /// it exists only so that encoding has no panic path.
    fn len16(&mut self, n: usize) {
        self.u16(u16::try_from(n).unwrap_or(u16::MAX));
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Counts bytes instead of storing them.
#[derive(Default)]
pub(crate) struct ByteCounter(pub(crate) usize);

impl Sink for ByteCounter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 = self.0.saturating_add(bytes.len());
    }
}

/// Encoded sizes of the primitive types, for limit arithmetic.
pub(crate) const U16_BYTES: usize = 2;
pub(crate) const U64_BYTES: usize = 8;
