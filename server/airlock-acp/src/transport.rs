//! Newline-delimited JSON-RPC framing over tokio byte streams, shared by the client side and the
//! scripted agent.
//!
//! Guarantees: a line longer than the configured cap is never buffered whole (it is skipped while
//! it streams past and reported as a [`LineIssue`]); a line that is not UTF-8 or not JSON is
//! reported and never handed to the SDK; every line that is handed on, and every line written, is
//! first shown to the optional [`TrafficTap`] exactly as it travels on the wire.

use std::io;
use std::sync::Arc;

use futures::{Sink, Stream};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// Which way a JSON-RPC line travelled, from the point of view of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Read from the peer.
    Incoming,
    /// Written to the peer.
    Outgoing,
}

/// Observer of every JSON-RPC line on a connection (used by tests to validate the traffic
/// against the ACP schema, and available for protocol debugging).
pub type TrafficTap = Arc<dyn Fn(Direction, &str) + Send + Sync>;

/// A line from the peer that could not be passed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineIssue {
    /// The line exceeded the size cap; `bytes` is how long it turned out to be.
    TooLong { bytes: usize, limit: usize },
    /// The line was not valid UTF-8.
    NotUtf8,
    /// The line was not valid JSON.
    InvalidJson { error: String, excerpt: String },
}

impl std::fmt::Display for LineIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineIssue::TooLong { bytes, limit } => write!(
                f,
                "message of {bytes} bytes exceeds the {limit}-byte limit and was dropped"
            ),
            LineIssue::NotUtf8 => write!(f, "message is not valid UTF-8 and was dropped"),
            LineIssue::InvalidJson { error, excerpt } => {
                write!(
                    f,
                    "invalid JSON ({error}) in message starting with {excerpt:?}; dropped"
                )
            }
        }
    }
}

enum ReadLine {
    Line,
    TooLong(usize),
    Eof,
}

/// Reads one `\n`-terminated line into `buf` without ever holding more than `limit` bytes.
async fn read_capped_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    limit: usize,
    buf: &mut Vec<u8>,
) -> io::Result<ReadLine> {
    buf.clear();
    let mut total = 0usize;
    let mut overflow = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if total == 0 {
                ReadLine::Eof
            } else if overflow {
                ReadLine::TooLong(total)
            } else {
                ReadLine::Line
            });
        }
        let (chunk, found_newline) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..i], true),
            None => (available, false),
        };
        total += chunk.len();
        if !overflow {
            if total > limit {
                overflow = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let consumed = chunk.len() + usize::from(found_newline);
        reader.consume(consumed);
        if found_newline {
            return Ok(if overflow {
                ReadLine::TooLong(total)
            } else {
                ReadLine::Line
            });
        }
    }
}

fn excerpt(line: &str) -> String {
    line.chars().take(80).collect()
}

/// Checks one raw line; `Ok(None)` for a blank line (skipped silently, as the SDK does).
fn check_line(bytes: Vec<u8>) -> Result<Option<String>, LineIssue> {
    let line = String::from_utf8(bytes).map_err(|_| LineIssue::NotUtf8)?;
    let trimmed = line.trim_end_matches('\r');
    if trimmed.trim().is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<serde::de::IgnoredAny>(trimmed) {
        Ok(_) => Ok(Some(trimmed.to_owned())),
        Err(error) => Err(LineIssue::InvalidJson {
            error: error.to_string(),
            excerpt: excerpt(trimmed),
        }),
    }
}

/// Something that learns about dropped lines; async so the client can apply backpressure.
pub(crate) type IssueReporter =
    Arc<dyn Fn(LineIssue) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// The incoming half: a stream of checked JSON lines for the SDK's `Lines` transport.
pub(crate) fn incoming_lines<R>(
    reader: R,
    limit: usize,
    tap: Option<TrafficTap>,
    report: IssueReporter,
) -> impl Stream<Item = io::Result<String>> + Send + 'static
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let state = (BufReader::with_capacity(64 * 1024, reader), Vec::new());
    futures::stream::unfold(state, move |(mut reader, mut buf)| {
        let tap = tap.clone();
        let report = report.clone();
        async move {
            loop {
                match read_capped_line(&mut reader, limit, &mut buf).await {
                    Err(error) => return Some((Err(error), (reader, buf))),
                    Ok(ReadLine::Eof) => return None,
                    Ok(ReadLine::TooLong(bytes)) => {
                        report(LineIssue::TooLong { bytes, limit }).await
                    }
                    Ok(ReadLine::Line) => match check_line(std::mem::take(&mut buf)) {
                        Ok(None) => {}
                        Ok(Some(line)) => {
                            if let Some(tap) = &tap {
                                tap(Direction::Incoming, &line);
                            }
                            return Some((Ok(line), (reader, buf)));
                        }
                        Err(issue) => report(issue).await,
                    },
                }
            }
        }
    })
}

/// The outgoing half: a sink of JSON lines (without their newline) for the SDK's `Lines`.
///
/// The SDK flushes after every message; writing each line with its own flush costs a syscall
/// (and, for tokio's stdout, a blocking-pool round trip) per message. A writer task instead
/// takes every line queued so far, writes them through one buffer and flushes once the queue is
/// empty: one flush per burst under load, no added latency when idle. Dropping the sink lets the
/// task write what is queued, then closes the writer (the peer sees EOF); the returned handle
/// completes then.
pub(crate) fn outgoing_lines<W>(
    writer: W,
    tap: Option<TrafficTap>,
) -> (
    impl Sink<String, Error = io::Error> + Send + 'static,
    tokio::task::JoinHandle<()>,
)
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let task = tokio::spawn(async move {
        let mut writer = tokio::io::BufWriter::with_capacity(64 * 1024, writer);
        while let Some(line) = rx.recv().await {
            let mut next = Some(line);
            while let Some(line) = next {
                if writer.write_all(line.as_bytes()).await.is_err()
                    || writer.write_all(b"\n").await.is_err()
                {
                    // The peer closed its input; the connection notices through its reader.
                    return;
                }
                next = rx.try_recv().ok();
            }
            if writer.flush().await.is_err() {
                return;
            }
        }
        let _ = writer.shutdown().await;
    });
    let sink = futures::sink::unfold(tx, move |tx, line: String| {
        let tap = tap.clone();
        async move {
            if let Some(tap) = &tap {
                tap(Direction::Outgoing, &line);
            }
            tx.send(line).map_err(|_| {
                io::Error::new(io::ErrorKind::BrokenPipe, "the peer stopped reading")
            })?;
            Ok(tx)
        }
    });
    (sink, task)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use futures::StreamExt;
    use std::sync::Mutex;

    fn collect(input: &'static [u8], limit: usize) -> (Vec<String>, Vec<LineIssue>) {
        let issues = Arc::new(Mutex::new(Vec::new()));
        let sink = issues.clone();
        let report: IssueReporter = Arc::new(move |issue| {
            sink.lock().unwrap().push(issue);
            Box::pin(async {})
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let lines = rt.block_on(
            incoming_lines(input, limit, None, report)
                .map(|l| l.unwrap())
                .collect::<Vec<_>>(),
        );
        let issues = issues.lock().unwrap().clone();
        (lines, issues)
    }

    #[test]
    fn splits_lines_and_skips_blank_ones() {
        let (lines, issues) = collect(b"{\"a\":1}\n\n{\"b\":2}\r\n[3]", 100);
        assert_eq!(lines, vec!["{\"a\":1}", "{\"b\":2}", "[3]"]);
        assert!(issues.is_empty());
    }

    #[test]
    fn drops_oversized_and_invalid_lines_but_keeps_going() {
        let (lines, issues) = collect(
            b"{\"big\":\"xxxxxxxxxxxxxxxxxxxx\"}\nnot json\n{\"ok\":true}\n",
            20,
        );
        assert_eq!(lines, vec!["{\"ok\":true}"]);
        assert_eq!(issues.len(), 2);
        assert_eq!(
            issues[0],
            LineIssue::TooLong {
                bytes: 30,
                limit: 20
            }
        );
        assert!(matches!(issues[1], LineIssue::InvalidJson { .. }));
    }

    proptest::proptest! {
        /// Whatever the buffer boundaries, every line comes out whole (or is reported with its
        /// exact length when over the limit), and nothing over the limit is ever buffered.
        #[test]
        fn capped_lines_survive_any_buffer_boundaries(
            lines in proptest::collection::vec("[a-z{}\":,0-9 ]{0,40}", 0..20),
            capacity in 1usize..17,
            limit in 0usize..30,
        ) {
            let input = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let got = rt.block_on(async {
                let mut reader = BufReader::with_capacity(capacity, input.as_bytes());
                let mut buf = Vec::new();
                let mut got = Vec::new();
                loop {
                    match read_capped_line(&mut reader, limit, &mut buf).await.unwrap() {
                        ReadLine::Eof => break,
                        ReadLine::Line => {
                            proptest::prop_assert!(buf.len() <= limit);
                            got.push(Ok(String::from_utf8(buf.clone()).unwrap()));
                        }
                        ReadLine::TooLong(n) => got.push(Err(n)),
                    }
                }
                Ok(got)
            })?;
            let want: Vec<Result<String, usize>> = lines
                .iter()
                .map(|l| if l.len() > limit { Err(l.len()) } else { Ok(l.clone()) })
                .collect();
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn reports_non_utf8() {
        let (lines, issues) = collect(b"\xff\xfe\n{}\n", 100);
        assert_eq!(lines, vec!["{}"]);
        assert_eq!(issues, vec![LineIssue::NotUtf8]);
    }
}
