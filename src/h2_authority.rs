//! Lets kubelet's plugin-registration client reach the tonic server: kubelet (v1.37,
//! pkg/kubelet/pluginmanager) dials the socket path as its gRPC target, so every request carries
//! the path as HTTP/2 `:authority`, which the h2 crate rejects as malformed (RST_STREAM
//! PROTOCOL_ERROR). Each accepted connection is relayed through an in-process pipe; on the way in,
//! header blocks are decoded (HPACK), an `:authority` that is not a valid authority becomes
//! `localhost`, and the block is re-encoded. Every other frame, and the whole way back, is copied.

use loona_hpack::{Decoder, Encoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::UnixStream;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The default SETTINGS_MAX_FRAME_SIZE, which h2's server keeps.
const MAX_FRAME: usize = 16_384;

/// Accepts `client` and returns the stream to hand to the gRPC server; the relay runs on its own.
pub fn relay(client: UnixStream) -> DuplexStream {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (mut c_read, mut c_write) = client.into_split();
    let (mut s_read, mut s_write) = tokio::io::split(ours);
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut s_read, &mut c_write).await;
        let _ = c_write.shutdown().await;
    });
    tokio::spawn(async move {
        if let Err(e) = inbound(&mut c_read, &mut s_write).await {
            tracing::debug!(error = %e, "registration connection closed");
        }
        let _ = s_write.shutdown().await;
    });
    theirs
}

/// Client → server: the preface, then frame by frame, header blocks rewritten.
async fn inbound<R, W>(from: &mut R, to: &mut W) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut preface = [0u8; 24];
    from.read_exact(&mut preface).await?;
    if preface != PREFACE {
        return Err(std::io::Error::other("not an HTTP/2 client preface"));
    }
    to.write_all(&preface).await?;
    let mut rewriter = Rewriter::default();
    let mut block = Vec::new();
    let mut block_head: Option<(u8, u32)> = None; // (flags of the HEADERS frame, stream id)
    loop {
        let mut head = [0u8; 9];
        from.read_exact(&mut head).await?;
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        from.read_exact(&mut payload).await?;
        match kind {
            HEADERS => {
                block = fragment(flags, &payload)?.to_vec();
                block_head = Some((flags, stream));
            }
            CONTINUATION if block_head.is_some() => block.extend_from_slice(&payload),
            _ => {
                to.write_all(&head).await?;
                to.write_all(&payload).await?;
                continue;
            }
        }
        if flags & END_HEADERS != 0 {
            let (first, id) = block_head.take().unwrap_or((flags, stream));
            let out = rewriter.rewrite(&block)?;
            write_headers(to, first, id, &out).await?;
            block.clear();
        }
    }
}

/// The header block fragment of a HEADERS frame: padding and priority fields removed.
fn fragment(flags: u8, payload: &[u8]) -> std::io::Result<&[u8]> {
    let bad = || std::io::Error::other("malformed HEADERS frame");
    let mut p = payload;
    let mut pad = 0usize;
    if flags & PADDED != 0 {
        pad = usize::from(*p.first().ok_or_else(bad)?);
        p = &p[1..];
    }
    if flags & PRIORITY != 0 {
        p = p.get(5..).ok_or_else(bad)?;
    }
    p.get(..p.len().checked_sub(pad).ok_or_else(bad)?)
        .ok_or_else(bad)
}

/// One HEADERS frame (+ CONTINUATIONs when large) carrying `block`; END_STREAM kept from `flags`.
async fn write_headers<W>(to: &mut W, flags: u8, stream: u32, block: &[u8]) -> std::io::Result<()>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    let chunks: Vec<&[u8]> = if block.is_empty() {
        vec![block]
    } else {
        block.chunks(MAX_FRAME).collect()
    };
    for (i, chunk) in chunks.iter().enumerate() {
        let kind = if i == 0 { HEADERS } else { CONTINUATION };
        let mut f = if i == 0 { flags & 0x1 } else { 0 };
        if i + 1 == chunks.len() {
            f |= END_HEADERS;
        }
        let len = chunk.len();
        let head = [
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            f,
            (stream >> 24) as u8,
            (stream >> 16) as u8,
            (stream >> 8) as u8,
            stream as u8,
        ];
        to.write_all(&head).await?;
        to.write_all(chunk).await?;
    }
    Ok(())
}

/// HPACK state of one connection: the client's table (decoder) and the server's (encoder).
#[derive(Default)]
struct Rewriter {
    decoder: Decoder<'static>,
    encoder: Encoder<'static>,
}

impl Rewriter {
    fn rewrite(&mut self, block: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut fields = self
            .decoder
            .decode(block)
            .map_err(|e| std::io::Error::other(format!("HPACK: {e}")))?;
        for (name, value) in &mut fields {
            // grpc-go sends the path percent-encoded ("%2Fvar%2F..."): anything h2 would refuse
            if name.as_slice() == b":authority"
                && http::uri::Authority::try_from(value.as_slice()).is_err()
            {
                *value = b"localhost".to_vec();
            }
        }
        Ok(self
            .encoder
            .encode(fields.iter().map(|(n, v)| (n.as_slice(), v.as_slice()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_path_authority_becomes_localhost_and_the_rest_stays() {
        let mut client = Encoder::new();
        let mut r = Rewriter::default();
        let mut server = Decoder::new();
        for _ in 0..2 {
            // twice: the second block refers to the client's dynamic table
            let block = client.encode([
                (&b":method"[..], &b"POST"[..]),
                (b":path", b"/pluginregistration.Registration/GetInfo"),
                (
                    b":authority",
                    b"/var/lib/kubelet/plugins_registry/x-reg.sock",
                ),
                (b"te", b"trailers"),
            ]);
            let out = server.decode(&r.rewrite(&block).unwrap()).unwrap();
            assert_eq!(out[2], (b":authority".to_vec(), b"localhost".to_vec()));
            assert_eq!(
                out[1].1,
                b"/pluginregistration.Registration/GetInfo".to_vec()
            );
            assert_eq!(out[3], (b"te".to_vec(), b"trailers".to_vec()));
        }
        let ok = client.encode([(&b":authority"[..], &b"localhost:1234"[..])]);
        assert_eq!(
            server.decode(&r.rewrite(&ok).unwrap()).unwrap()[0].1,
            b"localhost:1234".to_vec()
        );
    }

    #[test]
    fn padding_and_priority_are_stripped() {
        let payload = [2u8, 0, 0, 0, 1, 16, 0xaa, 0xbb, 0, 0];
        assert_eq!(
            fragment(PADDED | PRIORITY, &payload).unwrap(),
            &[0xaa, 0xbb]
        );
        assert!(fragment(PADDED, &[9u8, 1]).is_err());
    }
}
