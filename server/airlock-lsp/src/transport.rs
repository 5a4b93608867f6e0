//! A framing guard between stdio and tower-lsp.
//!
//! tower-lsp's reader stops for good at the first undecodable frame (tokio-util ends a
//! `FramedRead` after an error), which would turn one bad message from an editor into a dead
//! server. This guard reads frames itself, forwards only well-formed JSON to tower-lsp, answers
//! the rest with the JSON-RPC `ParseError` the spec asks for, and resynchronises on the next
//! header. Output from tower-lsp is copied to stdout frame by frame so the guard's own replies
//! never land in the middle of another message.

use serde_json::json;
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream,
};
use tokio::sync::mpsc;

/// Largest message accepted from the editor; larger ones are skipped with an error reply.
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Frames waiting for stdout.
const OUT_FRAMES: usize = 64;

/// Returns the (input, output) pair to give to `tower_lsp_server::Server::new`.
pub fn guard(
    stdin: impl AsyncRead + Unpin + Send + 'static,
    stdout: impl AsyncWrite + Unpin + Send + 'static,
) -> (DuplexStream, DuplexStream) {
    let (server_in, mut to_server) = tokio::io::duplex(1 << 16);
    let (from_server, server_out) = tokio::io::duplex(1 << 16);
    // Bounded: when the editor stops reading, backpressure reaches tower-lsp's client (and the
    // telemetry pump, which then drops and counts) instead of frames piling up here.
    let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(OUT_FRAMES);
    let errors_tx = out_tx.clone();
    tokio::spawn(async move {
        let mut reader = BufReader::new(stdin);
        loop {
            match read_frame(&mut reader).await {
                Frame::Message(body) => {
                    let header = format!("Content-Length: {}\r\n\r\n", body.len());
                    if to_server.write_all(header.as_bytes()).await.is_err()
                        || to_server.write_all(&body).await.is_err()
                    {
                        return;
                    }
                }
                Frame::Invalid(reason) => {
                    tracing::warn!("discarding malformed message from the editor: {reason}");
                    let _ = errors_tx
                        .send(frame(&error_reply(-32700, "Parse error", &reason, None)))
                        .await;
                }
                Frame::NotJsonRpc(reason, id) => {
                    tracing::warn!("discarding invalid JSON-RPC message from the editor: {reason}");
                    let _ = errors_tx
                        .send(frame(&error_reply(-32600, "Invalid request", reason, id)))
                        .await;
                }
                Frame::End => return, // dropping `to_server` tells tower-lsp the input ended
            }
        }
    });
    tokio::spawn(forward_server_frames(from_server, out_tx));
    tokio::spawn(write_frames(stdout, out_rx));
    (server_in, server_out)
}

enum Frame {
    Message(Vec<u8>),
    /// Not parseable: answered with ParseError.
    Invalid(String),
    /// Valid JSON but not JSON-RPC: answered with InvalidRequest (echoing the id if any).
    NotJsonRpc(&'static str, Option<serde_json::Value>),
    End,
}

async fn read_frame(reader: &mut (impl AsyncBufReadExt + Unpin)) -> Frame {
    let mut length: Option<Result<usize, String>> = None;
    let mut saw_header = false;
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return Frame::End,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            if saw_header {
                break;
            }
            continue; // stray blank line between messages
        }
        saw_header = true;
        // Resynchronise after garbage: a header may follow leftover bytes on the same line.
        let text = match text.to_ascii_lowercase().find("content-length:") {
            Some(at) => &text[at..],
            None => text,
        };
        if let Some((name, value)) = text.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = Some(
                value
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| format!("invalid Content-Length {:?}", value.trim())),
            );
        }
    }
    let length = match length {
        None => return Frame::Invalid("message without a Content-Length header".into()),
        Some(Err(reason)) => return Frame::Invalid(reason),
        Some(Ok(n)) => n,
    };
    if length > MAX_MESSAGE {
        // Skip the body without buffering it.
        let skipped =
            tokio::io::copy(&mut reader.take(length as u64), &mut tokio::io::sink()).await;
        return match skipped {
            Ok(n) if n == length as u64 => Frame::Invalid(format!(
                "message of {length} bytes exceeds the {MAX_MESSAGE} byte limit"
            )),
            _ => Frame::End,
        };
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).await.is_err() {
        return Frame::End;
    }
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v) => match invalid_message(&v) {
            None => Frame::Message(body),
            Some(reason) => Frame::NotJsonRpc(reason, v.get("id").cloned()),
        },
        Err(e) => Frame::Invalid(format!("invalid JSON: {e}")),
    }
}

/// Why a JSON value is not a JSON-RPC 2.0 message tower-lsp can decode, if it is not.
fn invalid_message(v: &serde_json::Value) -> Option<&'static str> {
    use serde_json::Value;
    let Value::Object(map) = v else {
        return Some("a JSON-RPC message must be an object");
    };
    if map.get("jsonrpc") != Some(&Value::String("2.0".into())) {
        return Some("missing \"jsonrpc\": \"2.0\"");
    }
    match (map.get("method"), map.get("id")) {
        (Some(Value::String(_)), _) => {}
        (Some(_), _) => return Some("\"method\" must be a string"),
        (None, Some(_)) if map.contains_key("result") || map.contains_key("error") => {}
        (None, _) => return Some("neither a request, a notification nor a response"),
    }
    match map.get("params") {
        None | Some(Value::Object(_)) | Some(Value::Array(_)) | Some(Value::Null) => None,
        Some(_) => Some("\"params\" must be an object or an array"),
    }
}

fn error_reply(code: i32, what: &str, reason: &str, id: Option<serde_json::Value>) -> Vec<u8> {
    let id = id.unwrap_or(serde_json::Value::Null);
    let v = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": format!("{what}: {reason}")}});
    serde_json::to_vec(&v).unwrap_or_default()
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// Copies complete frames from tower-lsp into the writer's queue.
async fn forward_server_frames(from_server: DuplexStream, out: mpsc::Sender<Vec<u8>>) {
    let mut reader = BufReader::new(from_server);
    loop {
        match read_frame(&mut reader).await {
            Frame::Message(body) => {
                if out.send(frame(&body)).await.is_err() {
                    return;
                }
            }
            Frame::Invalid(reason) => tracing::error!("server produced an invalid frame: {reason}"),
            Frame::NotJsonRpc(_, _) => tracing::error!("server produced an invalid frame"),
            Frame::End => return,
        }
    }
}

/// The only writer of stdout: whole frames, one at a time.
async fn write_frames(mut stdout: impl AsyncWrite + Unpin, mut frames: mpsc::Receiver<Vec<u8>>) {
    while let Some(bytes) = frames.recv().await {
        if stdout.write_all(&bytes).await.is_err() || stdout.flush().await.is_err() {
            return;
        }
    }
}
