//! WebSocket framing and client-frame parsing.

use super::*;

/// A client frame: masked with `mask` unless it is `None`.
fn client_frame(opcode: OpCode, fin: bool, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        is_final: fin,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode,
        mask,
    };
    let mut out = Vec::new();
    header.format(payload.len() as u64, &mut out).unwrap();
    let mut body = payload.to_vec();
    if let Some(m) = mask {
        unmask(&mut body, m);
    }
    out.extend_from_slice(&body);
    out
}

const MASK: Option<[u8; 4]> = Some([1, 2, 3, 4]);
const TEXT: OpCode = OpCode::Data(Data::Text);
const PING: &[u8] = br#"{"type":"ping"}"#;

fn parse(chunks: &[&[u8]]) -> Vec<Incoming> {
    let mut reader = WsReader::default();
    let mut out = Vec::new();
    for c in chunks {
        reader.input(c, &mut out);
    }
    out
}

#[test]
fn server_frames_are_unmasked_final_text_frames_with_the_payload() {
    let f = server_frame(TEXT, b"hi");
    assert_eq!(&f[..], &[0x81, 2, b'h', b'i']);
    // 126..=65535 bytes: the 16-bit length form.
    let big = server_frame(TEXT, &[b'x'; 300]);
    assert_eq!(&big[..4], &[0x81, 126, 1, 44]);
    assert_eq!(big.len(), 304);
}

#[test]
fn a_ping_message_split_over_reads_is_reported_once() {
    let frame = client_frame(TEXT, true, MASK, PING);
    assert_eq!(parse(&[&frame]), vec![Incoming::Ping]);
    let (a, b) = frame.split_at(3);
    assert_eq!(parse(&[a, b]), vec![Incoming::Ping]);
    // Byte by byte.
    let bytes: Vec<&[u8]> = frame.chunks(1).collect();
    assert_eq!(parse(&bytes), vec![Incoming::Ping]);
    // Two in one read.
    let two = [frame.clone(), frame].concat();
    assert_eq!(parse(&[&two]), vec![Incoming::Ping, Incoming::Ping]);
}

#[test]
fn a_fragmented_ping_message_is_assembled() {
    let first = client_frame(TEXT, false, MASK, &PING[..5]);
    let rest = client_frame(OpCode::Data(Data::Continue), true, MASK, &PING[5..]);
    assert_eq!(parse(&[&first, &rest]), vec![Incoming::Ping]);
}

#[test]
fn ping_frames_get_a_pong_with_their_payload() {
    let ping = client_frame(OpCode::Control(Control::Ping), true, MASK, b"abc");
    let pong = server_frame(OpCode::Control(Control::Pong), b"abc");
    assert_eq!(parse(&[&ping]), vec![Incoming::Reply(pong)]);
    let ignored = client_frame(OpCode::Control(Control::Pong), true, MASK, b"x");
    assert_eq!(parse(&[&ignored]), vec![]);
}

#[test]
fn close_frames_report_the_clients_code_and_stop_parsing() {
    let close = client_frame(OpCode::Control(Control::Close), true, MASK, &[0x03, 0xe8]);
    let after = client_frame(TEXT, true, MASK, PING);
    assert_eq!(
        parse(&[&[close, after].concat()]),
        vec![Incoming::Closed(Some(1000))]
    );
    let empty = client_frame(OpCode::Control(Control::Close), true, MASK, b"");
    assert_eq!(parse(&[&empty]), vec![Incoming::Closed(None)]);
    let reserved = client_frame(OpCode::Control(Control::Close), true, MASK, &[0x03, 0xed]);
    assert!(matches!(
        parse(&[&reserved])[..],
        [Incoming::Violation(close::PROTOCOL, _)]
    ));
}

#[test]
fn frames_a_subscriber_may_not_send_are_violations_with_their_codes() {
    let code = |frame: Vec<u8>| match parse(&[&frame])[..] {
        [Incoming::Violation(code, _)] => code,
        ref other => panic!("{other:?}"),
    };
    assert_eq!(code(client_frame(TEXT, true, None, PING)), close::PROTOCOL);
    assert_eq!(
        code(client_frame(OpCode::Data(Data::Binary), true, MASK, b"x")),
        close::POLICY
    );
    assert_eq!(
        code(client_frame(TEXT, true, MASK, br#"{"type":"nope"}"#)),
        close::POLICY
    );
    assert_eq!(
        code(client_frame(TEXT, true, MASK, &[0xff, 0xfe])),
        close::INVALID_DATA
    );
    assert_eq!(
        code(client_frame(TEXT, true, MASK, &[b' '; 2000])),
        close::TOO_BIG
    );
    assert_eq!(
        code(client_frame(OpCode::Data(Data::Continue), true, MASK, b"x")),
        close::PROTOCOL
    );
    assert_eq!(
        code(client_frame(
            OpCode::Control(Control::Ping),
            true,
            MASK,
            &[0; 126]
        )),
        close::PROTOCOL
    );
}

#[test]
fn a_frame_over_the_transport_limit_drops_the_connection_unbuffered() {
    // Only the header is sent: the parser decides from the declared length.
    let header = FrameHeader {
        is_final: true,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode: TEXT,
        mask: MASK,
    };
    let mut head = Vec::new();
    header.format(TRANSPORT_LIMIT + 1, &mut head).unwrap();
    assert_eq!(parse(&[&head]), vec![Incoming::Drop]);
}

#[test]
fn while_closing_only_the_clients_close_answer_counts() {
    let mut reader = WsReader::default();
    let text = client_frame(TEXT, true, MASK, &[b'x'; 3000]);
    let (a, b) = text.split_at(100);
    // A large frame is skipped, not buffered, across reads.
    assert!(!reader.input_closing(a));
    assert!(!reader.input_closing(b));
    assert!(reader.partial.is_empty());
    let close = client_frame(OpCode::Control(Control::Close), true, MASK, &[0x03, 0xe8]);
    assert!(reader.input_closing(&close));
}
