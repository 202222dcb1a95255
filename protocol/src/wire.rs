//! Length-prefixed encodings shared by the digest, the associated data and the payload.

/// Appends `u16be(len) || bytes` (callers cap lengths well below 2^16).
pub(crate) fn put_lp16(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..usize::from(len)]);
}

/// Feeds `u16be(len) || bytes` into a digest.
pub(crate) fn digest_lp16(h: &mut sha2::Sha256, bytes: &[u8]) {
    use sha2::Digest;
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    h.update(len.to_be_bytes());
    h.update(&bytes[..usize::from(len)]);
}

/// A forward-only reader over a byte slice; every read is bounds-checked.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.array()?))
    }

    /// `u8(len) || bytes` as UTF-8.
    pub(crate) fn str8(&mut self) -> Option<&'a str> {
        let len = self.u8()?;
        core::str::from_utf8(self.take(usize::from(len))?).ok()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }
}
