//! A bare HTTP/2 gRPC client over a Unix socket that sends whatever `:authority` it is told, as
//! kubelet's plugin watcher does (it sends the socket path, which no Rust HTTP/2 client can).
//! Just enough of RFC 9113 for unary calls: preface, SETTINGS and its ACK, HEADERS + DATA out,
//! HEADERS / DATA / trailers back; RST_STREAM and GOAWAY are errors.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One connection; requests on it share the HPACK state, as grpc-go's do.
pub struct RawClient {
    sock: UnixStream,
    encoder: loona_hpack::Encoder<'static>,
    decoder: loona_hpack::Decoder<'static>,
    authority: String,
    next_stream: u32,
}

/// What came back for one call.
#[derive(Debug, Default)]
pub struct Reply {
    /// Response headers and trailers, in order.
    pub headers: Vec<(String, String)>,
    /// The gRPC message, without its 5-byte prefix.
    pub message: Vec<u8>,
}

impl Reply {
    /// The value of a header or trailer.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl RawClient {
    /// Connects and sends the preface and an empty SETTINGS frame.
    pub fn connect(socket: &Path, authority: &str) -> std::io::Result<RawClient> {
        let mut sock = UnixStream::connect(socket)?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))?;
        sock.write_all(PREFACE)?;
        write_frame(&mut sock, 0x4, 0, 0, &[])?;
        Ok(RawClient {
            sock,
            encoder: loona_hpack::Encoder::new(),
            decoder: loona_hpack::Decoder::new(),
            authority: authority.to_owned(),
            next_stream: 1,
        })
    }

    /// A unary call of `path` with the encoded protobuf `message`; Err on a reset or GOAWAY.
    pub fn call(&mut self, path: &str, message: &[u8]) -> Result<Reply, String> {
        let stream = self.next_stream;
        self.next_stream += 2;
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", path.as_bytes()),
            (b":authority", self.authority.as_bytes()),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
        ];
        let block = self.encoder.encode(headers);
        let mut data = vec![0u8];
        data.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
        data.extend_from_slice(message);
        let io = |e: std::io::Error| e.to_string();
        write_frame(&mut self.sock, 0x1, 0x4, stream, &block).map_err(io)?;
        write_frame(&mut self.sock, 0x0, 0x1, stream, &data).map_err(io)?;
        let mut reply = Reply::default();
        let mut body = Vec::new();
        loop {
            let (kind, flags, id, payload) = read_frame(&mut self.sock).map_err(io)?;
            match kind {
                0x4 if flags & 0x1 == 0 => {
                    write_frame(&mut self.sock, 0x4, 0x1, 0, &[]).map_err(io)?
                }
                0x6 if flags & 0x1 == 0 => {
                    write_frame(&mut self.sock, 0x6, 0x1, 0, &payload).map_err(io)?
                }
                0x7 => return Err(format!("GOAWAY {payload:?}")),
                0x3 if id == stream => {
                    return Err(format!(
                        "RST_STREAM error code {}",
                        u32::from_be_bytes(payload[..4].try_into().unwrap())
                    ));
                }
                0x1 if id == stream => {
                    let decoded = self
                        .decoder
                        .decode(&payload)
                        .map_err(|e| format!("{e:?}"))?;
                    for (n, v) in decoded {
                        reply.headers.push((
                            String::from_utf8_lossy(&n).into_owned(),
                            String::from_utf8_lossy(&v).into_owned(),
                        ));
                    }
                    if flags & 0x1 != 0 {
                        break;
                    }
                }
                0x0 if id == stream => {
                    body.extend_from_slice(&payload);
                    if flags & 0x1 != 0 {
                        break;
                    }
                }
                _ => {}
            }
        }
        if body.len() >= 5 {
            reply.message = body[5..].to_vec();
        }
        Ok(reply)
    }
}

fn write_frame(
    sock: &mut UnixStream,
    kind: u8,
    flags: u8,
    stream: u32,
    payload: &[u8],
) -> std::io::Result<()> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut frame = vec![len[1], len[2], len[3], kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    sock.write_all(&frame)
}

fn read_frame(sock: &mut UnixStream) -> std::io::Result<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    sock.read_exact(&mut head)?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    sock.read_exact(&mut payload)?;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    Ok((head[3], head[4], stream, payload))
}
