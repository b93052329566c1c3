//! Property tests: every decoder inverts its encoder, and no mutation or
//! truncation of a valid file makes a decoder panic. Case counts follow
//! `PROPTEST_CASES` (default 256).

use std::io::BufReader;

use proptest::prelude::*;
use wafernoc_trace::fuzzing;
use wafernoc_trace::import::{import_generic_reader, ImportOptions};
use wafernoc_trace::{
    PacketRecord, PacketTextReader, PacketTextWriter, PacketTraceHeader, PacketTraceReader,
    PacketTraceWriter, Phase, Request, RoutingMeta, RoutingReader, RoutingTrace, SizeUnit,
    TokenRouting,
};

fn packet_trace() -> impl Strategy<Value = (PacketTraceHeader, Vec<PacketRecord>)> {
    (1u32..64, any::<bool>(), "\\PC{0,20}").prop_flat_map(|(nodes, bytes, meta)| {
        let rec = (
            0u64..5,
            0..nodes,
            0..nodes,
            1u32..5000,
            any::<u8>(),
            prop::collection::vec(any::<u64>(), 0..4),
        );
        prop::collection::vec(rec, 0..24).prop_map(move |raw| {
            let mut cycle = 0u64;
            let recs = raw
                .into_iter()
                .enumerate()
                .map(|(i, (dc, src, dst, size, class, deps))| {
                    cycle += dc;
                    let id = i as u64;
                    PacketRecord {
                        id,
                        cycle,
                        src,
                        dst,
                        size,
                        class,
                        deps: if id == 0 {
                            vec![]
                        } else {
                            deps.into_iter().map(|d| d % id).collect()
                        },
                    }
                })
                .collect();
            let header = PacketTraceHeader {
                nodes,
                unit: if bytes {
                    SizeUnit::Bytes
                } else {
                    SizeUnit::Flits
                },
                meta: meta.clone(),
            };
            (header, recs)
        })
    })
}

fn encode_packet_binary(h: &PacketTraceHeader, recs: &[PacketRecord]) -> Vec<u8> {
    let mut w = PacketTraceWriter::new(Vec::new(), h).unwrap();
    for r in recs {
        w.write(r).unwrap();
    }
    w.finish().unwrap()
}

fn encode_packet_text(h: &PacketTraceHeader, recs: &[PacketRecord]) -> Vec<u8> {
    let mut w = PacketTextWriter::new(Vec::new(), h).unwrap();
    for r in recs {
        w.write(r).unwrap();
    }
    w.finish().unwrap()
}

fn weight() -> impl Strategy<Value = f32> {
    any::<f32>().prop_filter("finite", |w| w.is_finite())
}

fn routing_trace() -> impl Strategy<Value = RoutingTrace> {
    (
        1u16..40,
        1u16..4,
        1u16..4,
        any::<bool>(),
        "\\PC{0,12}",
        0usize..5,
    )
        .prop_flat_map(|(e, k, l, prefill, model, n_req)| {
            let k = k.min(e);
            let per_token = usize::from(k) * usize::from(l);
            // One token: for each layer a random permutation prefix of
            // 0..e (distinct experts), optional weights.
            let layer = Just((0..e).collect::<Vec<u16>>())
                .prop_shuffle()
                .prop_map(move |p| p[..usize::from(k)].to_vec());
            let token = (
                prop::collection::vec(layer, usize::from(l)),
                prop::option::of(prop::collection::vec(weight(), per_token)),
            )
                .prop_map(|(layers, weights)| TokenRouting {
                    experts: layers.concat(),
                    weights,
                });
            let request = (0u32..3, prop::collection::vec(token, 1..4));
            prop::collection::vec(request, n_req).prop_map(move |reqs| {
                let mut id = 0u32;
                let requests = reqs
                    .into_iter()
                    .map(|(gap, tokens)| {
                        id += gap;
                        let r = Request { id, tokens };
                        id += 1;
                        r
                    })
                    .collect();
                RoutingTrace {
                    meta: RoutingMeta {
                        model: model.clone(),
                        source: "proptest \"quoted\"\n".into(),
                        license: "MIT".into(),
                        num_experts: e,
                        top_k: k,
                        num_layers: l,
                        phase: if prefill {
                            Phase::Prefill
                        } else {
                            Phase::Decode
                        },
                    },
                    requests,
                }
            })
        })
}

fn routing_binary(t: &RoutingTrace) -> Vec<u8> {
    let mut v = Vec::new();
    t.write_binary(&mut v, "p.wnrt").unwrap();
    v
}

fn routing_text(t: &RoutingTrace) -> Vec<u8> {
    let mut v = Vec::new();
    t.write_text(&mut v, "p.jsonl").unwrap();
    v
}

/// Apply a list of (position, byte) overwrites, then truncate.
fn mutate(mut data: Vec<u8>, edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    if !data.is_empty() {
        for &(pos, b) in edits {
            let i = pos % data.len();
            data[i] = b;
        }
    }
    if let Some(c) = cut {
        data.truncate(c % (data.len() + 1));
    }
    data
}

fn edits() -> impl Strategy<Value = (Vec<(usize, u8)>, Option<usize>)> {
    (
        prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        prop::option::of(any::<usize>()),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn packet_binary_roundtrip((h, recs) in packet_trace()) {
        let bytes = encode_packet_binary(&h, &recs);
        let r = PacketTraceReader::new(&bytes[..]).unwrap();
        prop_assert_eq!(r.header(), &h);
        let back: Vec<PacketRecord> = r.collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(back, recs);
    }

    #[test]
    fn packet_text_roundtrip((h, recs) in packet_trace()) {
        let bytes = encode_packet_text(&h, &recs);
        let r = PacketTextReader::new(BufReader::new(&bytes[..])).unwrap();
        prop_assert_eq!(r.header(), &h);
        let back: Vec<PacketRecord> = r.collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(back, recs);
    }

    #[test]
    fn routing_binary_roundtrip(t in routing_trace()) {
        let bytes = routing_binary(&t);
        let back = RoutingTrace::read_binary(&bytes[..], "p.wnrt").unwrap();
        prop_assert_eq!(&back, &t);
        // Streaming reader sees the same requests.
        let r = RoutingReader::new(&bytes[..]).unwrap();
        prop_assert_eq!(r.meta(), &t.meta);
        prop_assert_eq!(r.count(), t.requests.len());
    }

    #[test]
    fn routing_text_roundtrip(t in routing_trace()) {
        let bytes = routing_text(&t);
        let back = RoutingTrace::read_text(BufReader::new(&bytes[..]), "p.jsonl").unwrap();
        prop_assert_eq!(&back, &t);
        // Binary and text agree byte for byte after a text round trip.
        prop_assert_eq!(routing_binary(&back), routing_binary(&t));
    }

    #[test]
    fn generic_import_without_header_keeps_routing(t in routing_trace()) {
        // Drop the header line: the generic importer must infer a shape that
        // accepts the same data.
        if t.requests.is_empty() {
            return Ok(());
        }
        let text = routing_text(&t);
        let body = &text[text.iter().position(|&b| b == b'\n').unwrap() + 1..];
        let opts = ImportOptions { num_experts: Some(t.meta.num_experts), ..Default::default() };
        let back = import_generic_reader(body, "g.jsonl", &opts).unwrap();
        prop_assert_eq!(back.meta.top_k, t.meta.top_k);
        prop_assert_eq!(back.meta.num_layers, t.meta.num_layers);
        prop_assert_eq!(back.requests, t.requests);
    }

    #[test]
    fn binary_prefixes_are_errors((h, recs) in packet_trace(), cut in any::<usize>()) {
        let bytes = encode_packet_binary(&h, &recs);
        let n = cut % bytes.len();
        let res: Result<Vec<_>, _> = PacketTraceReader::new(&bytes[..n]).and_then(|r| r.collect());
        prop_assert!(res.is_err());
    }

    #[test]
    fn mutated_packet_binary_never_panics((h, recs) in packet_trace(), (ed, cut) in edits()) {
        let data = mutate(encode_packet_binary(&h, &recs), &ed, cut);
        fuzzing::packet_binary(&data);
    }

    #[test]
    fn mutated_packet_text_never_panics((h, recs) in packet_trace(), (ed, cut) in edits()) {
        let data = mutate(encode_packet_text(&h, &recs), &ed, cut);
        fuzzing::packet_text(&data);
    }

    #[test]
    fn mutated_routing_binary_never_panics(t in routing_trace(), (ed, cut) in edits()) {
        let data = mutate(routing_binary(&t), &ed, cut);
        fuzzing::routing_binary(&data);
    }

    #[test]
    fn mutated_routing_text_never_panics(t in routing_trace(), (ed, cut) in edits()) {
        let data = mutate(routing_text(&t), &ed, cut);
        fuzzing::generic_jsonl(&data);
    }

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..256), magic in 0u8..3) {
        let mut d = match magic {
            0 => b"WNOCPKT\0\x01\x00".to_vec(),
            1 => b"WNOCRTE\0\x01\x00".to_vec(),
            _ => Vec::new(),
        };
        d.extend_from_slice(&data);
        fuzzing::packet_binary(&d);
        fuzzing::routing_binary(&d);
        fuzzing::packet_text(&d);
        fuzzing::generic_jsonl(&d);
        let _ = wafernoc_trace::detect_bytes(&d);
    }
}
