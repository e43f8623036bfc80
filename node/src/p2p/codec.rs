//! The relay protocol's framing: one request and one response per stream, each a big-endian
//! u32 length followed by that many bytes (an encoded `RelayRequest` / `RelayResponse`).
//! Lengths over the cap are refused before any allocation.

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use libp2p::StreamProtocol;

/// Protocol name of relays (and peer probes, which are relays of `eth_blockNumber`).
pub const RELAY_PROTOCOL: StreamProtocol = StreamProtocol::new("/rpcmesh/relay/1");

/// Length-prefixed frames with a size cap.
#[derive(Debug, Clone, Copy)]
pub struct RelayCodec {
    /// Largest frame accepted or sent, bytes.
    pub max_frame_bytes: usize,
}

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes over the {max}-byte cap"),
        ));
    }
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
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> std::io::Result<()> {
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
}
