//! Placeholder until the message module lands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad message")]
pub struct MessageError;
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    Ping { nonce: u64 },
    Goodbye,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMessage {
    Ping { nonce: u64 },
    Goodbye,
}
macro_rules! stub {
    ($t:ident) => {
        impl $t {
            pub fn encode_into(&self, out: &mut Vec<u8>) {
                match self {
                    Self::Ping { nonce } => {
                        out.push(0x20);
                        out.extend_from_slice(&nonce.to_be_bytes());
                    }
                    Self::Goodbye => out.push(0x30),
                }
            }
            pub fn encode(&self) -> Vec<u8> {
                let mut v = Vec::new();
                self.encode_into(&mut v);
                v
            }
            pub fn decode(b: &[u8]) -> Result<Self, MessageError> {
                match b {
                    [0x30] => Ok(Self::Goodbye),
                    [0x20, rest @ ..] if rest.len() == 8 => Ok(Self::Ping {
                        nonce: u64::from_be_bytes(rest.try_into().unwrap()),
                    }),
                    _ => Err(MessageError),
                }
            }
        }
    };
}
stub!(ClientMessage);
stub!(ServerMessage);
pub const MAX_MESSAGE_BYTES: usize = 65_000;
