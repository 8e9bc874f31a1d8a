//! Server-side line framing: splits a byte stream into lines of bounded length without I/O,
//! so a slow or hostile client cannot make the daemon buffer without limit.

use thiserror::Error;

use crate::vocabulary::strip_terminator;

/// Longest request line in bytes, including its terminator.
pub const MAX_LINE: usize = 1024;

/// A line exceeded the bound; `Display` is the exact text of error 8. The connection is then
/// closed because the rest of that line cannot be resynchronised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("Line too long: at most {max} bytes per line; closing connection")]
pub struct LineTooLong {
    pub max: usize,
}

/// Accumulates bytes and yields complete lines (without "\n" or "\r\n").
///
/// Each byte is scanned once and the consumed prefix is only compacted once it outweighs the
/// rest, so the total work is linear in the input.
#[derive(Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    /// Start of the first line not yet returned.
    start: usize,
    /// Everything before this index has been searched for '\n'.
    scanned: usize,
    max: usize,
    overflowed: bool,
}

impl LineBuffer {
    /// `max` is the longest line accepted, in bytes including the terminator.
    pub fn new(max: usize) -> Self {
        LineBuffer {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            max,
            overflowed: false,
        }
    }

    /// Appends received bytes; ignored once the buffer has overflowed.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.overflowed {
            return;
        }
        if self.start > 0 && self.start >= self.buf.len() - self.start {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete line, `None` if more bytes are needed, or `Err` once when a line
    /// exceeds the bound (as soon as that is certain); after that always `None`.
    pub fn next_line(&mut self) -> Option<Result<Vec<u8>, LineTooLong>> {
        if self.overflowed {
            return None;
        }
        match self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
            Some(offset) => {
                let end = self.scanned + offset + 1;
                if end - self.start > self.max {
                    return Some(Err(self.overflow()));
                }
                let line = strip_terminator(&self.buf[self.start..end]).to_vec();
                self.start = end;
                self.scanned = end;
                Some(Ok(line))
            }
            None => {
                self.scanned = self.buf.len();
                let pending = self.buf.len() - self.start;
                // Even a '\n' arriving next would make this line longer than `max`.
                (pending > 0 && pending >= self.max).then(|| Err(self.overflow()))
            }
        }
    }

    fn overflow(&mut self) -> LineTooLong {
        self.overflowed = true;
        self.buf = Vec::new();
        self.start = 0;
        self.scanned = 0;
        LineTooLong { max: self.max }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(buffer: &mut LineBuffer) -> Vec<Result<Vec<u8>, LineTooLong>> {
        std::iter::from_fn(|| buffer.next_line()).collect()
    }

    #[test]
    fn splits_lf_and_crlf_and_keeps_partial_lines() {
        let mut buffer = LineBuffer::new(MAX_LINE);
        buffer.push(b"join a\r\nquit\n\npart");
        assert_eq!(
            drain(&mut buffer),
            vec![Ok(b"join a".to_vec()), Ok(b"quit".to_vec()), Ok(Vec::new())]
        );
        buffer.push(b"ial\r");
        assert_eq!(buffer.next_line(), None);
        buffer.push(b"\n");
        assert_eq!(buffer.next_line(), Some(Ok(b"partial".to_vec())));
        assert_eq!(buffer.next_line(), None);
    }

    #[test]
    fn bound_includes_the_terminator() {
        let mut buffer = LineBuffer::new(4);
        buffer.push(b"abc\nab\r\n");
        assert_eq!(
            drain(&mut buffer),
            vec![Ok(b"abc".to_vec()), Ok(b"ab".to_vec())]
        );
        buffer.push(b"abc\r\n");
        assert_eq!(drain(&mut buffer), vec![Err(LineTooLong { max: 4 })]);
    }

    #[test]
    fn overflow_is_reported_before_the_newline_and_only_once() {
        let mut buffer = LineBuffer::new(MAX_LINE);
        buffer.push(&[b'x'; MAX_LINE - 1]);
        assert_eq!(buffer.next_line(), None);
        buffer.push(b"x");
        assert_eq!(buffer.next_line(), Some(Err(LineTooLong { max: MAX_LINE })));
        buffer.push(b"\nquit\n");
        assert_eq!(buffer.next_line(), None);
    }

    #[test]
    fn longest_line_fits() {
        let mut line = vec![b'x'; MAX_LINE - 1];
        line.push(b'\n');
        let mut buffer = LineBuffer::new(MAX_LINE);
        buffer.push(&line);
        assert_eq!(buffer.next_line(), Some(Ok(vec![b'x'; MAX_LINE - 1])));
    }

    #[test]
    fn compacts_consumed_prefix() {
        let mut buffer = LineBuffer::new(16);
        for _ in 0..1000 {
            buffer.push(b"ping\npi");
            assert_eq!(buffer.next_line(), Some(Ok(b"ping".to_vec())));
            buffer.push(b"ng\n");
            assert_eq!(buffer.next_line(), Some(Ok(b"ping".to_vec())));
            assert_eq!(buffer.next_line(), None);
        }
        assert!(buffer.buf.len() < 32);
    }

    #[test]
    fn error_text() {
        assert_eq!(
            LineTooLong { max: MAX_LINE }.to_string(),
            "Line too long: at most 1024 bytes per line; closing connection"
        );
    }
}
