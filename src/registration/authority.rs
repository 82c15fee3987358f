//! A bridge between kubelet and the registration server that rewrites HTTP/2 `:authority`.
//!
//! Kubelet's plugin watcher dials the registration socket by its bare path, so grpc-go sends that
//! path (`/var/lib/kubelet/plugins_registry/…-reg.sock`) as the `:authority` of every request
//! (kubernetes/kubernetes#109081). h2, the HTTP/2 layer under tonic, refuses an authority with a
//! `/` in it and resets the stream with PROTOCOL_ERROR, so kubelet never learns about the plugin.
//! Go servers (node-driver-registrar) do not check it. The bridge reads the client's frames,
//! decodes each request header block, sets `:authority` to `localhost` (meaningless on a Unix
//! socket anyway) and re-encodes the block; every other frame, and the whole server-to-client
//! direction, passes through untouched.

use std::io::{Error, ErrorKind};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};

/// The client connection preface (RFC 9113, 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Frame types (RFC 9113, 6).
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
/// Frame flags that matter for HEADERS / CONTINUATION.
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// Frames written here stay within HTTP/2's initial SETTINGS_MAX_FRAME_SIZE.
const MAX_FRAME: usize = 16_384;
/// Largest frame payload or header block accepted from the client; beyond it the connection ends.
const MAX_BLOCK: usize = 64 * 1024;
/// What `:authority` becomes.
const AUTHORITY: &[u8] = b"localhost";

/// Serves one client connection through the bridge: returns the in-process end that the gRPC
/// server reads, and spawns the task that copies between it and `client`.
pub fn bridge(client: tokio::net::UnixStream) -> DuplexStream {
    let (ours, theirs) = tokio::io::duplex(MAX_BLOCK);
    tokio::spawn(async move {
        let (mut client_rx, mut client_tx) = client.into_split();
        let (mut server_rx, mut server_tx) = tokio::io::split(ours);
        let up = async {
            let r = rewrite_requests(&mut client_rx, &mut server_tx).await;
            let _ = server_tx.shutdown().await;
            r
        };
        let down = async {
            let r = tokio::io::copy(&mut server_rx, &mut client_tx).await;
            let _ = client_tx.shutdown().await;
            r.map(|_| ())
        };
        let (up, down) = tokio::join!(up, down);
        if let Err(e) = up.and(down) {
            tracing::debug!(error = %e, "registration connection ended");
        }
    });
    theirs
}

/// A request header block still waiting for its CONTINUATION frames.
struct Block {
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
}

/// Copies the client's frames from `from` to `to`, rewriting every header block. Ends at the
/// client's end of stream; a malformed frame sequence is an error (the connection then closes).
pub async fn rewrite_requests<R, W>(from: &mut R, to: &mut W) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut preface = [0u8; 24];
    from.read_exact(&mut preface).await?;
    if &preface != PREFACE {
        return Err(bad("not an HTTP/2 connection preface"));
    }
    to.write_all(&preface).await?;
    let mut decoder = loona_hpack::Decoder::new();
    let mut pending: Option<Block> = None;
    loop {
        let mut head = [0u8; 9];
        match from.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        if len > MAX_BLOCK {
            return Err(bad("frame larger than the bridge accepts"));
        }
        let mut payload = vec![0u8; len];
        from.read_exact(&mut payload).await?;
        let block = match (kind, pending.take()) {
            (HEADERS, None) => {
                let (priority, fragment) = split_headers(flags, &payload)?;
                Block {
                    stream,
                    end_stream: flags & END_STREAM != 0,
                    priority,
                    fragment: fragment.to_vec(),
                }
            }
            (CONTINUATION, Some(mut block)) if block.stream == stream => {
                block.fragment.extend_from_slice(&payload);
                if block.fragment.len() > MAX_BLOCK {
                    return Err(bad("header block larger than the bridge accepts"));
                }
                block
            }
            (_, Some(_)) | (CONTINUATION, None) => {
                return Err(bad("header block interrupted or CONTINUATION out of place"));
            }
            (_, None) => {
                to.write_all(&head).await?;
                to.write_all(&payload).await?;
                continue;
            }
        };
        if flags & END_HEADERS == 0 {
            pending = Some(block);
            continue;
        }
        let headers = decoder
            .decode(&block.fragment)
            .map_err(|e| bad(&format!("header block does not decode: {e:?}")))?;
        to.write_all(&frames(&block, &encode(&headers))).await?;
    }
}

/// The header block fragment of a HEADERS payload, without padding, and its priority fields.
fn split_headers(flags: u8, payload: &[u8]) -> std::io::Result<(Option<[u8; 5]>, &[u8])> {
    let mut body = payload;
    let mut pad = 0;
    if flags & PADDED != 0 {
        let (&n, rest) = body
            .split_first()
            .ok_or_else(|| bad("empty padded HEADERS"))?;
        pad = usize::from(n);
        body = rest;
    }
    let mut priority = None;
    if flags & PRIORITY != 0 {
        if body.len() < 5 {
            return Err(bad("HEADERS too short for its priority"));
        }
        let (fields, rest) = body.split_at(5);
        priority = Some([fields[0], fields[1], fields[2], fields[3], fields[4]]);
        body = rest;
    }
    if pad > body.len() {
        return Err(bad("HEADERS padding longer than the frame"));
    }
    Ok((priority, &body[..body.len() - pad]))
}

/// HPACK block with every field as a literal without indexing (so the server's dynamic table is
/// never touched) and `:authority` replaced.
fn encode(headers: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in headers {
        let value = if name == b":authority" {
            AUTHORITY
        } else {
            value
        };
        out.push(0x00);
        for s in [name.as_slice(), value] {
            out.extend(loona_hpack::encoder::encode_integer(s.len(), 7));
            out.extend_from_slice(s);
        }
    }
    out
}

/// One HEADERS frame, followed by CONTINUATION frames if the block does not fit in one.
fn frames(block: &Block, encoded: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded.len() + 32);
    let first_room = MAX_FRAME - if block.priority.is_some() { 5 } else { 0 };
    let (first, mut rest) = encoded.split_at(encoded.len().min(first_room));
    let mut flags = if block.end_stream { END_STREAM } else { 0 };
    if block.priority.is_some() {
        flags |= PRIORITY;
    }
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    let priority = block.priority.as_ref().map_or(&[][..], |p| &p[..]);
    frame_head(
        &mut out,
        priority.len() + first.len(),
        HEADERS,
        flags,
        block.stream,
    );
    out.extend_from_slice(priority);
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME));
        let flags = if tail.is_empty() { END_HEADERS } else { 0 };
        frame_head(&mut out, chunk.len(), CONTINUATION, flags, block.stream);
        out.extend_from_slice(chunk);
        rest = tail;
    }
    out
}

fn frame_head(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    let len = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    out.extend_from_slice(&[len[1], len[2], len[3], kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
}

fn bad(what: &str) -> Error {
    Error::new(ErrorKind::InvalidData, what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers_frame(flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        frame_head(&mut out, payload.len(), HEADERS, flags, stream);
        out.extend_from_slice(payload);
        out
    }

    async fn rewrite(input: Vec<u8>) -> std::io::Result<Vec<u8>> {
        let mut from = std::io::Cursor::new(input);
        let mut to = Vec::new();
        rewrite_requests(&mut from, &mut to).await?;
        Ok(to)
    }

    /// Decodes the header blocks of the HEADERS frames that follow the preface in `out`.
    fn decoded(out: &[u8]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut decoder = loona_hpack::Decoder::new();
        let mut at = PREFACE.len();
        let mut blocks = Vec::new();
        while at < out.len() {
            let len = u32::from_be_bytes([0, out[at], out[at + 1], out[at + 2]]) as usize;
            let (kind, flags) = (out[at + 3], out[at + 4]);
            let body = &out[at + 9..at + 9 + len];
            if kind == HEADERS {
                let skip = if flags & PRIORITY != 0 { 5 } else { 0 };
                blocks.push(decoder.decode(&body[skip..]).unwrap());
            }
            at += 9 + len;
        }
        blocks
    }

    #[tokio::test]
    async fn authority_becomes_localhost_across_the_dynamic_table() {
        // A client encoder indexes the path authority on the first request and refers to the
        // table entry on the second, as grpc-go does on kubelet's connection.
        let mut client = loona_hpack::Encoder::new();
        let request: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":path", b"/pluginregistration.Registration/GetInfo"),
            (
                b":authority",
                b"/var/lib/kubelet/plugins_registry/x-reg.sock",
            ),
            (b"te", b"trailers"),
        ];
        let mut input = PREFACE.to_vec();
        input.extend(headers_frame(
            END_HEADERS,
            1,
            &client.encode(request.clone()),
        ));
        input.extend([0, 0, 0, 0x4, 0, 0, 0, 0, 0]); // an empty SETTINGS frame passes as is
        // Second request: padded, with priority, split over a CONTINUATION frame.
        let block = client.encode(request);
        let (a, b) = block.split_at(2);
        let mut padded = vec![3u8];
        padded.extend([0, 0, 0, 0, 16]);
        padded.extend_from_slice(a);
        padded.extend([0, 0, 0]);
        input.extend(headers_frame(PADDED | PRIORITY | END_STREAM, 3, &padded));
        frame_head(&mut input, b.len(), CONTINUATION, END_HEADERS, 3);
        input.extend_from_slice(b);

        let out = rewrite(input).await.unwrap();
        let blocks = decoded(&out);
        assert_eq!(blocks.len(), 2);
        for block in &blocks {
            let authority: Vec<_> = block.iter().filter(|(n, _)| n == b":authority").collect();
            assert_eq!(
                authority,
                [&(b":authority".to_vec(), b"localhost".to_vec())]
            );
            assert!(block.contains(&(
                b":path".to_vec(),
                b"/pluginregistration.Registration/GetInfo".to_vec()
            )));
        }
        assert!(
            out.windows(9).any(|w| w == [0, 0, 0, 0x4, 0, 0, 0, 0, 0]),
            "SETTINGS passed through"
        );
    }

    #[tokio::test]
    async fn malformed_sequences_are_refused() {
        assert!(
            rewrite(b"GET / HTTP/1.1\r\n\r\n.......".to_vec())
                .await
                .is_err()
        );
        let mut stray = PREFACE.to_vec();
        frame_head(&mut stray, 0, CONTINUATION, END_HEADERS, 1);
        assert!(rewrite(stray).await.is_err());
        let mut huge = PREFACE.to_vec();
        frame_head(&mut huge, MAX_BLOCK + 1, HEADERS, END_HEADERS, 1);
        assert!(rewrite(huge).await.is_err());
        let mut overpadded = PREFACE.to_vec();
        overpadded.extend(headers_frame(PADDED | END_HEADERS, 1, &[9, 0x82]));
        assert!(rewrite(overpadded).await.is_err());
    }
}
