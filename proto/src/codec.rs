//! The codec of every generated client and server: prost encoding, as
//! `tonic_prost::ProstCodec`, with smaller per-stream buffers.
//!
//! tonic's default allocates an 8 KiB encode and an 8 KiB decode buffer for
//! every stream; a control plane holding 10,000 agent streams spends 160 MiB
//! on them, while a PolicySync message is an ACK of a few dozen bytes or a
//! snapshot of a few hundred. [`CompactCodec`] starts both at
//! [`BUFFER_SIZE`]; they still grow to fit a larger message.

use std::marker::PhantomData;
use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// The initial size of a stream's encode and decode buffers, in bytes.
pub const BUFFER_SIZE: usize = 1024;

/// How much encoded data a response stream gathers before yielding it to
/// the transport, in bytes (tonic's default).
const YIELD_THRESHOLD: usize = 32 * 1024;

/// `tonic_prost::ProstCodec` with [`BUFFER_SIZE`] buffers.
#[derive(Debug, Clone)]
pub struct CompactCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for CompactCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for CompactCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(settings())
    }
}

fn settings() -> BufferSettings {
    BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD)
}
