//! A decoder for the `pgoutput` logical replication protocol, version 1.
//!
//! Wire format: <https://www.postgresql.org/docs/15/protocol-logicalrep-message-formats.html>.
//! Input comes from the network, so every read is bounds-checked and a
//! malformed message is an error, never a panic. Protocol 2+ (streaming of
//! in-progress transactions) is not decoded: the transport requests
//! protocol 1, where the server decodes a transaction whole before sending.

use thiserror::Error;

/// A malformed or unsupported pgoutput message.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PgOutputError {
    /// The message ended before a field it announced.
    #[error("truncated {message} message: needed {needed} more bytes at offset {offset}")]
    Truncated {
        /// Message type being decoded.
        message: &'static str,
        /// Where the read failed.
        offset: usize,
        /// Bytes missing.
        needed: usize,
    },
    /// A string field was not valid UTF-8 or not NUL-terminated.
    #[error("bad string in {0} message")]
    BadString(&'static str),
    /// An unknown message type byte.
    #[error("unknown pgoutput message type {0:#04x}")]
    UnknownMessage(u8),
    /// An unknown tuple column kind or marker.
    #[error("unexpected byte {byte:#04x} in {message} message")]
    Unexpected {
        /// Message type being decoded.
        message: &'static str,
        /// The byte found.
        byte: u8,
    },
}

/// One column of a Relation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Part of the replica identity (the key, by default).
    pub key: bool,
    /// Column name.
    pub name: String,
    /// Type OID.
    pub type_oid: u32,
    /// Type modifier (`atttypmod`), e.g. numeric precision/scale.
    pub type_modifier: i32,
}

/// Replica identity setting of a relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaIdentity {
    /// `d`: primary key.
    Default,
    /// `n`: nothing.
    Nothing,
    /// `f`: all columns.
    Full,
    /// `i`: a unique index.
    Index,
}

/// A relation (table) description; precedes the first change of a table in
/// a session and follows every schema change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// Table OID.
    pub oid: u32,
    /// Schema.
    pub namespace: String,
    /// Table name.
    pub name: String,
    /// Replica identity.
    pub replica_identity: ReplicaIdentity,
    /// Columns in table order.
    pub columns: Vec<RelationColumn>,
}

/// One column value of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TupleValue {
    /// SQL NULL.
    Null,
    /// An unchanged TOASTed value that was not sent.
    UnchangedToast,
    /// The value in Postgres text format.
    Text(Vec<u8>),
    /// The value in binary format (only with the `binary` option).
    Binary(Vec<u8>),
}

/// A decoded pgoutput message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Transaction start.
    Begin {
        /// LSN of the commit record.
        final_lsn: u64,
        /// Commit time (µs since 2000-01-01).
        commit_time: i64,
        /// Transaction id.
        xid: u32,
    },
    /// Transaction end.
    Commit {
        /// LSN of the commit record.
        commit_lsn: u64,
        /// End of the commit record: the position to confirm.
        end_lsn: u64,
        /// Commit time (µs since 2000-01-01).
        commit_time: i64,
    },
    /// Replication origin of the transaction.
    Origin {
        /// Origin LSN.
        lsn: u64,
        /// Origin name.
        name: String,
    },
    /// Table description.
    Relation(Relation),
    /// A data type description (non-builtin types).
    Type {
        /// Type OID.
        oid: u32,
        /// Schema of the type.
        namespace: String,
        /// Type name.
        name: String,
    },
    /// Row inserted.
    Insert {
        /// Table OID.
        relation: u32,
        /// New row.
        new: Vec<TupleValue>,
    },
    /// Row updated. `old` is the old key (`K`) or the full old row (`O`,
    /// replica identity full) when the server sent it.
    Update {
        /// Table OID.
        relation: u32,
        /// Old key or row, when sent.
        old: Option<Vec<TupleValue>>,
        /// New row.
        new: Vec<TupleValue>,
    },
    /// Row deleted: its key (or full row with replica identity full).
    Delete {
        /// Table OID.
        relation: u32,
        /// Old key or row.
        old: Vec<TupleValue>,
    },
    /// Tables truncated.
    Truncate {
        /// Table OIDs.
        relations: Vec<u32>,
        /// `CASCADE` was given.
        cascade: bool,
        /// `RESTART IDENTITY` was given.
        restart_identity: bool,
    },
    /// `pg_logical_emit_message()`.
    LogicalMessage {
        /// Transactional message.
        transactional: bool,
        /// Its LSN.
        lsn: u64,
        /// Prefix.
        prefix: String,
        /// Content.
        content: Vec<u8>,
    },
}

/// Bounds-checked reader over one message.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    message: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PgOutputError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(PgOutputError::Truncated {
                message: self.message,
                offset: self.pos,
                needed: n.saturating_sub(self.buf.len().saturating_sub(self.pos)),
            })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, PgOutputError> {
        Ok(self.take(1)?[0])
    }

    fn i16(&mut self) -> Result<i16, PgOutputError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, PgOutputError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u32(&mut self) -> Result<u32, PgOutputError> {
        Ok(self.i32()? as u32)
    }

    fn i64(&mut self) -> Result<i64, PgOutputError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    fn u64(&mut self) -> Result<u64, PgOutputError> {
        Ok(self.i64()? as u64)
    }

    fn string(&mut self) -> Result<String, PgOutputError> {
        let rest = &self.buf[self.pos.min(self.buf.len())..];
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(PgOutputError::BadString(self.message))?;
        let s = std::str::from_utf8(&rest[..len])
            .map_err(|_| PgOutputError::BadString(self.message))?;
        self.pos += len + 1;
        Ok(s.to_owned())
    }

    fn tuple(&mut self) -> Result<Vec<TupleValue>, PgOutputError> {
        let n = self.i16()?.max(0) as usize;
        let mut values = Vec::with_capacity(n);
        for _ in 0..n {
            values.push(match self.u8()? {
                b'n' => TupleValue::Null,
                b'u' => TupleValue::UnchangedToast,
                b't' => {
                    let len = self.i32()?.max(0) as usize;
                    TupleValue::Text(self.take(len)?.to_vec())
                }
                b'b' => {
                    let len = self.i32()?.max(0) as usize;
                    TupleValue::Binary(self.take(len)?.to_vec())
                }
                byte => {
                    return Err(PgOutputError::Unexpected {
                        message: self.message,
                        byte,
                    });
                }
            });
        }
        Ok(values)
    }
}

/// Decodes one pgoutput message (the payload of an XLogData).
pub fn decode(buf: &[u8]) -> Result<Message, PgOutputError> {
    let kind = *buf.first().ok_or(PgOutputError::Truncated {
        message: "empty",
        offset: 0,
        needed: 1,
    })?;
    let name = match kind {
        b'B' => "Begin",
        b'C' => "Commit",
        b'O' => "Origin",
        b'R' => "Relation",
        b'Y' => "Type",
        b'I' => "Insert",
        b'U' => "Update",
        b'D' => "Delete",
        b'T' => "Truncate",
        b'M' => "Message",
        other => return Err(PgOutputError::UnknownMessage(other)),
    };
    let mut r = Reader {
        buf,
        pos: 1,
        message: name,
    };
    Ok(match kind {
        b'B' => Message::Begin {
            final_lsn: r.u64()?,
            commit_time: r.i64()?,
            xid: r.u32()?,
        },
        b'C' => {
            let _flags = r.u8()?;
            Message::Commit {
                commit_lsn: r.u64()?,
                end_lsn: r.u64()?,
                commit_time: r.i64()?,
            }
        }
        b'O' => Message::Origin {
            lsn: r.u64()?,
            name: r.string()?,
        },
        b'R' => {
            let oid = r.u32()?;
            let namespace = r.string()?;
            let name = r.string()?;
            let replica_identity = match r.u8()? {
                b'd' => ReplicaIdentity::Default,
                b'n' => ReplicaIdentity::Nothing,
                b'f' => ReplicaIdentity::Full,
                b'i' => ReplicaIdentity::Index,
                byte => {
                    return Err(PgOutputError::Unexpected {
                        message: "Relation",
                        byte,
                    });
                }
            };
            let n = r.i16()?.max(0) as usize;
            let mut columns = Vec::with_capacity(n);
            for _ in 0..n {
                columns.push(RelationColumn {
                    key: r.u8()? & 1 == 1,
                    name: r.string()?,
                    type_oid: r.u32()?,
                    type_modifier: r.i32()?,
                });
            }
            Message::Relation(Relation {
                oid,
                namespace,
                name,
                replica_identity,
                columns,
            })
        }
        b'Y' => Message::Type {
            oid: r.u32()?,
            namespace: r.string()?,
            name: r.string()?,
        },
        b'I' => {
            let relation = r.u32()?;
            expect(&mut r, b'N')?;
            Message::Insert {
                relation,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relation = r.u32()?;
            let (old, marker) = match r.u8()? {
                b'K' | b'O' => (Some(r.tuple()?), r.u8()?),
                marker => (None, marker),
            };
            if marker != b'N' {
                return Err(PgOutputError::Unexpected {
                    message: "Update",
                    byte: marker,
                });
            }
            Message::Update {
                relation,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32()?;
            match r.u8()? {
                b'K' | b'O' => {}
                byte => {
                    return Err(PgOutputError::Unexpected {
                        message: "Delete",
                        byte,
                    });
                }
            }
            Message::Delete {
                relation,
                old: r.tuple()?,
            }
        }
        b'T' => {
            let n = r.i32()?.max(0) as usize;
            let options = r.u8()?;
            let mut relations = Vec::with_capacity(n.min(4096));
            for _ in 0..n {
                relations.push(r.u32()?);
            }
            Message::Truncate {
                relations,
                cascade: options & 1 != 0,
                restart_identity: options & 2 != 0,
            }
        }
        _ => {
            // b'M'
            let flags = r.u8()?;
            let lsn = r.u64()?;
            let prefix = r.string()?;
            let len = r.i32()?.max(0) as usize;
            Message::LogicalMessage {
                transactional: flags & 1 != 0,
                lsn,
                prefix,
                content: r.take(len)?.to_vec(),
            }
        }
    })
}

fn expect(r: &mut Reader<'_>, want: u8) -> Result<(), PgOutputError> {
    match r.u8()? {
        b if b == want => Ok(()),
        byte => Err(PgOutputError::Unexpected {
            message: r.message,
            byte,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relation_bytes() -> Vec<u8> {
        let mut b = vec![b'R'];
        b.extend(16384u32.to_be_bytes());
        b.extend(b"public\0orders\0");
        b.push(b'd');
        b.extend(2i16.to_be_bytes());
        b.push(1);
        b.extend(b"id\0");
        b.extend(20u32.to_be_bytes());
        b.extend((-1i32).to_be_bytes());
        b.push(0);
        b.extend(b"note\0");
        b.extend(25u32.to_be_bytes());
        b.extend((-1i32).to_be_bytes());
        b
    }

    #[test]
    fn relation_and_update_with_unchanged_toast() {
        let Message::Relation(rel) = decode(&relation_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(rel.name, "orders");
        assert!(rel.columns[0].key && !rel.columns[1].key);
        let mut u = vec![b'U'];
        u.extend(16384u32.to_be_bytes());
        u.push(b'N');
        u.extend(2i16.to_be_bytes());
        u.push(b't');
        u.extend(1i32.to_be_bytes());
        u.push(b'7');
        u.push(b'u');
        assert_eq!(
            decode(&u).unwrap(),
            Message::Update {
                relation: 16384,
                old: None,
                new: vec![TupleValue::Text(b"7".to_vec()), TupleValue::UnchangedToast]
            }
        );
    }

    #[test]
    fn every_truncation_of_a_valid_message_is_an_error_not_a_panic() {
        let full = relation_bytes();
        for len in 0..full.len() {
            assert!(decode(&full[..len]).is_err(), "prefix of {len} bytes");
        }
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(decode(b"Z"), Err(PgOutputError::UnknownMessage(b'Z')));
        let mut bad = vec![b'I'];
        bad.extend(1u32.to_be_bytes());
        bad.push(b'X');
        assert!(matches!(
            decode(&bad),
            Err(PgOutputError::Unexpected { byte: b'X', .. })
        ));
        // A length field larger than the message.
        let mut huge = vec![b'I'];
        huge.extend(1u32.to_be_bytes());
        huge.push(b'N');
        huge.extend(1i16.to_be_bytes());
        huge.push(b't');
        huge.extend(i32::MAX.to_be_bytes());
        assert!(matches!(
            decode(&huge),
            Err(PgOutputError::Truncated { .. })
        ));
    }
}
