//! The relay protocol's framing: one request and one response per stream, each a big-endian
//! u32 length followed by that many bytes (an encoded `RelayRequest` / `RelayResponse`).
//! Lengths over the cap are refused before any allocation.

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use libp2p::StreamProtocol;

/// Protocol name of relays (and peer probes, which are relays of `eth_blockNumber`) whose
/// request may end with the requester's trace context (`RelayRequest::trace`). Offered first.
pub const RELAY_PROTOCOL: StreamProtocol = StreamProtocol::new("/rpcmesh/relay/2");

/// The first relay protocol, spoken by daemons that predate the trace-context trailer: the same
/// frames, but a request must not carry the trailer ([`RelayCodec`] cuts it off on these streams).
pub const RELAY_PROTOCOL_V1: StreamProtocol = StreamProtocol::new("/rpcmesh/relay/1");

/// The relay protocols in the order a requester offers them: the newest first.
pub const RELAY_PROTOCOLS: [StreamProtocol; 2] = [RELAY_PROTOCOL, RELAY_PROTOCOL_V1];

/// Length-prefixed frames with a size cap.
#[derive(Debug, Clone, Copy)]
pub struct RelayCodec {
    /// Largest frame accepted or sent, bytes.
    pub max_frame_bytes: usize,
}

/// Reads a frame's big-endian `u32` length, refusing one over `max` before anything is allocated
/// (also the framing of relay streams, `relay::stream`).
pub async fn read_len<T: AsyncRead + Unpin>(io: &mut T, max: usize) -> std::io::Result<usize> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes over the {max}-byte cap"),
        ));
    }
    Ok(len)
}

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> std::io::Result<Vec<u8>> {
    let len = read_len(io, max).await?;
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8], max: usize) -> std::io::Result<()> {
    if bytes.len() > max || bytes.len() > u32::MAX as usize {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("frame of {} bytes over the {max}-byte cap", bytes.len()),
        ));
    }
    io.write_all(&(bytes.len() as u32).to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.flush().await
}

impl libp2p::request_response::Codec for RelayCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        read_frame(io, self.max_frame_bytes).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        read_frame(io, self.max_frame_bytes).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        protocol: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> std::io::Result<()> {
        // The peer negotiated the first protocol: it refuses a trace-context trailer.
        let req = if *protocol == RELAY_PROTOCOL_V1 {
            rpcmesh_protocol::messages::RelayRequest::without_trace_context(req)
        } else {
            req
        };
        write_frame(io, &req, self.max_frame_bytes).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> std::io::Result<()> {
        write_frame(io, &res, self.max_frame_bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::request_response::Codec as _;

    #[test]
    fn frames_round_trip_and_cap() {
        futures::executor::block_on(async {
            let mut codec = RelayCodec { max_frame_bytes: 16 };
            let mut buf = Vec::new();
            codec.write_request(&RELAY_PROTOCOL, &mut buf, b"hello".to_vec()).await.unwrap();
            assert_eq!(&buf[..4], &[0, 0, 0, 5]);
            let got = codec.read_request(&RELAY_PROTOCOL, &mut futures::io::Cursor::new(buf)).await.unwrap();
            assert_eq!(got, b"hello");
            assert!(codec.write_request(&RELAY_PROTOCOL, &mut Vec::new(), vec![0; 17]).await.is_err());
            let mut evil = (1u32 << 31).to_be_bytes().to_vec();
            evil.extend_from_slice(b"xx");
            assert!(codec.read_request(&RELAY_PROTOCOL, &mut futures::io::Cursor::new(evil)).await.is_err());
        });
    }

    #[test]
    fn relay_1_streams_carry_no_trace_context() {
        use rpcmesh_protocol::encoding;
        use rpcmesh_protocol::messages::{MessageHeader, RelayRequest, TraceContext};
        futures::executor::block_on(async {
            let mut request = RelayRequest {
                header: MessageHeader::new("net", 1, 1_000, 2_000),
                chain_id: 1,
                timeout_ms: 2_000,
                body: b"{}".to_vec(),
                trace: Some(TraceContext { trace_id: [1; 16], parent_span_id: [2; 8], flags: 1 }),
            };
            let traced = encoding::to_bytes(&request);
            let mut codec = RelayCodec { max_frame_bytes: 1 << 16 };
            let mut v2 = Vec::new();
            codec.write_request(&RELAY_PROTOCOL, &mut v2, traced.clone()).await.unwrap();
            assert_eq!(&v2[4..], &traced[..]);
            let mut v1 = Vec::new();
            codec.write_request(&RELAY_PROTOCOL_V1, &mut v1, traced).await.unwrap();
            request.trace = None;
            assert_eq!(&v1[4..], &encoding::to_bytes(&request)[..]);
        });
    }
}
