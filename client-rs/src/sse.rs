//! A Server-Sent Events parser: bytes in, events out (the `event`, `id` and
//! `data` fields of the WHATWG format; comments and other fields ignored).

/// One event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Event {
    /// `event:` (`message` when absent).
    pub(crate) kind: String,
    /// `id:`, when the event had one.
    pub(crate) id: Option<String>,
    /// The `data:` lines, joined by `\n`.
    pub(crate) data: String,
}

/// Bytes of a stream so far, cut into events as lines complete.
#[derive(Debug, Default)]
pub(crate) struct Parser {
    buffer: Vec<u8>,
    /// A `\r` ended the last line: a `\n` right after it belongs to it.
    after_cr: bool,
    kind: Option<String>,
    id: Option<String>,
    data: Option<String>,
}

impl Parser {
    /// Feeds `bytes`; the events they complete, in order.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        for &byte in bytes {
            if self.after_cr {
                self.after_cr = false;
                if byte == b'\n' {
                    continue;
                }
            }
            match byte {
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.buffer);
                    if let Some(event) = self.line(&line) {
                        events.push(event);
                    }
                }
                other => self.buffer.push(other),
            }
        }
        events
    }

    /// One complete line; an event when it is the blank line that ends one.
    fn line(&mut self, line: &[u8]) -> Option<Event> {
        if line.is_empty() {
            let kind = self.kind.take();
            let id = self.id.take();
            let data = self.data.take()?;
            return Some(Event {
                kind: kind.unwrap_or_else(|| "message".to_owned()),
                id,
                data,
            });
        }
        if line.first() == Some(&b':') {
            return None;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.kind = Some(value.to_owned()),
            "id" => self.id = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_are_whole() {
        let stream = b": heartbeat\n\nevent: record\nid: 3\ndata: {\"a\":1}\n\nevent:error\r\ndata:x\r\ndata: y\r\n\r\n";
        for cut in 0..stream.len() {
            let mut parser = Parser::default();
            let mut events = parser.feed(&stream[..cut]);
            events.extend(parser.feed(&stream[cut..]));
            assert_eq!(
                events,
                [
                    Event {
                        kind: "record".into(),
                        id: Some("3".into()),
                        data: "{\"a\":1}".into()
                    },
                    Event {
                        kind: "error".into(),
                        id: None,
                        data: "x\ny".into()
                    }
                ],
                "cut at {cut}"
            );
        }
    }
}
